"""Autograder checks for ``hw7_diffusion`` (syllabus §8): flow matching with classifier-free guidance.

Written for the trusted-checker protocol: the student's functions are only called, with
plain tensors, ``torch.Generator``s and a :func:`~gradelib.checks.assertions.portable`
network (:class:`gradelib.diffusion.TimeConditionedMLP` with seeded weights), so that the
student's function and the reference (:mod:`gradelib.checks.references.hw7_diffusion`) see
the same model. Every metric (mode coverage, samples landing on the requested mode) is
computed here, from the trained network's weights and noise drawn here.

The conventions the checks hold the student to are the notebook's: noise ``x0``, data
``x1``, ``x_t = (1 - t) x0 + t x1``, target velocity ``x1 - x0``, null label
``model.num_classes``, draws in the order ``x0``, ``t``, dropout uniforms, guidance
``(1 + w) v(y) - w v(null)``, Heun's method on ``num_steps`` equal steps from 0 to 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gradelib.checks.assertions import (
    assert_close,
    calibrated_time_budget,
    call_student,
    call_with_gradients,
    check_loss_history,
    fail,
    portable,
    seed_student,
    time_limit,
    to_float64,
    trains_model,
)
from gradelib.checks.references import hw7_diffusion as reference
from gradelib.data import grid_mixture
from gradelib.device import make_generator
from gradelib.gan import mode_coverage

__all__ = [
    "check_linear_interpolant",
    "check_flow_matching_loss",
    "check_guided_velocity",
    "check_heun_sample",
    "check_train_flow_matching",
    "TRAIN_STEPS",
    "SAMPLE_STEPS",
    "GUIDANCE",
    "MIN_MODES",
    "MIN_HIGH_QUALITY",
    "MIN_ON_REQUESTED_MODE",
    "MIN_UNCONDITIONAL_MODES",
    "grid_quality",
]

SEED = 7007
NUM_CLASSES = 5  # labels of the small seeded networks of the exact checks

# Calibration (benchmarks/diffusion.py --parts hw7, recorded in benchmarks/results/diffusion.json):
# the reference, 1,500 steps, seeds 0-2: guided samples 25/25 modes, 99.9-100 % high quality
# and on the requested mode, unconditional 21-23/25 modes (4-5 % high quality), 7-8 s CPU;
# a weaker but acceptable run (750 steps): guided 99.7-100 %, unconditional 21/25; a wrong one
# (label dropout never applied): guided 0/25 modes, 0 %, unconditional 1/25.

#: Adam steps the trained check asks ``train_flow_matching`` for (batches of 256 recommended).
TRAIN_STEPS = 1500
#: Heun steps of the check-side sampler (2 guided velocities, 4 network evaluations each).
SAMPLE_STEPS = 20
#: Guidance weight of the check's guided samples.
GUIDANCE = 1.0
#: Modes the guided samples (100 per requested mode) must capture, of 25 (reference: 25).
MIN_MODES = 25
#: Share of the 2,500 guided samples within 3 std of a mode (reference 99.9-100 %, weaker run
#: 99.7 %, no label dropout 0 %).
MIN_HIGH_QUALITY = 0.8
#: Share of guided samples within 3 std of the requested mode (same figures as above).
MIN_ON_REQUESTED_MODE = 0.8
#: Modes the unconditional samples (null label, no guidance) must capture, of 25 (reference
#: 21-23, weaker run 21, no label dropout 1).
MIN_UNCONDITIONAL_MODES = 15


def _network(seed: int, num_classes: int = NUM_CLASSES):
    """A small seeded velocity network both sides can rebuild (a portable public class)."""
    torch.manual_seed(seed)
    return portable("gradelib.diffusion.TimeConditionedMLP", data_dim=2, hidden_dim=16,
                    num_layers=2, time_dim=8, num_classes=num_classes)


# ----------------------------------------------------------------------------- the interpolant


def check_linear_interpolant(linear_interpolant: Callable) -> None:
    """``linear_interpolant(x0, x1, t)``: ``(1 - t) x0 + t x1`` with ``t`` ``(B,)`` broadcast.

    Four seeded cases: ``(4, 4)`` points (batch size equal to the dimension, where a ``t``
    that is not reshaped broadcasts along the wrong axis without an error), ``(3, 5)``
    float32 points, ``(2, 1, 3, 3)`` float64 images, and ``t`` holding the endpoints 0 and 1 (which
    must return ``x0`` and ``x1``). Tolerance ``rtol = 1e-6, atol = 1e-6``.
    """
    name = "linear_interpolant"
    g = make_generator(SEED)
    cases = [
        ("points of shape (4, 4) (B equal to D)", torch.randn(4, 4, generator=g),
         torch.randn(4, 4, generator=g), torch.rand(4, generator=g)),
        ("points of shape (3, 5)", torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g),
         torch.rand(3, generator=g)),
        ("float64 images of shape (2, 1, 3, 3)", torch.randn(2, 1, 3, 3, generator=g,
                                                               dtype=torch.float64),
         torch.rand(2, 1, 3, 3, generator=g, dtype=torch.float64),
         torch.rand(2, generator=g, dtype=torch.float64)),
        ("t = [0, 1, 0.25] on points of shape (3, 2)", torch.randn(3, 2, generator=g),
         torch.randn(3, 2, generator=g), torch.tensor([0.0, 1.0, 0.25])),
    ]
    for label, x0, x1, t in cases:
        got = call_student(name, linear_interpolant, x0.clone(), x1.clone(), t.clone())
        want = reference.linear_interpolant(x0, x1, t)
        mistakes = {
            "The interpolant runs from noise x0 at t = 0 to data x1 at t = 1: "
            "x_t = (1 - t) * x0 + t * x1 (yours is reversed).":
                reference.linear_interpolant(x1, x0, t),
        }
        if x0.dim() == 2 and x0.shape[0] == x0.shape[1]:
            row = t.reshape(1, -1)  # (1, D): what an unreshaped (B,) t broadcasts as
            mistakes["t has shape (B,): reshape it to (B, 1, ..., 1) so that it scales each "
                     "example; as it is, it multiplies each coordinate."] = (1 - row) * x0 + row * x1
        assert_close(got, want, function=name, call=f"{name}(x0, x1, t) on {label}",
                     rtol=1e-6, atol=1e-6,
                     hint="Reshape t to (B, 1, ..., 1) (t.reshape(-1, *[1] * (x0.dim() - 1))) "
                          "and return (1 - t) * x0 + t * x1, of x0's shape.",
                     known_mistakes=mistakes)


# ----------------------------------------------------------------------------- the loss


def _loss_variant(model, x1, labels, generator, p_uncond, *, target="x1 - x0", reversed_=False,
                  dropout=True, reduction="sum") -> torch.Tensor:
    """The loss as a typical mistake computes it, on the same draws as the reference."""
    batch = len(x1)
    x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
    t = torch.rand(batch, generator=generator, dtype=x1.dtype)
    drop = torch.rand(batch, generator=generator, dtype=x1.dtype) < p_uncond
    if dropout:
        labels = torch.where(drop, torch.full_like(labels, model.num_classes), labels)
    x_t = (reference.linear_interpolant(x1, x0, t) if reversed_
           else reference.linear_interpolant(x0, x1, t))
    goal = x1 - x0 if target == "x1 - x0" else x0 - x1
    with torch.no_grad():
        squared = (model(x_t, t, labels) - goal) ** 2
    return squared.mean() if reduction == "mean" else squared.flatten(1).sum(1).mean()


def check_flow_matching_loss(flow_matching_loss: Callable) -> None:
    """``flow_matching_loss(model, x1, labels, generator, p_uncond)``: the conditional
    flow-matching loss with label dropout, a 0-d tensor.

    On a seeded :class:`~gradelib.diffusion.TimeConditionedMLP` (5 labels, null label 5), 64
    points: first, two calls with generators in the same state but torch's global generator
    seeded differently must return the same loss (randomness comes from ``generator`` only);
    then, for ``p_uncond`` in {0, 0.3, 1}, the value must match the reference
    (``rtol = 1e-5, atol = 1e-6``), and for 0.3 the gradient with respect to every weight of
    the network must match the reference's (``rtol = 1e-4, atol = 1e-6``).
    """
    name = "flow_matching_loss"
    model = _network(SEED + 1)
    g = make_generator(SEED + 2)
    x1 = 2 * torch.randn(64, 2, generator=g)
    labels = torch.randint(NUM_CLASSES, (64,), generator=g)
    call = f"{name}(model, x1, labels, generator, p_uncond)"

    seed_student(1)
    first = call_student(name, flow_matching_loss, model, x1.clone(), labels.clone(),
                         make_generator(11), 0.3)
    seed_student(2)
    second = call_student(name, flow_matching_loss, model, x1.clone(), labels.clone(),
                          make_generator(11), 0.3)
    first = to_float64(first, function=name)
    second = to_float64(second, function=name)
    if first.shape != second.shape or not torch.allclose(first, second, rtol=1e-6, atol=1e-7):
        fail(name, f"two calls of {call} with generators in the same state returned different "
             f"losses ({first.flatten()[:1].tolist()} and {second.flatten()[:1].tolist()}).",
             "Draw every random number with the generator you are given: "
             "torch.randn(x1.shape, generator=generator, dtype=x1.dtype), "
             "torch.rand(B, generator=generator, dtype=x1.dtype), never from torch's global "
             "generator (torch.rand(B) without generator=).")

    for p_uncond in (0.0, 0.3, 1.0):
        seed = SEED + 20 + int(10 * p_uncond)
        got = call_student(name, flow_matching_loss, model, x1.clone(), labels.clone(),
                           make_generator(seed), p_uncond)
        want = reference.flow_matching_loss(model, x1, labels, make_generator(seed), p_uncond)
        mistakes = {
            "The target velocity of x_t = (1 - t) x0 + t x1 is its derivative x1 - x0, "
            "not x0 - x1.": _loss_variant(model, x1, labels, make_generator(seed), p_uncond,
                                          target="x0 - x1"),
            "The interpolant is (1 - t) * x0 + t * x1: noise at t = 0, data at t = 1.":
                _loss_variant(model, x1, labels, make_generator(seed), p_uncond, reversed_=True),
            "Sum the squared error over the data dimensions and average over the batch "
            "(not the mean over every element).":
                _loss_variant(model, x1, labels, make_generator(seed), p_uncond,
                              reduction="mean"),
        }
        if p_uncond > 0:
            mistakes["Drop each label to the null label model.num_classes where "
                     "u < p_uncond (u = torch.rand(B, generator=generator)); your labels were "
                     "never dropped."] = _loss_variant(model, x1, labels, make_generator(seed),
                                                       p_uncond, dropout=False)
        assert_close(got, want.detach(), function=name,
                     call=f"{call} with p_uncond={p_uncond:g}", rtol=1e-5, atol=1e-6,
                     hint="Draw x0, then t, then the dropout uniforms u, all with generator and "
                          "dtype=x1.dtype; labels -> model.num_classes where u < p_uncond; "
                          "x_t = (1 - t) x0 + t x1; return the batch mean of the squared error "
                          "to x1 - x0 summed over the dimensions.",
                     known_mistakes=mistakes)

    output, (grads,) = call_with_gradients(
        name, flow_matching_loss, [model, x1.clone(), labels.clone(), make_generator(SEED + 30),
                                   0.3], wrt=[("parameters", 0)])
    loss = reference.flow_matching_loss(model, x1, labels, make_generator(SEED + 30), 0.3)
    names = [n for n, _ in model.named_parameters()]
    expected = dict(zip(names, torch.autograd.grad(loss, list(model.parameters()),
                                                  allow_unused=True)))
    for param_name, want_grad in expected.items():
        if want_grad is None:
            continue
        got_grad = grads.get(param_name) if isinstance(grads, dict) else None
        if got_grad is None:
            fail(name, f"{call}: the loss does not depend on model.{param_name}.",
                 "Return the loss as a tensor computed from model(x_t, t, labels), without "
                 ".item(), .detach() or torch.no_grad(): the optimizer needs its gradient.")
        assert_close(got_grad, want_grad, function=name,
                     call=f"the gradient of {call} with respect to model.{param_name}",
                     rtol=1e-4, atol=1e-6,
                     hint="Only the network's prediction carries gradients; the target "
                          "x1 - x0 and x_t are fixed tensors.")


# ----------------------------------------------------------------------------- guidance


def check_guided_velocity(guided_velocity: Callable) -> None:
    """``guided_velocity(model, x, t, labels, guidance)``: ``(1 + w) v(x, t, y) - w v(x, t, null)``.

    On a seeded network with 5 labels (null label 5), 6 points, for ``guidance`` in
    {1.5, 4, 0}. Tolerance ``rtol = 1e-5, atol = 1e-6``.
    """
    name = "guided_velocity"
    model = _network(SEED + 3)
    g = make_generator(SEED + 4)
    x = torch.randn(6, 2, generator=g)
    t = torch.rand(6, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 4, 2])
    with torch.no_grad():
        conditional = model(x, t, labels)
        unconditional = model(x, t, torch.full_like(labels, NUM_CLASSES))
        label_zero = model(x, t, torch.zeros_like(labels))
    for w in (1.5, 4.0, 0.0):
        got = call_student(name, guided_velocity, model, x.clone(), t.clone(), labels.clone(), w)
        want = reference.guided_velocity(model, x, t, labels, w).detach()
        mistakes = {
            "The weight 1 + w multiplies the conditional velocity v(x, t, y) and -w the "
            "unconditional one v(x, t, null): yours are swapped.":
                (1 + w) * unconditional - w * conditional,
            "This homework writes guidance as (1 + w) v(y) - w v(null), so w = 0 is the "
            "conditional model; you used w v(y) + (1 - w) v(null).":
                w * conditional + (1 - w) * unconditional,
            "The null label is model.num_classes (here 5), not 0.":
                (1 + w) * conditional - w * label_zero,
            "Subtract w times the unconditional velocity: (1 + w) v(y) - w v(null).":
                (1 + w) * conditional + w * unconditional,
        }
        assert_close(got, want, function=name,
                     call=f"{name}(model, x, t, labels, guidance={w:g})", rtol=1e-5, atol=1e-6,
                     hint="Evaluate model(x, t, labels) and model(x, t, null) with null = "
                          "torch.full_like(labels, model.num_classes); return "
                          "(1 + guidance) * v_cond - guidance * v_uncond.",
                     known_mistakes=mistakes)


# ----------------------------------------------------------------------------- the sampler


def check_heun_sample(heun_sample: Callable) -> None:
    """``heun_sample(model, x0, labels, num_steps, guidance)``: Heun's method from t = 0 to 1.

    On a seeded network with 5 labels, 8 starting points, for ``(num_steps, guidance)`` in
    {(1, 0), (4, 0), (4, 2), (7, 1)}: equal steps ``h = 1 / num_steps``, each
    ``d1 = v(x, t_k)``, ``d2 = v(x + h d1, t_{k+1})``, ``x + h (d1 + d2) / 2`` with the
    guided velocity. Compared with the reference (``rtol = 1e-4, atol = 1e-5``); Euler's
    method and integrating from t = 1 to 0 get their own hints.
    """
    name = "heun_sample"
    model = _network(SEED + 5)
    g = make_generator(SEED + 6)
    x0 = torch.randn(8, 2, generator=g)
    labels = torch.randint(NUM_CLASSES, (8,), generator=g)
    for num_steps, w in ((1, 0.0), (4, 0.0), (4, 2.0), (7, 1.0)):
        got = call_student(name, heun_sample, model, x0.clone(), labels.clone(), num_steps, w)
        want = reference.heun_sample(model, x0, labels, num_steps, w)
        mistakes = {
            "This is Euler's method; Heun's adds a corrector: x + h/2 (v(x, t) + "
            "v(x + h v(x, t), t + h)).": reference.euler_sample(model, x0, labels, num_steps, w),
            "This is Euler's method with 2 * num_steps steps; Heun's method takes num_steps "
            "steps of two evaluations each.":
                reference.euler_sample(model, x0, labels, 2 * num_steps, w),
            "Integrate forwards in time, from noise at t = 0 to data at t = 1.":
                _heun_backwards(model, x0, labels, num_steps, w),
        }
        if w:
            mistakes["Use the guided velocity (guided_velocity with the given guidance) at "
                     "both evaluations of each step."] = reference.heun_sample(
                         model, x0, labels, num_steps, 0.0)
        assert_close(got, want, function=name,
                     call=f"{name}(model, x0, labels, num_steps={num_steps}, guidance={w:g})",
                     rtol=1e-4, atol=1e-5,
                     hint="For k = 0..num_steps-1, t = k / num_steps: d1 = guided velocity at "
                          "(x, t), d2 at (x + h d1, t + h), x = x + h (d1 + d2) / 2; t is a "
                          "(B,) tensor.",
                     known_mistakes=mistakes)


@torch.no_grad()
def _heun_backwards(model, x0, labels, num_steps, w):
    x, h = x0.clone(), 1.0 / num_steps
    for k in range(num_steps, 0, -1):
        t = torch.full((len(x),), k / num_steps)
        t_next = torch.full((len(x),), (k - 1) / num_steps)
        slope = reference.guided_velocity(model, x, t, labels, w)
        predicted = x - h * slope
        x = x - h / 2 * (slope + reference.guided_velocity(model, predicted, t_next, labels, w))
    return x


# ----------------------------------------------------------------------------- training


def _grid_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    grid = grid_mixture()
    points = grid.sample(n, make_generator(seed))
    return points, torch.cdist(points, grid.centers).argmin(dim=1)  # (n, 2), (n,) mode index


def grid_quality(model, seed: int = SEED + 40) -> dict[str, float]:
    """Coverage of a flow-matching network's samples on the grid, computed check-side.

    Draws 2,500 noise points here and integrates with the reference Heun sampler
    (:data:`SAMPLE_STEPS` steps). Guided samples (:data:`GUIDANCE`, 100 per requested mode)
    give the modes captured, the high-quality share (within 3 std of a centre) and the share
    within 3 std of the requested mode; unconditional samples (null label, no guidance) give
    their own modes and high-quality share.
    """
    grid = grid_mixture()
    x0 = torch.randn(2500, 2, generator=make_generator(seed))
    requested = torch.arange(grid.num_modes).repeat(100)  # (2500,)
    null = torch.full_like(requested, grid.num_modes)
    unconditional = reference.heun_sample(model, x0, null, SAMPLE_STEPS, 0.0)
    guided = reference.heun_sample(model, x0, requested, SAMPLE_STEPS, GUIDANCE)
    if not (bool(torch.isfinite(unconditional).all()) and bool(torch.isfinite(guided).all())):
        return {"modes": 0, "high_quality": 0.0, "on_requested": 0.0,
                "unconditional_modes": 0, "unconditional_high_quality": 0.0}
    modes, share = mode_coverage(guided, grid.centers, grid.std)
    unconditional_modes, unconditional_share = mode_coverage(unconditional, grid.centers, grid.std)
    distance = torch.cdist(guided.double(), grid.centers.double())  # (2500, 25)
    on_requested = (distance.argmin(dim=1) == requested) & (
        distance.min(dim=1).values <= 3 * grid.std)
    return {"modes": modes, "high_quality": share,
            "on_requested": float(on_requested.double().mean()),
            "unconditional_modes": unconditional_modes,
            "unconditional_high_quality": unconditional_share}


@trains_model
def check_train_flow_matching(train_flow_matching: Callable) -> dict[str, float]:
    """``train_flow_matching(model, data, labels, steps, generator)``: trains a guided flow.

    Builds a seeded :class:`~gradelib.diffusion.TimeConditionedMLP` (3 x 128, 25 labels,
    null label 25), asks for :data:`TRAIN_STEPS` steps on 20,000 points of the 25-Gaussian
    grid (labels = mode index) within a time budget calibrated on the reference's own
    training (at least 30 s, or 4 times the reference), and requires a list of
    ``TRAIN_STEPS`` finite losses that decreased. Then, on noise drawn here and with the
    reference Heun sampler (:func:`grid_quality`): the guided samples must capture
    :data:`MIN_MODES` modes, at least :data:`MIN_HIGH_QUALITY` of them must lie within 3 std
    of a mode and at least :data:`MIN_ON_REQUESTED_MODE` within 3 std of the requested one;
    the unconditional samples must capture :data:`MIN_UNCONDITIONAL_MODES` modes.

    Returns:
        the measured figures (seconds, budget, modes, shares).
    """
    name = "train_flow_matching"
    data, labels = _grid_data(20_000, SEED + 50)
    torch.manual_seed(SEED + 51)
    model = portable("gradelib.diffusion.TimeConditionedMLP", data_dim=2, hidden_dim=128,
                     num_layers=3, num_classes=25)

    def probe() -> None:
        torch.manual_seed(0)
        scratch = portable("gradelib.diffusion.TimeConditionedMLP", data_dim=2, hidden_dim=128,
                           num_layers=3, num_classes=25)
        reference.train_flow_matching(scratch, data, labels, 60, make_generator(0))

    budget = calibrated_time_budget(30.0, 4.0, probe, scale=TRAIN_STEPS / 60)
    with time_limit(name, budget) as clock:
        history = call_student(name, train_flow_matching, model, data.clone(), labels.clone(),
                               TRAIN_STEPS, make_generator(SEED + 52))
    check_loss_history(name, history, TRAIN_STEPS, what="per-step losses",
                       nonfinite_hint="Append loss.item() after every Adam step.")
    model.eval()
    quality = grid_quality(model)
    figures = {"seconds": round(clock.seconds, 1), "budget_s": round(budget, 1), **quality}
    summary = (f"after {TRAIN_STEPS} steps ({clock.seconds:.1f} s): guided samples (w = "
               f"{GUIDANCE:g}, 100 per requested mode) capture {quality['modes']} of 25 modes, "
               f"{100 * quality['high_quality']:.1f}% are within 3 std of a mode and "
               f"{100 * quality['on_requested']:.1f}% within 3 std of the requested one; "
               f"unconditional samples capture {quality['unconditional_modes']} modes")
    if quality["unconditional_modes"] < MIN_UNCONDITIONAL_MODES:
        fail(name, f"{summary}; expected at least {MIN_UNCONDITIONAL_MODES} unconditional modes.",
             "Drop labels to the null label model.num_classes with probability p_uncond (0.2) "
             "during training, so that the network also learns the unconditional velocity.")
    if quality["modes"] < MIN_MODES or quality["high_quality"] < MIN_HIGH_QUALITY:
        fail(name, f"{summary}; expected all {MIN_MODES} modes and at least "
             f"{100 * MIN_HIGH_QUALITY:.0f}% of the guided samples near a mode.",
             "Train with Adam (step size about 2e-3, decayed to 0) on minibatches of about 256 "
             "points drawn with the generator, with labels dropped with probability 0.2; draw "
             "t ~ U[0, 1] afresh for every example.")
    if quality["on_requested"] < MIN_ON_REQUESTED_MODE:
        fail(name, f"{summary}; expected at least {100 * MIN_ON_REQUESTED_MODE:.0f}% on the "
             "requested mode.", "Pass each point's own label to the model (labels[rows] with "
             "the same rows as the data).")
    return figures
