"""Autograder checks for ``hw3_vae`` (syllabus §4).

Each ``check_*`` takes the student's function or class, runs it on seeded inputs, compares
with :mod:`gradelib.vae` under the tolerances stated in its docstring, and raises an
``AssertionError`` naming the function, the input, the expected and returned values and a
hint. Returned values are converted to plain float64 tensors before any comparison.

The functions with randomness take it as an argument, so the comparisons are exact:
``reparameterize`` receives ``eps``; ``iwae_bound`` must draw its noise exactly as
``torch.randn(k, B, D, generator=generator)`` after encoding (the notebook says so). The
trained-model check trains the student's ``VAE`` with the student's ``train_vae`` within a
time budget and requires a test negative ELBO inside a calibrated band.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from gradelib import vae as reference
from gradelib.checks.assertions import (
    assert_close,
    assert_shape,
    calibrated_time_budget,
    call_student,
    check_loss_history,
    fail,
    to_float64,
    trains_model,
)
from gradelib.data import load_mnist
from gradelib.device import make_generator

__all__ = [
    "check_gaussian_kl",
    "check_reparameterize",
    "check_reparameterize_gradients",
    "check_bernoulli_log_likelihood",
    "check_negative_elbo",
    "check_vae",
    "check_train_vae",
    "check_iwae_bound",
    "mean_test_negative_elbo",
    "TRAINING_EPOCHS",
    "TRAINING_TIME_BUDGET_S",
    "TRAINING_TIME_FACTOR",
    "training_time_budget",
    "TEST_NEGATIVE_ELBO_BAND",
]

SEED = 2014

#: Epochs the hidden training check runs the student's ``train_vae`` for (the notebook's
#: training cell runs the same number).
TRAINING_EPOCHS = 15
#: Wall-clock seconds always allowed for those epochs. The notebook's suggested MLP VAE takes
#: about 6 s on a quiet 2-core CPU and 15-45 s when the machine is heavily shared (measured
#: with ``benchmarks/vae.py --band``); the budget stops runaway loops, not honest ones.
TRAINING_TIME_BUDGET_S = 60.0
#: On a slower or busier machine the budget grows to this many times what the reference
#: takes for the same epochs, timed (one epoch) just before (:func:`training_time_budget`).
TRAINING_TIME_FACTOR = 5.0
#: Largest accepted mean test negative ELBO, nats per image, on the 1,000 binarized embedded
#: test digits after ``TRAINING_EPOCHS`` epochs. Measured by ``benchmarks/vae.py --band``
#: (recorded in benchmarks/results/vae_band.json): the notebook's solution (MLP 784-400-20,
#: Adam 1e-3, batches of 100) reaches 114.0; a weaker but acceptable VAE with 200 hidden
#: units 125.3; a loop that averages the reconstruction term over pixels instead of summing
#: collapses the posterior and scores 207.7; a decoder ending in a sigmoid (probabilities fed
#: to a loss that expects logits) 543.5. tests/test_checks_hw3_vae.py re-checks the first
#: and the third.
TEST_NEGATIVE_ELBO_BAND = 135.0

FLOAT32 = {"rtol": 1e-5, "atol": 1e-5}


def _reject_reference(function: str, student: object) -> None:
    """Fail if the student handed in (or subclassed) the course's own reference code."""
    module = getattr(student, "__module__", "") or ""
    is_reference_class = isinstance(student, type) and any(
        getattr(base, "__module__", "").startswith("gradelib.") for base in student.__mro__)
    if module.startswith("gradelib.") or is_reference_class:
        fail(function, f"is gradelib's reference implementation ({module}).",
             "Write the function yourself; calling gradelib.vae earns no points.")


@contextlib.contextmanager
def _forbid_distributions(function: str) -> Iterator[None]:
    """Fail the check if the code inside builds any ``torch.distributions`` distribution.

    ``gaussian_kl`` must be the closed form derived by hand; the notebook and the book
    compare it with ``torch.distributions.kl_divergence``. Every distribution's constructor
    runs ``Distribution.__init__``, so replacing it catches ``Normal``, ``Independent``,
    ``MultivariateNormal``, ... however they were imported.
    """
    base = torch.distributions.Distribution
    original = base.__init__

    def refuse(*_args, **_kwargs):
        fail(function, "built a torch.distributions distribution; this function must "
             "compute the KL from its closed form.",
             "Write KL = 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar) with tensor operations.")

    base.__init__ = refuse
    try:
        yield
    finally:
        base.__init__ = original


def _gaussian_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(label, mu, logvar): random float32, float64, standard normal, extreme variances."""
    g = make_generator(SEED)
    cases = [("random (B=5, D=3)", torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g))]
    cases.append(("random float64 (B=4, D=20)", torch.randn(4, 20, generator=g, dtype=torch.float64),
                  0.5 * torch.randn(4, 20, generator=g, dtype=torch.float64)))
    cases.append(("the prior itself (mu=0, logvar=0)", torch.zeros(3, 6), torch.zeros(3, 6)))
    cases.append(("small and large variances", torch.randn(2, 4, generator=g),
                  torch.tensor([[-6.0, -2.0, 1.5, 3.0], [0.0, -4.0, 2.0, -0.5]])))
    cases.append(("a single example (B=1, D=1)", torch.tensor([[1.5]]), torch.tensor([[-0.7]])))
    return cases


def _describe(label: str, mu: torch.Tensor) -> str:
    return f"for {label}, mu of shape {tuple(mu.shape)} and dtype {mu.dtype}"


def check_gaussian_kl(gaussian_kl: Callable) -> None:
    """``gaussian_kl(mu, logvar)``: ``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per example.

    Cases: random float32 and float64 inputs, ``mu = logvar = 0`` (KL = 0), very small and
    large variances, a single example. Shape ``(B,)``. Tolerance ``rtol=1e-5, atol=1e-5``.
    Fails if the function builds a ``torch.distributions`` object (the closed form is asked).
    """
    name = "gaussian_kl"
    _reject_reference(name, gaussian_kl)
    for label, mu, logvar in _gaussian_cases():
        with _forbid_distributions(name):
            got = call_student(name, gaussian_kl, mu.clone(), logvar.clone())
        want = reference.gaussian_kl(mu, logvar)
        terms = mu**2 + logvar.exp() - 1 - logvar  # (B, D)
        assert_close(
            got, want, function=name, call=f"{name}(mu, logvar) {_describe(label, mu)}",
            **FLOAT32,
            hint="KL = 0.5 * sum over latent dimensions of (mu^2 + exp(logvar) - 1 - logvar), "
                 "one value per example: shape (B,).",
            known_mistakes={
                "The KL has the wrong sign: it is never negative.": -want,
                "The '- 1' inside the sum is missing (your value is D/2 too large).":
                    0.5 * (mu**2 + logvar.exp() - logvar).sum(1),
                "The factor 1/2 is missing.": terms.sum(1),
                "Sum over the latent dimensions; you took the mean.": 0.5 * terms.mean(1),
                "logvar is log(sigma^2), so the variance is exp(logvar), not exp(2 * logvar).":
                    0.5 * (mu**2 + (2 * logvar).exp() - 1 - 2 * logvar).sum(1),
                "Return one value per example (shape (B,)); you summed over the batch too.":
                    want.sum(),
            },
        )


def check_reparameterize(reparameterize: Callable) -> None:
    """``reparameterize(mu, logvar, eps)``: ``mu + exp(logvar / 2) * eps``, the given ``eps``.

    Same cases as :func:`check_gaussian_kl` with seeded standard normal ``eps``; the result
    must have shape ``(B, D)``. Tolerance ``rtol=1e-5, atol=1e-5``.
    """
    name = "reparameterize"
    _reject_reference(name, reparameterize)
    g = make_generator(SEED + 1)
    for label, mu, logvar in _gaussian_cases():
        eps = torch.randn(mu.shape, generator=g, dtype=mu.dtype)
        got = call_student(name, reparameterize, mu.clone(), logvar.clone(), eps.clone())
        want = reference.reparameterize(mu, logvar, eps)
        assert_close(
            got, want, function=name,
            call=f"{name}(mu, logvar, eps) {_describe(label, mu)}", **FLOAT32,
            hint="z = mu + sigma * eps with sigma = exp(0.5 * logvar); use the eps you are "
                 "given rather than drawing new noise.",
            known_mistakes={
                "sigma = exp(0.5 * logvar); exp(logvar) is the variance, not the standard "
                "deviation.": mu + logvar.exp() * eps,
                "logvar is a log-variance: take exp(0.5 * logvar) before multiplying by eps.":
                    mu + logvar * eps,
                "The noise must be scaled by sigma: z = mu + sigma * eps (you added eps "
                "directly).": mu + eps,
                "Use the eps argument; do not draw your own noise (the result must be the "
                "exact function of mu, logvar and eps).": mu.clone(),
            },
        )


def check_reparameterize_gradients(reparameterize: Callable) -> None:
    """Gradients flow through ``reparameterize`` to ``mu`` and ``logvar``.

    For seeded ``mu, logvar, eps`` ``(6, 4)`` float64 and a random weighting ``w``, the
    gradients of ``sum(w * z)`` must be ``dL/dmu = w`` and
    ``dL/dlogvar = w * eps * exp(logvar / 2) / 2`` (tolerance ``1e-9``); ``eps`` must
    receive no special treatment (it is data).
    """
    name = "reparameterize"
    _reject_reference(name, reparameterize)
    g = make_generator(SEED + 2)
    mu = torch.randn(6, 4, generator=g, dtype=torch.float64).requires_grad_()
    logvar = torch.randn(6, 4, generator=g, dtype=torch.float64).requires_grad_()
    eps = torch.randn(6, 4, generator=g, dtype=torch.float64)
    weights = torch.randn(6, 4, generator=g, dtype=torch.float64)
    call = f"{name}(mu, logvar, eps) with mu, logvar of shape (6, 4) requiring gradients"
    with torch.enable_grad():
        z = call_student(name, reparameterize, mu, logvar, eps.clone())
        if not isinstance(z, torch.Tensor):
            to_float64(z, function=name)  # fails with the type in the message
        if not z.requires_grad:
            fail(name, f"{call}: the result does not require gradients, so no gradient "
                 "reaches mu or logvar.",
                 "Build z from mu and logvar with differentiable operations: no .detach(), "
                 ".item(), .data, torch.no_grad(), and no sampling with torch.normal.")
        assert_shape(z, (6, 4), function=name, call=call)
        (z * weights).sum().backward()
    for which, tensor, expected, hint in (
        ("mu", mu, weights, "dz/dmu is 1: add mu itself, not a detached copy."),
        ("logvar", logvar, weights * eps * torch.exp(0.5 * logvar.detach()) / 2,
         "dz/dlogvar = eps * exp(logvar / 2) / 2: scale eps by exp(0.5 * logvar)."),
    ):
        if tensor.grad is None:
            fail(name, f"{call}: no gradient reached {which}.",
                 f"z must be a differentiable function of {which}.")
        assert_close(tensor.grad, expected, function=name,
                     call=f"the gradient of sum(w * z) with respect to {which} ({call})",
                     rtol=1e-9, atol=1e-9, hint=hint, known_mistakes={
                         "The gradient is exactly zero: sampling inside the graph (e.g. "
                         "torch.normal(mu, sigma)) passes no gradient; compute "
                         "z = mu + sigma * eps from the eps you are given.":
                             torch.zeros_like(expected)})


def _likelihood_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    g = make_generator(SEED + 3)
    images, _ = load_mnist("test", binarized=True)
    cases = [("binarized MNIST digits (4, 1, 28, 28)", 3 * torch.randn(4, 1, 28, 28, generator=g),
              images[:4].clone())]
    cases.append(("grey-level targets in [0, 1] (3, 1, 5, 5)", torch.randn(3, 1, 5, 5, generator=g),
                  torch.rand(3, 1, 5, 5, generator=g)))
    extreme = torch.tensor([60.0, -60.0, 25.0, -25.0]).repeat(2, 1, 2, 1)  # (2, 1, 2, 4)
    cases.append(("very confident logits (+-60) on binary targets (2, 1, 2, 4)", extreme,
                  (torch.rand(2, 1, 2, 4, generator=g) > 0.5).float()))
    return cases


def check_bernoulli_log_likelihood(bernoulli_log_likelihood: Callable) -> None:
    """``bernoulli_log_likelihood(logits, x)``: ``log p(x | z)`` summed over pixels, ``(B,)``.

    Cases: binarized digits with random logits, grey-level targets, and logits of +-60 where
    ``log(sigmoid(l))`` underflows in float32 (the computation must be stable). Tolerance
    ``rtol=1e-5, atol=1e-4``.
    """
    name = "bernoulli_log_likelihood"
    _reject_reference(name, bernoulli_log_likelihood)
    for label, logits, x in _likelihood_cases():
        got = call_student(name, bernoulli_log_likelihood, logits.clone(), x.clone())
        want = reference.bernoulli_log_likelihood(logits, x)
        per_pixel = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        probabilities = torch.sigmoid(logits)
        assert_close(
            got, want, function=name, call=f"{name}(logits, x) for {label}",
            rtol=1e-5, atol=1e-4,
            hint="log p(x|z) = sum over pixels of x*log(sigmoid(l)) + (1-x)*log(1-sigmoid(l)); "
                 "compute it from the logits stably (F.binary_cross_entropy_with_logits with "
                 "reduction='none', or F.logsigmoid), then sum over every pixel of each image.",
            known_mistakes={
                "That is the negative log-likelihood (the binary cross-entropy); the "
                "log-likelihood is its negative, <= 0.": -want,
                "Sum over the pixels of each image; you took the mean.":
                    per_pixel.flatten(1).mean(1),
                "Return one value per image (shape (B,)); you summed over the batch too.":
                    want.sum(),
                "logits are the decoder's raw outputs: apply the sigmoid once (you applied it "
                "twice, or passed probabilities as logits).":
                    -F.binary_cross_entropy_with_logits(probabilities, x, reduction="none")
                    .flatten(1).sum(1),
            },
        )


def check_negative_elbo(negative_elbo: Callable) -> None:
    """``negative_elbo(x, logits, mu, logvar)``: ``-log p(x | z) + KL``, shape ``(B,)``.

    Cases: binarized digits with random logits and encoder outputs (B = 4, D = 5), and a
    float64 case (B = 2, D = 3). Tolerance ``rtol=1e-5, atol=1e-4``.
    """
    name = "negative_elbo"
    _reject_reference(name, negative_elbo)
    g = make_generator(SEED + 4)
    images, _ = load_mnist("test", binarized=True)
    cases = [("binarized digits, D=5", images[4:8].clone(), 2 * torch.randn(4, 1, 28, 28, generator=g),
              torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g))]
    cases.append(("float64 inputs, D=3", images[8:10].double(),
                  torch.randn(2, 1, 28, 28, generator=g, dtype=torch.float64),
                  torch.randn(2, 3, generator=g, dtype=torch.float64),
                  torch.randn(2, 3, generator=g, dtype=torch.float64)))
    for label, x, logits, mu, logvar in cases:
        got = call_student(name, negative_elbo, x.clone(), logits.clone(), mu.clone(), logvar.clone())
        want = reference.negative_elbo(x, logits, mu, logvar)
        log_lik = reference.bernoulli_log_likelihood(logits, x)
        kl = reference.gaussian_kl(mu, logvar)
        mean_log_lik = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).mean(1)
        assert_close(
            got, want, function=name,
            call=f"{name}(x, logits, mu, logvar) for {label}, B={len(x)}",
            rtol=1e-5, atol=1e-4,
            hint="negative ELBO = -log p(x|z) + KL(q(z|x) || N(0, I)) per example, shape (B,).",
            known_mistakes={
                "That is the ELBO; return its negative, -log p(x|z) + KL.": -want,
                "The KL term enters with a plus sign: -log p(x|z) + KL.": -log_lik - kl,
                "The KL term is missing.": -log_lik,
                "The reconstruction term is missing.": kl,
                "Sum the log-likelihood over pixels (you averaged it).": -mean_log_lik + kl,
                "Return one value per example (shape (B,)); you reduced over the batch.":
                    want.mean(),
            },
        )


def _fresh_model(model_class: Callable, latent_dim: int, seed: int) -> nn.Module:
    name = "VAE"
    _reject_reference(name, model_class)
    torch.manual_seed(seed)  # weight initialisation uses torch's global generator
    model = call_student(name, model_class, latent_dim)
    if not isinstance(model, nn.Module):
        fail(name, f"VAE({latent_dim}) is a {type(model).__name__}; expected an nn.Module.")
    if not any(p.requires_grad for p in model.parameters()):
        fail(name, f"VAE({latent_dim}) has no trainable parameters.")
    return model


def _encode(model: nn.Module, x: torch.Tensor, latent_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    name = "VAE.encode"
    out = call_student(name, model.encode, x)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(name, f"returned {type(out).__name__}; expected a tuple (mu, logvar).",
             "Split the encoder's output into the means and the log-variances.")
    for which, tensor in zip(("mu", "logvar"), out):
        if not isinstance(tensor, torch.Tensor):
            to_float64(tensor, function=name, what=which)
        assert_shape(tensor, (len(x), latent_dim), function=name,
                     call=f"VAE({latent_dim}).encode(x of shape {tuple(x.shape)}), {which}",
                     hint="mu and logvar each have one row of latent_dim numbers per image.")
    return out[0], out[1]


def _decode(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    name = "VAE.decode"
    logits = call_student(name, model.decode, z)
    if not isinstance(logits, torch.Tensor):
        to_float64(logits, function=name)
    assert_shape(logits, (len(z), 1, 28, 28), function=name,
                 call=f"VAE({z.shape[1]}).decode(z of shape {tuple(z.shape)})",
                 hint="Reshape the decoder's output to (B, 1, 28, 28) logits.")
    return logits


def check_vae(model_class: Callable) -> None:
    """``VAE(latent_dim)``: ``encode -> (mu, logvar)`` ``(B, D)`` each, ``decode -> (B, 1, 28, 28)``.

    For ``latent_dim`` 2 and 20 on a seeded ``(5, 1, 28, 28)`` batch of binarized digits:
    shapes, finite values, and a reconstruction term ``-log p(x | z)`` (z reparameterized
    with seeded noise) whose gradient reaches every trainable parameter.
    """
    name = "VAE"
    images, _ = load_mnist("test", binarized=True)
    x = images[10:15].clone()
    g = make_generator(SEED + 5)
    for latent_dim in (2, 20):
        model = _fresh_model(model_class, latent_dim, SEED)
        mu, logvar = _encode(model, x.clone(), latent_dim)
        eps = torch.randn(mu.shape, generator=g).to(mu)
        logits = _decode(model, reference.reparameterize(mu, logvar, eps))
        for which, tensor in (("mu", mu), ("logvar", logvar), ("decode's logits", logits)):
            if not bool(torch.isfinite(tensor).all()):
                fail(name, f"VAE({latent_dim}): {which} holds non-finite values.")
        # the reconstruction term alone must reach every parameter: the decoder directly,
        # the encoder through z = mu + sigma * eps (the KL would reach the encoder anyway)
        loss = -reference.bernoulli_log_likelihood(logits, x.to(logits.dtype)).mean()
        if not loss.requires_grad:
            fail(name, f"VAE({latent_dim}): the reconstruction term does not depend on the "
                 "parameters (no gradient can flow).",
                 "Do not detach tensors or wrap encode/decode in torch.no_grad().")
        loss.backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        if missing:
            fail(name, f"VAE({latent_dim}): parameters {missing[:3]} receive no gradient from "
                 "the reconstruction term -log p(x|z) with z = mu + sigma * eps.",
                 "Every layer you define should be used by encode or decode, and decode must "
                 "not detach z.")


def mean_test_negative_elbo(model: nn.Module, images: torch.Tensor, seed: int = SEED) -> float:
    """Mean negative ELBO (nats per image) of a student's model, computed with the reference.

    One reparameterized sample per image with noise from ``make_generator(seed)``; the
    student's ``encode``/``decode`` are called under ``torch.no_grad`` in eval mode.
    """
    model.eval()
    with torch.no_grad():
        first = call_student("VAE.encode", model.encode, images[:1])
        mu = first[0] if isinstance(first, (tuple, list)) and first else None
        if not isinstance(mu, torch.Tensor) or mu.dim() != 2:
            fail("VAE.encode", "did not return (mu, logvar), each of shape (B, D).")
        mu, logvar = _encode(model, images, mu.shape[1])
        eps = torch.randn(mu.shape, generator=make_generator(seed)).to(mu)
        logits = _decode(model, reference.reparameterize(mu, logvar, eps))
        values = reference.negative_elbo(images.to(logits.dtype), logits, mu, logvar)
    return float(to_float64(values, function="negative_elbo").mean())


def training_time_budget(train_images: torch.Tensor) -> float:
    """Seconds allowed for ``TRAINING_EPOCHS`` epochs on this machine, under its current load.

    ``max(TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR * TRAINING_EPOCHS * t)`` where ``t``
    is what the reference takes for one epoch, measured now (see
    :func:`gradelib.checks.assertions.calibrated_time_budget`).
    """
    torch.manual_seed(SEED)
    probe = reference.VAE(20)
    return calibrated_time_budget(
        TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR,
        lambda: reference.train_vae(probe, train_images, 1, make_generator(SEED)),
        scale=TRAINING_EPOCHS)


@trains_model
def check_train_vae(train_vae: Callable, model_class: Callable) -> float:
    """Train ``model_class(20)`` with ``train_vae`` on binarized embedded MNIST; return test -ELBO.

    Runs ``TRAINING_EPOCHS`` epochs on the 4,000 training digits with ``make_generator(SEED)``
    within :func:`training_time_budget` seconds, then requires: the history is a list of
    ``TRAINING_EPOCHS`` finite floats decreasing from first to last epoch, and the mean
    negative ELBO on the 1,000 binarized test digits (one seeded sample per image) is at most
    ``TEST_NEGATIVE_ELBO_BAND`` nats.
    """
    name = "train_vae"
    _reject_reference(name, train_vae)
    train_images, _ = load_mnist("train", binarized=True)
    test_images, _ = load_mnist("test", binarized=True)
    budget = training_time_budget(train_images)
    model = _fresh_model(model_class, 20, SEED)
    start = time.perf_counter()
    history = call_student(name, train_vae, model, train_images.clone(), TRAINING_EPOCHS,
                           make_generator(SEED))
    elapsed = time.perf_counter() - start
    if elapsed > budget:
        fail(name, f"{TRAINING_EPOCHS} epochs took {elapsed:.1f} s; the budget on this "
             f"machine is {budget:.0f} s.", "Use minibatches of 100 images rather than "
             "one image at a time, and avoid Python loops over pixels or latent dimensions.")
    check_loss_history(name, history, TRAINING_EPOCHS)
    score = mean_test_negative_elbo(model, test_images)
    if not score <= TEST_NEGATIVE_ELBO_BAND:
        with torch.no_grad():
            mu, _ = model.encode(test_images[:50])
            outputs = model.decode(mu)
        in_unit = bool(((outputs >= 0) & (outputs <= 1)).all())
        hint = ("decode must return logits (no sigmoid at the end): the loss applies the "
                "sigmoid itself." if in_unit else
                "Minimise the batch mean of negative_elbo (summed over pixels, not averaged) "
                "with Adam (lr 1e-3); draw eps with the generator for every minibatch.")
        fail(name, f"after {TRAINING_EPOCHS} epochs the mean test negative ELBO is "
             f"{score:.2f} nats per image; expected at most {TEST_NEGATIVE_ELBO_BAND:.0f}.", hint)
    return score


def _iwae_variants(model: nn.Module, x: torch.Tensor, k: int, seed: int) -> dict[str, torch.Tensor]:
    """The values typical mistakes give, for the hints (computed like the reference)."""
    with torch.no_grad():
        mu, logvar = model.encode(x)
        batch, latent_dim = mu.shape
        eps = torch.randn(k, batch, latent_dim, generator=make_generator(seed))

        def log_weights(eps: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, ...]:
            z = mu + std * eps  # (k, B, D)
            logits = model.decode(z.reshape(-1, latent_dim))
            targets = x.expand(k, *x.shape).reshape(-1, *x.shape[1:])
            log_px = reference.bernoulli_log_likelihood(logits, targets).reshape(k, batch)
            log_pz = -0.5 * (z**2 + reference.LOG_2PI).sum(2)
            log_qz = -0.5 * (((z - mu) / std) ** 2 + 2 * std.log() + reference.LOG_2PI).sum(2)
            return log_px, log_pz, log_qz

        log_px, log_pz, log_qz = log_weights(eps, torch.exp(0.5 * logvar))
        log_w = log_px + log_pz - log_qz
        swapped = torch.randn(batch, k, latent_dim, generator=make_generator(seed)).transpose(0, 1)
        sw_px, sw_pz, sw_qz = log_weights(swapped, torch.exp(0.5 * logvar))
        var_px, var_pz, var_qz = log_weights(eps, logvar.exp())
    log_k = math.log(k)
    return {
        "You averaged the log-weights (that is the k-sample ELBO estimate); L_k is the log "
        "of the mean weight: logsumexp(log_w, dim=0) - log(k).": log_w.mean(0),
        "Subtract log(k): L_k = logsumexp(log_w, dim=0) - log(k) is a log-MEAN-exp.":
            torch.logsumexp(log_w, 0),
        "The weights are p(x|z) p(z) / q(z|x): include log p(z) - log q(z|x), not only "
        "log p(x|z).": torch.logsumexp(log_px, 0) - log_k,
        "Draw the noise exactly as torch.randn(k, B, D, generator=generator), after "
        "encoding (you drew it with another shape or order).":
            torch.logsumexp(sw_px + sw_pz - sw_qz, 0) - log_k,
        "sigma = exp(0.5 * logvar); exp(logvar) is the variance.":
            torch.logsumexp(var_px + var_pz - var_qz, 0) - log_k,
    }


def check_iwae_bound(iwae_bound: Callable) -> None:
    """``iwae_bound(model, x, k, generator)``: the importance-weighted bound, shape ``(B,)``.

    The model is a seeded, untrained reference VAE (latent 3 and 20) on binarized test digits,
    for k = 1, 5 and 64, with ``make_generator(seed)``: the student's result must equal the
    reference, which draws ``eps = torch.randn(k, B, D, generator=generator)`` once after
    encoding. The log-weights are near -550 nats, so ``log(mean(exp(log_w)))`` underflows:
    the log-mean-exp must be computed stably. Tolerance ``rtol=1e-5, atol=2e-3``.
    """
    name = "iwae_bound"
    _reject_reference(name, iwae_bound)
    images, _ = load_mnist("test", binarized=True)
    for case, (latent_dim, batch, k) in enumerate(((3, 4, 1), (20, 3, 5), (20, 6, 64))):
        torch.manual_seed(SEED + case)
        model = reference.VAE(latent_dim).eval()
        x = images[20 : 20 + batch].clone()
        seed = SEED + 10 + case
        call = (f"{name}(model, x, k={k}, generator) with a VAE({latent_dim}) and x of shape "
                f"{tuple(x.shape)}")
        with torch.no_grad():
            got = call_student(name, iwae_bound, model, x.clone(), k, make_generator(seed))
            want = reference.iwae_bound(model, x, k, make_generator(seed))
        assert_close(
            got, want, function=name, call=call, rtol=1e-5, atol=2e-3,
            hint="log w_j = log p(x|z_j) + log N(z_j; 0, I) - log N(z_j; mu, sigma^2), with "
                 "eps = torch.randn(k, B, D, generator=generator) and z = mu + sigma * eps; "
                 "return torch.logsumexp(log_w, dim=0) - log(k), shape (B,). Computing "
                 "log(mean(exp(log_w))) directly underflows to -inf.",
            known_mistakes=_iwae_variants(model, x, k, seed),
        )
