"""Autograder checks for ``hw2_pixelcnn``, second edition: the colour PixelCNN (syllabus §3).

The graded API is the colour PixelCNN of van den Oord et al. (2016, Section 3.4, Figure 2)
on colour MNIST (:func:`gradelib.data.load_colour_mnist`): ``colour_causal_mask``,
``ColourMaskedConv2d``, ``ColourPixelCNN``, ``bits_per_dim`` and ``sample``, plus the
notebook's trained ``model``. Each ``check_*`` compares the student's objects with the
instructor-side reference :mod:`gradelib.checks.references.hw2_pixelcnn` under the
tolerances its docstring states, and raises an ``AssertionError`` naming the function, the
call, the expected and returned values, and a hint (a targeted one when the returned value
matches a typical mistake).

The checks follow the trusted-checker protocol (``gradelib.checks.assertions``): they only
call the student's objects on inputs chosen here, read their ``state_dict``, switch them to
eval mode, load weights, describe them; every number that grades them is computed here from
plain data they return. In particular, the autoregressive property is tested by black-box
perturbation: flip input dimension ``(c', j)`` and see which outputs ``(c, i)`` change.
With pixels in raster order and channels R, G, B within a pixel, dimension ``(c, i)`` has
the position ``3 i + c`` in the autoregressive order, and output ``(c, i)`` may change only
if ``3 j + c' < 3 i + c``, i.e. ``j < i``, or ``j = i`` and ``c' < c``. Masked taps multiply
by exact zeros, so a correct network's forbidden outputs do not change at all; a change
above :data:`CHANGE_TOLERANCE` counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from gradelib.checks.assertions import (
    assert_close,
    assert_shape,
    calibrated_time_budget,
    call_student,
    describe,
    fail,
    portable,
    seed_student,
    time_limit,
    to_float64,
)
from gradelib.checks.references import hw2_pixelcnn as reference
from gradelib.data import load_colour_mnist
from gradelib.device import make_generator
from gradelib.pixelcnn import causal_mask as one_channel_mask

__all__ = [
    "check_colour_causal_mask",
    "check_colour_masked_conv2d",
    "check_colour_pixelcnn",
    "check_bits_per_dim",
    "check_sample",
    "check_trained_colour_pixelcnn",
    "dependency_matrix",
    "TEST_BPD_BAND",
    "TRAINING_TIME_BUDGET_S",
    "TRAINING_TIME_FACTOR",
    "EVALUATION_TIME_BUDGET_S",
    "EVALUATION_TIME_FACTOR",
    "CHANGE_TOLERANCE",
    "NOTEBOOK_CONFIG",
    "NOTEBOOK_EPOCHS",
    "NOTEBOOK_BATCH_SIZE",
    "NOTEBOOK_LEARNING_RATE",
    "training_time_budget",
]

SEED = 2016
CHANNELS = ("R", "G", "B")

#: The training the notebook suggests (the band below is calibrated for it): the reference
#: architecture, Adam with this learning rate on batches of this size, this many epochs over
#: the 4,000 colour training digits.
NOTEBOOK_CONFIG = reference.ColourPixelCNNConfig()
NOTEBOOK_EPOCHS = 2
NOTEBOOK_BATCH_SIZE = 32
NOTEBOOK_LEARNING_RATE = 5e-3

#: The largest accepted mean test bits/dim over the 1,000 colour MNIST test digits, computed
#: here from the logits the student's trained model returns. Measured by
#: benchmarks/pixelcnn.py (benchmarks/results/pixelcnn_colour.json) after the notebook's
#: training: the solution 0.0550, 0.0554 and 0.0637 (seeds 0, 1, 2); weaker but acceptable,
#: half the width with one residual layer 0.0657, one epoch 0.0670; broken, channels
#: independent within a pixel 0.0882 (which the dependency test rejects first), no context
#: (each dimension's training frequency) 0.289, the untrained network 0.972, fair coins 1.
#: The band accepts the weaker variants with a margin of about 20 % and the solution's
#: worst seed with 25 %, and rejects what the channel order is for.
TEST_BPD_BAND = 0.08

#: The longest accepted wall time of the notebook's training cell (seconds), or, on a slower
#: or busier machine, this many times the reference's time for the same training,
#: extrapolated from one epoch on a tenth of the digits timed just before the check. The
#: suggested training takes 12.0 to 12.6 s on an idle 2-core machine with one thread
#: (benchmarks/results/pixelcnn_colour.json, load average 1.5), where the budget stays at
#: 180 s; an earlier run at a load average of 27 to 33 took 86 to 143 s of wall time for
#: 17.2 to 17.5 s of CPU, and the budget grew to 307 s there.
TRAINING_TIME_BUDGET_S = 180.0
TRAINING_TIME_FACTOR = 4.0

#: The longest accepted wall time for the trained model's logits on the 1,000 test digits, or
#: this many times the untrained reference timed just before (0.8 s of CPU, 3.6 s of wall
#: time at load 27): it catches networks far larger than suggested, which would also train
#: far slower than the budget above says.
EVALUATION_TIME_BUDGET_S = 30.0
EVALUATION_TIME_FACTOR = 10.0

#: An output counts as changed by an input flip when it moves by more than this. A correct
#: network's forbidden outputs do not move at all (masked taps are exact zeros); a real
#: dependence through random or trained weights moves them by 1e-3 or more.
CHANGE_TOLERANCE = 1e-6

#: The image size of the perturbation test: the networks are convolutional, so a small
#: image exercises every mask while keeping the 3 * H * W flips cheap. Not square, so that a
#: transposed mask is caught.
DEPENDENCY_HEIGHT, DEPENDENCY_WIDTH = 5, 6


def _require_module(name: str, obj, call: str) -> dict:
    info = describe(obj)
    if "torch.nn.modules.module.Module" not in info.get("mro", []):
        fail(name, f"{call} is a {info.get('type')}; expected an nn.Module.")
    return info


# --------------------------------------------------------------------------- masks


def _mask_variants(k: int, t: str, cin: int, cout: int) -> dict[str, torch.Tensor]:
    """Typical wrong masks, each with the hint it deserves."""
    want = reference.colour_causal_mask(k, t, cin, cout)
    m = k // 2
    other = "B" if t == "A" else "A"
    reversed_groups = want.clone()
    g_out = torch.arange(cout) // (cout // 3)
    g_in = torch.arange(cin) // (cin // 3)
    sees_rev = (g_in[None, :] > g_out[:, None]) if t == "A" else (g_in[None, :] >= g_out[:, None])
    reversed_groups[:, :, m, m] = sees_rev.float()
    interleaved = want.clone()
    i_out, i_in = torch.arange(cout) % 3, torch.arange(cin) % 3
    sees_int = (i_in[None, :] < i_out[:, None]) if t == "A" else (i_in[None, :] <= i_out[:, None])
    interleaved[:, :, m, m] = sees_int.float()
    centre_all = want.clone()
    centre_all[:, :, m, m] = 1.0
    centre_none = want.clone()
    centre_none[:, :, m, m] = 0.0
    future_rows = want.clone()
    future_rows[:, :, m + 1:, :] = 1.0
    variants = {
        f"You returned the type-{other} mask: at the centre, type A lets group g see the "
        "groups before it (g' < g), type B also its own group (g' <= g).":
            reference.colour_causal_mask(k, other, cin, cout),
        "The colour groups are in the wrong order at the centre: output group g may see input "
        "groups g' < g (type A) or g' <= g (type B), with R = 0, G = 1, B = 2 (G sees R, B "
        "sees R and G), not the groups after it.": reversed_groups,
        "The groups are contiguous thirds: channel i of C belongs to group i // (C // 3) "
        "(the first third is R), not i % 3.": interleaved,
        "At the centre you kept every channel pair (the one-channel type-B mask): channels of "
        "a group may only see earlier groups (A) or earlier groups and their own (B).":
            centre_all,
        "At the centre you masked every channel pair (the one-channel type-A mask): output "
        "group g must see the groups before it (type A) or up to its own (type B), so that G "
        "sees R and B sees R and G of the same pixel.": centre_none,
        "The rows below the centre must be 0 (they are future pixels).": future_rows,
        "The spatial mask is transposed: keep the rows above the centre and the columns left "
        "of it in the centre row.": want.transpose(2, 3),
    }
    if cin != cout:
        variants["The shape is (out_channels, in_channels, k, k), the layout of "
                 "nn.Conv2d.weight."] = reference.colour_causal_mask(k, t, cout, cin)
    return {h: v for h, v in variants.items() if not torch.equal(v, want)}


def check_colour_causal_mask(colour_causal_mask: Callable) -> None:
    """``colour_causal_mask(kernel_size, mask_type, in_channels, out_channels)``: exact 0/1 mask.

    Cases: both types; kernel sizes 1, 3, 5, 7; channels ``(in, out)`` of ``(3, 3)``,
    ``(3, 12)`` (the first layer), ``(12, 12)``, ``(24, 6)``, ``(6, 3)`` (a head). The result
    must have shape ``(out, in, k, k)`` and equal the reference exactly (tolerance 0).
    """
    name = "colour_causal_mask"
    cases = [(k, t, 3, 3) for k in (1, 3, 5, 7) for t in ("A", "B")]
    cases += [(7, "A", 3, 12), (3, "B", 12, 12), (5, "A", 24, 6), (1, "B", 6, 3), (3, "A", 12, 12),
              (5, "B", 3, 12)]
    for k, t, cin, cout in cases:
        call = f"{name}({k}, {t!r}, {cin}, {cout})"
        got = call_student(name, colour_causal_mask, k, t, cin, cout)
        want = reference.colour_causal_mask(k, t, cin, cout)
        assert_close(
            got, want, function=name, call=call, rtol=0.0, atol=0.0,
            hint="With m = k // 2: 1 at every tap before the centre in raster order (rows above "
                 "m, and columns left of m in row m) for all channel pairs, 0 after it; at the "
                 "centre, output channel o (group o // (out // 3)) sees input channel i (group "
                 "i // (in // 3)) when group(i) < group(o) for type A, <= for type B.",
            known_mistakes=_mask_variants(k, t, cin, cout),
        )


# --------------------------------------------------------------------------- masked conv


def check_colour_masked_conv2d(colour_masked_conv_class: Callable) -> None:
    """``ColourMaskedConv2d(mask_type, in_channels, out_channels, kernel_size, **conv_kwargs)``.

    For both types and ``(kernel, in, out)`` of ``(7, 3, 12)``, ``(3, 12, 6)`` and
    ``(1, 6, 3)``: the layer is an ``nn.Conv2d``; on a seeded ``(2, in, 8, 9)`` input it
    returns ``F.conv2d(x, weight * mask, bias, padding=k // 2)`` with the reference mask and
    the layer's own weights (read from its ``state_dict``), also after new weights were
    loaded with ``load_state_dict`` (so the mask must be applied in ``forward``). With
    ``bias=False`` it has no bias. Tolerance: ``rtol=1e-5, atol=1e-5``.
    """
    name = "ColourMaskedConv2d"
    g = make_generator(SEED + 1)
    for t in ("A", "B"):
        for k, cin, cout in ((7, 3, 12), (3, 12, 6), (1, 6, 3)):
            call = f"{name}({t!r}, {cin}, {cout}, {k})"
            layer = call_student(name, colour_masked_conv_class, t, cin, cout, k)
            info = describe(layer)
            if "torch.nn.modules.conv.Conv2d" not in info.get("mro", []):
                fail(name, f"{call} is a {info.get('type')}; expected a subclass of nn.Conv2d.",
                     "Declare it as `class ColourMaskedConv2d(nn.Conv2d)` and call "
                     "super().__init__(in_channels, out_channels, kernel_size, ...).")
            x = torch.randn(2, cin, 8, 9, generator=g)
            mask = reference.colour_causal_mask(k, t, cin, cout)
            for attempt in ("as constructed", "after new weights were loaded"):
                state = call_student(f"{name}.state_dict", layer.state_dict)
                if attempt != "as constructed":
                    state = dict(state)
                    state["weight"] = torch.randn(tuple(state["weight"].shape), generator=g)
                    call_student(f"{name}.load_state_dict", layer.load_state_dict, state)
                weight = to_float64(state.get("weight"), function=name, what="state_dict()['weight']")
                assert_shape(weight, (cout, cin, k, k), function=name,
                             call=f"{call}.weight", hint="Pass in_channels, out_channels and "
                             "kernel_size on to nn.Conv2d.__init__.")
                bias = state.get("bias")
                bias = None if bias is None else to_float64(bias, function=name, what="bias")
                xd = x.to(torch.float64)
                got = call_student(f"{name}.forward", layer, x.clone())

                def conv(w, _b=bias, _xd=xd, _k=k):
                    return F.conv2d(_xd, w, _b, padding=_k // 2)

                other = reference.colour_causal_mask(k, "B" if t == "A" else "A", cin, cout)
                assert_close(
                    got, conv(weight * mask), function=f"{name}.forward",
                    call=f"{call} {attempt}, on x of shape {tuple(x.shape)}",
                    rtol=1e-5, atol=1e-5,
                    hint="Register colour_causal_mask(...) as a buffer in __init__, convolve "
                         "with self.weight * self.mask in forward, with padding "
                         "kernel_size // 2.",
                    known_mistakes={
                        "The mask types are swapped.": conv(weight * other),
                        "The weights are not masked in forward: multiply self.weight by the "
                        "mask every time (masking once in __init__ is undone by training and "
                        "by loading weights).": conv(weight),
                        "You used the one-channel mask (the same spatial mask for every channel "
                        "pair): at the centre, the colour groups decide what is seen.":
                            conv(weight * one_channel_mask(k, t, cin, cout).double()),
                    },
                )
    layer = call_student(name, colour_masked_conv_class, "B", 6, 3, 3, bias=False)
    parameters = describe(layer)["modules"][0]["parameters"] if describe(layer)["modules"] else {}
    if "bias" in parameters:
        fail(name, f"{name}('B', 6, 3, 3, bias=False) has a bias.",
             "Pass **conv_kwargs on to nn.Conv2d.__init__.")


# --------------------------------------------------------------------------- dependencies


def _order(height: int, width: int) -> torch.Tensor:
    """``(3, H, W)`` int64: the position ``3 * i + c`` of each dimension in the AR order."""
    pixel = torch.arange(height * width).reshape(height, width)
    return torch.stack([3 * pixel + c for c in range(3)])  # (3, H, W)


def dependency_matrix(name: str, model, bases: torch.Tensor) -> torch.Tensor:
    """Which outputs of ``model`` change when one input dimension is flipped.

    For each base image ``(3, H, W)`` of ``bases`` (``(K, 3, H, W)`` in {0, 1}), the model is
    called once on the base and its ``3 * H * W`` copies with one dimension flipped (one
    batch); an output counts as changed when it moves by more than
    :data:`CHANGE_TOLERANCE`. The model must be in eval mode (batch elements independent).

    Returns:
        bool ``(D, D)`` with ``D = 3 * H * W``, indexed in autoregressive order (dimension
        ``(c, r, s)`` at ``3 * (r * W + s) + c``): ``[out, in]`` is True when flipping input
        ``in`` changed output ``out`` for at least one base.
    """
    k, _, height, width = bases.shape
    dims = 3 * height * width
    order = _order(height, width).flatten()  # position of flat (c, r, s) index
    changed = torch.zeros(dims, dims, dtype=torch.bool)
    for base in bases:
        flips = base.repeat(dims + 1, 1, 1, 1)  # (D + 1, 3, H, W)
        flat = flips.reshape(dims + 1, dims)  # (D + 1, D), flat in (c, r, s) order
        idx = torch.arange(dims)
        flat[idx + 1, idx] = 1.0 - flat[idx + 1, idx]
        out = call_student(name, model, flips.clone())
        out = to_float64(out, function=name)
        assert_shape(out, flips.shape, function=name,
                     call=f"model(x) on x of shape {tuple(flips.shape)}",
                     hint="Return one logit per channel and pixel: (B, 3, H, W).")
        if not bool(torch.isfinite(out).all()):
            fail(name, "the model returned non-finite logits on binary images.")
        delta = (out[1:] - out[:1]).abs().reshape(dims, dims)  # [flipped in, out], (c, r, s)
        moved = (delta > CHANGE_TOLERANCE).T  # [out, in]
        ordered = torch.zeros_like(moved)
        ordered[order[:, None], order[None, :]] = moved
        changed |= ordered
    return changed


def _dimension(position: int, width: int) -> str:
    pixel, c = divmod(position, 3)
    return f"{CHANNELS[c]} at pixel (row {pixel // width}, column {pixel % width})"


def _require_autoregressive(name: str, model, what: str, seed: int) -> None:
    """Fail unless output (c, i) depends only on earlier dimensions, and on the nearest ones."""
    height, width = DEPENDENCY_HEIGHT, DEPENDENCY_WIDTH
    g = make_generator(seed)
    bases = (torch.rand(2, 3, height, width, generator=g) < 0.5).float()
    changed = dependency_matrix(name, model, bases)
    dims = changed.shape[0]
    out_pos, in_pos = torch.meshgrid(torch.arange(dims), torch.arange(dims), indexing="ij")
    same_pixel = (out_pos // 3) == (in_pos // 3)
    own = changed & (out_pos == in_pos)
    later_channel = changed & same_pixel & (in_pos > out_pos)
    future_pixel = changed & ((in_pos // 3) > (out_pos // 3))
    found = []
    for bad, problem, hint in (
        (future_pixel, "depends on a later pixel",
         "Every masked kernel must zero the taps after the centre (the rest of the centre "
         "row and all rows below); layers that are not masked must be 1x1 and masked too."),
        (own, "depends on its own input dimension (the centre pixel leaks its own channel)",
         "Only the first layer uses mask A (a group does not see its own input channel at "
         "the centre); every later layer uses mask B. Are A and B swapped?"),
        (later_channel, "depends on a later channel of the same pixel",
         "At the centre, output group g may see input groups before it: G sees R, B sees R "
         "and G, R sees none (type A). Check the order of the groups (R is the first third "
         "of the channels) and mask the 1x1 layers too: a plain 1x1 convolution mixes the "
         "groups of a pixel."),
    ):
        if bool(bad.any()):
            o, i = (int(v) for v in torch.nonzero(bad)[0])
            found.append((f"output {_dimension(o, width)} {problem}: it changes when input "
                          f"{_dimension(i, width)} is flipped ({int(bad.sum())} such "
                          f"output/input pairs on {height}x{width} images)", hint))
    if found:
        fail(name, f"{what} is not autoregressive: " + "; ".join(f for f, _ in found) + ".",
             " ".join(h for _, h in found))
    left = changed & ((in_pos // 3) == (out_pos // 3) - 1) & ((out_pos // 3) % width != 0)
    above = changed & ((in_pos // 3) == (out_pos // 3) - width)
    for c in range(3):
        rows = (out_pos % 3) == c
        if not bool((left & rows).any()):
            fail(name, f"in {what}, no output {CHANNELS[c]} depends on the pixel to its left.",
                 "The model must use its context: mask B (not A) after the first layer, and "
                 "do not ignore the input.")
        if not bool((above & rows).any()):
            fail(name, f"in {what}, no output {CHANNELS[c]} depends on the pixel above it.",
                 "The masked kernels must keep the rows above the centre.")
    for c in (1, 2):
        for c_in in range(c):
            pair = changed & same_pixel & (out_pos % 3 == c) & (in_pos % 3 == c_in)
            if not bool(pair.any()):
                fail(name, f"in {what}, output {CHANNELS[c]} never depends on "
                     f"{CHANNELS[c_in]} of the same pixel.",
                     "In a colour PixelCNN, G is conditioned on the R of its pixel and B on R "
                     "and G: at the centre, mask A lets group g see the groups before it. "
                     "Masking the whole centre (one-channel mask A) loses that.")


def check_colour_pixelcnn(colour_pixelcnn_class: Callable) -> None:
    """``ColourPixelCNN()``: logits of the input's shape, autoregressive with channel order.

    A fresh ``ColourPixelCNN()`` (default arguments, initialisation seeded with
    :func:`~gradelib.checks.assertions.seed_student`) in eval mode maps seeded binary
    ``(2, 3, 28, 28)`` images to finite logits of the same shape. The perturbation test
    (module docstring) on two seeded binary ``(3, 5, 6)`` images: no output ``(c, i)``
    changes when an input ``(c', j)`` with ``j > i``, or ``j = i`` and ``c' >= c`` is flipped;
    for each channel some output depends on its left and upper neighbours; G depends on R,
    and B on R and G, of the same pixel somewhere.
    """
    name = "ColourPixelCNN"
    seed_student(SEED)
    model = call_student(name, colour_pixelcnn_class)
    _require_module(name, model, "ColourPixelCNN()")
    call_student(f"{name}.eval", model.eval)
    g = make_generator(SEED + 5)
    x = (torch.rand(2, 3, 28, 28, generator=g) < 0.5).float()
    out = to_float64(call_student(name, model, x.clone()), function=name)
    assert_shape(out, (2, 3, 28, 28), function=name, call="ColourPixelCNN()(x) on (2, 3, 28, 28)",
                 hint="Return logits of the input's shape: one per channel and pixel.")
    if not bool(torch.isfinite(out).all()):
        fail(name, "ColourPixelCNN()(x) returned non-finite logits.")
    _require_autoregressive(name, model, "a fresh ColourPixelCNN()", SEED + 6)


# --------------------------------------------------------------------------- bits/dim


def check_bits_per_dim(bits_per_dim: Callable) -> None:
    """``bits_per_dim(logits, x)``: Bernoulli NLL over all ``3 H W`` dimensions, bits/dim, ``(B,)``.

    Cases: seeded logits ``3 * N(0, 1)`` and binary ``x`` of shapes ``(5, 3, 28, 28)`` and
    ``(3, 3, 4, 6)``, and a stability case with logits of magnitude 30 to 60 where some
    dimensions disagree with the confident prediction. Tolerance ``rtol=1e-4, atol=1e-6``.
    """
    name = "bits_per_dim"
    g = make_generator(SEED + 3)
    cases = []
    for shape in ((5, 3, 28, 28), (3, 3, 4, 6)):
        cases.append((f"logits of shape {shape}", 3 * torch.randn(shape, generator=g),
                      (torch.rand(shape, generator=g) < 0.3).float()))
    sign = torch.where(torch.rand(4, 3, 5, 5, generator=g) < 0.5, -1.0, 1.0)
    big = sign * (30 + 30 * torch.rand(4, 3, 5, 5, generator=g))
    x = (big > 0).float()
    x[:, 1, 2, :2] = 1 - x[:, 1, 2, :2]  # two confidently wrong dimensions per image
    cases.append(("large logits (|logit| in [30, 60]) with confidently wrong dimensions", big, x))
    for label, logits, x in cases:
        got = call_student(name, bits_per_dim, logits.clone(), x.clone())
        want = reference.bits_per_dim(logits.double(), x.double())
        per_dim = F.binary_cross_entropy_with_logits(logits.double(), x.double(), reduction="none")
        nats = per_dim.sum(dim=(1, 2, 3))
        dims = x[0].numel()
        hw = dims // 3
        assert_close(
            got, want, function=name, call=f"{name}(logits, x) with {label}",
            rtol=1e-4, atol=1e-6,
            hint="Sum the binary cross-entropy (from the logits, stably) over channels and "
                 "pixels, then divide by 3 * H * W * ln 2; one value per image, shape (B,).",
            known_mistakes={
                "That is nats per dimension: divide by ln 2 to get bits.": nats / dims,
                "You summed over the dimensions instead of averaging: that is bits per image; "
                "divide by the number of dimensions 3 * H * W.": nats / math.log(2),
                "You divided by H * W only: the dimensions are the 3 * H * W channel values.":
                    nats / (hw * math.log(2)),
                "Convert with ln 2, not log10(2).": nats / (dims * math.log10(2)),
                "bits = nats / ln 2, not nats * ln 2.": nats * math.log(2) / dims,
                "You averaged over the batch; return one value per image, shape (B,).":
                    want.mean(),
                "The sign is flipped: that is the log-likelihood; return its negative.": -want,
                "The network outputs logits: do not apply the sigmoid before a *_with_logits "
                "loss.": F.binary_cross_entropy_with_logits(
                    torch.sigmoid(logits.double()), x.double(), reduction="none"
                ).sum(dim=(1, 2, 3)) / (dims * math.log(2)),
            },
        )


# --------------------------------------------------------------------------- sampling


def _causal_toy(seed: int):
    """A small portable causal colour model: 3x3 conv (mask A, 3 -> 6), ReLU, 1x1 (mask B, 6 -> 3).

    Built from ``torch.nn`` layers with seeded weights that the check multiplies by the
    reference colour masks, so that it is autoregressive with channel order R, G, B and its
    logits are of order 1 (samples mix zeros and ones).
    """
    net = portable("torch.nn.Sequential", portable("torch.nn.Conv2d", 3, 6, 3, padding=1),
                   portable("torch.nn.ReLU"), portable("torch.nn.Conv2d", 6, 3, 1))
    g = make_generator(seed)
    with torch.no_grad():
        net[0].weight.copy_(2.0 * torch.randn(6, 3, 3, 3, generator=g)
                            * reference.colour_causal_mask(3, "A", 3, 6))
        net[0].bias.copy_(torch.randn(6, generator=g))
        net[2].weight.copy_(1.5 * torch.randn(3, 6, 1, 1, generator=g)
                            * reference.colour_causal_mask(1, "B", 6, 3))
        net[2].bias.copy_(0.5 * torch.randn(3, generator=g))
    return net


@torch.no_grad()
def _variant_sample(model, n: int, height: int, width: int, generator: torch.Generator, *,
                    channels=(0, 1, 2), per_pixel: bool = False, column_major: bool = False,
                    complement: bool = False, joint_draw: bool = False) -> torch.Tensor:
    """Samplers with typical mistakes, to recognise a student's result (hints only)."""
    x = torch.zeros(n, 3, height, width)
    pixels = [(r, s) for s in range(width) for r in range(height)] if column_major else \
        [(r, s) for r in range(height) for s in range(width)]
    for r, s in pixels:
        logits = model(x) if per_pixel else None
        u_all = torch.rand(n, 3, generator=generator) if joint_draw else None
        for c in channels:
            if not per_pixel:
                logits = model(x)
            p = torch.sigmoid(logits[:, c, r, s])
            u = u_all[:, c] if joint_draw else torch.rand(n, generator=generator)
            x[:, c, r, s] = ((u < 1 - p) if complement else (u < p)).float()
    return x


def _sample_case(sample: Callable, model, n: int, height: int, width: int, seed: int,
                 global_seed: int) -> None:
    name = "sample"
    call = f"sample(model, {n}, {height}, {width}, generator)"
    generator = make_generator(seed)
    initial = generator.get_state()
    seed_student(global_seed)  # torch's global generator where the student's code runs
    got = to_float64(call_student(name, sample, model, n, height, width, generator),
                     function=name)
    assert_shape(got, (n, 3, height, width), function=name, call=call,
                 hint="Return n RGB images: (n, 3, height, width).")
    if not bool(((got == 0) | (got == 1)).all()):
        fail(name, f"{call} returned values other than 0 and 1, such as "
             f"{got[(got != 0) & (got != 1)][:3].tolist()}.",
             "Each dimension is a Bernoulli draw: set it to (u < p).float().")
    want = reference.sample(model, n, height, width, make_generator(seed)).to(torch.float64)
    if torch.equal(got, want):
        return
    variants = {
        "You used torch's global random state, not the generator argument: draw u with "
        "torch.rand(n, generator=generator).":
            dict(generator=make_generator(global_seed)),
        "The channels are drawn in the wrong order: within a pixel draw R, then G, then B.":
            dict(channels=(2, 1, 0)),
        "You evaluated the model once per pixel: evaluate it again after each channel, "
        "because G is conditioned on the R you just drew (and B on R and G).":
            dict(per_pixel=True),
        "The pixels are visited column by column: raster order is row by row, left to "
        "right within a row.": dict(column_major=True),
        "A dimension is 1 where u < p = sigmoid(logit), not where u < 1 - p.":
            dict(complement=True),
        "Draw one u = torch.rand(n, generator=generator) per channel, just before it is "
        "used, not three at once per pixel.": dict(joint_draw=True),
    }
    for hint, options in variants.items():
        options = dict(options)
        gen = options.pop("generator", make_generator(seed))
        if torch.equal(got, _variant_sample(model, n, height, width, gen, **options).double()):
            fail(name, f"{call} differs from the reference sampler with the same model and "
                 "generator.", hint)
    if torch.equal(generator.get_state(), initial):
        fail(name, f"{call} did not draw any number from generator, and its images differ "
             "from the reference sampler's with the same generator.",
             "Draw every u with torch.rand(n, generator=generator): torch.rand(n) or "
             "torch.bernoulli(p) read torch's global random state.")
    diff = torch.nonzero((got != want).any(dim=0).permute(1, 2, 0).flatten())  # AR order
    first = int(diff[0])
    fail(name, f"{call} differs from the reference sampler with the same model and generator, "
         f"first at {_dimension(first, width)} ({int((got != want).sum())} of {got.numel()} "
         "values differ).",
         "Start from zeros; for each row, each column, each channel R, G, B: logits = "
         "model(x), p = sigmoid(logits[:, c, r, s]), u = torch.rand(n, generator=generator), "
         "x[:, c, r, s] = (u < p).float().")


def check_sample(sample: Callable) -> None:
    """``sample(model, n, height, width, generator)``: exactly the reference's ancestral sampler.

    On a small portable causal colour model (seeded ``torch.nn`` layers masked here), the
    samples of ``(n, height, width)`` = ``(4, 3, 4)`` and ``(3, 4, 3)`` with a seeded generator
    must equal, exactly, those of the reference sampler with the same model and a generator
    in the same state (raster order; within a pixel R, G, B; one ``torch.rand(n,
    generator=generator)`` per dimension just before it is set; ``x = (u < p)``), while
    torch's global random state is seeded differently. Shape ``(n, 3, height, width)``,
    values in {0, 1}.
    """
    model = _causal_toy(SEED + 7)
    _sample_case(sample, model, 4, 3, 4, SEED + 8, SEED + 9)
    _sample_case(sample, model, 3, 4, 3, SEED + 10, SEED + 11)


# --------------------------------------------------------------------------- trained model


def _reference_training_probe(train: torch.Tensor) -> Callable[[], None]:
    def probe() -> None:
        torch.manual_seed(SEED)
        model = reference.ColourPixelCNN(NOTEBOOK_CONFIG)
        optimizer = torch.optim.Adam(model.parameters(), lr=NOTEBOOK_LEARNING_RATE)
        for s in range(0, len(train), NOTEBOOK_BATCH_SIZE):
            batch = train[s:s + NOTEBOOK_BATCH_SIZE]
            loss = reference.bits_per_dim(model(batch), batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return probe


def training_time_budget() -> float:
    """Seconds the notebook's training cell may take on this machine, under its current load.

    ``max(TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR * t)``, with ``t`` the reference's time
    for ``NOTEBOOK_EPOCHS`` epochs on the 4,000 training digits, extrapolated from one epoch on
    400 of them run now.
    """
    train, _ = load_colour_mnist("train")
    return calibrated_time_budget(TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR,
                                  _reference_training_probe(train[:400]),
                                  scale=NOTEBOOK_EPOCHS * len(train) / 400)


def check_trained_colour_pixelcnn(model, train_seconds) -> None:
    """The notebook's trained ``model``: trained in time, autoregressive, test bits/dim in band.

    1. ``train_seconds`` (the training cell's wall time, measured by the notebook's own
       lines around the training) is at most :func:`training_time_budget`.
    2. The perturbation test of :func:`check_colour_pixelcnn` on the trained model, in eval
       mode.
    3. Its logits on the 1,000 colour MNIST test digits (batches of 250, eval mode, within
       ``max(EVALUATION_TIME_BUDGET_S, EVALUATION_TIME_FACTOR * t_ref)``) give, with the
       reference :func:`~gradelib.checks.references.hw2_pixelcnn.bits_per_dim` computed here,
       a mean test bits/dim of at most :data:`TEST_BPD_BAND`.

    The model's training/eval mode is restored afterwards.
    """
    name = "trained model"
    info = _require_module(name, model, "model")
    seconds = to_float64(train_seconds, function=name, what="train_seconds")
    if seconds.numel() != 1 or not math.isfinite(float(seconds)):
        fail(name, f"train_seconds must be one finite number, got {seconds.tolist()}.")
    budget = training_time_budget()
    if not float(seconds) <= budget:
        fail(name, f"training took {float(seconds):.0f} s; the budget on this machine is "
             f"{budget:.0f} s.",
             f"Keep the suggested network and training ({NOTEBOOK_EPOCHS} epochs of Adam on "
             f"batches of {NOTEBOOK_BATCH_SIZE}): grading runs the training cell for every "
             "submission.")
    test, _ = load_colour_mnist("test")
    call_student(f"{name}.eval", model.eval)
    try:
        _require_autoregressive(name, model, "the trained model", SEED + 12)
        torch.manual_seed(SEED)
        probe_model = reference.ColourPixelCNN(NOTEBOOK_CONFIG).eval()

        def probe() -> None:
            with torch.no_grad():
                for s in range(0, len(test), 250):
                    probe_model(test[s:s + 250])

        allowed = calibrated_time_budget(EVALUATION_TIME_BUDGET_S, EVALUATION_TIME_FACTOR, probe)
        with time_limit(name, allowed, what="computing the logits of the 1,000 test digits"):
            parts = [to_float64(call_student(name, model, test[s:s + 250].clone()), function=name)
                     for s in range(0, len(test), 250)]
    finally:
        if info.get("training"):
            call_student(f"{name}.train", model.train)
    for part, s in zip(parts, range(0, len(test), 250)):
        assert_shape(part, test[s:s + 250].shape, function=name,
                     call=f"model(test digits {s}..{s + 249})",
                     hint="Return logits of the input's shape (B, 3, H, W).")
    logits = torch.cat(parts)
    if not bool(torch.isfinite(logits).all()):
        fail(name, "the trained model returned non-finite logits on the test digits.",
             "Training diverged: lower the learning rate.")
    bpd = float(reference.bits_per_dim(logits, test.to(torch.float64)).mean())
    if not bpd <= TEST_BPD_BAND:
        fail(name, f"the mean test bits/dim is {bpd:.4f}; expected at most {TEST_BPD_BAND}.",
             "Train by minimising the batch mean of bits_per_dim(model(x), x) with Adam "
             f"(learning rate {NOTEBOOK_LEARNING_RATE:g}, batches of {NOTEBOOK_BATCH_SIZE}, "
             f"{NOTEBOOK_EPOCHS} epochs over the colour training digits), with the suggested "
             "network.")
