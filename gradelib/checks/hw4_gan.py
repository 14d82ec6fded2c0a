"""Autograder checks for ``hw4_gan`` (syllabus §5).

Each ``check_*`` takes the student's function, runs it on seeded inputs, compares with
:mod:`gradelib.gan` under the tolerances stated in its docstring, and raises an
``AssertionError`` naming the function, the input, the expected and returned values and a
hint. Returned values are converted to plain float64 tensors before any comparison.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from gradelib import gan as reference
from gradelib.checks.assertions import (
    assert_close,
    calibrated_time_budget,
    call_student,
    check_loss_history,
    fail,
    to_float64,
    trains_model,
)
from gradelib.data import ring_mixture
from gradelib.device import make_generator

__all__ = [
    "check_discriminator_loss",
    "check_generator_loss_minimax",
    "check_generator_loss_nonsaturating",
    "check_optimal_discriminator",
    "check_js_divergence",
    "check_mode_coverage",
    "check_train_gan",
    "TRAINING_STEPS",
    "TRAINING_TIME_BUDGET_S",
    "TRAINING_TIME_FACTOR",
    "training_time_budget",
    "MIN_RING_MODES",
    "MIN_HIGH_QUALITY",
]

SEED = 4004

#: Generator steps (k = 1) the hidden training check runs the student's ``train_gan`` for.
TRAINING_STEPS = 1500
#: Wall-clock seconds always allowed for those steps (reference: about 8 s on a quiet 2-core
#: CPU, 20-30 s while several other jobs share the CPU).
TRAINING_TIME_BUDGET_S = 75.0
#: On a slower or busier machine the budget grows to this many times what the reference takes
#: for the same steps, timed on a tenth of them just before (:func:`training_time_budget`).
TRAINING_TIME_FACTOR = 5.0
#: Calibrated bands on 2,500 samples after ``TRAINING_STEPS`` steps on the 8-Gaussian ring
#: (3-std radius), measured by ``benchmarks/gan.py --band`` (``benchmarks/results/gan_band.json``):
#: the homework's solution captures 6-8 modes with 6-71 % high-quality samples over five seeds
#: and a reordering of its random draws (the chapter's runs: 6-8 modes, 3.6-51 %); a loop with
#: the discriminator's loss negated captures 0 modes, one that steps the generator on the
#: discriminator's loss (fakes not detached) 3 modes. The mode count separates them; the
#: high-quality floor only rejects generators that smear their samples over the whole ring.
MIN_RING_MODES = 5
MIN_HIGH_QUALITY = 0.02

STABILITY_HINT = (
    "Compute the log-probabilities from the logits stably: log D = F.logsigmoid(a) = "
    "-F.softplus(-a) and log(1 - D) = F.logsigmoid(-a) = -F.softplus(a). "
    "torch.log(torch.sigmoid(a)) rounds to log(0) = -inf for large |a|."
)


def _logit_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(label, real_logits, fake_logits): ordinary, confident, extreme and float64 logits."""
    g = make_generator(SEED)
    cases = [
        ("random logits (B=16)", torch.randn(16, generator=g), torch.randn(16, generator=g)),
        ("logits of a confident discriminator (B=8)", 3 + 2 * torch.randn(8, generator=g),
         -3 + 2 * torch.randn(8, generator=g)),
        ("extreme logits +-50 (float32)", torch.tensor([50.0, -50.0, 20.0, -20.0]),
         torch.tensor([-50.0, 50.0, 30.0, -30.0])),
        ("extreme logits +-150 (float32)", torch.tensor([150.0, -150.0, 0.0]),
         torch.tensor([-150.0, 150.0, 0.0])),
        ("float64 logits with different batch sizes (6 real, 10 fake)",
         torch.randn(6, generator=g, dtype=torch.float64) * 4,
         torch.randn(10, generator=g, dtype=torch.float64) * 4),
    ]
    return cases


def _require_finite(name: str, value: object, call: str) -> torch.Tensor:
    got = to_float64(value, function=name)
    if not bool(torch.isfinite(got).all()):
        fail(name, f"{call} returned {got.flatten()[:4].tolist()} (not finite).", STABILITY_HINT)
    return got


def check_discriminator_loss(discriminator_loss: Callable) -> None:
    """``discriminator_loss(real_logits, fake_logits)``: the 0-d negated minimax value.

    ``mean softplus(-real) + mean softplus(fake)`` on random, confident and extreme logits
    (magnitudes 50 and 150 in float32, where ``log(sigmoid(.))`` overflows to ``-inf``),
    and on float64 logits with different real and fake batch sizes. Tolerance:
    ``rtol=1e-5, atol=1e-5``.
    """
    name = "discriminator_loss"
    for label, real, fake in _logit_cases():
        call = f"{name}(real_logits, fake_logits) on {label}"
        got = call_student(name, discriminator_loss, real.clone(), fake.clone())
        _require_finite(name, got, call)
        want = reference.discriminator_loss(real, fake)
        assert_close(
            got, want, function=name, call=call, rtol=1e-5, atol=1e-5,
            hint="Return -(mean log D(x) + mean log(1 - D(G(z)))), a 0-d tensor; D = sigmoid.",
            known_mistakes={
                "The sign is flipped: the discriminator *minimises* the negated value, a "
                "non-negative cross-entropy.": -want,
                "Real and fake are swapped: real samples should get D close to 1.":
                    F.softplus(real).mean() + F.softplus(-fake).mean(),
                "Average over the batch, do not sum.":
                    F.softplus(-real).sum() + F.softplus(fake).sum(),
                "The fake term is missing: add -mean log(1 - D(G(z))).": F.softplus(-real).mean(),
            },
        )


def check_generator_loss_minimax(generator_loss_minimax: Callable) -> None:
    """``generator_loss_minimax(fake_logits)``: ``mean log(1 - D(G(z)))`` as a 0-d tensor.

    Same logits as :func:`check_discriminator_loss` (the fake ones); tolerance
    ``rtol=1e-5, atol=1e-5``.
    """
    name = "generator_loss_minimax"
    for label, _, fake in _logit_cases():
        call = f"{name}(fake_logits) on {label}"
        got = call_student(name, generator_loss_minimax, fake.clone())
        _require_finite(name, got, call)
        want = reference.generator_loss_minimax(fake)
        assert_close(
            got, want, function=name, call=call, rtol=1e-5, atol=1e-5,
            hint="The minimax generator minimises mean log(1 - sigmoid(a)) = -mean softplus(a).",
            known_mistakes={
                "The sign is flipped: the value log(1 - D) is <= 0 and the generator minimises "
                "it as it is.": -want,
                "This is the non-saturating loss -log D(G(z)); this function asks for the "
                "original minimax loss log(1 - D(G(z))).": F.softplus(-fake).mean(),
                "Average over the batch, do not sum.": -F.softplus(fake).sum(),
            },
        )


def check_generator_loss_nonsaturating(generator_loss_nonsaturating: Callable) -> None:
    """``generator_loss_nonsaturating(fake_logits)``: ``mean -log D(G(z))`` as a 0-d tensor.

    Same logits as :func:`check_discriminator_loss`; tolerance ``rtol=1e-5, atol=1e-5``.
    """
    name = "generator_loss_nonsaturating"
    for label, _, fake in _logit_cases():
        call = f"{name}(fake_logits) on {label}"
        got = call_student(name, generator_loss_nonsaturating, fake.clone())
        _require_finite(name, got, call)
        want = reference.generator_loss_nonsaturating(fake)
        assert_close(
            got, want, function=name, call=call, rtol=1e-5, atol=1e-5,
            hint="The non-saturating loss is mean -log sigmoid(a) = mean softplus(-a).",
            known_mistakes={
                "This is the saturating (minimax) loss log(1 - D(G(z))); the non-saturating "
                "loss is -log D(G(z)).": -F.softplus(fake).mean(),
                "The sign is flipped: -log D(G(z)) is >= 0 and is minimised.": -want,
                "-log(1 - D) is the discriminator's term for fakes, not the generator's loss.":
                    F.softplus(fake).mean(),
                "Average over the batch, do not sum.": F.softplus(-fake).sum(),
            },
        )


def _distribution_pairs() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(label, p, q) discrete distributions in float64, with zeros and disjoint supports."""
    g = make_generator(SEED + 1)
    dirichlet = torch.distributions.Dirichlet(torch.ones(7, dtype=torch.float64))
    state = torch.random.get_rng_state()
    torch.manual_seed(SEED + 1)  # Dirichlet sampling reads the global generator
    try:
        p1, q1 = dirichlet.sample(), dirichlet.sample()
    finally:
        torch.random.set_rng_state(state)
    raw = torch.rand(12, generator=g, dtype=torch.float64)
    p2 = raw / raw.sum()
    q2 = torch.flip(p2, dims=[0])
    return [
        ("two random distributions on 7 points", p1, q1),
        ("a distribution and its mirror image on 12 points", p2, q2),
        ("p with zeros where q is positive",
         torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64),
         torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)),
        ("disjoint supports", torch.tensor([0.3, 0.7, 0.0, 0.0], dtype=torch.float64),
         torch.tensor([0.0, 0.0, 0.6, 0.4], dtype=torch.float64)),
        ("identical distributions", torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64),
         torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)),
        ("float32 distributions", torch.tensor([0.25, 0.25, 0.25, 0.25]),
         torch.tensor([0.7, 0.1, 0.1, 0.1])),
    ]


def check_optimal_discriminator(optimal_discriminator: Callable) -> None:
    """``optimal_discriminator(p_data, p_model)``: ``p_data / (p_data + p_model)`` elementwise.

    Cases: the pairs of :func:`check_js_divergence` (zeros on one side but never on both),
    and two Gaussian densities on a ``(4, 5)`` grid (not normalised, 2-D shape kept).
    Tolerance ``rtol=1e-6, atol=1e-7`` (``1e-5`` in float32).
    """
    name = "optimal_discriminator"
    cases = [(label, p, q) for label, p, q in _distribution_pairs()]
    grid = torch.linspace(-2, 2, 20, dtype=torch.float64).reshape(4, 5)
    cases.append(("two Gaussian densities on a (4, 5) grid",
                  torch.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi),
                  torch.exp(-0.5 * (grid - 1) ** 2 / 0.25) / math.sqrt(2 * math.pi * 0.25)))
    for label, p, q in cases:
        got = call_student(name, optimal_discriminator, p.clone(), q.clone())
        want = reference.optimal_discriminator(p, q)
        tol = 1e-5 if p.dtype == torch.float32 else 1e-6
        assert_close(
            got, want, function=name, call=f"{name}(p_data, p_model) for {label}",
            rtol=tol, atol=tol / 10,
            hint="Maximise p_data * log(y) + p_model * log(1 - y) over y for each point.",
            known_mistakes={
                "D* is the probability of *real*: p_data / (p_data + p_model).":
                    q / (p + q),
                "Divide by p_data + p_model, not by p_model.": p / q,
            },
        )


def check_js_divergence(js_divergence: Callable) -> None:
    """``js_divergence(p, q)``: 0-d Jensen–Shannon divergence in nats.

    Cases: random pairs, zeros in ``p`` only, disjoint supports (``log 2``), identical
    distributions (0), float32. Tolerance ``rtol=1e-6, atol=1e-9`` (``1e-5`` in float32).
    """
    name = "js_divergence"
    for label, p, q in _distribution_pairs():
        call = f"{name}(p, q) for {label} (p={_fmt(p)}, q={_fmt(q)})"
        got = call_student(name, js_divergence, p.clone(), q.clone())
        value = to_float64(got, function=name)
        if not bool(torch.isfinite(value).all()):
            fail(name, f"{call} returned {value.flatten().tolist()} (not finite).",
                 "Terms with p_i = 0 contribute 0 (0 log 0 = 0): use torch.xlogy or mask them.")
        want = reference.js_divergence(p, q)
        m = (p + q) / 2
        kl_pm = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum()
        kl_qm = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum()
        mistakes = {
            "The 1/2 factors are missing: JS = 1/2 KL(p||m) + 1/2 KL(q||m).": kl_pm + kl_qm,
            "Use natural logarithms (nats), not log base 2.": want / math.log(2),
            "Both halves are needed: 1/2 KL(p||m) + 1/2 KL(q||m).": kl_pm / 2,
            "m is the mixture (p + q) / 2, not p + q.":
                ((torch.xlogy(p, p) - torch.xlogy(p, p + q)).sum()
                 + (torch.xlogy(q, q) - torch.xlogy(q, p + q)).sum()) / 2,
        }
        if bool((q > 0).all()):
            mistakes["That is KL(p || q), not the Jensen–Shannon divergence."] = (
                torch.xlogy(p, p) - torch.xlogy(p, q)).sum()
        tol = 1e-5 if p.dtype == torch.float32 else 1e-6
        assert_close(got, want, function=name, call=call, rtol=tol, atol=1e-9 if tol < 1e-5
                     else 1e-6, hint="JS(p||q) = 1/2 KL(p||m) + 1/2 KL(q||m), m = (p+q)/2, "
                     "a 0-d tensor in nats.", known_mistakes=mistakes)


def _fmt(t: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in t.flatten()[:6].tolist()) + (
        ", ...]" if t.numel() > 6 else "]")


def _coverage_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    """(label, samples, centers, std): constructed sample sets with known answers."""
    ring = ring_mixture()
    c, std = ring.centers, ring.std
    g = make_generator(SEED + 2)
    angle = torch.rand(40, generator=g) * 2 * math.pi
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)  # (40, 2)
    cases = []
    # every mode hit once exactly, plus 2 points at the origin (far from every mode)
    cases.append(("one sample on each of the 8 ring centres and 2 at the origin",
                  torch.cat([c, torch.zeros(2, 2)]), c, std))
    # a collapsed generator: all samples around mode 3
    cases.append(("40 samples within 1 std of ring centre 3 only",
                  c[3] + 0.9 * std * direction, c, std))
    # radii 2.9 std (inside) and 3.1 std (outside) around modes 0..4
    inside = c[:5] + 2.9 * std * direction[:5]
    outside = c[:5] + 3.1 * std * direction[5:10]
    cases.append(("5 samples at 2.9 std from modes 0-4 and 5 at 3.1 std from modes 0-4",
                  torch.cat([inside, outside]), c, std))
    # samples at 1.5-2.5 std: inside 3 std but outside 1 std
    mid = c[[0, 2, 4, 6]].repeat(3, 1) + (1.5 + torch.rand(12, 1, generator=g)) * std * (
        direction[10:22])
    cases.append(("12 samples at 1.5-2.5 std from modes 0, 2, 4, 6 and 8 samples almost "
                  "midway between neighbouring modes",
                  torch.cat([mid, 0.55 * c + 0.45 * torch.roll(c, 1, dims=0)]), c, std))
    # a 3x3 grid with a wider std, in float64
    xs = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    grid = torch.cartesian_prod(xs, xs)  # (9, 2)
    pts = torch.cat([grid[:6] + 0.1 * torch.randn(6, 2, generator=g, dtype=torch.float64),
                     torch.tensor([[0.5, 0.5], [3.0, 3.0]], dtype=torch.float64)])
    cases.append(("8 samples near a 3x3 grid (std 0.2, float64)", pts, grid, 0.2))
    return cases


def check_mode_coverage(mode_coverage: Callable) -> None:
    """``mode_coverage(samples, centers, std)``: ``(modes captured, high-quality share)``.

    On five constructed sample sets (every mode hit once; a collapse onto one mode; samples
    at 2.9 and 3.1 std; samples between modes; a float64 grid) the result must be a pair
    whose first element is exactly the reference's int and whose second is the fraction
    (in [0, 1]) within ``1e-6`` (a float32 mean is accurate to about 1e-7).
    """
    name = "mode_coverage"
    for label, samples, centers, std in _coverage_cases():
        call = f"{name}(samples, centers, std={std}) for {label}"
        got = call_student(name, mode_coverage, samples.clone(), centers.clone(), std)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            fail(name, f"{call} returned {type(got).__name__}; expected a tuple "
                 "(modes_captured, high_quality_share).")
        want_modes, want_share = reference.mode_coverage(samples, centers, std)
        modes = to_float64(got[0], function=name, what="modes_captured")
        share = to_float64(got[1], function=name, what="high_quality_share")
        if modes.numel() != 1 or share.numel() != 1:
            fail(name, f"{call} returned elements of shapes {tuple(modes.shape)} and "
                 f"{tuple(share.shape)}; expected two numbers.")
        distances = torch.cdist(samples.to(torch.float64), centers.to(torch.float64))
        nearest = distances.min(dim=1)
        one_std_modes = int(torch.unique(nearest.indices[nearest.values <= std]).numel())
        any_sample_modes = int(torch.unique(nearest.indices).numel())
        share_value = float(share)
        if float(modes) != want_modes:
            hint = "A mode is captured when at least one sample within 3 std of its centre " \
                   "has it as nearest centre."
            if float(modes) == one_std_modes and one_std_modes != want_modes:
                hint = "The radius is 3 standard deviations (3 * std), not 1."
            elif float(modes) == any_sample_modes and any_sample_modes != want_modes:
                hint = "Only high-quality samples (within 3 std) count towards a mode."
            fail(name, f"{call} returned {float(modes):g} modes; expected {want_modes}.", hint)
        if not abs(share_value - want_share) <= 1e-6:
            hint = "The share is (number of samples within 3 std of their nearest centre) / N."
            if abs(share_value - 100 * want_share) <= 1e-4 and want_share > 0:
                hint = "Return a fraction in [0, 1], not a percentage."
            fail(name, f"{call} returned high-quality share {share_value:.6g}; expected "
                 f"{want_share:.6g}.", hint)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Small MLPs train faster on one thread; several threads on a busy CPU can be 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def training_time_budget() -> float:
    """Seconds allowed for ``TRAINING_STEPS`` steps on this machine, under its current load.

    ``max(TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR * t)`` where ``t`` is what the
    reference loop would take for ``TRAINING_STEPS`` steps, extrapolated from a tenth of them
    run now on one thread (see :func:`gradelib.checks.assertions.calibrated_time_budget`).
    """
    torch.manual_seed(SEED)
    generator, discriminator = reference.MLPGenerator(), reference.MLPDiscriminator()
    with _one_thread():
        return calibrated_time_budget(
            TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR,
            lambda: reference.train_gan(generator, discriminator, ring_mixture().sample,
                                        TRAINING_STEPS // 10, 1, make_generator(SEED)),
            scale=10)


@trains_model
def check_train_gan(train_gan: Callable, seed: int = SEED) -> tuple[int, float]:
    """Train the reference toy GAN with the student's ``train_gan`` on the 8-Gaussian ring.

    A seeded :class:`gradelib.gan.MLPGenerator` (latent 2, 3x128) and
    :class:`gradelib.gan.MLPDiscriminator` are trained for ``TRAINING_STEPS`` steps with
    ``k = 1`` within :func:`training_time_budget` seconds. The result must be a dict whose
    ``"discriminator"`` and ``"generator"`` entries hold ``TRAINING_STEPS`` finite numbers;
    then 2,500 samples must capture at least ``MIN_RING_MODES`` of the 8 modes with at least
    ``MIN_HIGH_QUALITY`` of them within 3 std of a mode. Returns ``(modes, share)``.
    """
    name = "train_gan"
    ring = ring_mixture()
    budget = training_time_budget()
    torch.manual_seed(seed)  # the networks' initialisation uses torch's global generator
    generator = reference.MLPGenerator()
    discriminator = reference.MLPDiscriminator()
    with _one_thread():
        start = time.perf_counter()
        history = call_student(name, train_gan, generator, discriminator, ring.sample,
                               TRAINING_STEPS, 1, make_generator(seed))
        elapsed = time.perf_counter() - start
    if elapsed > budget:
        fail(name, f"{TRAINING_STEPS} steps took {elapsed:.1f} s; the budget on this "
             f"machine is {budget:.0f} s.", "Draw whole minibatches at once and avoid "
             "Python loops over samples; do not compute anything per step that you do not need.")
    if not isinstance(history, dict):
        fail(name, f"returned {type(history).__name__}; expected a dict of loss histories.")
    for key in ("discriminator", "generator"):
        check_loss_history(f"{name} history[{key!r}]", history.get(key), TRAINING_STEPS,
                           what="floats (one per generator step)", must_decrease=False,
                           nonfinite_hint=STABILITY_HINT)
    samples = reference.draw_samples(generator, 2500, make_generator(seed + 1))
    modes, share = reference.mode_coverage(samples, ring.centers, ring.std)
    if modes < MIN_RING_MODES or share < MIN_HIGH_QUALITY:
        fail(name, f"after {TRAINING_STEPS} steps on the ring the generator captures {modes} "
             f"of 8 modes with {100 * share:.1f}% of 2,500 samples within 3 std of a mode; "
             f"expected at least {MIN_RING_MODES} modes and {100 * MIN_HIGH_QUALITY:.0f}%.",
             "Follow Algorithm 1: k discriminator steps on fresh real and fake batches "
             "(fakes detached), then one generator step with the non-saturating loss; Adam "
             "with lr 1e-3 and betas (0.5, 0.999), batches of 256, noise from generator_rng.")
    return modes, share
