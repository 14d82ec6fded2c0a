"""Tests of the hw2_pixelcnn autograder checks (second edition, the colour PixelCNN): each
check accepts the reference and rejects realistic wrong answers with a message that names
the mistake."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradelib.checks import assertions
from gradelib.checks import hw2_pixelcnn as checks
from gradelib.checks.references import hw2_pixelcnn as ref
from gradelib.data import load_colour_mnist
from gradelib.device import make_generator
from gradelib.pixelcnn import causal_mask as one_channel_mask

# ----------------------------------------------------------------------------- masks


def _centre(mask, rule, cin, cout, by=lambda i, n: i // (n // 3)):
    """``mask`` with its centre tap set by ``rule(g_in, g_out)`` on channel groups ``by``."""
    k = mask.shape[-1]
    g_out = torch.tensor([by(o, cout) for o in range(cout)])[:, None]
    g_in = torch.tensor([by(i, cin) for i in range(cin)])[None, :]
    mask = mask.clone()
    mask[:, :, k // 2, k // 2] = rule(g_in, g_out).float()
    return mask


def _mask_swapped(k, t, cin, cout):
    return ref.colour_causal_mask(k, "B" if t == "A" else "A", cin, cout)


def _mask_groups_reversed(k, t, cin, cout):
    rule = (lambda a, b: a > b) if t == "A" else (lambda a, b: a >= b)
    return _centre(ref.colour_causal_mask(k, t, cin, cout), rule, cin, cout)


def _mask_centre_leaks_own_channel(k, t, cin, cout):
    """Type A lets a group see itself at the centre (what type B does)."""
    return _centre(ref.colour_causal_mask(k, t, cin, cout), lambda a, b: a <= b, cin, cout)


def _mask_interleaved(k, t, cin, cout):
    rule = (lambda a, b: a < b) if t == "A" else (lambda a, b: a <= b)
    return _centre(ref.colour_causal_mask(k, t, cin, cout), rule, cin, cout, by=lambda i, n: i % 3)


def _mask_one_channel(k, t, cin, cout):
    return one_channel_mask(k, t, cin, cout)


def _mask_future_rows(k, t, cin, cout):
    mask = ref.colour_causal_mask(k, t, cin, cout)
    mask[:, :, k // 2 + 1:, :] = 1.0
    return mask


def _mask_no_rows_above(k, t, cin, cout):
    mask = ref.colour_causal_mask(k, t, cin, cout)
    mask[:, :, : k // 2, :] = 0.0
    return mask


def _mask_transposed(k, t, cin, cout):
    return ref.colour_causal_mask(k, t, cin, cout).transpose(2, 3)


def _mask_in_out_swapped(k, t, cin, cout):
    return ref.colour_causal_mask(k, t, cout, cin)


def test_check_colour_causal_mask_accepts_reference():
    checks.check_colour_causal_mask(ref.colour_causal_mask)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (_mask_swapped, "You returned the type-B mask"),
        (_mask_groups_reversed, "colour groups are in the wrong order"),
        (_mask_centre_leaks_own_channel, "You returned the type-B mask"),
        (_mask_interleaved, r"contiguous thirds.*not i % 3"),
        (_mask_one_channel, r"masked every channel pair \(the one-channel type-A mask\)"),
        (_mask_future_rows, "rows below the centre must be 0"),
        (_mask_transposed, "transposed"),
        (_mask_in_out_swapped, r"\(out_channels, in_channels, k, k\)"),
        (lambda k, t: ref.colour_causal_mask(k, t, 3, 3), "takes 2 positional arguments"),
    ],
)
def test_check_colour_causal_mask_rejects(wrong, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_colour_causal_mask(wrong)


def test_check_colour_causal_mask_names_the_case_that_failed():
    def wrong_for_type_b_only(k, t, cin, cout):
        return _mask_swapped(k, t, cin, cout) if t == "B" else ref.colour_causal_mask(k, t, cin, cout)

    with pytest.raises(AssertionError, match=r"colour_causal_mask\(1, 'B', 3, 3\) returned"):
        checks.check_colour_causal_mask(wrong_for_type_b_only)


# ----------------------------------------------------------------------------- masked conv


def _conv_with_mask(mask_fn):
    class Conv(nn.Conv2d):
        def __init__(self, mask_type, in_channels, out_channels, kernel_size, **kwargs):
            super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                             **kwargs)
            self.register_buffer("mask", mask_fn(kernel_size, mask_type, in_channels, out_channels))

        def forward(self, x):
            return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    return Conv


class _MaskOnlyAtInit(nn.Conv2d):
    def __init__(self, mask_type, in_channels, out_channels, kernel_size, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, **kwargs)
        with torch.no_grad():
            self.weight *= ref.colour_causal_mask(kernel_size, mask_type, in_channels, out_channels)


class _NoPadding(ref.ColourMaskedConv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, padding=0, **kwargs)


class _Wrapper(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self.conv = ref.ColourMaskedConv2d(*args, **kwargs)

    def forward(self, x):
        return self.conv(x)


class _DropsKwargs(ref.ColourMaskedConv2d):
    def __init__(self, mask_type, in_channels, out_channels, kernel_size, **kwargs):
        super().__init__(mask_type, in_channels, out_channels, kernel_size)


def test_check_colour_masked_conv2d_accepts_reference_and_a_hand_written_variant():
    checks.check_colour_masked_conv2d(ref.ColourMaskedConv2d)
    checks.check_colour_masked_conv2d(_conv_with_mask(ref.colour_causal_mask))


@pytest.mark.parametrize(
    "wrong, match",
    [
        (_MaskOnlyAtInit, "(?s)after new weights were loaded.*not masked in forward"),
        (_conv_with_mask(_mask_swapped), "mask types are swapped"),
        (_conv_with_mask(_mask_one_channel), "one-channel mask"),
        (_NoPadding, r"returned shape \(2, 12, 2, 3\); expected \(2, 12, 8, 9\)"),
        (_Wrapper, "expected a subclass of nn.Conv2d"),
        (_DropsKwargs, r"bias=False\) has a bias"),
    ],
)
def test_check_colour_masked_conv2d_rejects(wrong, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_colour_masked_conv2d(wrong)


# ----------------------------------------------------------------------------- the network


class _Net(nn.Module):
    """A small colour PixelCNN with one configurable mistake, built from plain convolutions."""

    def __init__(self, first=ref.colour_causal_mask, later=ref.colour_causal_mask, first_type="A",
                 later_type="B", plain_head=False, pad=True, ignore_input=False, residual=True):
        super().__init__()
        self.first = nn.Conv2d(3, 12, 5, padding=2 if pad else 0)
        self.layers = nn.ModuleList(nn.Conv2d(12, 12, 3, padding=1) for _ in range(2))
        self.head = nn.Conv2d(12, 3, 1)
        self.register_buffer("m0", first(5, first_type, 3, 12))
        self.register_buffer("m1", later(3, later_type, 12, 12))
        self.register_buffer("mh", torch.ones(3, 12, 1, 1) if plain_head
                             else later(1, "B", 12, 3))
        self.ignore_input, self.residual = ignore_input, residual

    def forward(self, x):
        if self.ignore_input:
            x = torch.zeros_like(x)
        h = F.conv2d(x, self.first.weight * self.m0, self.first.bias, padding=self.first.padding)
        for layer in self.layers:
            h = (h if self.residual else 0) + F.conv2d(torch.relu(h), layer.weight * self.m1,
                                                       layer.bias, padding=1)
        return F.conv2d(torch.relu(h), self.head.weight * self.mh, self.head.bias)


def _tiny_reference():
    return ref.ColourPixelCNN(ref.ColourPixelCNNConfig(hidden_channels=12, num_layers=2))


def test_check_colour_pixelcnn_accepts_reference_and_a_correct_variant():
    checks.check_colour_pixelcnn(ref.ColourPixelCNN)
    checks.check_colour_pixelcnn(_tiny_reference)
    checks.check_colour_pixelcnn(_Net)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda: _Net(first_type="B"), "(?s)leaks its own channel.*Are A and B swapped"),
        (lambda: _Net(first=_mask_groups_reversed, later=_mask_groups_reversed),
         "depends on a later channel of the same pixel"),
        (lambda: _Net(plain_head=True), "(?s)later channel of the same pixel.*plain 1x1"),
        (lambda: _Net(first=_mask_centre_leaks_own_channel), "leaks its own channel"),
        (lambda: _Net(first=_mask_future_rows), "depends on a later pixel"),
        (lambda: _Net(first=_mask_transposed, later=_mask_transposed), "depends on a later pixel"),
        (lambda: _Net(first=_mask_one_channel, later=_mask_one_channel),
         "output G never depends on R of the same pixel"),
        (lambda: _Net(first=_mask_one_channel), "output G never depends on R of the same pixel"),
        (lambda: _Net(later_type="A", residual=False),
         "output G never depends on R of the same pixel"),
        (lambda: _Net(first=_mask_no_rows_above, later=_mask_no_rows_above),
         "no output R depends on the pixel above it"),
        (lambda: _Net(ignore_input=True), "no output R depends on the pixel to its left"),
        (lambda: _Net(pad=False), r"returned shape \(2, 3, 24, 24\); expected \(2, 3, 28, 28\)"),
    ],
)
def test_check_colour_pixelcnn_rejects(wrong, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_colour_pixelcnn(wrong)


def test_dependency_matrix_is_exactly_the_autoregressive_order_for_a_linear_model():
    """A model with all-positive weights and no nonlinearity: every allowed pair changes."""

    class Linear(nn.Module):
        def forward(self, x):
            h = F.conv2d(x, ref.colour_causal_mask(5, "A", 3, 3), padding=2)
            return F.conv2d(h, ref.colour_causal_mask(3, "B", 3, 3), padding=1) + \
                F.conv2d(x, ref.colour_causal_mask(5, "A", 3, 3), padding=2)

    bases = torch.zeros(1, 3, 4, 5)
    changed = checks.dependency_matrix("linear", Linear(), bases)
    d = 3 * 4 * 5
    earlier = torch.ones(d, d, dtype=torch.bool).tril(-1)
    assert not bool((changed & ~earlier).any())
    # the immediate predecessor in the order always matters (the channel before, or the
    # last channel of the pixel to the left), except at the start of a row
    position = torch.arange(1, d)
    pixel_start = (position % 3 == 0) & ((position // 3) % 5 == 0)
    assert bool(changed[position[~pixel_start], position[~pixel_start] - 1].all())


# ----------------------------------------------------------------------------- bits/dim


def _bce(logits, x):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=(1, 2, 3))


@pytest.mark.parametrize(
    "correct",
    [ref.bits_per_dim,
     lambda logits, x: F.binary_cross_entropy_with_logits(logits, x, reduction="none")
     .mean(dim=(1, 2, 3)) / math.log(2)],
)
def test_check_bits_per_dim_accepts_reference_and_a_mean_variant(correct):
    checks.check_bits_per_dim(correct)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda l, x: _bce(l, x) / x[0].numel(), "That is nats per dimension"),
        (lambda l, x: _bce(l, x) / math.log(2), "summed over the dimensions instead of averaging"),
        (lambda l, x: _bce(l, x) / (x[0, 0].numel() * math.log(2)), "divided by H \\* W only"),
        (lambda l, x: ref.bits_per_dim(l, x).mean(), "averaged over the batch"),
        (lambda l, x: -ref.bits_per_dim(l, x), "sign is flipped"),
        (lambda l, x: ref.bits_per_dim(torch.sigmoid(l), x), "do not apply the sigmoid"),
        (lambda l, x: -(x * torch.log(torch.sigmoid(l)) + (1 - x) * torch.log(1 - torch.sigmoid(l)))
         .sum(dim=(1, 2, 3)) / (x[0].numel() * math.log(2)), "non-finite values"),
        (lambda l, x: ref.bits_per_dim(l, x).tolist(), "expected a torch.Tensor"),
    ],
)
def test_check_bits_per_dim_rejects(wrong, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_bits_per_dim(wrong)


# ----------------------------------------------------------------------------- sampling


def _sampler(channels=(0, 1, 2), per_pixel=False, draw="generator", columns=False, probs=False,
             layout="nchw"):
    """A colour sampler with one configurable mistake."""

    @torch.no_grad()
    def sample(model, n, height, width, generator):
        x = torch.zeros(n, 3, height, width)
        rng = np.random.default_rng(0)
        pixels = [(r, s) for r in range(height) for s in range(width)]
        if columns:
            pixels = [(r, s) for s in range(width) for r in range(height)]
        for r, s in pixels:
            logits = model(x)
            for c in channels:
                if not per_pixel:
                    logits = model(x)
                p = torch.sigmoid(logits[:, c, r, s])
                if probs:
                    x[:, c, r, s] = p
                elif draw == "global":
                    x[:, c, r, s] = (torch.rand(n) < p).float()
                elif draw == "bernoulli":
                    x[:, c, r, s] = torch.bernoulli(p)
                elif draw == "numpy":
                    u = torch.from_numpy(rng.random(n)).float()
                    x[:, c, r, s] = (u < p).float()
                else:
                    x[:, c, r, s] = (torch.rand(n, generator=generator) < p).float()
        return x.permute(0, 2, 3, 1) if layout == "nhwc" else x

    return sample


def _with_bernoulli(model, n, height, width, generator):
    """Equivalent to the reference: torch.bernoulli(p, generator) draws u < p on the CPU."""
    x = torch.zeros(n, 3, height, width)
    with torch.no_grad():
        for r in range(height):
            for s in range(width):
                for c in range(3):
                    x[:, c, r, s] = torch.bernoulli(torch.sigmoid(model(x)[:, c, r, s]),
                                                    generator=generator)
    return x


def test_check_sample_accepts_reference_and_equivalent_samplers():
    checks.check_sample(ref.sample)
    checks.check_sample(_sampler())
    checks.check_sample(_with_bernoulli)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (_sampler(channels=(2, 1, 0)), "within a pixel draw R, then G, then B"),
        (_sampler(per_pixel=True), "evaluated the model once per pixel"),
        (_sampler(draw="global"), "used torch's global random state"),
        (_sampler(draw="bernoulli"), "used torch's global random state"),
        (_sampler(draw="numpy"), "did not draw any number from generator"),
        (_sampler(columns=True), "visited column by column"),
        (_sampler(probs=True), "values other than 0 and 1"),
        (_sampler(layout="nhwc"), r"returned shape \(4, 3, 4, 3\); expected \(4, 3, 3, 4\)"),
    ],
)
def test_check_sample_rejects(wrong, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_sample(wrong)


def test_the_sampling_model_is_autoregressive_and_not_trivial():
    """The check's toy model obeys the order (so any starting canvas is fine) and its
    samples mix zeros and ones, so that a wrong order changes them."""
    model = checks._causal_toy(checks.SEED + 7)
    changed = checks.dependency_matrix("toy", model, torch.zeros(2, 3, 4, 5))
    assert not bool((changed & ~torch.ones_like(changed).tril(-1)).any())
    draws = ref.sample(model, 200, 3, 4, make_generator(0))
    assert 0.2 < float(draws.mean()) < 0.8


# ----------------------------------------------------------------------------- trained model


class _Cheater(nn.Module):
    """Looks at the dimension it predicts: near-zero bits/dim, not a density model."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(20.0))

    def forward(self, x):
        return self.scale * (2 * x - 1)


def test_check_trained_rejects_a_model_that_sees_its_own_dimension(monkeypatch):
    monkeypatch.setattr(checks, "training_time_budget", lambda: 180.0)
    with pytest.raises(AssertionError, match="trained model is not autoregressive"):
        checks.check_trained_colour_pixelcnn(_Cheater(), 10.0)


def test_check_trained_rejects_a_training_run_over_budget(monkeypatch):
    monkeypatch.setattr(checks, "training_time_budget", lambda: 180.0)
    with pytest.raises(AssertionError, match=r"training took 900 s; the budget on this machine is 180 s"):
        checks.check_trained_colour_pixelcnn(_tiny_reference(), 900.0)
    with pytest.raises(AssertionError, match="train_seconds has type builtins.str"):
        checks.check_trained_colour_pixelcnn(_tiny_reference(), "fast")


def test_time_budget_grows_with_the_machines_load(monkeypatch):
    assert checks.training_time_budget() >= checks.TRAINING_TIME_BUDGET_S
    # where one epoch on 400 digits takes 100 s, the budget covers the epochs on 4,000 of them
    clock = iter([0.0, 100.0])
    monkeypatch.setattr(assertions, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(checks, "_reference_training_probe", lambda train: lambda: None)
    expected = checks.TRAINING_TIME_FACTOR * checks.NOTEBOOK_EPOCHS * 10 * 100.0
    assert checks.training_time_budget() == expected


def test_check_trained_rejects_an_untrained_network(monkeypatch):
    """Autoregressive, but far from the band: the test bits/dim of an untrained network."""
    monkeypatch.setattr(checks, "training_time_budget", lambda: 180.0)
    torch.manual_seed(0)
    with pytest.raises(AssertionError, match=r"mean test bits/dim is 0\.\d+; expected at most"):
        checks.check_trained_colour_pixelcnn(_tiny_reference(), 1.0)


def test_check_trained_rejects_a_model_too_slow_to_evaluate(monkeypatch):
    monkeypatch.setattr(checks, "training_time_budget", lambda: 180.0)
    monkeypatch.setattr(checks, "EVALUATION_TIME_BUDGET_S", 0.0)
    monkeypatch.setattr(checks, "EVALUATION_TIME_FACTOR", 0.0)

    class Slow(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _tiny_reference()

        def forward(self, x):
            time.sleep(0.01)
            return self.net(x)

    with pytest.raises(AssertionError, match="computing the logits of the 1,000 test digits took"):
        checks.check_trained_colour_pixelcnn(Slow(), 1.0)


def test_check_trained_restores_training_mode(monkeypatch):
    monkeypatch.setattr(checks, "training_time_budget", lambda: 180.0)
    model = _tiny_reference().train()
    with pytest.raises(AssertionError, match="mean test bits/dim"):
        checks.check_trained_colour_pixelcnn(model, 1.0)
    assert model.training


def test_check_trained_accepts_the_reference_trained_as_in_the_notebook():
    """The one training run of these tests: the notebook's setting, on the reference."""
    train, _ = load_colour_mnist("train")
    torch.manual_seed(0)
    model = ref.ColourPixelCNN(checks.NOTEBOOK_CONFIG)
    optimizer = torch.optim.Adam(model.parameters(), lr=checks.NOTEBOOK_LEARNING_RATE)
    shuffle = make_generator(0)
    start = time.perf_counter()
    for _ in range(checks.NOTEBOOK_EPOCHS):
        order = torch.randperm(len(train), generator=shuffle)
        for s in range(0, len(train), checks.NOTEBOOK_BATCH_SIZE):
            batch = train[order[s:s + checks.NOTEBOOK_BATCH_SIZE]]
            loss = ref.bits_per_dim(model(batch), batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start  # passed as 0: this machine may be busy
    checks.check_trained_colour_pixelcnn(model, 0.0)
    print(f"reference after the notebook's training: {seconds:.0f} s")


def test_benchmark_record_quotes_the_constants_in_the_code():
    """benchmarks/results/pixelcnn_colour.json calibrated the constants now in the code."""
    import importlib
    import json
    from pathlib import Path

    record = json.loads((Path(__file__).resolve().parent.parent / "benchmarks" / "results"
                         / "pixelcnn_colour.json").read_text())
    for key in ("commit", "config", "loadavg", "threads", "constants"):
        assert key in record, key
    for dotted, value in record["constants"].items():
        module, _, name = dotted.rpartition(".")
        assert getattr(importlib.import_module(module), name) == value, dotted
    variants = record["variants"]
    assert all(v["passes_check"] for k, v in variants.items() if k.startswith(("solution", "weaker")))
    assert not any(v.get("passes_check", False) for k, v in variants.items() if k.startswith("broken"))
