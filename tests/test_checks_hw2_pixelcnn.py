"""Tests of the hw2_pixelcnn autograder checks: each accepts the reference and rejects
realistic wrong answers with a message that names the mistake."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradelib import pixelcnn as ref
from gradelib.checks import assertions
from gradelib.checks import hw2_pixelcnn as checks
from gradelib.data import load_mnist
from gradelib.device import make_generator

# ----------------------------------------------------------------------------- causal_mask


def _mask_swapped(k, mask_type, in_channels=1, out_channels=1):
    return ref.causal_mask(k, "B" if mask_type == "A" else "A", in_channels, out_channels)


def _mask_future_rows(k, mask_type, in_channels=1, out_channels=1):
    mask = torch.ones(out_channels, in_channels, k, k)
    mask[:, :, k // 2, k // 2 + (mask_type == "B") :] = 0  # forgot to zero the rows below
    return mask


def _mask_transposed(k, mask_type, in_channels=1, out_channels=1):
    return ref.causal_mask(k, mask_type, in_channels, out_channels).transpose(2, 3)


def _mask_in_out_swapped(k, mask_type, in_channels=1, out_channels=1):
    return ref.causal_mask(k, mask_type, out_channels, in_channels)


def _mask_no_defaults(k, mask_type, in_channels, out_channels):
    return ref.causal_mask(k, mask_type, in_channels, out_channels)


def test_check_causal_mask_accepts_reference():
    checks.check_causal_mask(ref.causal_mask)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (_mask_swapped, "type-B mask: type A hides the centre"),
        (_mask_future_rows, "rows below the centre must be 0"),
        (_mask_transposed, "transposed"),
        (_mask_in_out_swapped, r"\(out_channels, in_channels, k, k\)"),
        (_mask_no_defaults, "missing 2 required positional arguments"),
    ],
)
def test_check_causal_mask_rejects(wrong, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_causal_mask(wrong)


# ----------------------------------------------------------------------------- MaskedConv2d


class _MaskOnlyAtInit(nn.Conv2d):
    def __init__(self, mask_type, in_channels, out_channels, kernel_size, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, **kwargs)
        with torch.no_grad():
            self.weight *= ref.causal_mask(kernel_size, mask_type, in_channels, out_channels)


class _SwappedTypes(ref.MaskedConv2d):
    def __init__(self, mask_type, *args, **kwargs):
        super().__init__("B" if mask_type == "A" else "A", *args, **kwargs)


class _NoPadding(nn.Conv2d):
    def __init__(self, mask_type, in_channels, out_channels, kernel_size, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        self.register_buffer("mask", ref.causal_mask(kernel_size, mask_type, in_channels,
                                                     out_channels))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias)


class _Wrapper(nn.Module):
    def __init__(self, mask_type, in_channels, out_channels, kernel_size, **kwargs):
        super().__init__()
        self.conv = ref.MaskedConv2d(mask_type, in_channels, out_channels, kernel_size, **kwargs)

    def forward(self, x):
        return self.conv(x)


def test_check_masked_conv2d_accepts_reference():
    checks.check_masked_conv2d(ref.MaskedConv2d)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (_MaskOnlyAtInit, "not masked in forward"),
        (_SwappedTypes, "mask types are swapped"),
        (_NoPadding, r"returned shape \(2, 4, 4, 5\); expected \(2, 4, 6, 7\)"),
        (_Wrapper, "expected a subclass of nn.Conv2d"),
    ],
)
def test_check_masked_conv2d_rejects(wrong, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_masked_conv2d(wrong)


# ----------------------------------------------------------------------------- PixelCNN


class _Net(nn.Module):
    """A PixelCNN with configurable first/later mask types, for wrong answers."""

    def __init__(self, first="A", later="B", mask_fn=ref.causal_mask, head_kernel=1, pad=True):
        super().__init__()
        self.first = nn.Conv2d(1, 8, 5, padding=2 if pad else 0)  # pad=False: forgot padding
        self.layers = nn.ModuleList(nn.Conv2d(8, 8, 3, padding=1) for _ in range(2))
        self.masks = [mask_fn(5, first, 1, 8)] + [mask_fn(3, later, 8, 8) for _ in range(2)]
        self.head = nn.Conv2d(8, 1, head_kernel, padding=head_kernel // 2)

    def forward(self, x):
        h = F.conv2d(x, self.first.weight * self.masks[0], self.first.bias,
                     padding=self.first.padding)
        for layer, mask in zip(self.layers, self.masks[1:]):
            h = torch.relu(F.conv2d(h, layer.weight * mask, layer.bias, padding=layer.padding))
        return self.head(h)


def _tiny_reference():
    return ref.PixelCNN(ref.PixelCNNConfig(hidden_channels=8, num_layers=2))


def test_check_pixelcnn_accepts_reference_and_a_correct_variant():
    checks.check_pixelcnn(_tiny_reference)
    checks.check_pixelcnn(_Net)  # plain convs masked by hand: also correct


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda: _Net(first="B", later="B"), "(?s)is not causal.*first layer must use a type-A mask"),
        (lambda: _Net(first="B", later="A"), "no output pixel depends on its left neighbour"),
        (lambda: _Net(first="A", later="A"), "no output pixel depends on its left neighbour"),
        (lambda: _Net(mask_fn=_mask_future_rows), "is not causal"),
        (lambda: _Net(head_kernel=3), "non-masked layers are 1x1"),
        (lambda: _Net(pad=False), r"returned shape \(3, 1, 4, 4\); expected \(3, 1, 8, 8\)"),
    ],
)
def test_check_pixelcnn_rejects(wrong, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_pixelcnn(wrong)


# ----------------------------------------------------------------------------- losses and units


def _nll_mean_over_pixels(logits, x):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").mean(dim=(1, 2, 3))


def _nll_batch_sum(logits, x):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum")


def _log_likelihood(logits, x):
    return -ref.bernoulli_nll(logits, x)


def _nll_double_sigmoid(logits, x):
    return F.binary_cross_entropy_with_logits(torch.sigmoid(logits), x,
                                              reduction="none").sum(dim=(1, 2, 3))


def _nll_naive_log(logits, x):
    p = torch.sigmoid(logits)
    return -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(dim=(1, 2, 3))


def test_check_bernoulli_nll_accepts_reference():
    checks.check_bernoulli_nll(ref.bernoulli_nll)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (_nll_mean_over_pixels, "You averaged over pixels"),
        (_nll_batch_sum, "reduced over the batch too"),
        (_log_likelihood, "sign is flipped"),
        (_nll_double_sigmoid, "sigmoid twice"),
        (_nll_naive_log, "(?s)non-finite values.*stably"),
    ],
)
def test_check_bernoulli_nll_rejects(wrong, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_bernoulli_nll(wrong)


def test_check_nats_to_bits_per_dim_accepts_reference():
    checks.check_nats_to_bits_per_dim(ref.nats_to_bits_per_dim)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda nats, d: nats / d, "Divide by ln 2"),
        (lambda nats, d: nats / (d * math.log10(2)), "not log10"),
        (lambda nats, d: nats * math.log(2) / d, r"not nats \* ln 2"),
        (lambda nats, d: nats / math.log(2), "bits per \\*dimension\\*"),
        (lambda nats, d: (nats / (d * math.log(2))).tolist(), "expected a torch.Tensor"),
    ],
)
def test_check_nats_to_bits_per_dim_rejects(wrong, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_nats_to_bits_per_dim(wrong)


# ----------------------------------------------------------------------------- sample


def _sampler(order="raster", draw="generator", parallel=False, flip=False, probs=False,
             argmax=False):
    """A sampler with one configurable mistake."""

    @torch.no_grad()
    def sample(model, n, height, width, generator):
        x = torch.zeros(n, 1, height, width)
        if parallel:
            p = torch.sigmoid(model(x))
            return (torch.rand(p.shape, generator=generator) < p).float()
        pixels = [(r, c) for r in range(height) for c in range(width)]
        if order == "columns":
            pixels = [(r, c) for c in range(width) for r in range(height)]
        for r, c in pixels:
            p = torch.sigmoid(model(x)[:, 0, r, c])
            if flip:
                p = 1 - p
            if probs:
                x[:, 0, r, c] = p
            elif argmax:
                x[:, 0, r, c] = (p > 0.5).float()
            elif draw == "global":
                x[:, 0, r, c] = torch.bernoulli(p)
            else:
                x[:, 0, r, c] = (torch.rand(n, generator=generator) < p).float()
        return x

    return sample


def test_check_sample_accepts_reference_and_a_bernoulli_variant():
    checks.check_sample(ref.sample)
    checks.check_sample(_sampler())

    def with_bernoulli(model, n, height, width, generator):
        x = torch.zeros(n, 1, height, width)
        with torch.no_grad():
            for r in range(height):
                for c in range(width):
                    p = torch.sigmoid(model(x)[:, 0, r, c])
                    x[:, 0, r, c] = torch.bernoulli(p, generator=generator)
        return x

    checks.check_sample(with_bernoulli)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (_sampler(draw="global"), "reads torch's global random state"),
        (_sampler(flip=True), "You used 1 - p"),
        (_sampler(argmax=True), "thresholded p at 0.5"),
        (_sampler(probs=True), "values other than 0 and 1"),
        (_sampler(parallel=True), r"differ from 1, 0, 1, 0, \.\.\. first at pixel 1 "),
        (_sampler(order="columns"), "differ from 1, 0, 1, 0"),
    ],
)
def test_check_sample_rejects(wrong, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_sample(wrong)


# ----------------------------------------------------------------------------- trained model


class _Cheater(nn.Module):
    """Looks at the pixel it predicts: near-zero NLL, not a density model."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(20.0))

    def forward(self, x):
        return self.scale * (2 * x - 1)


def test_check_trained_pixelcnn_rejects_a_non_causal_model_with_low_nll():
    with pytest.raises(AssertionError, match="trained model on a test digit is not causal"):
        checks.check_trained_pixelcnn(_Cheater())


def test_check_trained_pixelcnn_rejects_a_training_run_over_budget(monkeypatch):
    monkeypatch.setattr(checks, "training_time_budget", lambda: 240.0)
    with pytest.raises(AssertionError, match=r"training took 900 s; the budget on this machine is 240 s"):
        checks.check_trained_pixelcnn(_Cheater(), train_seconds=900.0)


def test_time_budget_grows_with_the_machines_load(monkeypatch):
    assert checks.training_time_budget() >= checks.TRAINING_TIME_BUDGET_S
    # where one epoch on 400 digits takes 100 s, the budget covers 2 epochs on 4,000 of them
    clock = iter([0.0, 100.0])
    monkeypatch.setattr(assertions, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(checks.reference, "train_pixelcnn", lambda *args, **kwargs: [0.0])
    expected = checks.TRAINING_TIME_FACTOR * checks.NOTEBOOK_EPOCHS * 10 * 100.0
    assert checks.training_time_budget() == expected


def test_check_trained_pixelcnn_rejects_independent_pixels():
    """The best model that ignores the context: per-pixel frequencies of the training set."""
    train, _ = load_mnist("train", binarized=True)
    p = train.mean(dim=0, keepdim=True).clamp(1e-3, 1 - 1e-3)  # (1, 1, 28, 28)

    class Independent(nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = nn.Parameter(torch.logit(p))

        def forward(self, x):
            return self.logits.expand(x.shape[0], -1, -1, -1)

    with pytest.raises(AssertionError, match=r"mean test NLL is 2\d\d\.\d nats"):
        checks.check_trained_pixelcnn(Independent())


def test_check_trained_pixelcnn_accepts_the_reference_trained_as_in_the_notebook():
    """The one training run of these tests: the notebook's setting, on the reference."""
    train, _ = load_mnist("train", binarized=True)
    torch.manual_seed(0)
    model = ref.PixelCNN(checks.NOTEBOOK_CONFIG)
    start = time.perf_counter()
    ref.train_pixelcnn(model, train, checks.NOTEBOOK_EPOCHS, make_generator(0))
    seconds = time.perf_counter() - start  # reported, not checked: this machine may be busy
    nll = checks.check_trained_pixelcnn(model)
    assert nll <= checks.TEST_NLL_BAND
    print(f"reference after the notebook's training ({seconds:.0f} s): {nll:.1f} nats "
          f"(band {checks.TEST_NLL_BAND})")
