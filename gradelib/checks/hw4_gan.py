"""Autograder checks for ``hw4_gan`` (syllabus §5, second edition): DCGAN and LSGAN.

The checks follow the trusted-checker protocol (``gradelib.checks.assertions``): they call
the student's functions and classes, read attributes, ask :func:`describe` what a module is
made of and :meth:`state_dict` what it holds, and compute every figure here, from outputs
the student's objects return on inputs chosen here. References:
:mod:`gradelib.checks.references.hw4_gan` (instructor side). Each failure is an
``AssertionError`` naming the function, the input, the expected and returned values and a
hint.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from gradelib.checks.assertions import (
    assert_close,
    assert_shape,
    calibrated_time_budget,
    call_student,
    check_loss_history,
    describe,
    fail,
    portable,
    seed_student,
    time_limit,
    to_float64,
    trains_model,
)
from gradelib.checks.references import hw4_gan as reference
from gradelib.data import load_mnist
from gradelib.device import make_generator
from gradelib.digit_classifier import reference_digit_classifier

__all__ = [
    "check_lsgan_losses",
    "check_lsgan_optimal_discriminator",
    "check_dcgan_generator",
    "check_dcgan_discriminator",
    "check_dcgan_init",
    "check_train_dcgan_contract",
    "check_train_dcgan_nonsaturating",
    "check_train_dcgan_lsgan",
    "sample_quality",
    "training_time_budget",
    "LATENT_DIM",
    "TRAINING_STEPS",
    "TRAINING_TIME_BUDGET_S",
    "TRAINING_TIME_FACTOR",
    "NUM_SAMPLES",
    "CONFIDENCE",
    "MIN_CONFIDENT_SHARE",
    "MIN_DIGIT_COUNT",
    "MIN_BACKGROUND_SHARE",
]

SEED = 4004
#: The noise size of the generators the checks build: ``DCGANGenerator(LATENT_DIM)``.
LATENT_DIM = 64

#: Generator steps each training check runs ``train_dcgan`` for (once per loss). Chosen so
#: that both runs, the judge's training and the budget probes fit in the autograding budget
#: of the assignment (120 s per submission, ``benchmarks/results/gan_band.json``).
TRAINING_STEPS = 500
#: Wall-clock seconds always allowed for one run of ``TRAINING_STEPS`` steps (the reference:
#: 9.6-11.0 s on a 2-core CPU at load 0.6-2, one thread; ``gan_band.json``).
TRAINING_TIME_BUDGET_S = 120.0
#: On a slower or busier machine the budget grows to this many times what the reference
#: takes for the same steps, timed on a tenth of them just before (:func:`training_time_budget`).
TRAINING_TIME_FACTOR = 4.0
#: Samples drawn from the trained generator, with noise drawn here, for the judge.
NUM_SAMPLES = 1000
#: A label counts when the course's digit classifier gives it a probability above this.
CONFIDENCE = 0.9
#: Calibrated bands on ``NUM_SAMPLES`` samples after ``TRAINING_STEPS`` steps, measured by
#: ``benchmarks/gan.py --band`` (``benchmarks/results/gan_band.json``). Measured on five
#: seeds per loss: the reference 35.5-38.2 % (non-saturating) and 26.0-33.3 % (LSGAN); the
#: acceptable alternatives 17.0-21.5 % (a plain DCGAN loop, Adam 2e-4) and 24.4-31.3 % (the
#: reference loop on a plainer 7x7-projection DCGAN); the broken loops 0-14.9 % (the ones
#: above 10 % fail the digit or the background bar).
MIN_CONFIDENT_SHARE = 0.10
#: All ten digits must be present: each must be the classifier's top label of at least this
#: many of the ``NUM_SAMPLES`` samples (confident or not; the share above judges quality).
#: The reference's rarest digit: 21-57 samples; the acceptable alternatives': 4-20; collapsed
#: loops: 0. Three leaves the alternatives a margin and still fails every collapsed run.
MIN_DIGIT_COUNT = 3
#: The samples must have the data's background: at least this share of their pixels below
#: -0.5 (the training digits rescaled to [-1, 1]: 84.3 %; the reference's and the
#: alternatives' samples: 74-86 %). A generator trained on digits left in [0, 1] learns a
#: background near 0 (0 % of its pixels below -0.5) and with the 4x4 DCGAN can still pass
#: the two bars above (10.4 % confident, every digit at least 4 times).
MIN_BACKGROUND_SHARE = 0.5

_FIRST_NORM_HINT = ("No batch normalisation on the discriminator's input layer (DCGAN's "
                    "guideline): batch norm starts at the second convolution.")
_ARCH_HINT = ("Build the layers as modules (nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, "
              "nn.Tanh, nn.Conv2d, nn.LeakyReLU(0.2)) so that they can be inspected.")


# ------------------------------------------------------------------------------ LSGAN


def _score_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(label, real_scores, fake_scores): ordinary, near-target, large and float64 scores."""
    g = make_generator(SEED)
    return [
        ("random scores (B=16)", torch.randn(16, generator=g), torch.randn(16, generator=g)),
        ("scores of a discriminator near its targets (B=8)",
         1 + 0.1 * torch.randn(8, generator=g), 0.1 * torch.randn(8, generator=g)),
        ("large scores (B=5)", torch.tensor([30.0, -4.0, 2.5, 0.0, 7.0]),
         torch.tensor([-12.0, 3.0, 0.5, 1.0, -0.25])),
        ("float64 scores with different batch sizes (6 real, 10 fake)",
         2 * torch.randn(6, generator=g, dtype=torch.float64),
         2 * torch.randn(10, generator=g, dtype=torch.float64)),
    ]


def check_lsgan_losses(lsgan_losses: Callable) -> None:
    """``lsgan_losses(real_scores, fake_scores) -> (d_loss, g_loss)``, 0-1 coding, with the ½.

    ``d_loss = ½ mean (D(x) - 1)² + ½ mean D(G(z))²`` and ``g_loss = ½ mean (D(G(z)) - 1)²``
    (Mao et al., 2017, eq. 2 with ``a = 0, b = 1, c = 1``) on random, near-target and large
    float32 scores and on float64 scores with different real and fake batch sizes. Each
    value must be a 0-d tensor within ``rtol=1e-5, atol=1e-6``.
    """
    name = "lsgan_losses"
    for label, real, fake in _score_cases():
        call = f"{name}(real_scores, fake_scores) on {label}"
        got = call_student(name, lsgan_losses, real.clone(), fake.clone())
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            fail(name, f"{call} returned {type(got).__name__}"
                 f"{' of length ' + str(len(got)) if isinstance(got, (tuple, list)) else ''}; "
                 "expected a tuple (d_loss, g_loss).")
        want_d, want_g = reference.lsgan_losses(real, fake)
        sig_r, sig_f = torch.sigmoid(real), torch.sigmoid(fake)
        no_sigmoid = ("LSGAN scores are the discriminator's raw outputs: do not apply a sigmoid "
                      "(the least-squares loss replaces the cross-entropy).")
        assert_close(
            got[0], want_d, function=name, call=call + ", d_loss", rtol=1e-5, atol=1e-6,
            hint="d_loss = 1/2 mean (D(x) - 1)^2 + 1/2 mean D(G(z))^2, a 0-d tensor.",
            known_mistakes={
                "The targets are swapped: real samples are regressed onto b = 1, fakes onto "
                "a = 0.": 0.5 * (real**2).mean() + 0.5 * ((fake - 1) ** 2).mean(),
                "The paper's 1/2 is missing: d_loss = 1/2 mean (D(x) - 1)^2 + 1/2 mean "
                "D(G(z))^2.": ((real - 1) ** 2).mean() + (fake**2).mean(),
                "Average each term over its batch, do not sum.":
                    0.5 * ((real - 1) ** 2).sum() + 0.5 * (fake**2).sum(),
                "That is the coding a = -1, b = 1; the homework uses the 0-1 coding "
                "a = 0, b = 1.": 0.5 * ((real - 1) ** 2).mean() + 0.5 * ((fake + 1) ** 2).mean(),
                no_sigmoid: 0.5 * ((sig_r - 1) ** 2).mean() + 0.5 * (sig_f**2).mean(),
                "Return (d_loss, g_loss) in this order.": want_g,
            },
        )
        assert_close(
            got[1], want_g, function=name, call=call + ", g_loss", rtol=1e-5, atol=1e-6,
            hint="g_loss = 1/2 mean (D(G(z)) - c)^2 with c = 1, a 0-d tensor.",
            known_mistakes={
                "The generator wants its fakes scored as real: its target is c = 1, not 0.":
                    0.5 * (fake**2).mean(),
                "The paper's 1/2 is missing: g_loss = 1/2 mean (D(G(z)) - 1)^2.":
                    ((fake - 1) ** 2).mean(),
                "The generator's loss is not the negated discriminator term: LSGAN's "
                "generator minimises 1/2 mean (D(G(z)) - 1)^2.": -0.5 * (fake**2).mean(),
                "Average over the batch, do not sum.": 0.5 * ((fake - 1) ** 2).sum(),
                no_sigmoid: 0.5 * ((sig_f - 1) ** 2).mean(),
                "Return (d_loss, g_loss) in this order.": want_d,
            },
        )


def _distribution_pairs() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(label, p_data, p_g) discrete distributions (float64 unless stated), with zeros."""
    g = make_generator(SEED + 1)
    raw = torch.rand(2, 9, generator=g, dtype=torch.float64)
    p1, q1 = raw[0] / raw[0].sum(), raw[1] / raw[1].sum()
    mirrored = torch.rand(12, generator=g, dtype=torch.float64)
    mirrored = mirrored / mirrored.sum()
    grid = torch.linspace(-2, 2, 20, dtype=torch.float64).reshape(4, 5)
    return [
        ("two random distributions on 9 points", p1, q1),
        ("a distribution and its mirror image on 12 points", mirrored, mirrored.flip(0)),
        ("p_data with zeros where p_g is positive",
         torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64),
         torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)),
        ("disjoint supports", torch.tensor([0.3, 0.7, 0.0, 0.0], dtype=torch.float64),
         torch.tensor([0.0, 0.0, 0.6, 0.4], dtype=torch.float64)),
        ("p_g = p_data", torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64),
         torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)),
        ("two Gaussian densities on a (4, 5) grid",
         torch.exp(-0.5 * grid**2), torch.exp(-2.0 * (grid - 1) ** 2)),
        ("float32 distributions", torch.tensor([0.25, 0.25, 0.25, 0.25]),
         torch.tensor([0.7, 0.1, 0.1, 0.1])),
    ]


#: (a, b) target pairs: the 0-1 coding, the Pearson chi-squared coding, and two others.
_TARGETS = [(0.0, 1.0), (-1.0, 1.0), (0.25, 2.0), (1.0, -0.5)]


def check_lsgan_optimal_discriminator(lsgan_optimal_discriminator: Callable) -> None:
    """``lsgan_optimal_discriminator(p_data, p_g, a, b)``: ``(b p_data + a p_g) / (p_data + p_g)``.

    On seven pairs of discrete distributions (random, mirrored, zeros on one side, disjoint
    supports, equal, a 2-D grid of densities, float32; never both zero at a point) and each
    target pair ``(a, b)`` of ``(0, 1)`` (the 0-1 coding, where it equals the GAN's ``D*``),
    ``(-1, 1)``, ``(0.25, 2)`` and ``(1, -0.5)``, elementwise, the shape kept. Tolerance
    ``rtol=1e-6, atol=1e-9`` (``1e-5`` in float32).
    """
    name = "lsgan_optimal_discriminator"
    for label, p, q in _distribution_pairs():
        for a, b in _TARGETS:
            call = f"{name}(p_data, p_g, a={a:g}, b={b:g}) for {label}"
            got = call_student(name, lsgan_optimal_discriminator, p.clone(), q.clone(), a, b)
            want = reference.lsgan_optimal_discriminator(p, q, a, b)
            tol = 1e-5 if p.dtype == torch.float32 else 1e-6
            mistakes = {
                "b is the target of the real samples and a that of the fakes: "
                "D* = (b p_data + a p_g) / (p_data + p_g).": (a * p + b * q) / (p + q),
                "Divide by p_data + p_g: D* is a weighted mean of the two targets.":
                    b * p + a * q,
            }
            if (a, b) != (0.0, 1.0):
                mistakes["That is the GAN's D* = p_data / (p_data + p_g); the LSGAN optimum "
                         "depends on the targets a and b."] = p / (p + q)
            assert_close(got, want, function=name, call=call, rtol=tol,
                         atol=1e-9 if tol < 1e-5 else 1e-6,
                         hint="Minimise p_data (y - b)^2 + p_g (y - a)^2 over y at each point.",
                         known_mistakes=mistakes)


# ------------------------------------------------------------------------- architecture


def _short(kind: str) -> str:
    return kind.rsplit(".", 1)[-1]


def _layers(info: dict) -> list[dict]:
    """The submodules of a :func:`describe` result, root excluded, in registration order."""
    return [m for m in info.get("modules", []) if m["name"]]


def _features(module: dict) -> int | None:
    """The number of features of a batch norm from its parameters or its extra_repr."""
    weight = module["parameters"].get("weight")
    if weight:
        return int(weight[0])
    match = re.match(r"\s*(\d+)", module.get("extra_repr", ""))
    return int(match.group(1)) if match else None


def _stride(module: dict) -> tuple[int, ...]:
    match = re.search(r"stride=\(([\d, ]+)\)", module.get("extra_repr", ""))
    return tuple(int(s) for s in match.group(1).split(",") if s.strip()) if match else (1,)


def _require_module(name: str, info: dict, what: str) -> None:
    if "torch.nn.modules.module.Module" not in info.get("mro", []):
        fail(name, f"{what} is a {info.get('type')}, not a torch.nn.Module.",
             "Subclass nn.Module and call super().__init__() first.")


def _common_architecture(name: str, info: dict, what: str) -> list[dict]:
    _require_module(name, info, what)
    layers = _layers(info)
    pools = [f"{m['name']} ({_short(m['type'])})" for m in layers if "Pool" in _short(m["type"])]
    if pools:
        fail(name, f"{what} has pooling layers: {', '.join(pools)}.",
             "DCGAN has no pooling: strided convolutions downsample in the discriminator, "
             "transposed convolutions upsample in the generator (Radford et al., 2016, §3).")
    return layers


def _instantiate(name: str, cls: Callable, *args) -> object:
    return call_student(name, cls, *args)


def check_dcgan_generator(DCGANGenerator: Callable) -> None:  # noqa: N803 - the graded name
    """``DCGANGenerator(latent_dim)``: ``(B, latent_dim)`` to ``(B, 1, 28, 28)`` in [-1, 1].

    For ``latent_dim`` 64 and 16 (the student's classes built after ``seed_student``):
    ``latent_dim`` stored as an attribute; modules (from :func:`describe`) include at least
    two ``ConvTranspose2d``, ``BatchNorm2d`` and ``ReLU``, and no pooling, upsampling or
    batch norm on the one-channel output; in train mode on seeded noise (B = 16) the output
    has shape ``(16, 1, 28, 28)``, lies in [-1, 1] and takes negative values (a sigmoid does
    not); in eval mode, noise scaled by 10 still gives values in [-1, 1] (a ``tanh`` output,
    not a linear one), and each sample depends on its own noise only (within 1e-5).
    """
    name = "DCGANGenerator"
    g = make_generator(SEED + 2)
    for latent_dim in (LATENT_DIM, 16):
        what = f"DCGANGenerator({latent_dim})"
        seed_student(SEED)
        model = _instantiate(name, DCGANGenerator, latent_dim)
        info = describe(model)
        layers = _common_architecture(name, info, what)
        stored = getattr(model, "latent_dim", None)
        if stored != latent_dim:
            fail(name, f"{what}.latent_dim is {stored!r}; expected {latent_dim}.",
                 "Store the noise size: self.latent_dim = latent_dim (train_dcgan reads it).")
        kinds = [_short(m["type"]) for m in layers]
        upsampling = [m["name"] for m in layers if "Upsample" in _short(m["type"])]
        if upsampling:
            fail(name, f"{what} upsamples with {', '.join(upsampling)}.",
                 "DCGAN's generator upsamples with transposed (fractionally strided) "
                 "convolutions, nn.ConvTranspose2d with stride 2.")
        if kinds.count("ConvTranspose2d") < 2:
            fail(name, f"{what} has {kinds.count('ConvTranspose2d')} nn.ConvTranspose2d "
                 f"layer(s); its layers are {kinds}.",
                 "Grow the 4x4 projection of the noise to 7x7 with nn.ConvTranspose2d("
                 "kernel_size=3, stride=2, padding=1), then to 14x14 and 28x28 with "
                 "kernel_size=4, stride=2, padding=1. " + _ARCH_HINT)
        if "BatchNorm2d" not in kinds or "ReLU" not in kinds:
            fail(name, f"{what} lacks nn.BatchNorm2d or nn.ReLU layers; its layers are {kinds}.",
                 "DCGAN's generator uses batch normalisation and ReLU after every layer but "
                 "the output. " + _ARCH_HINT)
        output_norms = [m["name"] for m in layers
                        if _short(m["type"]).startswith("BatchNorm") and _features(m) == 1]
        if output_norms:
            fail(name, f"{what} normalises its one-channel output ({', '.join(output_norms)}).",
                 "No batch normalisation on the generator's output layer (DCGAN's guideline): "
                 "the last transposed convolution goes straight into tanh.")
        z = torch.randn(16, latent_dim, generator=g)
        model.train()
        with torch.no_grad():
            out = call_student(name, model, z.clone())
        images = to_float64(out, function=name)
        assert_shape(images, (16, 1, 28, 28), function=name,
                     call=f"{what}(z) in train mode with z of shape (16, {latent_dim})",
                     hint="Return images of shape (B, 1, 28, 28): reshape the noise to "
                          "(B, D, 1, 1) first and end with a one-channel layer.")
        if not bool(torch.isfinite(images).all()):
            fail(name, f"{what}(z) returned non-finite values.")
        low, high = float(images.min()), float(images.max())
        if low < -1 - 1e-6 or high > 1 + 1e-6:
            fail(name, f"{what}(z) returned values in [{low:.3g}, {high:.3g}]; expected [-1, 1].",
                 "End the generator with nn.Tanh(): the images are compared with data "
                 "rescaled to [-1, 1].")
        if low >= 0:
            fail(name, f"{what}(z) returned only values in [{low:.3g}, {high:.3g}], never "
                 "negative.", "The output is tanh, in [-1, 1], not a sigmoid in [0, 1]: the "
                 "data is rescaled to [-1, 1] (2x - 1) for training.")
        model.eval()
        with torch.no_grad():
            big = to_float64(call_student(name, model, 10 * z), function=name)
            first = to_float64(call_student(name, model, z[:3].clone()), function=name)
            whole = to_float64(call_student(name, model, z.clone()), function=name)
        if float(big.abs().max()) > 1 + 1e-6:
            fail(name, f"in eval mode, {what}(10 z) returned values in [{float(big.min()):.3g}, "
                 f"{float(big.max()):.3g}]; expected [-1, 1] for every input.",
                 "End the generator with nn.Tanh() so that every output lies in [-1, 1].")
        if not torch.allclose(first, whole[:3], rtol=1e-5, atol=1e-5):
            fail(name, f"in eval mode, {what} gave different images for the same noise in a "
                 "batch of 3 and in a batch of 16.",
                 "In eval mode every sample must depend on its own z only (batch norm then "
                 "uses its running statistics).")


def _digits(n: int, offset: int = 0) -> torch.Tensor:
    """``n`` embedded MNIST test digits rescaled to [-1, 1], ``(n, 1, 28, 28)``."""
    images, _ = load_mnist("test")
    return 2 * images[offset : offset + n].clone() - 1


def check_dcgan_discriminator(DCGANDiscriminator: Callable) -> None:  # noqa: N803
    """``DCGANDiscriminator()``: ``(B, 1, 28, 28)`` in [-1, 1] to ``(B,)`` raw scores (logits).

    The student's class built after ``seed_student``: modules (from :func:`describe`)
    include at least two ``Conv2d`` of stride 2, LeakyReLU with slope 0.2 only (no ReLU), no
    pooling, no sigmoid, no batch norm on the one-channel input, and none with as many
    features as the input layer's channels (when no other convolution has that many); on 16
    test digits in train mode the output has shape ``(16,)``; after the input layer's bias is
    set to seeded non-zero values (``load_state_dict``), the scores must change when the batch
    is doubled (batch norm right after the input layer would undo the scaling: zero padding
    scales too); in eval mode each score depends on its own image only (within 1e-5), and
    inputs scaled by 100 give scores outside [0, 1] (raw scores, not probabilities).
    """
    name = "DCGANDiscriminator"
    what = "DCGANDiscriminator()"
    seed_student(SEED)
    model = _instantiate(name, DCGANDiscriminator)
    info = describe(model)
    layers = _common_architecture(name, info, what)
    kinds = [_short(m["type"]) for m in layers]
    strided = [m for m in layers if _short(m["type"]) == "Conv2d" and max(_stride(m)) >= 2]
    if len(strided) < 2:
        fail(name, f"{what} has {len(strided)} nn.Conv2d layer(s) of stride 2; its layers are "
             f"{kinds}.", "Downsample 28 -> 14 -> 7 with nn.Conv2d(kernel_size=4, stride=2, "
             "padding=1), then 7 -> 4 with kernel_size=3 (strided convolutions replace "
             "pooling). " + _ARCH_HINT)
    if "Sigmoid" in kinds:
        fail(name, f"{what} has an nn.Sigmoid layer.",
             "Return raw scores: the non-saturating loss takes logits (the sigmoid is inside "
             "softplus) and LSGAN regresses raw scores.")
    leaky = [m for m in layers if _short(m["type"]) == "LeakyReLU"]
    if not leaky or "ReLU" in kinds:
        fail(name, f"{what}'s activations are {[k for k in kinds if 'ReLU' in k or 'LU' in k]}.",
             "DCGAN's discriminator uses nn.LeakyReLU(0.2) after every hidden layer, and no "
             "plain ReLU. " + _ARCH_HINT)
    for m in leaky:
        match = re.search(r"negative_slope=([-\d.e]+)", m.get("extra_repr", ""))
        slope = float(match.group(1)) if match else float("nan")
        if not abs(slope - 0.2) < 1e-9:
            fail(name, f"{what}.{m['name']} is LeakyReLU with slope {slope:g}; expected 0.2.",
                 "Use nn.LeakyReLU(0.2) (Radford et al., 2016; PyTorch's default is 0.01).")
    norms = [m for m in layers if _short(m["type"]).startswith("BatchNorm")]
    input_norms = [m["name"] for m in norms if _features(m) == 1]
    if input_norms:
        fail(name, f"{what} normalises its one-channel input ({', '.join(input_norms)}).",
             "No batch normalisation on the discriminator's input layer (DCGAN's guideline): "
             "the first convolution sees the images as they are.")
    convs = [m for m in layers if _short(m["type"]) == "Conv2d" and "weight" in m["parameters"]]
    inputs = [m for m in convs if m["parameters"]["weight"][1] == 1]  # in_channels == 1
    if len(inputs) == 1:
        width = inputs[0]["parameters"]["weight"][0]
        others = [m for m in convs if m is not inputs[0] and m["parameters"]["weight"][0] == width]
        first_norms = [m["name"] for m in norms if _features(m) == width]
        if first_norms and not others:
            fail(name, f"{what} has {', '.join(first_norms)} with {width} features, the output "
                 f"of its input layer {inputs[0]['name']} ({width} channels).", _FIRST_NORM_HINT)
    x = _digits(16)
    model.train()
    with torch.no_grad():
        scores = to_float64(call_student(name, model, x.clone()), function=name)
    assert_shape(scores, (16,), function=name, call=f"{what}(x) with x of shape (16, 1, 28, 28)",
                 hint="Return one score per image, shape (B,): flatten the (B, 1, 1, 1) "
                      "output with .reshape(len(x)) or .view(-1).")
    if not bool(torch.isfinite(scores).all()):
        fail(name, f"{what}(x) returned non-finite scores.")
    if len(inputs) == 1 and "bias" in inputs[0]["parameters"]:
        # With a non-zero bias b, LeakyReLU(2u + b) is not 2 LeakyReLU(u + b): the scores move
        # when the batch is doubled, unless batch norm undoes the scaling of the input layer's
        # convolution u (zero padding scales with the images, so nothing else can).
        state = model.state_dict()
        key = _key(inputs[0]["name"], "bias")
        state[key] = 0.5 * torch.randn(state[key].shape, generator=make_generator(SEED + 3))
        model.load_state_dict(state)
        with torch.no_grad():
            base = to_float64(call_student(name, model, x.clone()), function=name)
            doubled = to_float64(call_student(name, model, 2 * x), function=name)
        change = float((base - doubled).abs().max())
        if change < 1e-3 * float(base.std()) + 1e-7:
            fail(name, f"in train mode, {what} gives the same scores (largest change "
                 f"{change:.2g}) for a batch x and for 2x: something normalises the output of "
                 "its input layer.", _FIRST_NORM_HINT)
    model.eval()
    signs = torch.cat([x[:8], -x[8:]])
    with torch.no_grad():
        loud = to_float64(call_student(name, model, 100 * signs), function=name)
        first = to_float64(call_student(name, model, x[:3].clone()), function=name)
        whole = to_float64(call_student(name, model, x.clone()), function=name)
    if not torch.allclose(first, whole[:3], rtol=1e-5, atol=1e-5):
        fail(name, f"in eval mode, {what} scored the same images differently in a batch of 3 "
             "and in a batch of 16.", "In eval mode every score must depend on its own image "
             "only (batch norm then uses its running statistics).")
    if bool(((loud >= 0) & (loud <= 1)).all()):
        fail(name, f"in eval mode, {what} returned scores in [{float(loud.min()):.3g}, "
             f"{float(loud.max()):.3g}] even for inputs scaled by 100: they look like "
             "probabilities.", "Return raw scores (logits) without a sigmoid: the losses apply "
             "it themselves (softplus) or use raw scores (LSGAN).")


# ----------------------------------------------------------------------- initialisation


def _is_conv(kind: str) -> bool:
    return bool(re.fullmatch(r"Conv(Transpose)?[123]d|LazyConv(Transpose)?[123]d", kind))


def _is_norm(kind: str) -> bool:
    return kind.startswith("BatchNorm") or kind.startswith("SyncBatchNorm")


def _key(module_name: str, parameter: str) -> str:
    return f"{module_name}.{parameter}" if module_name else parameter


def _weight_statistics(name: str, where: str, kind: str, weight: torch.Tensor, center: float,
                       *, strict_shape: bool = False) -> None:
    """Fail unless ``weight`` looks like ``N(center, 0.02)`` (6-sigma bands on its mean and std)."""
    w = weight.to(torch.float64).flatten()
    n = w.numel()
    mean, std = float(w.mean()), float(w.std())
    sigma = reference.INIT_STD
    mean_ok = abs(mean - center) <= 6 * sigma / math.sqrt(n)
    std_ok = abs(std / sigma - 1) <= 6 / math.sqrt(2 * n) + 0.02
    if mean_ok and std_ok and strict_shape and n >= 10_000:
        outside = float(((w - center).abs() > 2 * sigma).to(torch.float64).mean())
        if not 0.03 <= outside <= 0.062:  # N(0, 1): P(|x| > 2) = 0.0455
            fail(name, f"after dcgan_init_, {outside:.1%} of the {n} weights of {where} ({kind}) "
                 "lie more than 2 std from the mean; a normal distribution has 4.6%.",
                 "Draw from a normal distribution: nn.init.normal_(weight, mean, 0.02).")
    if mean_ok and std_ok:
        return
    problem = (f"after dcgan_init_, the {n} weights of {where} ({kind}) have mean {mean:.4g} and "
               f"std {std:.4g}; expected N({center:g}, 0.02).")
    if _is_norm(kind) and abs(mean) <= 6 * sigma / math.sqrt(n):
        hint = "Batch-norm scales start at N(1, 0.02), not N(0, 0.02): gamma = 1 is the identity."
    elif _is_norm(kind) and std < 1e-6:
        hint = "Draw the batch-norm scales from N(1, 0.02) instead of leaving them at 1."
    elif abs(std - sigma**2) < 0.5 * sigma**2:
        hint = "0.02 is the standard deviation, not the variance: normal_(weight, 0.0, 0.02)."
    elif std > 0.5:
        hint = "The standard deviation is 0.02: normal_(weight, 0.0, 0.02), not the default 1."
    else:
        hint = ("Convolution weights come from N(0, 0.02), batch-norm scales from N(1, 0.02) "
                "(Radford et al., 2016, §4).")
    fail(name, problem, hint)


def _check_initialised(name: str, info: dict, before: dict, after: dict, what: str,
                       strict_shape: bool = False) -> int:
    """Check every conv and batch-norm layer of a described module; return how many."""
    layers = []
    for module in _layers(info) or info.get("modules", []):
        kind = _short(module["type"])
        key = _key(module["name"], "weight")
        if (_is_conv(kind) or _is_norm(kind)) and "weight" in module["parameters"] and key in after:
            layers.append((module["name"], kind, key))
    unchanged = [(n, k) for n, k, key in layers
                 if key in before and torch.equal(before[key], after[key])]
    if unchanged:
        kinds = {k for _, k in unchanged}
        convs = {k for _, k, _ in layers if _is_conv(k)}
        if any(_is_norm(k) for k in kinds) and not any(_is_conv(k) for k in kinds):
            hint = "Draw batch-norm scales (weight) from N(1, 0.02) and set their bias to 0."
        elif convs and convs <= kinds:
            hint = ("Initialise every convolution, transposed convolution and batch norm, not "
                    "only nn.Linear layers.")
        elif "ConvTranspose2d" in kinds:
            hint = ("nn.ConvTranspose2d is not a subclass of nn.Conv2d: test for both (or for "
                    "nn.modules.conv._ConvNd).")
        else:
            hint = "Initialise nn.Conv2d and nn.ConvTranspose2d layers alike."
        shown = ", ".join(f"{what}.{n} ({k})" for n, k in unchanged[:4])
        fail(name, f"dcgan_init_ left the weights of {shown} unchanged.", hint)
    checked = 0
    for module_name, kind, weight_key in layers:
        where = f"{what}.{module_name}" if module_name else what
        bias_key = _key(module_name, "bias")
        _weight_statistics(name, where, kind, after[weight_key], 1.0 if _is_norm(kind) else 0.0,
                           strict_shape=strict_shape)
        bias = after.get(bias_key)
        if bias is not None and float(bias.abs().max()) != 0.0:
            fail(name, f"after dcgan_init_, {where} ({kind}) has biases up to "
                 f"{float(bias.abs().max()):.3g}; expected exactly 0.",
                 "Set every bias to zero: nn.init.zeros_(module.bias) when it is not None "
                 "(batch norm's bias, beta, too).")
        checked += 1
    return checked


def check_dcgan_init(dcgan_init_: Callable, DCGANGenerator: Callable,  # noqa: N803
                     DCGANDiscriminator: Callable) -> None:
    """``dcgan_init_(module)``, in place: conv weights ``N(0, 0.02)``, BN scales ``N(1, 0.02)``, biases 0.

    First on a public module built here with large layers (``ConvTranspose2d(64, 128, 4)``,
    ``BatchNorm2d(512)``, ``Conv2d(128, 64, 3)``, ...), whose state after the call is read
    here: every weight must have changed, its mean and standard deviation must lie within
    6 sigma of ``N(0, 0.02)`` (``N(1, 0.02)`` for batch norm) and about 4.6% of it beyond
    2 std (a normal, not a uniform), and every bias must be exactly 0. Then on the student's
    ``DCGANGenerator(64)`` and ``DCGANDiscriminator()``: the same statistics, measured from
    their ``state_dict()`` after calling ``dcgan_init_`` on them.
    """
    name = "dcgan_init_"
    seed_student(SEED)
    probe = portable(
        "torch.nn.Sequential",
        portable("torch.nn.ConvTranspose2d", 64, 128, 4),
        portable("torch.nn.BatchNorm2d", 128),
        portable("torch.nn.ReLU"),
        portable("torch.nn.ConvTranspose2d", 128, 32, 4, stride=2, padding=1),
        portable("torch.nn.Conv2d", 128, 64, 3),
        portable("torch.nn.BatchNorm2d", 512),
        portable("torch.nn.LeakyReLU", 0.2),
        portable("torch.nn.Conv2d", 64, 256, 4, stride=2, padding=1),
    )
    before = {k: v.detach().clone() for k, v in probe.state_dict().items()}
    call_student(name, dcgan_init_, probe)
    after = {k: v.detach().clone() for k, v in probe.state_dict().items()}
    _check_initialised(name, describe(probe), before, after, "Sequential(...)", strict_shape=True)
    for what, cls, args in (("DCGANGenerator(64)", DCGANGenerator, (LATENT_DIM,)),
                            ("DCGANDiscriminator()", DCGANDiscriminator, ())):
        seed_student(SEED + 1)
        model = _instantiate(what.split("(")[0], cls, *args)
        before = {k: to_float64(v, function=name) for k, v in model.state_dict().items()}
        call_student(name, dcgan_init_, model)
        after = {k: to_float64(v, function=name) for k, v in model.state_dict().items()}
        if not _check_initialised(name, describe(model), before, after, what):
            fail(name, f"{what} has no convolution or batch-norm layer that dcgan_init_ could "
                 "initialise.", _ARCH_HINT)


# --------------------------------------------------------------------------- training


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """These small convolutional networks train fastest on one thread of a busy 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train_images() -> torch.Tensor:
    images, _ = load_mnist("train")
    return images


def _fresh_pair(DCGANGenerator: Callable, DCGANDiscriminator: Callable,  # noqa: N803
                dcgan_init_: Callable, seed: int) -> tuple[object, object]:
    """The student's generator and discriminator, built and initialised after ``seed_student``."""
    seed_student(seed)
    generator = _instantiate("DCGANGenerator", DCGANGenerator, LATENT_DIM)
    discriminator = _instantiate("DCGANDiscriminator", DCGANDiscriminator)
    call_student("dcgan_init_", dcgan_init_, generator)
    call_student("dcgan_init_", dcgan_init_, discriminator)
    return generator, discriminator


def _histories(name: str, history: object, steps: int) -> dict[str, list[float]]:
    if not isinstance(history, dict):
        fail(name, f"returned {type(history).__name__}; expected a dict of loss histories "
             "{'discriminator': [...], 'generator': [...]}.")
    return {key: check_loss_history(f"{name} history[{key!r}]", history.get(key), steps,
                                    what="floats (one per generator step)", must_decrease=False,
                                    nonfinite_hint="Append loss.item() once per step; a NaN "
                                    "means the training diverged (check the losses).")
            for key in ("discriminator", "generator")}


def _state(model: object, function: str) -> dict[str, torch.Tensor]:
    return {k: to_float64(v, function=function) for k, v in model.state_dict().items()}


@trains_model
def check_train_dcgan_contract(train_dcgan: Callable, DCGANGenerator: Callable,  # noqa: N803
                               DCGANDiscriminator: Callable, dcgan_init_: Callable) -> None:
    """``train_dcgan(generator, discriminator, images, steps, loss, generator_rng) -> dict``.

    Short runs (3 steps on 256 training digits) of the student's function on the student's
    networks (``DCGANGenerator(64)``, ``DCGANDiscriminator()``, ``dcgan_init_``): the result
    is a dict whose ``"discriminator"`` and ``"generator"`` entries hold 3 finite floats; the
    networks' weights change and ``generator_rng`` advances; the same seeds give identical
    histories and weights even when torch's global generator is reseeded in between (all
    randomness comes from ``generator_rng``); and ``loss="lsgan"`` gives other histories
    than ``loss="nonsaturating"`` from the same start.
    """
    name = "train_dcgan"
    images = _train_images()[:256].clone()
    steps = 3

    def run(loss: str, global_seed: int) -> tuple[dict, dict, dict, torch.Tensor]:
        generator, discriminator = _fresh_pair(DCGANGenerator, DCGANDiscriminator, dcgan_init_,
                                               SEED)
        start = _state(generator, name)
        rng = make_generator(SEED)
        seed_student(global_seed)
        with _one_thread():
            history = call_student(name, train_dcgan, generator, discriminator, images.clone(),
                                   steps, loss, rng)
        return _histories(name, history, steps), start, _state(generator, name), rng.get_state()

    first, start, end, rng_state = run("nonsaturating", SEED + 10)
    if torch.equal(rng_state, make_generator(SEED).get_state()):
        fail(name, "generator_rng was never used.", "Draw the minibatch indices and the noise "
             "with generator=generator_rng (torch.randint, torch.randn).")
    if all(torch.equal(start[k], end[k]) for k in start):
        fail(name, f"{steps} steps left the generator's weights unchanged.",
             "Step an optimizer of generator.parameters() on the generator's loss.")
    again, _, end_again, _ = run("nonsaturating", SEED + 20)
    same = all(torch.equal(end[k], end_again[k]) for k in end) and first == again
    if not same:
        fail(name, "two runs with the same networks, images and generator_rng seed gave "
             f"different results (discriminator losses {first['discriminator']} and "
             f"{again['discriminator']}) after torch's global generator was reseeded.",
             "Draw every random number from generator_rng: torch.randn(B, D, "
             "generator=generator_rng) and torch.randint(N, (B,), generator=generator_rng), "
             "never torch.randn(...) without it or random/numpy (and no dropout).")
    least_squares, _, _, _ = run("lsgan", SEED + 10)
    if least_squares == first:
        fail(name, "loss='lsgan' and loss='nonsaturating' gave identical loss histories "
             f"({first['discriminator']}).", "Use lsgan_losses when loss == 'lsgan' and the "
             "softplus losses of the non-saturating game when loss == 'nonsaturating'.")


def training_time_budget(images: torch.Tensor, loss: str) -> float:
    """Seconds allowed for ``TRAINING_STEPS`` steps on this machine, under its current load.

    ``max(TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR * t)`` where ``t`` is what the
    reference takes for ``TRAINING_STEPS`` steps on the reference networks, extrapolated from
    a tenth of them run now on one thread
    (:func:`gradelib.checks.assertions.calibrated_time_budget`).
    """
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(SEED)
        generator = reference.DCGANGenerator(LATENT_DIM)
        discriminator = reference.DCGANDiscriminator()
    finally:
        torch.random.set_rng_state(state)
    with _one_thread():
        return calibrated_time_budget(
            TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR,
            lambda: reference.train_dcgan(generator, discriminator, images,
                                          TRAINING_STEPS // 10, loss, make_generator(SEED)),
            scale=10)


def sample_quality(generator: object, n: int = NUM_SAMPLES, seed: int = SEED + 1,
                   *, function: str = "train_dcgan") -> dict:
    """Judge ``n`` samples of a generator with the course's digit classifier, here.

    The noise ``z ~ N(0, I)`` of shape ``(n, generator.latent_dim)`` is drawn here from
    ``make_generator(seed)``; the generator (in eval mode) maps it to images in [-1, 1],
    rescaled to [0, 1] as ``(x + 1) / 2`` for
    :func:`gradelib.digit_classifier.reference_digit_classifier`.

    Returns:
        ``{"confident_share": float in [0, 1], "digit_counts": [10 ints], "confident_counts":
        [10 ints], "min_value": float, "background_share": float}``: the share of samples
        whose top class has probability above :data:`CONFIDENCE`; how many samples have
        each digit as their top class (whether a digit is present at all); how many
        confident labels each digit got; the smallest pixel value returned; and the share
        of all returned pixels below -0.5 (the data's background is -1).
    """
    latent_dim = getattr(generator, "latent_dim", None)
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim <= 0:
        fail(function, f"the generator's latent_dim is {latent_dim!r}; expected an int.",
             "Store the noise size in DCGANGenerator.__init__: self.latent_dim = latent_dim.")
    z = torch.randn(n, latent_dim, generator=make_generator(seed))  # (n, D)
    generator.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, n, 250):
            part = to_float64(call_student("DCGANGenerator", generator, z[start : start + 250]),
                              function="DCGANGenerator")
            assert_shape(part, (len(z[start : start + 250]), 1, 28, 28), function=function,
                         call="the trained generator(z)")
            chunks.append(part)
    samples = torch.cat(chunks)  # (n, 1, 28, 28)
    if not bool(torch.isfinite(samples).all()):
        fail(function, "the trained generator returned non-finite images.",
             "The training diverged: check the signs of the losses.")
    judge, _ = reference_digit_classifier()
    images = ((samples.clamp(-1, 1) + 1) / 2).to(torch.float32)
    with torch.no_grad():
        probabilities = torch.cat([F.softmax(judge(images[i : i + 500]), dim=1)
                                   for i in range(0, n, 500)])  # (n, 10)
    confidence, labels = probabilities.max(dim=1)
    confident = confidence > CONFIDENCE
    return {"confident_share": float(confident.to(torch.float64).mean()),
            "digit_counts": [int(c) for c in torch.bincount(labels, minlength=10)],
            "confident_counts": [int(c) for c in torch.bincount(labels[confident], minlength=10)],
            "min_value": float(samples.min()),
            "background_share": float((samples < -0.5).to(torch.float64).mean())}


def _check_training(loss: str, train_dcgan: Callable, DCGANGenerator: Callable,  # noqa: N803
                    DCGANDiscriminator: Callable, dcgan_init_: Callable, seed: int) -> dict:
    name = "train_dcgan"
    images = _train_images()
    budget = training_time_budget(images, loss)
    generator, discriminator = _fresh_pair(DCGANGenerator, DCGANDiscriminator, dcgan_init_, seed)
    with _one_thread(), time_limit(name, budget, what=f"{TRAINING_STEPS} steps with "
                                                      f"loss={loss!r}") as clock:
        history = call_student(name, train_dcgan, generator, discriminator, images.clone(),
                               TRAINING_STEPS, loss, make_generator(seed))
    _histories(name, history, TRAINING_STEPS)
    quality = sample_quality(generator, seed=seed + 1)
    share, counts = quality["confident_share"], quality["digit_counts"]
    if share < MIN_CONFIDENT_SHARE or min(counts) < MIN_DIGIT_COUNT:
        missing = [d for d, c in enumerate(counts) if c < MIN_DIGIT_COUNT]
        hint = ("Follow the recipe: rescale the digits to [-1, 1], one discriminator step on "
                "real and detached fake batches, one generator step, Adam with betas (0.5, "
                "0.999), and the losses that `loss` names.")
        if quality["min_value"] > -0.5:
            hint = ("The samples never come near -1, the background of the data in [-1, 1]: "
                    "rescale the training digits with 2 * images - 1.")
        fail(name, f"after {TRAINING_STEPS} steps with loss={loss!r}, the course's digit "
             f"classifier labels {share:.1%} of {NUM_SAMPLES} samples with confidence above "
             f"{CONFIDENCE:g}, and gives each digit as the top label to {counts} samples; "
             f"expected at least {MIN_CONFIDENT_SHARE:.0%} and every digit at least "
             f"{MIN_DIGIT_COUNT} times" + (f" (too few: {missing})." if missing else "."), hint)
    # Last: a run on digits left in [0, 1] can meet the bars above with a background near 0.
    if quality["background_share"] < MIN_BACKGROUND_SHARE:
        fail(name, f"after {TRAINING_STEPS} steps with loss={loss!r}, only "
             f"{quality['background_share']:.1%} of the samples' pixels are below -0.5 "
             f"(smallest value {quality['min_value']:.3g}); the training digits in [-1, 1] "
             f"have a background at -1, and at least {MIN_BACKGROUND_SHARE:.0%} of a "
             "trained generator's pixels are expected there (the share and digit bars are met).",
             "Rescale the training digits with 2 * images - 1 before the discriminator sees "
             "them: the generator's tanh images live in [-1, 1].")
    return {"loss": loss, "confident_share": share, "digit_counts": counts,
            "confident_counts": quality["confident_counts"],
            "background_share": quality["background_share"], "seconds": round(clock.seconds, 1),
            "budget_s": round(budget, 1)}


@trains_model
def check_train_dcgan_nonsaturating(train_dcgan: Callable, DCGANGenerator: Callable,  # noqa: N803
                                    DCGANDiscriminator: Callable, dcgan_init_: Callable,
                                    seed: int = SEED) -> dict:
    """Train the student's DCGAN with ``loss="nonsaturating"`` and judge its samples here.

    ``DCGANGenerator(64)`` and ``DCGANDiscriminator()`` are built after ``seed_student(seed)``
    and initialised with the student's ``dcgan_init_``; ``train_dcgan`` runs for
    ``TRAINING_STEPS`` steps on the 4,000 embedded training digits (in [0, 1]) with
    ``make_generator(seed)``, within :func:`training_time_budget` seconds. Its histories must
    hold ``TRAINING_STEPS`` finite floats each; then, for ``NUM_SAMPLES`` noise vectors
    drawn here, the course's digit classifier must label at least ``MIN_CONFIDENT_SHARE`` of
    the samples with confidence above ``CONFIDENCE``, and give every digit as the top label
    of at least ``MIN_DIGIT_COUNT`` samples (all ten digits present); and at least
    ``MIN_BACKGROUND_SHARE`` of the samples' pixels must be below -0.5 (the data's
    background, -1, once the digits are rescaled to [-1, 1]). Returns the figures.
    """
    return _check_training("nonsaturating", train_dcgan, DCGANGenerator, DCGANDiscriminator,
                           dcgan_init_, seed)


@trains_model
def check_train_dcgan_lsgan(train_dcgan: Callable, DCGANGenerator: Callable,  # noqa: N803
                            DCGANDiscriminator: Callable, dcgan_init_: Callable,
                            seed: int = SEED) -> dict:
    """As :func:`check_train_dcgan_nonsaturating`, with ``loss="lsgan"``."""
    return _check_training("lsgan", train_dcgan, DCGANGenerator, DCGANDiscriminator,
                           dcgan_init_, seed)
