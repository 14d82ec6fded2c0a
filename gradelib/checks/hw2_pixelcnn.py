"""Autograder checks for ``hw2_pixelcnn`` (syllabus §3).

Each ``check_*`` takes the student's function, class or trained model, runs it on seeded
inputs, compares with :mod:`gradelib.pixelcnn` under the tolerances stated in its
docstring, and raises an ``AssertionError`` naming the function, the input, the expected and
returned values and a hint. Returned values are converted to plain float64 tensors before
any comparison.

Causality is checked exactly: the Jacobian of the network's output with respect to its
input is computed with autograd, and every entry ``d logit_i / d x_j`` with ``j >= i`` in
raster order must be exactly 0.0 (masked taps multiply by an exact zero, so a correct
network gives exact zeros, not small numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from gradelib import pixelcnn as reference
from gradelib.checks.assertions import (
    assert_close,
    assert_shape,
    calibrated_time_budget,
    call_student,
    fail,
    to_float64,
)
from gradelib.data import load_mnist
from gradelib.device import make_generator

__all__ = [
    "check_causal_mask",
    "check_masked_conv2d",
    "check_pixelcnn",
    "check_bernoulli_nll",
    "check_nats_to_bits_per_dim",
    "check_sample",
    "check_trained_pixelcnn",
    "jacobian_violations",
    "TEST_NLL_BAND",
    "TRAINING_TIME_BUDGET_S",
    "TRAINING_TIME_FACTOR",
    "training_time_budget",
    "NOTEBOOK_CONFIG",
    "NOTEBOOK_EPOCHS",
]

SEED = 2016

#: The architecture the notebook suggests (the reference's) and the number of epochs its
#: training cell runs (Adam, learning rate 2e-3, batches of 64, like
#: :func:`gradelib.pixelcnn.train_pixelcnn`); the band below is calibrated for them.
NOTEBOOK_CONFIG = reference.PixelCNNConfig()
NOTEBOOK_EPOCHS = 2

#: The largest accepted mean test NLL, in nats per image, on the 1,000 embedded test digits
#: (binarized at 0.5) after the notebook's training run (``NOTEBOOK_EPOCHS`` epochs of the
#: provided loop). Measured (benchmarks/pixelcnn.py; tests/test_checks_hw2_pixelcnn.py
#: re-checks the reference): the reference PixelCNN (32 channels, 6 layers) reaches about
#: 80 after 2 epochs; a weaker but correct PixelCNN (16 channels, 2 type-B layers) about 88;
#: the best model that ignores the context (independent pixels with the training
#: frequencies) 206; fair coins 543. The band leaves room for other reasonable
#: architectures and learning rates and rejects any model that does not use its context.
TEST_NLL_BAND = 110.0

#: The longest accepted wall time of the notebook's training cell, in seconds. The suggested
#: network takes about 30 s on a quiet 2-core CPU (about 50 s of single-core CPU time); the
#: budget allows a slow or busy machine and catches networks far larger than suggested, which
#: would push autograding past its two-minute goal (nbgrader's cell timeout is 300 s).
TRAINING_TIME_BUDGET_S = 240.0
#: On a slower or busier machine the budget grows to this many times what the reference takes
#: for the notebook's training, extrapolated from one epoch on a tenth of the training digits
#: timed just before the check (:func:`training_time_budget`).
TRAINING_TIME_FACTOR = 4.0


def training_time_budget() -> float:
    """Seconds the notebook's training cell may take on this machine, under its current load.

    ``max(TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR * t)``, where ``t`` is what the
    reference needs for ``NOTEBOOK_EPOCHS`` epochs on the 4,000 training digits,
    extrapolated from one epoch on 400 of them run now (see
    :func:`gradelib.checks.assertions.calibrated_time_budget`).
    """
    train_images, _ = load_mnist("train", binarized=True)
    torch.manual_seed(SEED)
    probe = reference.PixelCNN(NOTEBOOK_CONFIG)
    return calibrated_time_budget(
        TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR,
        lambda: reference.train_pixelcnn(probe, train_images[:400], 1, make_generator(SEED)),
        scale=NOTEBOOK_EPOCHS * len(train_images) / 400)


def _clones(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(t.clone() for t in tensors)


# --------------------------------------------------------------------------- masks


def _future_rows_mask(k: int, mask_type: str, cin: int, cout: int) -> torch.Tensor:
    """A typical mistake: the rows below the centre are not zeroed."""
    mask = reference.causal_mask(k, mask_type, cin, cout)
    mask[:, :, k // 2 + 1 :, :] = 1.0
    return mask


def _whole_centre_row_mask(k: int, mask_type: str, cin: int, cout: int) -> torch.Tensor:
    """A typical mistake: the right half of the centre row is kept."""
    mask = reference.causal_mask(k, mask_type, cin, cout)
    mask[:, :, k // 2, k // 2 + 1 :] = 1.0
    return mask


def check_causal_mask(causal_mask: Callable) -> None:
    """``causal_mask(kernel_size, mask_type, in_channels, out_channels)``: the exact 0/1 mask.

    Cases: both types, kernel sizes 1, 3, 5 and 7, channel counts ``(in, out)`` of ``(1, 1)``
    (also through the default arguments), ``(3, 2)`` and ``(16, 8)``. The result must have
    shape ``(out_channels, in_channels, k, k)`` and equal the reference exactly
    (tolerance 0: entries are 0.0 or 1.0).
    """
    name = "causal_mask"
    cases = [(k, t, 1, 1) for k in (1, 3, 5, 7) for t in ("A", "B")]
    cases += [(3, "A", 3, 2), (5, "B", 3, 2), (7, "A", 16, 8), (3, "B", 16, 8)]
    for k, t, cin, cout in cases:
        if (cin, cout) == (1, 1) and k == 3:
            call = f"{name}({k}, {t!r})"
            got = call_student(name, causal_mask, k, t)
        else:
            call = f"{name}({k}, {t!r}, in_channels={cin}, out_channels={cout})"
            got = call_student(name, causal_mask, k, t, cin, cout)
        want = reference.causal_mask(k, t, cin, cout)
        other = "B" if t == "A" else "A"
        mistakes = {
            f"You returned the type-{other} mask: type A hides the centre pixel, type B keeps "
            "it.": reference.causal_mask(k, other, cin, cout),
            "The rows below the centre must be 0 (they are future pixels in raster order).":
                _future_rows_mask(k, t, cin, cout),
            "Only the pixels left of the centre are kept in the centre row; the ones to its "
            "right are in the future.": _whole_centre_row_mask(k, t, cin, cout),
            "The mask is transposed (column order instead of raster order): keep the rows "
            "above the centre, not the columns left of it.":
                reference.causal_mask(k, t, cin, cout).transpose(2, 3),
        }
        mistakes = {h: m for h, m in mistakes.items() if not torch.equal(m, want)}
        if k > 1:
            mistakes["The shape is (out_channels, in_channels, k, k), the layout of "
                     "nn.Conv2d.weight."] = reference.causal_mask(k, t, cout, cin)
        assert_close(
            got, want, function=name, call=call, rtol=0.0, atol=0.0,
            hint="With c = k // 2: ones on every row above c and left of c on row c; the "
                 "centre (c, c) is 1 for type B only; everything else 0.",
            known_mistakes=mistakes,
        )


# --------------------------------------------------------------------------- masked conv


def check_masked_conv2d(masked_conv_class: Callable) -> None:
    """``MaskedConv2d(mask_type, in_channels, out_channels, kernel_size, **conv_kwargs)``.

    For types A and B, kernel sizes 3 and 5 and channels ``(1 -> 4)``, ``(3 -> 2)``: the layer
    is an ``nn.Conv2d``, keeps the height and width of a ``(2, in, 6, 7)`` input, and equals
    ``F.conv2d(x, weight * mask, bias, padding=k // 2)`` with the reference mask, also after
    its weights are overwritten (the mask must be applied in ``forward``) and with
    ``bias=False``. Tolerance: ``rtol=1e-5, atol=1e-6``.
    """
    name = "MaskedConv2d"
    g = make_generator(SEED + 1)
    for t in ("A", "B"):
        for k, cin, cout in ((3, 1, 4), (5, 3, 2)):
            call = f"{name}({t!r}, {cin}, {cout}, {k})"
            layer = call_student(name, masked_conv_class, t, cin, cout, k)
            if not isinstance(layer, nn.Conv2d):
                fail(name, f"{call} is a {type(layer).__name__}; expected a subclass of "
                     "nn.Conv2d.", "Declare it as `class MaskedConv2d(nn.Conv2d)` and call "
                     "super().__init__(in_channels, out_channels, kernel_size, ...).")
            x = torch.randn(2, cin, 6, 7, generator=g)
            mask = reference.causal_mask(k, t, cin, cout)
            for attempt in ("as constructed", "after its weights were overwritten"):
                if attempt != "as constructed":
                    with torch.no_grad():
                        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g))
                with torch.no_grad():
                    got = call_student(f"{name}.forward", layer, x.clone())
                    weight = layer.weight.detach().clone()
                    bias = None if layer.bias is None else layer.bias.detach().clone()
                    want = torch.nn.functional.conv2d(x, weight * mask, bias, padding=k // 2)
                    other = reference.causal_mask(k, "B" if t == "A" else "A", cin, cout)
                    mistakes = {
                        "The mask types are swapped: type A excludes the centre tap, type B "
                        "includes it.": torch.nn.functional.conv2d(x, weight * other, bias,
                                                                   padding=k // 2),
                        "The weights are not masked in forward: multiply self.weight by the "
                        "mask every time (masking once in __init__ is undone by training).":
                            torch.nn.functional.conv2d(x, weight, bias, padding=k // 2),
                    }
                assert_close(
                    got, want, function=f"{name}.forward",
                    call=f"{call} {attempt}, on x of shape {tuple(x.shape)}",
                    rtol=1e-5, atol=1e-6,
                    hint="Register causal_mask(...) as a buffer and convolve with "
                         "self.weight * self.mask; use padding kernel_size // 2 so that "
                         "the output keeps the input's height and width.",
                    known_mistakes=mistakes,
                )
    layer = call_student(name, masked_conv_class, "B", 2, 3, 3, bias=False)
    if getattr(layer, "bias", None) is not None:
        fail(name, f"{name}('B', 2, 3, 3, bias=False) has a bias.",
             "Pass **conv_kwargs on to nn.Conv2d.__init__.")


# --------------------------------------------------------------------------- causality


def _jacobian_rows(model: nn.Module, x: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """``d logits[0, 0, p] / d x[0, 0, :]`` for flat pixel indices ``p``: ``(len(pixels), H*W)``.

    One batch element per output pixel (the input repeated), so one backward pass gives
    the rows; the model must treat batch elements independently (eval mode).
    """
    _, _, height, width = x.shape
    inputs = x.repeat(len(pixels), 1, 1, 1).requires_grad_(True)  # (P, 1, H, W)
    logits = model(inputs)
    flat = logits.reshape(len(pixels), -1)  # (P, H*W)
    picked = flat[torch.arange(len(pixels)), pixels]  # (P,)
    (grad,) = torch.autograd.grad(picked.sum(), inputs, allow_unused=True)
    if grad is None:  # the output does not depend on the input at all
        return torch.zeros(len(pixels), height * width)
    return grad.reshape(len(pixels), height * width)  # (P, H*W)


def jacobian_violations(
    model: nn.Module, x: torch.Tensor, *, chunk: int = 196
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Jacobian of a model's logits with respect to one image, and its non-causal part.

    Args:
        model: maps ``(B, 1, H, W)`` to ``(B, 1, H, W)``; called in eval mode.
        x: one image ``(1, 1, H, W)``.
        chunk: output pixels per backward pass (memory vs speed).

    Returns:
        ``(jacobian, violations)``: ``jacobian[i, j] = d logit_i / d x_j`` (float64,
        ``(H*W, H*W)``, raster order) and a bool mask of the entries with ``j >= i`` that
        are not exactly 0.0.
    """
    n = x.shape[-2] * x.shape[-1]
    was_training = model.training
    model.eval()
    try:
        rows = [
            _jacobian_rows(model, x, torch.arange(s, min(s + chunk, n))).detach()
            for s in range(0, n, chunk)
        ]
    finally:
        model.train(was_training)
    jacobian = to_float64(torch.cat(rows), function="jacobian")  # (H*W, H*W)
    future = torch.ones(n, n, dtype=torch.bool).triu()  # j >= i
    return jacobian, future & (jacobian != 0)


def _require_causal(name: str, model: nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    _, _, height, width = x.shape
    try:
        jacobian, violations = jacobian_violations(model, x)
    except AssertionError:
        raise
    except Exception as error:  # noqa: BLE001 - the student's model failed inside autograd
        fail(name, f"computing the Jacobian of {what} raised {type(error).__name__}: {error}",
             "forward(x) must be differentiable in x: no detach, no in-place writes to x.")
    if bool(violations.any()):
        strict = violations & ~torch.eye(len(violations), dtype=torch.bool)
        only_itself = not bool(strict.any())
        i, j = (int(v) for v in torch.nonzero(violations if only_itself else strict)[0])
        fail(
            name,
            f"{what} is not causal: the logit of pixel {i} (row {i // width}, column "
            f"{i % width}) depends on input pixel {j} (row {j // width}, column {j % width}), "
            f"d logit_i / d x_j = {jacobian[i, j].item():.3g} with j >= i in raster order "
            f"({int(violations.sum())} such entries; they must be exactly 0).",
            "Each output may only see earlier pixels: the first layer must use a type-A mask "
            "(no centre tap), later layers type B, and no layer may see rows below."
            if only_itself else
            "Some masked convolution sees future pixels: check that the rows below the centre "
            "and the right half of the centre row are masked in every layer, and that "
            "non-masked layers are 1x1.",
        )
    return jacobian


def _require_context(name: str, jacobian: torch.Tensor, width: int, what: str) -> None:
    n = jacobian.shape[0]
    index = torch.arange(n)
    left = index[index % width != 0]
    above = index[index >= width]
    if not bool((jacobian[left, left - 1] != 0).any()):
        fail(name, f"in {what}, no output pixel depends on its left neighbour "
             "(d logit_i / d x_(i-1) = 0 for every i).",
             "Only the first layer uses mask A; with type A everywhere the nearest pixels are "
             "never seen. Use type B after the first layer.")
    if not bool((jacobian[above, above - width] != 0).any()):
        fail(name, f"in {what}, no output pixel depends on the pixel just above it.",
             "The masked kernels must keep the rows above the centre.")


def _fresh_pixelcnn(model_class: Callable, seed: int) -> nn.Module:
    torch.manual_seed(seed)  # weight initialisation uses torch's global generator
    model = call_student("PixelCNN", model_class)
    if not isinstance(model, nn.Module):
        fail("PixelCNN", f"PixelCNN() is a {type(model).__name__}; expected an nn.Module.")
    return model


def check_pixelcnn(model_class: Callable) -> None:
    """``PixelCNN()``: output shape, exact causality of the whole network, and context.

    A fresh ``PixelCNN()`` (default arguments, seeded initialisation) in eval mode maps seeded
    binary ``(3, 1, 8, 8)`` and ``(2, 1, 28, 28)`` images to logits of the same shape, finite.
    On two seeded 8x8 binary images and one embedded MNIST digit, the Jacobian of all 64
    (resp. 784) output logits with respect to the input pixels must be exactly zero at
    every ``j >= i`` in raster order, some outputs must depend on their left neighbour and
    on the pixel above (so the network uses its context), and every parameter must receive a
    gradient in training mode.
    """
    name = "PixelCNN"
    model = _fresh_pixelcnn(model_class, SEED)
    model.eval()
    g = make_generator(SEED + 2)
    for shape in ((3, 1, 8, 8), (2, 1, 28, 28)):
        x = (torch.rand(shape, generator=g) < 0.4).float()
        with torch.no_grad():
            out = to_float64(call_student(f"{name}.forward", model, x.clone()),
                             function=f"{name}.forward")
        assert_shape(out, shape, function=f"{name}.forward",
                     call=f"PixelCNN()(x of shape {shape})",
                     hint="Return one logit per pixel, shape (B, 1, H, W): keep the size with "
                          "padding kernel_size // 2 and end with a 1x1 conv to one channel.")
        if not bool(torch.isfinite(out).all()):
            fail(f"{name}.forward", f"PixelCNN()(x of shape {shape}) returned non-finite logits.")
    images = [(torch.rand(1, 1, 8, 8, generator=g) < 0.4).float() for _ in range(2)]
    digits, _ = load_mnist("test", binarized=True)
    images.append(digits[:1].clone())
    for x in images:
        size = f"{x.shape[-2]}x{x.shape[-1]}"
        what = f"a fresh PixelCNN() on a {size} image"
        jacobian = _require_causal(name, model, x, what)
        _require_context(name, jacobian, x.shape[-1], what)
    model.train()
    x = (torch.rand(4, 1, 8, 8, generator=g) < 0.4).float()
    model(x).float().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if missing:
        fail(name, f"parameters {missing[:3]} receive no gradient.",
             "Every layer you define should be used in forward.")


# --------------------------------------------------------------------------- losses


def check_bernoulli_nll(bernoulli_nll: Callable) -> None:
    """``bernoulli_nll(logits, x)``: nats per image, summed over pixels, shape ``(B,)``.

    Cases: seeded logits ``3 * N(0, 1)`` and binary ``x`` of shapes ``(5, 1, 28, 28)`` and
    ``(3, 1, 4, 6)``, and a stability case with logits of magnitude 30 to 60 where some
    pixels disagree with the confident prediction (finite NLL of about 30 to 60 nats per
    such pixel). Tolerance: ``rtol=1e-4, atol=1e-4``.
    """
    name = "bernoulli_nll"
    g = make_generator(SEED + 3)
    cases = []
    for shape in ((5, 1, 28, 28), (3, 1, 4, 6)):
        cases.append((f"logits of shape {shape}", 3 * torch.randn(shape, generator=g),
                      (torch.rand(shape, generator=g) < 0.3).float()))
    sign = torch.where(torch.rand(4, 1, 5, 5, generator=g) < 0.5, -1.0, 1.0)
    big = sign * (30 + 30 * torch.rand(4, 1, 5, 5, generator=g))
    x = (big > 0).float()
    x[:, 0, 2, :2] = 1 - x[:, 0, 2, :2]  # two confidently wrong pixels per image
    cases.append(("large logits (|logit| in [30, 60]) with confidently wrong pixels", big, x))
    for label, logits, x in cases:
        got = call_student(name, bernoulli_nll, *_clones(logits, x))
        want = reference.bernoulli_nll(logits, x)
        per_pixel = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, x, reduction="none")
        assert_close(
            got, want, function=name, call=f"{name}(logits, x) with {label}",
            rtol=1e-4, atol=1e-4,
            hint="Per pixel, -[x log sigmoid(l) + (1 - x) log(1 - sigmoid(l))]; compute it "
                 "from the logits stably (F.binary_cross_entropy_with_logits with "
                 "reduction='none', or softplus(l) - x * l) and sum over (C, H, W).",
            known_mistakes={
                "You averaged over pixels; the NLL in nats per image is the sum over its "
                "pixels.": per_pixel.mean(dim=(1, 2, 3)),
                "You reduced over the batch too; return one value per image, shape (B,).":
                    per_pixel.sum(),
                "You averaged over the batch; return one value per image, shape (B,).":
                    per_pixel.sum(dim=(1, 2, 3)).mean(),
                "The sign is flipped: that is the log-likelihood; return its negative.":
                    -want,
                "The network outputs logits: do not apply the sigmoid twice (pass the logits, "
                "not sigmoid(logits), to a *_with_logits loss).":
                    torch.nn.functional.binary_cross_entropy_with_logits(
                        torch.sigmoid(logits), x, reduction="none").sum(dim=(1, 2, 3)),
            },
        )


def check_nats_to_bits_per_dim(nats_to_bits_per_dim: Callable) -> None:
    """``nats_to_bits_per_dim(nats, num_dims)``: ``nats / (num_dims * ln 2)``, elementwise.

    Cases: a ``(6,)`` float32 tensor of NLLs around 80 nats with ``num_dims=784``, a 0-d
    float64 tensor with ``num_dims=3072`` (a 32x32 RGB image), and a ``(2, 3)`` tensor with
    ``num_dims=1``. The result keeps the shape of ``nats``. Tolerance: ``rtol=1e-6,
    atol=1e-9``.
    """
    name = "nats_to_bits_per_dim"
    g = make_generator(SEED + 4)
    cases = [
        (80 + 10 * torch.randn(6, generator=g), 784),
        (torch.tensor(5000.0, dtype=torch.float64), 3072),
        (torch.rand(2, 3, generator=g) * 2, 1),
    ]
    for nats, num_dims in cases:
        got = call_student(name, nats_to_bits_per_dim, nats.clone(), num_dims)
        want = reference.nats_to_bits_per_dim(nats, num_dims)
        float32 = nats.dtype == torch.float32
        mistakes = {
            "Divide by ln 2 to convert nats to bits (you divided by the number of dimensions "
            "only).": nats / num_dims,
            "Convert with ln 2 = 0.693..., not log10(2).": nats / (num_dims * math.log10(2)),
            "bits = nats / ln 2, not nats * ln 2.": nats * math.log(2) / num_dims,
        }
        if num_dims != 1:
            mistakes["Divide by the number of dimensions too: bits per *dimension*."] = (
                nats / math.log(2))
        assert_close(
            got, want, function=name,
            call=f"{name}(nats of shape {tuple(nats.shape)}, num_dims={num_dims})",
            rtol=1e-5 if float32 else 1e-6, atol=1e-9,
            hint="bits/dim = nats / (num_dims * ln 2).", known_mistakes=mistakes,
        )


# --------------------------------------------------------------------------- sampling


class _ToyModel(nn.Module):
    """Base of the toy models the sampling check uses: validates the input, has a parameter.

    The parameter (a scale of exactly 1.0) lets code that finds the device with
    ``next(model.parameters())`` work.
    """

    def __init__(self, height: int, width: int):
        super().__init__()
        self.height, self.width = height, width
        self.scale = nn.Parameter(torch.ones(()))

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (
                1, self.height, self.width):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"the model expects images of shape (n, 1, {self.height}, "
                             f"{self.width}), got {shape}")


class _IndependentPixels(_ToyModel):
    """Ignores its input: pixel ``(r, c)`` is 1 with a fixed probability ``probs[r, c]``."""

    def __init__(self, probs: torch.Tensor):
        super().__init__(*probs.shape)
        self.register_buffer("logits", torch.logit(probs.to(torch.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return (self.scale * self.logits).expand(x.shape[0], 1, -1, -1).clone()


class _Alternating(_ToyModel):
    """Deterministic chain: the first pixel is 1, each later one the negation of the previous.

    Logits are ±40 (probabilities 1 and 4e-18), so a correct ancestral sampler draws the
    raster pattern 1, 0, 1, 0, ... (continuing across rows) whatever its random numbers.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        flat = x.reshape(x.shape[0], -1)  # (n, H*W)
        previous = torch.cat([torch.zeros_like(flat[:, :1]), flat[:, :-1]], dim=1)
        logits = 40.0 * (1 - 2 * previous)
        logits[:, 0] = 40.0
        return (self.scale * logits).reshape(x.shape)  # (n, 1, H, W)


def _sample(sample: Callable, model: nn.Module, n: int, h: int, w: int, seed: int,
            what: str) -> torch.Tensor:
    name = "sample"
    got = to_float64(call_student(name, sample, model, n, h, w, make_generator(seed)),
                     function=name)
    assert_shape(got, (n, 1, h, w), function=name,
                 call=f"sample(model, {n}, {h}, {w}, generator) with {what}",
                 hint="Return n images of shape (1, height, width): (n, 1, height, width).")
    if not bool(((got == 0) | (got == 1)).all()):
        fail(name, f"sample(...) with {what} returned values other than 0 and 1, such as "
             f"{got[(got != 0) & (got != 1)][:3].tolist()}.",
             "Each pixel is a Bernoulli draw: set it to 1.0 where u < p and 0.0 elsewhere, "
             "do not store the probabilities.")
    return got


def check_sample(sample: Callable) -> None:
    """``sample(model, n, height, width, generator)``: binary, deterministic, autoregressive.

    1. Shape ``(n, 1, height, width)`` with values exactly 0 or 1, on a fresh reference
       :class:`~gradelib.pixelcnn.PixelCNN` (3 images of 5x4).
    2. Consistency with the conditionals, independent pixels: 2,000 samples of a 3x3 model
       with fixed probabilities between 0.1 and 0.9; every pixel's frequency of ones must be
       within 0.06 of its probability (over 5 standard deviations).
    3. Determinism: the same seed gives identical images even when torch's global random
       state differs between the calls (randomness must come from ``generator``), and a
       different seed gives different images (on independent fair coins, 2 x 60 pixels).
    4. Consistency with the conditionals, raster order: a model whose first pixel is 1 with
       certainty and every later pixel the negation of the previous one in raster order must
       give exactly the pattern 1, 0, 1, 0, ... on 4 images of 3x5 (an odd width, so rows
       alternate in phase); this fails a sampler that draws pixels in parallel or column by
       column, or that does not feed its own draws back to the model.
    """
    name = "sample"
    torch.manual_seed(SEED)
    pixelcnn = reference.PixelCNN(reference.PixelCNNConfig(hidden_channels=8, num_layers=1))
    _sample(sample, pixelcnn, 3, 5, 4, SEED, "a small PixelCNN")

    probs = torch.tensor([[0.1, 0.3, 0.45], [0.6, 0.75, 0.9], [0.2, 0.85, 0.35]])
    draws = _sample(sample, _IndependentPixels(probs), 2000, 3, 3, SEED + 2,
                    "independent pixels of known probabilities")
    frequency = draws.mean(dim=0)[0]  # (3, 3)
    assert_close(
        frequency, probs.to(torch.float64), function=name,
        call="the frequency of ones per pixel over sample(model, 2000, 3, 3, generator) for "
             "a model of independent pixels with probabilities "
             f"{probs.flatten().tolist()}",
        rtol=0.0, atol=0.06,
        hint="Pixel (r, c) is 1 with probability sigmoid(logits[:, 0, r, c]): draw u ~ U[0, 1) "
             "and set the pixel to (u < p).",
        known_mistakes={
            "You used 1 - p: a pixel is 1 where u < p = sigmoid(logit).": 1 - probs,
            "You thresholded p at 0.5 (the most likely value) instead of sampling.":
                (probs > 0.5).to(torch.float64),
        },
    )

    coins = _IndependentPixels(torch.full((6, 10), 0.5))
    torch.manual_seed(1)
    first = _sample(sample, coins, 2, 6, 10, SEED, "independent fair coins")
    torch.manual_seed(2)
    second = _sample(sample, coins, 2, 6, 10, SEED, "independent fair coins")
    if not torch.equal(first, second):
        fail(name, "two calls with generators seeded alike returned different images.",
             "Draw every random number from the generator argument, e.g. torch.rand(n, "
             "generator=generator); torch.bernoulli(p) or torch.rand(n) without it reads "
             "torch's global random state.")
    third = _sample(sample, coins, 2, 6, 10, SEED + 1, "independent fair coins")
    if torch.equal(first, third):
        fail(name, "generators with different seeds gave identical images of 120 fair coins.",
             "Use the generator you are given for the random draws.")

    height, width = 3, 5
    pattern = (torch.arange(height * width) % 2 == 0).to(torch.float64)
    expected = pattern.reshape(1, 1, height, width).expand(4, 1, height, width)
    got = _sample(sample, _Alternating(height, width), 4, height, width, SEED + 3,
                  "a deterministic autoregressive chain")
    if not torch.equal(got, expected):
        first_bad = int(torch.nonzero((got != expected).any(dim=0).flatten())[0])
        fail(name, "on a model where each pixel is the negation of the previous one in raster "
             f"order (the first pixel is 1), the samples differ from 1, 0, 1, 0, ... first at "
             f"pixel {first_bad} (row {first_bad // width}, column {first_bad % width}); got "
             f"first image {got[0, 0].tolist()}.",
             "Loop over rows, then columns; for every pixel, run the model on the images "
             "drawn so far and write the new pixel into them before the next one.")


# --------------------------------------------------------------------------- trained model


def check_trained_pixelcnn(
    model: nn.Module, *, train_seconds: float | None = None, band: float = TEST_NLL_BAND
) -> float:
    """A trained PixelCNN: trained in time, exactly causal on a real digit, NLL in the band.

    If ``train_seconds`` (the notebook's measured training time) is given it must be at most
    :func:`training_time_budget`. The Jacobian of the 784 logits with respect to one
    embedded test digit (binarized) must be exactly zero at ``j >= i``; then the mean of the
    reference :func:`bernoulli_nll` of the model's logits over the 1,000 embedded test digits
    (binarized at 0.5) must be at most ``band`` nats per image (default
    :data:`TEST_NLL_BAND`). Returns that mean test NLL.
    """
    name = "trained PixelCNN"
    if not isinstance(model, nn.Module):
        fail(name, f"model is a {type(model).__name__}; expected your trained PixelCNN.")
    budget = training_time_budget() if train_seconds is not None else math.inf
    if train_seconds is not None and not float(train_seconds) <= budget:
        fail(name, f"training took {float(train_seconds):.0f} s; the budget on this machine "
             f"is {budget:.0f} s.",
             "Keep the suggested network (32 channels, a 7x7 type-A layer and six 3x3 type-B "
             "layers): grading runs the training cell for every submission.")
    test_images, _ = load_mnist("test", binarized=True)
    _require_causal(name, model, test_images[:1].clone(), "the trained model on a test digit")
    device = next(iter(model.parameters()), torch.empty(0)).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = torch.cat([
                to_float64(call_student(name, model, test_images[s:s + 250].to(device)),
                           function=name) for s in range(0, len(test_images), 250)
            ])
    finally:
        model.train(was_training)
    assert_shape(logits, test_images.shape, function=name, call="model(test digits)")
    if not bool(torch.isfinite(logits).all()):
        fail(name, "the trained model returned non-finite logits on the test digits.",
             "Training diverged: lower the learning rate.")
    nll = float(reference.bernoulli_nll(logits, test_images.to(torch.float64)).mean())
    if not nll <= band:
        fail(name, f"the mean test NLL is {nll:.1f} nats per image "
             f"({nll / (784 * math.log(2)):.3f} bits/dim); expected at most {band:.0f}.",
             "Train by minimising the batch mean of bernoulli_nll(model(x), x) with Adam, and "
             "give the network enough context (a 7x7 type-A layer, then several type-B layers).")
    return nll
