"""Autograder checks for ``hw5_wgan`` (syllabus §6).

Each ``check_*`` takes the student's function, runs it on seeded inputs, compares with
:mod:`gradelib.wgan` (and, for W1 in one dimension, with SciPy) under the tolerances stated
in its docstring, and raises an ``AssertionError`` naming the function, the input, the
expected and returned values and a hint. Returned values are converted to plain float64
tensors before any comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from scipy.stats import wasserstein_distance
from torch import nn

from gradelib import wgan as reference
from gradelib.checks.assertions import assert_close, call_student, fail, to_float64
from gradelib.device import make_generator

__all__ = [
    "check_wasserstein_1d",
    "check_parallel_lines_divergences",
    "check_critic_loss",
    "check_generator_loss",
    "check_clip_weights_",
    "check_gradient_penalty",
]

SEED = 5005


def _sample_pairs() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    g = make_generator(SEED)
    n = 200
    return [
        ("N(0, 1) vs N(0.7, 1), 200 float64 samples each",
         torch.randn(n, generator=g, dtype=torch.float64),
         0.7 + torch.randn(n, generator=g, dtype=torch.float64)),
        ("U[0, 1] vs Exp(2), 150 float64 samples each",
         torch.rand(150, generator=g, dtype=torch.float64),
         -torch.log(torch.rand(150, generator=g, dtype=torch.float64)) / 2),
        ("N(0, 1) vs N(0, 3^2), 64 float32 samples each", torch.randn(64, generator=g),
         3 * torch.randn(64, generator=g)),
        ("a sample against a permutation of itself (W1 = 0)",
         (x := torch.randn(50, generator=g, dtype=torch.float64)),
         x[torch.randperm(50, generator=g)]),
        ("two points against two points", torch.tensor([0.0, 1.0], dtype=torch.float64),
         torch.tensor([3.0, -1.0], dtype=torch.float64)),
    ]


def check_wasserstein_1d(wasserstein_1d: Callable) -> None:
    """``wasserstein_1d(x, y)``: W1 between equal-size 1-D samples, a 0-d tensor.

    Compared with ``scipy.stats.wasserstein_distance`` on five seeded pairs (Gaussians,
    uniform vs exponential, float32, a permutation of the same sample, two points).
    Tolerance ``rtol=1e-6, atol=1e-9`` (``1e-5`` in float32).
    """
    name = "wasserstein_1d"
    for label, x, y in _sample_pairs():
        got = call_student(name, wasserstein_1d, x.clone(), y.clone())
        want = torch.tensor(wasserstein_distance(x.double().numpy(), y.double().numpy()),
                            dtype=torch.float64)
        float32 = x.dtype == torch.float32
        assert_close(
            got, want, function=name, call=f"{name}(x, y) for {label}",
            rtol=1e-5 if float32 else 1e-6, atol=1e-6 if float32 else 1e-9,
            hint="Sort both samples and average the absolute differences of the sorted "
                 "values; return a 0-d tensor.",
            known_mistakes={
                "Sort the samples first: the optimal coupling pairs the i-th smallest x with "
                "the i-th smallest y.": (x - y).abs().mean(),
                "W1 is not the distance between the means (that is only a lower bound).":
                    (x.mean() - y.mean()).abs(),
                "Average over the samples, do not sum.":
                    (x.sort().values - y.sort().values).abs().sum(),
                "Use absolute differences (W1), not squared ones.":
                    ((x.sort().values - y.sort().values) ** 2).mean(),
            },
        )


def check_parallel_lines_divergences(parallel_lines_divergences: Callable) -> None:
    """``parallel_lines_divergences(theta)``: dict with ``"kl"``, ``"js"`` and ``"w"``.

    At theta in {0, 0.5, -1.3, 2, 1e-3} (0-d float64 tensors): ``kl`` must be ``+inf`` for
    theta != 0 and 0 at 0; ``js`` ``log 2`` (nats) for theta != 0 and 0 at 0; ``w`` equal to
    ``|theta|``. Tolerance ``1e-9``.
    """
    name = "parallel_lines_divergences"
    for theta in (0.0, 0.5, -1.3, 2.0, 1e-3):
        t = torch.tensor(theta, dtype=torch.float64)
        call = f"{name}(theta={theta:g})"
        got = call_student(name, parallel_lines_divergences, t.clone())
        if not isinstance(got, dict) or not {"kl", "js", "w"} <= set(got):
            fail(name, f"{call} returned {type(got).__name__}"
                 f"{' with keys ' + str(sorted(got)) if isinstance(got, dict) else ''}; "
                 "expected a dict with keys 'kl', 'js' and 'w'.")
        want = reference.parallel_lines_divergences(t)
        kl = to_float64(got["kl"], function=name, what="result['kl']")
        if kl.numel() != 1:
            fail(name, f"{call}['kl'] has shape {tuple(kl.shape)}; expected one number.")
        if theta != 0 and not bool(torch.isposinf(kl).all()):
            fail(name, f"{call}['kl'] is {float(kl):g}; expected +inf.",
                 "For theta != 0 the supports are disjoint: P puts mass where Q has density "
                 "0, so KL(P || Q) = +inf (return math.inf).")
        if theta == 0 and float(kl) != 0.0:
            fail(name, f"{call}['kl'] is {float(kl):g}; expected 0 (P = Q at theta = 0).",
                 "Handle theta = 0 separately: the distributions coincide.")
        assert_close(
            got["js"], want["js"], function=name, call=f"{call}['js']", rtol=0, atol=1e-9,
            hint="JS is log 2 (nats) when the supports are disjoint and 0 when P = Q.",
            known_mistakes={
                "Use nats: JS of disjoint distributions is log 2 = 0.693, not 1 bit.":
                    torch.tensor(1.0 if theta != 0 else 0.0, dtype=torch.float64),
                "At theta = 0 the two distributions are equal, so JS = 0.":
                    torch.tensor(math.log(2.0), dtype=torch.float64),
            },
        )
        assert_close(
            got["w"], want["w"], function=name, call=f"{call}['w']", rtol=0, atol=1e-9,
            hint="Every point moves horizontally by |theta|: W = |theta|.",
            known_mistakes={"A distance is never negative: W = |theta|, not theta.": t},
        )


def _score_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    g = make_generator(SEED + 1)
    return [
        ("random scores (B=16)", torch.randn(16, generator=g), torch.randn(16, generator=g)),
        ("shifted scores, real 8 and fake 12", 2 + torch.randn(8, generator=g),
         -1 + torch.randn(12, generator=g)),
        ("float64 scores of shape (B, 1)", torch.randn(10, 1, generator=g, dtype=torch.float64),
         5 * torch.randn(10, 1, generator=g, dtype=torch.float64)),
    ]


def check_critic_loss(critic_loss: Callable) -> None:
    """``critic_loss(real_scores, fake_scores)``: ``mean f(fake) - mean f(real)``, 0-d.

    Three seeded cases (shapes ``(B,)`` and ``(B, 1)``, unequal batch sizes, float64).
    Tolerance ``rtol=1e-6, atol=1e-6``.
    """
    name = "critic_loss"
    for label, real, fake in _score_cases():
        got = call_student(name, critic_loss, real.clone(), fake.clone())
        want = reference.critic_loss(real, fake)
        assert_close(
            got, want, function=name, call=f"{name}(real_scores, fake_scores) on {label}",
            rtol=1e-6, atol=1e-6,
            hint="The critic maximises mean f(real) - mean f(fake), so it minimises "
                 "mean f(fake) - mean f(real).",
            known_mistakes={
                "The sign is flipped: minimise mean f(fake) - mean f(real).": -want,
                "Average each term over its batch, do not sum.": fake.sum() - real.sum(),
                "No logarithms or sigmoids in a WGAN: the critic's scores are used as they are.":
                    torch.nn.functional.softplus(-real).mean()
                    + torch.nn.functional.softplus(fake).mean(),
            },
        )


def check_generator_loss(generator_loss: Callable) -> None:
    """``generator_loss(fake_scores)``: ``-mean f(fake)``, 0-d. Tolerance ``1e-6``."""
    name = "generator_loss"
    for label, _, fake in _score_cases():
        got = call_student(name, generator_loss, fake.clone())
        want = reference.generator_loss(fake)
        assert_close(
            got, want, function=name, call=f"{name}(fake_scores) on {label}",
            rtol=1e-6, atol=1e-6,
            hint="The generator wants high critic scores on its samples: minimise -mean f(fake).",
            known_mistakes={
                "The sign is flipped: minimise -mean f(fake).": -want,
                "Average over the batch, do not sum.": -fake.sum(),
                "This is the non-saturating GAN loss; a WGAN uses the scores without logs.":
                    torch.nn.functional.softplus(-fake).mean(),
            },
        )


class _ToyCritic(nn.Module):
    """A critic with weights, biases and a free-standing parameter, all outside [-c, c]."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
        self.scale = nn.Parameter(torch.tensor([0.5, -0.7]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * self.scale).squeeze(1)


def check_clip_weights_(clip_weights_: Callable) -> None:
    """``clip_weights_(critic, c)``: every parameter clipped to ``[-c, c]`` in place.

    For ``c`` in {0.01, 0.05} on a critic whose weights, biases and an extra parameter lie
    partly outside ``[-c, c]``: the function returns None; afterwards ``critic`` has the
    same parameter objects with the same storage (``data_ptr``) as before, holding exactly
    ``clamp(original, -c, c)``; an optimizer built before the call still updates them.
    """
    name = "clip_weights_"
    for c in (0.01, 0.05):
        torch.manual_seed(SEED)
        critic = _ToyCritic()
        optimizer = torch.optim.SGD(critic.parameters(), lr=0.1)
        before = {n: (p, p.data_ptr(), p.detach().clone()) for n, p in critic.named_parameters()}
        result = call_student(name, clip_weights_, critic, c)
        call = f"{name}(critic, c={c})"
        if result is not None:
            fail(name, f"{call} returned {type(result).__name__}; expected None.",
                 "Modify the parameters in place and return nothing (the trailing underscore "
                 "is PyTorch's convention for in-place functions).")
        after = dict(critic.named_parameters())
        untouched = [n for n, (_, _, original) in before.items()
                     if n in after and torch.equal(after[n].detach(), original)]
        for param_name, (param, pointer, original) in before.items():
            now = after.get(param_name)
            if now is not param:
                fail(name, f"after {call}, critic.{param_name} is a new object.",
                     "Do not assign new nn.Parameter objects: an optimizer built before the "
                     "call would keep updating the old ones. Clip in place with "
                     "p.clamp_(-c, c) inside torch.no_grad().")
            expected = original.clamp(-c, c)
            values = now.detach()
            if not torch.equal(values, expected):
                fail(name, f"after {call}, critic.{param_name} holds values in "
                     f"[{float(values.min()):.4g}, {float(values.max()):.4g}]; expected "
                     f"clamp(original, -c, c) in [{float(expected.min()):.4g}, "
                     f"{float(expected.max()):.4g}].",
                     "Rebinding a loop variable (p = p.clamp(...)) changes nothing: act on the "
                     "parameter itself with p.clamp_(-c, c)." if len(untouched) == len(before)
                     else "Clip every parameter, weights and biases alike, to [-c, c].")
            if now.data_ptr() != pointer:
                fail(name, f"after {call}, critic.{param_name} points to new storage.",
                     "Assigning p.data = p.clamp(...) replaces the tensor instead of acting "
                     "in place; use p.clamp_(-c, c) inside torch.no_grad().")
        # the optimizer still acts on the clipped parameters
        loss = critic(torch.ones(3, 2)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _penalty_cases() -> list[tuple[str, Callable[[], nn.Module], torch.Tensor, torch.Tensor,
                                   torch.Tensor]]:
    g = make_generator(SEED + 2)

    def mlp() -> nn.Module:
        torch.manual_seed(SEED)
        from gradelib.gan import MLPDiscriminator

        return MLPDiscriminator(hidden_dim=16)

    def conv() -> nn.Module:
        torch.manual_seed(SEED + 1)
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Flatten(),
                             nn.Linear(4 * 3 * 3, 1), nn.Flatten(0))

    return [
        ("an MLP critic on 2-D points (B=32)", mlp, torch.randn(32, 2, generator=g),
         3 * torch.randn(32, 2, generator=g), torch.rand(32, 1, generator=g)),
        ("a convolutional critic on (6, 1, 5, 5) images", conv,
         torch.rand(6, 1, 5, 5, generator=g), torch.rand(6, 1, 5, 5, generator=g),
         torch.rand(6, 1, 1, 1, generator=g)),
    ]


def check_gradient_penalty(gradient_penalty: Callable) -> None:
    """``gradient_penalty(critic, real, fake, eps)``: ``mean (||grad f(x_hat)|| - 1)^2``.

    For an MLP critic on 2-D points and a convolutional critic on images, with fixed
    ``eps``: the value matches the reference (``rtol=1e-5, atol=1e-6``), and the gradient
    of the penalty with respect to every critic parameter matches the reference's
    (``rtol=1e-4, atol=1e-6``), which requires ``create_graph=True``.
    """
    name = "gradient_penalty"
    for label, make_critic, real, fake, eps in _penalty_cases():
        call = f"{name}(critic, real, fake, eps) with {label}"
        critic = make_critic()
        got = call_student(name, gradient_penalty, critic, real.clone(), fake.clone(), eps.clone())
        want = reference.gradient_penalty(critic, real, fake, eps)
        mistakes = _penalty_mistakes(critic, real, fake, eps)
        assert_close(got, want.detach(), function=name, call=call, rtol=1e-5, atol=1e-6,
                     hint="x_hat = eps * real + (1 - eps) * fake; take the gradient of "
                          "critic(x_hat).sum() with respect to x_hat, its L2 norm per example, "
                          "then mean((norm - 1)^2).", known_mistakes=mistakes)
        if not isinstance(got, torch.Tensor) or not got.requires_grad:
            fail(name, f"{call} returned a value that does not depend on the critic's "
                 "parameters, so the penalty cannot be minimised.",
                 "Pass create_graph=True to torch.autograd.grad so that the gradient itself "
                 "can be differentiated.")
        params = list(critic.parameters())
        got_grads = torch.autograd.grad(got, params, allow_unused=True)
        want_grads = torch.autograd.grad(want, params, allow_unused=True)
        for (param_name, _), g_got, g_want in zip(critic.named_parameters(), got_grads,
                                                   want_grads):
            if g_want is None:
                continue
            if g_got is None:
                fail(name, f"{call}: the penalty does not depend on critic.{param_name}.",
                     "Use create_graph=True and do not detach the gradient.")
            assert_close(g_got, g_want, function=name,
                         call=f"the gradient of {call} with respect to critic.{param_name}",
                         rtol=1e-4, atol=1e-6,
                         hint="Differentiate through the gradient norm (create_graph=True).")


def _penalty_mistakes(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                      eps: torch.Tensor) -> dict[str, torch.Tensor]:
    def grads_at(points: torch.Tensor) -> torch.Tensor:
        points = points.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(points).sum(), points)
        return grad.reshape(len(grad), -1)  # (B, n)

    mixed = grads_at(eps * real + (1 - eps) * fake)
    return {
        "The penalty is taken at the interpolates x_hat = eps*real + (1-eps)*fake, not at the "
        "real points only.": ((grads_at(real).norm(dim=1) - 1) ** 2).mean(),
        "Penalise (||grad|| - 1)^2, not ||grad||^2: the target norm is 1.":
            (mixed.norm(dim=1) ** 2).mean(),
        "Take the norm per example (over all dimensions but the batch), not over the whole "
        "batch.": (mixed.norm() - 1) ** 2,
        "Mix as eps * real + (1 - eps) * fake, with the eps you are given.":
            ((grads_at(eps * fake + (1 - eps) * real).norm(dim=1) - 1) ** 2).mean(),
    }
