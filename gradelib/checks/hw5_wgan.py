"""Autograder checks for ``hw5_wgan``, second edition (syllabus §6): spectral normalisation
and the sliced Wasserstein distance.

Each ``check_*`` runs the student's function or class on inputs chosen here, compares what it
returns with :mod:`gradelib.checks.references.hw5_wgan` (and, for the layer, with
``torch.nn.utils.parametrizations.spectral_norm``) under the tolerances stated in its
docstring, and raises an ``AssertionError`` naming the function, the input, the expected and
returned values and a hint.

The checks follow the trusted-checker protocol (``gradelib.checks.assertions``): the
student's objects may be proxies for objects in a sandbox, so a check only calls them,
instantiates the student's class, reads ``state_dict()``, loads one, switches
``train()``/``eval()`` and asks :func:`describe` what a module holds; the networks it trains
are public (:func:`portable`) and come back with their trained weights, so every metric
(mode coverage, sliced W1) is computed here, on samples drawn here.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from gradelib.checks.assertions import (
    assert_close,
    assert_shape,
    calibrated_time_budget,
    call_student,
    call_with_gradients,
    check_loss_history,
    describe,
    fail,
    portable,
    portable_attribute,
    seed_student,
    time_limit,
    to_float64,
    trains_model,
)
from gradelib.checks.references import hw5_wgan as reference
from gradelib.data import ring_mixture
from gradelib.device import make_generator
from gradelib.gan import mode_coverage

__all__ = [
    "check_power_iteration",
    "check_spectral_norm_linear",
    "check_sliced_wasserstein",
    "check_gradient_norm_bound",
    "check_train_sn_wgan",
    "TRAINING_STEPS",
    "TRAINING_N_CRITIC",
    "TRAINING_HIDDEN",
    "TRAINING_TIME_BUDGET_S",
    "TRAINING_TIME_FACTOR",
    "MIN_RING_MODES",
    "MAX_SLICED_W1",
    "MAX_LIPSCHITZ_BOUND",
    "sn_critic",
    "training_time_budget",
    "train_and_measure",
    "judge",
]

SEED = 5005
SPECTRAL_NORM = "torch.nn.utils.parametrizations.spectral_norm"

#: Generator steps the hidden check trains for, each after ``TRAINING_N_CRITIC`` critic steps.
TRAINING_STEPS = 800
TRAINING_N_CRITIC = 5
#: Width of the check's 3-hidden-layer generator and spectrally normalised critic.
TRAINING_HIDDEN = 64
#: Wall-clock seconds always allowed for the check's training run.
TRAINING_TIME_BUDGET_S = 60.0
#: On a slower or busier machine the budget grows to this many times what the reference takes
#: for the same steps, timed on a tenth of them just before (:func:`training_time_budget`).
TRAINING_TIME_FACTOR = 5.0
#: Calibrated bands on 2,500 samples after the check's run on the 8-Gaussian ring, measured
#: by ``benchmarks/hw5_wgan.py --band`` (``benchmarks/results/hw5_wgan_band.json``): the
#: reference loop with the check's seed and five more, the same draws reordered and one
#: critic forward on real and fake concatenated all capture 8/8 modes (5.5-21 % high
#: quality) at a sliced W1 of 0.113-0.167 (two samples of the data: 0.02-0.06); a generator
#: or critic loss with its sign flipped ends at 0 modes and a sliced W1 above 6,000, a
#: critic that is never stepped at 0 modes and 1.36.
MIN_RING_MODES = 7
MAX_SLICED_W1 = 0.25
#: The median over the last tenth of the run of the recorded ``lipschitz_bound``: a critic
#: whose every layer is divided by its spectral norm is 1-Lipschitz up to the power
#: iteration's error, so its input gradients cannot be much longer than 1 (measured: the
#: reference's medians are 0.27-0.33, well below; the bound is loose for such critics).
MAX_LIPSCHITZ_BOUND = 1.05


# ---------------------------------------------------------------------- power iteration


def _power_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, int]]:
    """(label, weight, u, num_iters): tall, wide and square weights, float64 and float32."""
    g = make_generator(SEED)

    def unit(n: int, dtype=torch.float64) -> torch.Tensor:
        u = torch.randn(n, generator=g, dtype=dtype)
        return u / u.norm()

    tall = torch.randn(6, 4, generator=g, dtype=torch.float64)
    wide = torch.randn(3, 8, generator=g, dtype=torch.float64)
    square = torch.randn(10, 10, generator=g)
    return [
        ("a (6, 4) float64 weight, 1 iteration", tall, unit(6), 1),
        ("a (6, 4) float64 weight, 2 iterations", tall, unit(6), 2),
        ("a (6, 4) float64 weight, 5 iterations", tall, unit(6), 5),
        ("a (3, 8) float64 weight, 1 iteration", wide, unit(3), 1),
        ("a (3, 8) float64 weight, 3 iterations", wide, unit(3), 3),
        ("a (10, 10) float32 weight, 1 iteration", square, unit(10, torch.float32), 1),
        ("a (10, 10) float32 weight, 30 iterations", square, unit(10, torch.float32), 30),
    ]


def _power_mistakes(weight: torch.Tensor, u: torch.Tensor,
                    num_iters: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Hints for sigma and for u, keyed by the value each typical mistake returns."""
    w = weight.double()
    u0 = u.double()
    exact = torch.linalg.matrix_norm(w, ord=2)
    more, more_u = reference.power_iteration(w, u0, num_iters + 1)
    sigma_mistakes = {
        "No torch.linalg: the exact largest singular value (an SVD) is not what Algorithm 1 "
        "returns after num_iters iterations; alternate v = W^T u / ||W^T u||, u = W v / ||W v|| "
        "and return sigma = u^T W v.": exact,
        "That is the Frobenius norm ||W||_F, which is larger than the spectral norm; use the "
        "power iteration.": w.norm(),
        "Run exactly num_iters iterations, not one more (one iteration updates v, then u).": more,
    }
    if num_iters > 1:
        sigma_mistakes["Run exactly num_iters iterations, not one fewer (one iteration updates "
                       "v, then u)."] = reference.power_iteration(w, u0, num_iters - 1)[0]
    _, u_new = reference.power_iteration(w, u0, num_iters)
    v_fresh = F.normalize(w.T @ u_new, dim=0)
    sigma_mistakes["Algorithm 1 computes sigma = u^T W v with the v of the last iteration, the "
                   "one u was computed from; do not recompute v from the new u."] = \
        u_new @ (w @ v_fresh)
    raw_u, raw_v = u0, None
    for _ in range(num_iters):
        raw_v = w.T @ raw_u
        raw_u = w @ raw_v
    sigma_mistakes["Normalise v and u to unit length at every step."] = raw_u @ (w @ raw_v)
    u_mistakes = {
        "Return the updated u, not the u you were given.": u0,
        "Run exactly num_iters iterations, not one more (one iteration updates v, then u).":
            more_u,
    }
    return sigma_mistakes, u_mistakes


def _pair(name: str, call: str, result: object, what: str) -> tuple[object, object]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(name, f"{call} returned {type(result).__name__}; expected a tuple {what}.")
    return result[0], result[1]


def check_power_iteration(power_iteration: Callable) -> None:
    """``power_iteration(weight, u, num_iters)``: ``(sigma, u)`` of Miyato et al. (2018),
    Algorithm 1.

    Seven seeded cases (tall, wide and square weights; float64 and float32; 1 to 30
    iterations). ``sigma`` (0-d) and the updated ``u`` (``(out,)``) must equal the
    reference's within ``rtol=1e-6, atol=1e-9`` (float64) or ``rtol=1e-4, atol=1e-6``
    (float32). After one iteration the estimate differs from the exact largest singular
    value by more than the tolerance, so an answer that computes the exact value (an SVD,
    ``torch.linalg``) fails; so does the Frobenius norm.
    """
    name = "power_iteration"
    for label, weight, u, num_iters in _power_cases():
        call = f"{name}(weight, u, num_iters={num_iters}) for {label}"
        result = call_student(name, power_iteration, weight.clone(), u.clone(), num_iters)
        got_sigma, got_u = _pair(name, call, result, "(sigma, u)")
        want_sigma, want_u = reference.power_iteration(weight, u, num_iters)
        float32 = weight.dtype == torch.float32
        rtol, atol = (1e-4, 1e-6) if float32 else (1e-6, 1e-9)
        sigma_mistakes, u_mistakes = _power_mistakes(weight, u, num_iters)
        assert_close(got_sigma, want_sigma, function=name, call=f"{call}: sigma", rtol=rtol,
                     atol=atol, hint="Alternate v = W^T u / ||W^T u|| and u = W v / ||W v|| "
                     "num_iters times, then return sigma = u^T W v (a 0-d tensor).",
                     known_mistakes=sigma_mistakes)
        assert_close(got_u, want_u, function=name, call=f"{call}: u", rtol=rtol, atol=atol,
                     hint="Return the left vector u of shape (out,) after the last iteration, "
                     "normalised to unit length.", known_mistakes=u_mistakes)


# ------------------------------------------------------------------- the normalised layer


def _torch_reference(weight: torch.Tensor, bias: torch.Tensor, u: torch.Tensor) -> nn.Linear:
    """``torch.nn.utils.parametrizations.spectral_norm`` started from ``u`` (and its
    ``v = W^T u / ||W^T u||``), with ``weight`` and ``bias``."""
    out_features, in_features = weight.shape
    layer = nn.Linear(in_features, out_features)
    torch.nn.utils.parametrizations.spectral_norm(layer)
    with torch.no_grad():
        layer.parametrizations.weight.original.copy_(weight)
        layer.bias.copy_(bias)
        norm = layer.parametrizations.weight[0]
        norm._u.copy_(u)
        norm._v.copy_(F.normalize(weight.T @ u, dim=0, eps=reference.EPS))
    return layer


def _layer_mistakes(weight: torch.Tensor, bias: torch.Tensor, u_before: torch.Tensor,
                    u_start: torch.Tensor, x: torch.Tensor, training: bool) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        sigma_exact = torch.linalg.matrix_norm(weight.double(), ord=2).float()
        sigma_miyato, _ = reference.power_iteration(weight, u_before, 1)
        mistakes = {
            "Divide the weight by its spectral norm sigma(W) = u^T W v, not by the Frobenius "
            "norm ||W||_F.": F.linear(x, weight / weight.norm(), bias),
            "Divide the weight by sigma(W): the output is x (W / sigma)^T + b.":
                F.linear(x, weight, bias),
            "Only the weight is normalised, not the bias.":
                F.linear(x, weight, bias) / _sigma_after(weight, u_before, training),
            "One power iteration per forward pass estimates sigma; do not compute it exactly "
            "(no torch.linalg).": F.linear(x, weight / sigma_exact, bias),
        }
        if training:
            mistakes["Normalise with sigma = u^T W v where v = W^T u / ||W^T u|| is recomputed "
                     "from the updated u (as torch's spectral_norm does), not with the sigma "
                     "that power_iteration returns."] = F.linear(x, weight / sigma_miyato, bias)
            if not torch.equal(u_before, u_start):
                mistakes["Store the updated u back in the buffer (e.g. self.u.copy_(u)), so that "
                         "the next forward pass continues the iteration."] = \
                    _torch_reference(weight, bias, u_start).train()(x)
        else:
            mistakes["In eval mode the layer must not iterate: use the stored u as it is."] = \
                _torch_reference(weight, bias, u_before).train()(x)
            mistakes["Normalise with sigma = u^T W v, v = W^T u / ||W^T u||, in eval mode too."] = \
                F.linear(x, weight, bias)
    return mistakes


def _sigma_after(weight: torch.Tensor, u: torch.Tensor, training: bool) -> torch.Tensor:
    if training:
        _, u = reference.power_iteration(weight, u, 1)
    return u @ (weight @ F.normalize(weight.T @ u, dim=0, eps=reference.EPS))


def _require_layout(name: str, info: dict, in_features: int, out_features: int) -> None:
    modules = info.get("modules") or []
    if not modules:
        fail(name, f"SpectralNormLinear({in_features}, {out_features}) is not an nn.Module.",
             "Subclass torch.nn.Module and call super().__init__() first.")
    kinds = " ".join(m.get("type", "") for m in modules)
    if "parametriz" in kinds.lower() or "SpectralNorm" in kinds.replace("SpectralNormLinear", ""):
        fail(name, "the layer uses torch's spectral normalisation.",
             "Write the normalisation yourself with your power_iteration; do not call "
             "torch.nn.utils.parametrizations.spectral_norm.")
    root = modules[0]
    parameters, buffers = root.get("parameters", {}), root.get("buffers", {})
    if "weight_orig" in parameters or "weight_u" in buffers:
        fail(name, "the layer uses torch.nn.utils.spectral_norm.",
             "Write the normalisation yourself with your power_iteration.")
    expected = {"weight": [out_features, in_features], "bias": [out_features]}
    if {k: list(v) for k, v in parameters.items()} != expected:
        fail(name, f"SpectralNormLinear({in_features}, {out_features}) has parameters "
             f"{parameters}; expected exactly {expected} on the layer itself.",
             "Create self.weight = nn.Parameter(...) of shape (out_features, in_features) and "
             "self.bias of shape (out_features,).")
    if list(buffers.get("u", [])) != [out_features]:
        fail(name, f"SpectralNormLinear({in_features}, {out_features}) has buffers {buffers}; "
             f"expected a buffer u of shape [{out_features}].",
             "Register the left singular vector estimate with self.register_buffer('u', ...), "
             "a random unit vector of length out_features.")


def _state(name: str, layer, what: str) -> dict:
    state = call_student(name, layer.state_dict)
    if not isinstance(state, dict) or "u" not in state:
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        fail(name, f"{what}: state_dict() holds {keys}; expected 'weight', 'bias' and 'u'.",
             "Register u with self.register_buffer('u', tensor) (persistent, the default), so "
             "that it is saved and loaded with the model.")
    return state


def check_spectral_norm_linear(SpectralNormLinear: type) -> None:  # noqa: N803 - the graded name
    """``SpectralNormLinear(in_features, out_features)`` against torch's ``spectral_norm``.

    The layer (built here with ``seed_student``) must hold parameters ``weight`` ``(out, in)``
    and ``bias`` ``(out,)`` and a persistent buffer ``u`` ``(out,)``, a unit vector, and must
    not use torch's spectral normalisation. With a seeded ``weight``, ``bias`` and ``u``
    loaded through ``load_state_dict``, three forward passes in training mode and two in eval
    mode must give the outputs of ``torch.nn.utils.parametrizations.spectral_norm`` started
    from the same ``u`` (and ``v = W^T u / ||W^T u||``), and ``state_dict()["u"]`` after each
    pass must equal torch's ``u`` (advanced once per pass in training mode, unchanged in eval
    mode); tolerance ``rtol=1e-5, atol=1e-6``. The gradients of ``output.sum()`` with respect
    to ``weight``, ``bias`` and the input must equal torch's (``u`` and ``v`` are constants
    for autograd), ``rtol=1e-4, atol=1e-6``.
    """
    name = "SpectralNormLinear"
    in_features, out_features = 5, 3
    seed_student(SEED)
    layer = call_student(name, SpectralNormLinear, in_features, out_features)
    _require_layout(name, describe(layer), in_features, out_features)
    state = _state(name, layer, f"SpectralNormLinear({in_features}, {out_features})")
    u_init = to_float64(state["u"], function=name, what="state_dict()['u']")
    if u_init.shape != (out_features,) or not abs(float(u_init.norm()) - 1) < 1e-4:
        fail(name, f"the initial u has shape {tuple(u_init.shape)} and norm "
             f"{float(u_init.norm()):.4g}; expected a unit vector of shape ({out_features},).",
             "Initialise u as a random normal vector divided by its norm.")
    g = make_generator(SEED + 1)
    # singular values 2, 1.9, 1.4: the iteration converges slowly, so every pass moves u
    left, _ = torch.linalg.qr(torch.randn(out_features, out_features, generator=g))
    right, _ = torch.linalg.qr(torch.randn(in_features, out_features, generator=g))
    weight = left @ torch.diag(torch.tensor([2.0, 1.9, 1.4])) @ right.T  # (out, in)
    bias = torch.randn(out_features, generator=g)
    u = F.normalize(torch.randn(out_features, generator=g), dim=0)
    x = torch.randn(4, in_features, generator=g)
    state = {**state, "weight": weight.clone(), "bias": bias.clone(), "u": u.clone()}
    call_student(name, layer.load_state_dict, state)
    torch_layer = _torch_reference(weight, bias, u)
    torch_norm = torch_layer.parametrizations.weight[0]

    def compare(mode: str, index: int) -> None:
        training = mode == "training"
        u_before = torch_norm._u.clone()
        call = f"forward pass {index} in {mode} mode of SpectralNormLinear(5, 3) on a (4, 5) input"
        got = call_student(name, layer, x.clone())
        with torch.no_grad():
            want = torch_layer(x)
        assert_close(got, want, function=name, call=call, rtol=1e-5, atol=1e-6,
                     hint="y = x (W / sigma)^T + b with sigma = u^T W v, v = W^T u / ||W^T u||; "
                     "in training mode first advance u by one power iteration.",
                     known_mistakes=_layer_mistakes(weight, bias, u_before, u, x, training))
        got_u = _state(name, layer, call)["u"]
        u_hints = ({"Store the updated u back in the buffer (e.g. self.u.copy_(u)), so that the "
                    "next forward pass continues the iteration.": u_before} if training else
                   {"In eval mode the layer must not iterate: leave u unchanged.":
                    reference.power_iteration(weight, u_before, 1)[1]})
        assert_close(got_u, torch_norm._u, function=name, call=f"state_dict()['u'] after {call}",
                     rtol=1e-5, atol=1e-6,
                     hint="In training mode each forward pass replaces u by one power iteration "
                          "from it; in eval mode u stays as it is.", known_mistakes=u_hints)

    call_student(name, layer.train)
    torch_layer.train()
    for index in range(1, 4):
        compare("training", index)
    call_student(name, layer.eval)
    torch_layer.eval()
    for index in range(1, 3):
        compare("eval", index)

    # gradients: u and v are constants, the gradient flows through W (and b, x) only
    call_student(name, layer.train)
    torch_layer.train()
    forward = getattr(SpectralNormLinear, "forward")
    u_start = torch_norm._u.clone()  # where this training pass starts its iteration
    output, (grads, x_grad) = call_with_gradients(name, forward, [layer, x.clone()],
                                                  wrt=[("parameters", 0), 1])
    x_ref = x.clone().requires_grad_(True)
    torch_layer(x_ref).sum().backward()
    want = {"weight": torch_layer.parametrizations.weight.original.grad,
            "bias": torch_layer.bias.grad}
    through_u = _gradient_through_iteration(weight, bias, u_start, x)
    for key in ("weight", "bias"):
        got = grads.get(key) if isinstance(grads, dict) else None
        if got is None:
            fail(name, f"the output of a training-mode forward pass does not depend on {key}.",
                 "Compute the output from self.weight and self.bias with differentiable "
                 "operations (only u and v are computed under torch.no_grad()).")
        assert_close(got, want[key], function=name,
                     call=f"the gradient of forward(x).sum() with respect to {key}",
                     rtol=1e-4, atol=1e-6,
                     hint="Compute u and v under torch.no_grad(): torch's spectral_norm "
                          "treats them as constants, so the gradient flows through W in "
                          "W / (u^T W v) only.",
                     known_mistakes={"Compute u and v under torch.no_grad() (and clone u): the "
                                     "gradient must not flow through the power iteration.":
                                     through_u[key]})
    assert_close(x_grad, x_ref.grad, function=name,
                 call="the gradient of forward(x).sum() with respect to x", rtol=1e-4, atol=1e-6,
                 hint="y = x (W / sigma)^T + b: each input's gradient is the sum of the rows "
                      "of W / sigma.")
    assert_shape(to_float64(output, function=name), (4, out_features), function=name,
                 call="forward(x) on a (4, 5) input")


def _gradient_through_iteration(weight: torch.Tensor, bias: torch.Tensor, u: torch.Tensor,
                                x: torch.Tensor) -> dict[str, torch.Tensor]:
    w = weight.clone().requires_grad_(True)
    b = bias.clone().requires_grad_(True)
    v = F.normalize(w.T @ u, dim=0)
    u_new = F.normalize(w @ v, dim=0)
    v_new = F.normalize(w.T @ u_new, dim=0)
    F.linear(x, w / (u_new @ (w @ v_new)), b).sum().backward()
    return {"weight": w.grad, "bias": b.grad}


# ------------------------------------------------------------------- the sliced distance


def _sliced_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, int, int]]:
    """(label, x, y, num_projections, seed of the directions' generator)."""
    g = make_generator(SEED + 2)
    ring = ring_mixture()
    x = torch.randn(40, 3, generator=g)
    return [
        ("300 ring points against 300 Gaussian points, 50 projections",
         ring.sample(300, g), 0.5 + torch.randn(300, 2, generator=g), 50, 11),
        ("100 points in 5-D against a shifted sample, 20 projections",
         torch.randn(100, 5, generator=g), torch.randn(100, 5, generator=g) + 1.5, 20, 12),
        ("7 points in 3-D, 1 projection", torch.randn(7, 3, generator=g),
         torch.rand(7, 3, generator=g), 1, 13),
        ("a sample against a permutation of itself (0)", x,
         x[torch.randperm(40, generator=g)], 30, 14),
    ]


def _sliced_mistakes(x: torch.Tensor, y: torch.Tensor, k: int, seed: int,
                     global_seed: int) -> dict[str, torch.Tensor]:
    raw = torch.randn(k, x.shape[1], generator=make_generator(seed))
    unit = raw / raw.norm(dim=1, keepdim=True)

    def sw(directions: torch.Tensor, kind: str = "w1") -> torch.Tensor:
        px, py = x @ directions.T, y @ directions.T  # (N, K)
        if kind == "unsorted":
            return (px - py).abs().mean()
        diff = px.sort(dim=0).values - py.sort(dim=0).values
        if kind == "w2":
            return diff.pow(2).mean(dim=0).sqrt().mean()
        if kind == "w2_squared":
            return diff.pow(2).mean()
        if kind == "sum":
            return diff.abs().mean(dim=0).sum()
        if kind == "wrong_dim":
            return (px.sort(dim=1).values - py.sort(dim=1).values).abs().mean()
        return diff.abs().mean()

    global_draw = torch.randn(k, x.shape[1], generator=torch.Generator().manual_seed(global_seed))
    return {
        "Normalise each direction to unit length: theta = g / ||g||.": sw(raw),
        "W1, not W2: average the absolute differences of the sorted projections (no squares, "
        "no square root).": sw(unit, "w2"),
        "W1, not the squared W2: average the absolute differences, do not square them.":
            sw(unit, "w2_squared"),
        "Sort each projected sample (over the N points) before comparing: the 1-D optimal "
        "coupling pairs sorted values.": sw(unit, "unsorted"),
        "Sort along the samples (dim=0 of the (N, K) projections), not along the projections.":
            sw(unit, "wrong_dim"),
        "Average over the projections, do not sum.": sw(unit, "sum"),
        "Draw the directions with the generator you are given, "
        "torch.randn(num_projections, d, generator=generator), not from torch's global "
        "generator.": sw(global_draw / global_draw.norm(dim=1, keepdim=True)),
    }


def check_sliced_wasserstein(sliced_wasserstein: Callable) -> None:
    """``sliced_wasserstein(x, y, num_projections, generator)``: the sliced W1, a 0-d tensor.

    Four seeded float32 cases (2-D, 5-D and 3-D point clouds, 1 to 50 projections, a sample
    against a permutation of itself). The directions must come from one draw
    ``torch.randn(num_projections, d, generator=generator)``, normalised to unit rows (torch's
    global generator is seeded differently just before each call, so directions drawn from
    it give another value); the result must equal the reference's within ``rtol=1e-5,
    atol=1e-6``.
    """
    name = "sliced_wasserstein"
    for index, (label, x, y, k, seed) in enumerate(_sliced_cases()):
        global_seed = SEED + 100 + index
        seed_student(global_seed)
        got = call_student(name, sliced_wasserstein, x.clone(), y.clone(), k,
                           make_generator(seed))
        want = reference.sliced_wasserstein(x, y, k, make_generator(seed))
        assert_close(got, want, function=name,
                     call=f"{name}(x, y, num_projections={k}, generator) for {label}",
                     rtol=1e-5, atol=1e-6,
                     hint="Draw theta = torch.randn(num_projections, d, generator=generator), "
                          "normalise its rows, project both samples, sort each projection over "
                          "the points and average the absolute differences; return a 0-d "
                          "tensor.",
                     known_mistakes=_sliced_mistakes(x, y, k, seed, global_seed))


# ---------------------------------------------------------------- the gradient-norm bound


def _critic_cases() -> list[tuple[str, Callable[[], nn.Module], torch.Tensor]]:
    """(label, build the portable critic, the points x)."""
    g = make_generator(SEED + 3)

    def linear() -> nn.Module:
        critic = portable("torch.nn.Linear", 3, 1)
        with torch.no_grad():
            critic.weight.copy_(torch.tensor([[1.0, -2.0, 2.0]]))  # gradient norm 3 everywhere
            critic.bias.fill_(0.5)
        return critic

    def tanh_mlp() -> nn.Module:
        torch.manual_seed(SEED)
        return portable("torch.nn.Sequential", portable("torch.nn.Linear", 2, 16),
                        portable("torch.nn.Tanh"), portable("torch.nn.Linear", 16, 1),
                        portable("torch.nn.Flatten", 0))

    def toy_critic() -> nn.Module:
        torch.manual_seed(SEED + 1)
        return portable("gradelib.gan.MLPDiscriminator", hidden_dim=32)

    def conv() -> nn.Module:
        torch.manual_seed(SEED + 2)
        return portable("torch.nn.Sequential", portable("torch.nn.Conv2d", 1, 2, 3),
                        portable("torch.nn.Tanh"), portable("torch.nn.Flatten"),
                        portable("torch.nn.Linear", 8, 1))

    return [
        ("a tanh MLP critic on 64 points of [-3, 3]^2", tanh_mlp,
         6 * torch.rand(64, 2, generator=g) - 3),
        ("gradelib.gan.MLPDiscriminator(hidden_dim=32) on 50 points of [-3, 3]^2", toy_critic,
         6 * torch.rand(50, 2, generator=g) - 3),
        ("a linear critic with weight (1, -2, 2) on 10 points in 3-D", linear,
         torch.randn(10, 3, generator=g)),
        ("a convolutional critic on (6, 1, 4, 4) images", conv,
         torch.rand(6, 1, 4, 4, generator=g)),
    ]


def _input_gradients(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    points = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(critic(points).sum(), points)
    return grad.reshape(len(grad), -1)  # (B, n)


def check_gradient_norm_bound(gradient_norm_bound: Callable) -> None:
    """``gradient_norm_bound(critic, x)``: ``max_n ||grad f(x_n)||_2``, a 0-d tensor.

    Four public critics (a linear one whose gradient norm is 3 everywhere, a tanh MLP,
    :class:`gradelib.gan.MLPDiscriminator` and a convolutional critic on images) at points
    chosen here: the result must equal the reference's within ``rtol=1e-5, atol=1e-6``;
    neither ``x`` nor the critic's weights may change.
    """
    name = "gradient_norm_bound"
    for label, build, x in _critic_cases():
        critic = build()
        before = {k: v.clone() for k, v in critic.state_dict().items()}
        points = x.clone()
        got = call_student(name, gradient_norm_bound, critic, points)
        call = f"{name}(critic, x) for {label}"
        if not torch.equal(points, x):
            fail(name, f"{call} changed x.", "Differentiate with respect to a copy: "
                 "x.detach().clone().requires_grad_(True).")
        after = critic.state_dict()
        if any(not torch.equal(before[k], after[k]) for k in before):
            fail(name, f"{call} changed the critic's weights.",
                 "Only differentiate; do not take optimizer steps or modify parameters.")
        gradients = _input_gradients(critic, x)
        want = reference.gradient_norm_bound(critic, x)
        data = ring_mixture().sample(len(x), make_generator(0)) if x.dim() == 2 and \
            x.shape[1] == 2 else None
        mistakes = {
            "The bound is the largest per-example gradient norm (max over n), not the mean.":
                gradients.norm(dim=1).mean(),
            "Take the norm per example, over all non-batch dimensions, not over the whole "
            "batch's gradient.": gradients.norm(),
            "Return the norm ||grad f(x_n)||_2, not its square.": gradients.norm(dim=1).max() ** 2,
            "Use the Euclidean (L2) norm of each example's gradient.":
                gradients.abs().sum(dim=1).max(),
        }
        if data is not None:
            mistakes["Take the gradients at the points x you are given, not at samples of the "
                     "data."] = _input_gradients(critic, data).norm(dim=1).max()
        assert_close(got, want, function=name, call=call, rtol=1e-5, atol=1e-6,
                     hint="Differentiate critic(x).sum() with respect to (a copy of) the x you "
                          "are given, take each example's L2 norm over all non-batch "
                          "dimensions, and return the largest as a 0-d tensor.",
                     known_mistakes=mistakes)


# ----------------------------------------------------------------------------- training


def _portable_sn_linear(fan_in: int, fan_out: int) -> nn.Module:
    """A public ``spectral_norm(nn.Linear(fan_in, fan_out))`` with a recipe the sandbox can
    rebuild.

    ``spectral_norm`` returns the module it is given, so ``portable(SPECTRAL_NORM,
    portable("torch.nn.Linear", ...))`` would leave the layer's recipe naming the layer
    itself as its argument; the recipe's argument is therefore a separate plain Linear of the
    same shape (the sandbox builds it, normalises it, then loads this layer's state).
    """
    layer = portable(SPECTRAL_NORM, portable("torch.nn.Linear", fan_in, fan_out))
    layer.portable_spec["args"] = [portable("torch.nn.Linear", fan_in, fan_out)]
    return layer


def sn_critic(hidden: int = TRAINING_HIDDEN) -> nn.Module:
    """The check's critic: 3 hidden layers of ``hidden`` LeakyReLU(0.2) units, every linear
    layer normalised by ``torch.nn.utils.parametrizations.spectral_norm``, ``(B, 2)`` to
    ``(B,)``; public, so that it can be passed to the student's ``train_sn_wgan``."""
    sizes = [2, hidden, hidden, hidden, 1]
    layers: list = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(_portable_sn_linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(portable("torch.nn.LeakyReLU", 0.2))
    layers.append(portable("torch.nn.Flatten", 0))
    return portable("torch.nn.Sequential", *layers)


def _networks(seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)  # the check's own initialisation (public networks)
    generator = portable("gradelib.gan.MLPGenerator", hidden_dim=TRAINING_HIDDEN)
    return generator, sn_critic()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def training_time_budget() -> float:
    """Seconds allowed for the check's run on this machine, under its current load.

    ``max(TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR * t)`` with ``t`` what the reference
    loop takes for ``TRAINING_STEPS`` steps, extrapolated from a tenth of them run now.
    """
    generator, critic = _networks(SEED + 7)
    ring = ring_mixture()
    with _one_thread():
        return calibrated_time_budget(
            TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR,
            lambda: reference.train_sn_wgan(generator, critic, ring.sample,
                                            TRAINING_STEPS // 10, TRAINING_N_CRITIC,
                                            make_generator(SEED)),
            scale=10)


def _expected_rng_state(seed: int, steps: int, n_critic: int, latent_dim: int) -> torch.Tensor:
    """The state of ``generator_rng`` after the draws ``train_sn_wgan`` specifies (in any
    order: the CPU generator's state depends only on how many numbers were drawn)."""
    rng, ring, m = make_generator(seed), ring_mixture(), reference.BATCH_SIZE
    for _ in range(steps):
        for _ in range(n_critic):
            ring.sample(m, rng)
            torch.randn(m, latent_dim, generator=rng)
        torch.randn(m, latent_dim, generator=rng)
    return rng.get_state()


HISTORY_KEYS = ("critic", "generator", "wasserstein_estimate", "lipschitz_bound")


def train_and_measure(train_sn_wgan: Callable, seed: int = SEED, *,
                      steps: int | None = None) -> dict:
    """Run the student's ``train_sn_wgan`` as :func:`check_train_sn_wgan` does and measure
    the result, without judging it (the benchmark calibrates the bands with this).

    Returns:
        ``{"history", "seconds", "budget", "rng_as_specified", "modes", "high_quality",
        "sliced_w1", "finite"}``; ``history`` is what the student returned.
    """
    name = "train_sn_wgan"
    steps = TRAINING_STEPS if steps is None else steps
    ring = ring_mixture()
    budget = training_time_budget()
    generator, critic = _networks(seed)
    data_sampler = portable_attribute(portable("gradelib.data.ring_mixture"), "sample")
    rng = make_generator(seed)
    with _one_thread(), time_limit(name, budget, what=f"{steps} generator steps") as clock:
        history = call_student(name, train_sn_wgan, generator, critic, data_sampler, steps,
                               TRAINING_N_CRITIC, rng)
    rng_as_specified = torch.equal(rng.get_state(), _expected_rng_state(
        seed, steps, TRAINING_N_CRITIC, 2))
    with torch.no_grad():
        generator.eval()
        samples = generator(torch.randn(2500, 2, generator=make_generator(seed + 1)))
    result = {"history": history, "seconds": clock.seconds, "budget": budget,
              "rng_as_specified": rng_as_specified, "finite": bool(torch.isfinite(samples).all()),
              "modes": 0, "high_quality": 0.0, "sliced_w1": math.inf}
    if result["finite"]:
        result["modes"], result["high_quality"] = mode_coverage(samples, ring.centers, ring.std)
        real = ring.sample(2500, make_generator(seed + 2))
        result["sliced_w1"] = float(reference.sliced_wasserstein(samples, real, 200,
                                                                 make_generator(seed + 3)))
    return result


@trains_model
def check_train_sn_wgan(train_sn_wgan: Callable, seed: int = SEED) -> dict[str, float]:
    """Train a WGAN with a spectrally normalised critic with the student's ``train_sn_wgan``.

    A seeded :class:`gradelib.gan.MLPGenerator` (latent 2, 3 x ``TRAINING_HIDDEN``) and the
    critic :func:`sn_critic` (torch's spectral normalisation on every layer) are trained on
    the 8-Gaussian ring for ``TRAINING_STEPS`` generator steps with ``n_critic =
    TRAINING_N_CRITIC``, within :func:`training_time_budget` seconds. The result must be a
    dict whose ``"critic"``, ``"generator"``, ``"wasserstein_estimate"`` and
    ``"lipschitz_bound"`` entries hold one finite number per generator step, the bound's
    median over the last tenth in (0, ``MAX_LIPSCHITZ_BOUND``]; ``generator_rng`` must have
    advanced exactly as the specified draws advance it (every batch from it, none from
    torch's global generator). Then 2,500 samples of the trained generator, drawn here, must
    capture at least ``MIN_RING_MODES`` of the 8 modes and lie within a sliced W1 (200
    directions) of ``MAX_SLICED_W1`` of 2,500 fresh ring points. Returns the measurements.
    """
    return judge(train_and_measure(train_sn_wgan, seed))


def judge(run: dict) -> dict[str, float]:
    """The verdict of :func:`check_train_sn_wgan` on a run of :func:`train_and_measure`."""
    name = "train_sn_wgan"
    history = run["history"]
    if not isinstance(history, dict):
        fail(name, f"returned {type(history).__name__}; expected a dict of histories.")
    values = {}
    for key in HISTORY_KEYS:
        values[key] = check_loss_history(f"{name} history[{key!r}]", history.get(key),
                                         TRAINING_STEPS, what="floats (one per generator step)",
                                         must_decrease=False)
    tail = sorted(values["lipschitz_bound"][-max(1, TRAINING_STEPS // 10):])
    median_bound = tail[len(tail) // 2]
    if not 0 < median_bound <= MAX_LIPSCHITZ_BOUND:
        fail(name, f"history['lipschitz_bound'] has median {median_bound:.4g} over the last "
             f"tenth of the run; a spectrally normalised critic's largest input-gradient norm "
             f"lies in (0, {MAX_LIPSCHITZ_BOUND}].", "Record gradient_norm_bound(critic, x) on "
             "the last critic batch's real and fake points (concatenated) after each "
             "generator step.")
    if not run["rng_as_specified"]:
        fail(name, "generator_rng did not advance as the specified draws advance it.",
             f"Draw every real batch with data_sampler({reference.BATCH_SIZE}, generator_rng) "
             f"and every noise batch with torch.randn({reference.BATCH_SIZE}, "
             "generator.latent_dim, generator=generator_rng): fresh ones for each critic step "
             "and for the generator step, nothing from torch's global generator.")
    if not run["finite"]:
        fail(name, "the trained generator's samples are not finite.",
             "The generator minimises -mean f(G(z)); the critic mean f(fake) - mean f(real).")
    modes, sliced = run["modes"], run["sliced_w1"]
    if modes < MIN_RING_MODES or not sliced <= MAX_SLICED_W1:
        fail(name, f"after {TRAINING_STEPS} steps on the ring the generator captures {modes} of "
             f"8 modes and its samples are a sliced W1 of {sliced:.3f} from the data; expected "
             f"at least {MIN_RING_MODES} modes and at most {MAX_SLICED_W1}.",
             "Critic steps minimise mean f(fake) - mean f(real) on fresh batches (fakes "
             "detached); the generator step minimises -mean f(G(z)); Adam with lr 1e-3 "
             "decayed linearly to 0 and betas (0.5, 0.9) for both, batches of 256, no "
             "clipping and no penalty.")
    return {"modes": modes, "high_quality": run["high_quality"], "sliced_w1": sliced,
            "lipschitz_bound": median_bound, "seconds": run["seconds"]}
