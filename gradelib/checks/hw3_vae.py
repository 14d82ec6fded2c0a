"""Autograder checks for ``hw3_vae`` (syllabus §4, second edition).

The assignment is a conditional VAE with a learned conditional prior ``p(z | y)`` (Sohn et
al., 2015), the beta-weighted objective, and its rate-distortion view (Higgins et al., 2017;
Alemi et al., 2018). Each ``check_<name>`` calls the student's function or class on inputs
chosen here and compares the result in float64 with
:mod:`gradelib.checks.references.hw3_vae` (or with ``torch.distributions``), under the
tolerances in its docstring. ``known_mistakes`` turn the usual errors into targeted hints.

The checks follow the trusted-checker protocol (``gradelib.checks.assertions``). A student
model may be a proxy, so the checks only call it (``model.encode(x, labels)``,
``model.prior(labels)``, ``model.decode(z, labels)``) and compute everything else here from
the plain tensors it returns: the expected ELBO for a given ``eps``, the rate and distortion
of a trained model, and the classifier's verdict on samples decoded from noise drawn here.
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
    check_loss_history,
    describe,
    fail,
    seed_student,
    time_limit,
    to_float64,
    trains_model,
)
from gradelib.checks.references import hw3_vae as reference
from gradelib.data import load_mnist
from gradelib.device import make_generator
from gradelib.digit_classifier import classify_digits, reference_digit_classifier

__all__ = [
    "check_diag_gaussian_kl",
    "check_conditional_prior",
    "check_cvae",
    "check_cvae_negative_elbo",
    "check_train_cvae",
    "check_rate_distortion",
    "model_rate_distortion",
    "conditional_samples",
    "sample_accuracy",
    "LATENT_DIM",
    "BETAS",
    "TRAINING_EPOCHS",
    "SAMPLES_PER_DIGIT",
    "TRAINING_TIME_BUDGET_S",
    "TRAINING_TIME_FACTOR",
    "training_time_budget",
    "SAMPLE_ACCURACY_BAND",
    "ORDER_MARGIN_NATS",
    "rates_and_distortions_ordered",
]

SEED = 2015
#: Latent size of the models the hidden checks build. Four dimensions leave the code room to
#: carry style, and keep a Gaussian prior per digit a good fit to that digit's codes, so
#: decoded prior samples show the requested digit (benchmarks/hw3_vae.py).
LATENT_DIM = 4
#: The KL weights of the rate-distortion check (syllabus §4).
BETAS = (0.25, 1.0, 4.0)
#: Epochs of each training run in :func:`check_train_cvae` (one run per beta).
TRAINING_EPOCHS = 8
#: Samples drawn per requested digit for the classifier (noise drawn here).
SAMPLES_PER_DIGIT = 30
#: Wall-clock seconds always allowed for one training run. The reference took 3.7-5.6 s per
#: run with a load average of 5.0 on 2 cores (benchmarks/hw3_vae.py; the first edition's
#: MLP, of the same cost, took 26-34 s at a load average of 20). The budget stops runaway
#: loops, not honest ones.
TRAINING_TIME_BUDGET_S = 60.0
#: On a slower or busier machine the budget grows to this many times what the reference
#: takes for the same epochs, timed (one epoch) just before (:func:`training_time_budget`).
TRAINING_TIME_FACTOR = 5.0
#: Smallest accepted share of conditional samples (beta = 1) that the course's digit
#: classifier labels as the requested digit, over 10 x SAMPLES_PER_DIGIT samples. Measured by
#: benchmarks/hw3_vae.py (recorded in benchmarks/results/hw3_vae.json), trained as this check
#: trains. The solution (labels through FiLM embeddings) reaches 0.987, and 0.96-0.987 on the
#: held-out seeds 11-13; a weaker but acceptable model (200 hidden units, a 16-wide label
#: embedding concatenated, a linear prior, Adam 1e-3) 0.977 (0.937-0.983 held out); the
#: solution with its FiLM tables started at zero, the lowest acceptable design measured,
#: 0.597. (The chapter's one-hot CVAE with the prior bolted on scores 0.833, but check_cvae
#: rejects its architecture.) A loop that shuffles the labels once with a permutation of
#: their own learns to ignore them (its loss falls) and scores 0.127, near chance (0.1). One
#: that pairs them anew each epoch (labels not shuffled with the images) scores 0.123, but its
#: loss rises, which the loss history check reports first. The other broken loops are caught
#: elsewhere, not by this band: with the KL taken to N(0, I) the prior never moves (accuracy 0.987); with the
#: reconstruction averaged over pixels the rate collapses to 0 for every beta, so the
#: ordering fails (the decoded class means score 1.0); with beta on the reconstruction term
#: the ordering is reversed (rates 3.86, 7.33, 11.78 for beta 0.25, 1, 4).
SAMPLE_ACCURACY_BAND = 0.4

#: Smallest step, in nats, by which the mean test rate must fall and the mean test distortion
#: must rise from one beta of BETAS to the next. Measured by benchmarks/hw3_vae.py: the
#: solution's rates are 11.85, 7.33, 3.90 and its distortions 112.58, 114.55, 125.48 (smallest
#: step 1.97; 2.48-3.73 on the held-out seeds); the weaker acceptable model's smallest step is
#: 3.52 (1.90 on held-out seed 12). A loop that averages the reconstruction over pixels
#: collapses the rate to 0.00 for every beta, and its distortions differ by 0.03 or less:
#: without a margin, noise could order them.
ORDER_MARGIN_NATS = 0.5

FLOAT32 = {"rtol": 1e-5, "atol": 1e-5}


def rates_and_distortions_ordered(rates: list[float], distortions: list[float]) -> bool:
    """Whether the rates fall and the distortions rise along BETAS, by ORDER_MARGIN_NATS each step."""
    return all(r0 - r1 >= ORDER_MARGIN_NATS for r0, r1 in zip(rates, rates[1:])) and \
        all(d1 - d0 >= ORDER_MARGIN_NATS for d0, d1 in zip(distortions, distortions[1:]))


# ----------------------------------------------------------------------------- helpers


def _normal_kl(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """``torch.distributions``' KL between diagonal Gaussians, summed over D, float64."""
    q = torch.distributions.Normal(mu_q.double(), torch.exp(0.5 * logvar_q.double()))
    p = torch.distributions.Normal(mu_p.double(), torch.exp(0.5 * logvar_p.double()))
    return torch.distributions.kl_divergence(q, p).sum(dim=1)


def _pair(function: str, value: object, call: str, shape: tuple[int, ...], what: str):
    """A returned 2-tuple of tensors, each of ``shape``, as float64."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        fail(function, f"{call} returned {type(value).__name__}; expected a tuple {what}.")
    parts = []
    for index, part in enumerate(value):
        converted = to_float64(part, function=function, what=f"element {index} of the returned tuple")
        assert_shape(converted, shape, function=function, call=f"{call}, element {index}",
                     hint=f"Return {what}, each of shape {shape}.")
        if not bool(torch.isfinite(converted).all()):
            fail(function, f"{call} returned non-finite values in element {index}.")
        parts.append(converted)
    return parts


def _data(n: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` binarized test digits spread over the classes (the test set is sorted by label)."""
    images, labels = load_mnist("test", binarized=True)
    index = (torch.arange(n) * (len(images) // n) + offset) % len(images)
    return images[index].clone(), labels[index].clone()


def _build(name: str, model_class: Callable, *args, seed: int = SEED, **kwargs):
    seed_student(seed)
    model = call_student(name, model_class, *args, **kwargs)
    info = describe(model)
    if "torch.nn.modules.module.Module" not in info.get("mro", []):
        fail(name, f"{name}(...) is a {info.get('type')}; expected an nn.Module.",
             "Subclass torch.nn.Module and call super().__init__() first.")
    return model, info


def _parameter_count(info: dict, prefix: str = "") -> int:
    return sum(math.prod(shape) for m in info["modules"]
               if m["name"] == prefix or m["name"].startswith(prefix + ".") or not prefix
               for shape in m["parameters"].values())


def _perturb_prior(model, seed: int) -> None:
    """Move the student's prior away from its initialisation (often N(0, I) for every label).

    The prior's floating-point tensors get seeded noise of scale 0.5 through
    ``state_dict``/``load_state_dict``, so that a KL taken to N(0, I) instead of ``p(z | y)``
    gives a different value.
    """
    prior = model.prior
    state = prior.state_dict()
    g = make_generator(seed)
    perturbed = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and "running" not in key:
            value = value + 0.5 * torch.randn(value.shape, generator=g).to(value.dtype)
        perturbed[key] = value
    prior.load_state_dict(perturbed)


def model_rate_distortion(model, images: torch.Tensor, labels: torch.Tensor, eps: torch.Tensor,
                          function: str = "rate_distortion") -> dict[str, torch.Tensor]:
    """Everything the checks need from one pass of a (student) model, computed here, float64.

    Calls ``model.encode``, ``model.prior`` and ``model.decode`` on ``z = mu + exp(logvar/2)
    * eps`` (formed here in float32), and returns ``{"mu", "logvar", "mu_p", "logvar_p",
    "logits", "rate", "distortion", "kl_standard", "kl_swapped", "decoded_mean_distortion",
    "pixel_mean_distortion"}``.
    """
    batch = len(images)
    encoded = call_student(f"{function}: model.encode", model.encode, images.clone(), labels.clone())
    mu, logvar = _pair("CVAE.encode", encoded, "model.encode(x, labels)", tuple(eps.shape),
                       "(mu, logvar)")
    prior = model.prior
    mu_p, logvar_p = _pair("CVAE.prior", call_student("CVAE.prior", prior, labels.clone()),
                           "model.prior(labels)", tuple(eps.shape), "(mu_p, logvar_p)")
    z = (mu.float() + torch.exp(0.5 * logvar.float()) * eps.float())  # (B, D)
    logits = to_float64(call_student("CVAE.decode", model.decode, z, labels.clone()),
                        function="CVAE.decode")
    assert_shape(logits, (batch, 1, 28, 28), function="CVAE.decode",
                 call="model.decode(z, labels)", hint="Return logits of shape (B, 1, 28, 28).")
    at_mean = to_float64(call_student("CVAE.decode", model.decode, mu.float(), labels.clone()),
                         function="CVAE.decode")
    x = images.double()
    per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1)
    zeros = torch.zeros_like(mu)
    return {
        "mu": mu, "logvar": logvar, "mu_p": mu_p, "logvar_p": logvar_p, "logits": logits,
        "rate": reference.diag_gaussian_kl(mu, logvar, mu_p, logvar_p),
        "distortion": per_pixel.sum(1),
        "kl_standard": reference.diag_gaussian_kl(mu, logvar, zeros, zeros),
        "kl_swapped": reference.diag_gaussian_kl(mu_p, logvar_p, mu, logvar),
        "decoded_mean_distortion": reference.bernoulli_distortion(at_mean, x),
        "pixel_mean_distortion": per_pixel.mean(1),
    }


# ----------------------------------------------------------------------------- the functions


def _kl_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = make_generator(SEED)

    def randn(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g, dtype=dtype)

    cases = [("random float32 (B=5, D=3)", randn(5, 3), randn(5, 3), randn(5, 3), randn(5, 3)),
             ("random float64 (B=4, D=20)", randn(4, 20, dtype=torch.float64),
              0.5 * randn(4, 20, dtype=torch.float64), randn(4, 20, dtype=torch.float64),
              0.5 * randn(4, 20, dtype=torch.float64))]
    mu, logvar = randn(3, 6), randn(3, 6)
    cases.append(("q equal to p (KL = 0)", mu, logvar, mu.clone(), logvar.clone()))
    cases.append(("p = N(0, I)", randn(3, 6), randn(3, 6), torch.zeros(3, 6), torch.zeros(3, 6)))
    cases.append(("small and large variances on both sides", randn(2, 4),
                  torch.tensor([[-6.0, -2.0, 1.5, 3.0], [0.0, -4.0, 2.0, -0.5]]), randn(2, 4),
                  torch.tensor([[2.0, -3.0, -1.0, 4.0], [-5.0, 0.5, 1.0, 0.0]])))
    cases.append(("a single example (B=1, D=1)", torch.tensor([[1.5]]), torch.tensor([[-0.7]]),
                  torch.tensor([[-0.5]]), torch.tensor([[0.4]])))
    return cases


def check_diag_gaussian_kl(diag_gaussian_kl: Callable) -> None:
    """``diag_gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)``: ``KL(q || p)`` per example, ``(B,)``.

    Compared with ``torch.distributions.kl_divergence`` of the two ``Normal`` distributions
    summed over D, computed here in float64. Cases: random float32 and float64, ``q = p``
    (KL 0), ``p = N(0, I)``, very small and large variances, one example. Tolerance
    ``rtol=1e-5, atol=1e-5``.
    """
    name = "diag_gaussian_kl"
    for label, mu_q, logvar_q, mu_p, logvar_p in _kl_cases():
        got = call_student(name, diag_gaussian_kl, mu_q.clone(), logvar_q.clone(), mu_p.clone(),
                           logvar_p.clone())
        want = _normal_kl(mu_q, logvar_q, mu_p, logvar_p)
        mq, lq, mp, lp = (t.double() for t in (mu_q, logvar_q, mu_p, logvar_p))
        ratio, square = torch.exp(lq - lp), (mq - mp) ** 2
        terms = lp - lq + ratio + square * torch.exp(-lp) - 1  # (B, D)
        assert_close(
            got, want, function=name,
            call=f"{name}(mu_q, logvar_q, mu_p, logvar_p) for {label} (dtype {mu_q.dtype})",
            **FLOAT32,
            hint="KL(q || p) = 1/2 sum_d [logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) "
                 "/ exp(logvar_p) - 1], one value per example: shape (B,).",
            known_mistakes={
                "The direction is swapped: that is KL(p || q). The first two arguments are q.":
                    _normal_kl(mu_p, logvar_p, mu_q, logvar_q),
                "The KL has the wrong sign: it is never negative.": -want,
                "The factor 1/2 is missing.": terms.sum(1),
                "Sum over the latent dimensions; you took the mean.": 0.5 * terms.mean(1),
                "Divide (mu_q - mu_p)^2 by the prior's variance exp(logvar_p) too.":
                    0.5 * (lp - lq + ratio + square - 1).sum(1),
                "The log term is logvar_p - logvar_q (log sigma_p^2 / sigma_q^2); your sign is "
                "reversed.": 0.5 * (lq - lp + ratio + square * torch.exp(-lp) - 1).sum(1),
                "logvar is log(sigma^2): the variance ratio is exp(logvar_q - logvar_p), not its "
                "square root.": 0.5 * (lp - lq + ratio.sqrt() + square * torch.exp(-lp) - 1).sum(1),
                "That is the KL to N(0, I): the prior (mu_p, logvar_p) is ignored.":
                    0.5 * (mq**2 + lq.exp() - 1 - lq).sum(1),
                "Return one value per example (shape (B,)); you summed over the batch too.":
                    want.sum(),
            },
        )


def _labels_case() -> torch.Tensor:
    return torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 3, 7], dtype=torch.int64)


def check_conditional_prior(ConditionalPrior: Callable) -> None:  # noqa: N803 - the graded class
    """``ConditionalPrior(num_classes, latent_dim)``: labels ``(B,)`` to ``(mu_p, logvar_p)``.

    For ``(10, 4)`` and ``(5, 3)``: both outputs are ``(B, D)`` and finite, equal labels give
    equal rows, a sub-batch gives the same rows as the full batch (tolerance ``1e-6``), and
    the output changes when the module's parameters change (it is learnable).
    """
    name = "ConditionalPrior"
    for num_classes, latent_dim in ((10, LATENT_DIM), (5, 3)):
        prior, info = _build(name, ConditionalPrior, num_classes, latent_dim)
        if _parameter_count(info) == 0:
            fail(name, f"{name}({num_classes}, {latent_dim}) has no parameters: the prior must be "
                 "learned.", "Hold one learnable (mu, logvar) per class, e.g. "
                 "nn.Embedding(num_classes, 2 * latent_dim).")
        prior.eval()
        labels = _labels_case() % num_classes
        call = f"{name}({num_classes}, {latent_dim})(labels of shape {tuple(labels.shape)})"
        mu_p, logvar_p = _pair(name, call_student(name, prior, labels.clone()), call,
                               (len(labels), latent_dim), "(mu_p, logvar_p)")
        for which, values in (("mu_p", mu_p), ("logvar_p", logvar_p)):
            for i in range(len(labels)):
                for j in range(i):
                    if labels[i] == labels[j] and not torch.allclose(values[i], values[j], atol=1e-6):
                        fail(name, f"{call}: rows {j} and {i} of {which} differ although both "
                             f"labels are {int(labels[i])}.",
                             "The prior is a function of the label only: p(z | y).")
        part = _pair(name, call_student(name, prior, labels[:4].clone()), f"{name}(labels[:4])",
                     (4, latent_dim), "(mu_p, logvar_p)")
        for which, whole, sub in (("mu_p", mu_p, part[0]), ("logvar_p", logvar_p, part[1])):
            assert_close(sub, whole[:4], function=name,
                         call=f"{name}(labels[:4]), {which} (compared with the first four rows for "
                              "the whole batch)", rtol=1e-6, atol=1e-6,
                         hint="Each example's prior depends on its own label, not on the batch.")
        _perturb_prior(_Holder(prior), SEED + 1)
        moved = _pair(name, call_student(name, prior, labels.clone()), call,
                      (len(labels), latent_dim), "(mu_p, logvar_p)")
        if torch.allclose(moved[0], mu_p) and torch.allclose(moved[1], logvar_p):
            fail(name, f"{call}: the output did not change when the module's parameters were "
                 "changed.", "Compute (mu_p, logvar_p) from the module's own parameters, "
                 "so that training can move the prior.")


class _Holder:
    """``_perturb_prior`` takes a model with a ``prior`` attribute; this wraps a bare prior."""

    def __init__(self, prior):
        self.prior = prior


EMBEDDING_TYPE = "torch.nn.modules.sparse.Embedding"


def _label_embeddings(info: dict, num_classes: int) -> list[str]:
    """Names of the ``nn.Embedding`` modules outside ``prior`` with ``num_classes`` rows."""
    return [m["name"] for m in info["modules"]
            if m["type"] == EMBEDDING_TYPE and m["name"] != "prior"
            and not m["name"].startswith("prior.")
            and tuple(m["parameters"].get("weight", ()))[:1] == (num_classes,)]


def _perturb_modules(model, names: list[str], seed: int) -> None:
    """Add seeded noise of scale 0.5 to the floating tensors of the named submodules."""
    state = model.state_dict()
    g = make_generator(seed)
    prefixes = tuple(f"{name}." for name in names)
    perturbed = {}
    for key, value in state.items():
        if key.startswith(prefixes) and isinstance(value, torch.Tensor) and value.is_floating_point():
            value = value + 0.5 * torch.randn(value.shape, generator=g).to(value.dtype)
        perturbed[key] = value
    model.load_state_dict(perturbed)


def check_cvae(CVAE: Callable) -> None:  # noqa: N803 - the graded class
    """``CVAE(latent_dim, num_classes=10)``: shapes of ``encode``, ``decode`` and ``prior``, and labels
    that enter through a learned embedding.

    ``CVAE(4)`` and ``CVAE(3, num_classes=5)``, in eval mode, on binarized test digits:
    ``encode(x, labels)`` gives ``(mu, logvar)``, each ``(B, D)``. ``decode(z, labels)``
    gives logits ``(B, 1, 28, 28)``. The attribute ``prior`` is a submodule with parameters,
    and ``prior(labels)`` gives ``(mu_p, logvar_p)``, each ``(B, D)``. Everything must be
    finite. Besides the prior's, the model must hold at least one ``nn.Embedding`` with
    ``num_classes`` rows (the chapter's conditional VAE concatenates a one-hot label
    instead), and when the weights of those embeddings change (seeded noise of scale 0.5,
    through ``state_dict``), both the encoder's ``(mu, logvar)`` and the decoder's logits
    must change (by more than ``1e-6``): the label reaches both networks through them.
    """
    name = "CVAE"
    for latent_dim, kwargs in ((LATENT_DIM, {}), (3, {"num_classes": 5})):
        num_classes = kwargs.get("num_classes", 10)
        model, info = _build(name, CVAE, latent_dim, **kwargs)
        shown = f"CVAE({latent_dim}{', num_classes=5' if kwargs else ''})"
        if not any(m["name"] == "prior" for m in info["modules"]):
            fail(name, f"{shown} has no submodule named prior.",
                 "Set self.prior = ConditionalPrior(num_classes, latent_dim) in __init__.")
        if _parameter_count(info, "prior") == 0:
            fail(name, f"{shown}.prior has no parameters: the prior p(z | y) must be learned.")
        embeddings = _label_embeddings(info, num_classes)
        if not embeddings:
            found = [f"{m['name']} ({tuple(m['parameters'].get('weight', ()))})" for m in info["modules"]
                     if m["type"] == EMBEDDING_TYPE and m["name"] != "prior"
                     and not m["name"].startswith("prior.")]
            fail(name, f"{shown} has no nn.Embedding with num_classes = {num_classes} rows besides "
                 f"the prior's" + (f" (found {', '.join(found)})" if found else "") + ".",
                 "The label enters the encoder and the decoder through a learned embedding, "
                 "nn.Embedding(num_classes, ...), not a one-hot vector concatenated to the "
                 "input (that is the chapter's conditional VAE).")
        model.eval()
        images, labels = _data(6)
        labels = labels % num_classes
        eps = torch.randn(6, latent_dim, generator=make_generator(SEED + 2))
        values = model_rate_distortion(model, images, labels, eps, function=name)
        if not bool(torch.isfinite(values["logits"]).all()):
            fail(f"{name}.decode", f"{shown}.decode(z, labels) returned non-finite logits.")
        z = values["mu"].float() + torch.exp(0.5 * values["logvar"].float()) * eps  # (B, D), as decoded
        _perturb_modules(model, embeddings, SEED + 8)
        encoded = _pair(f"{name}.encode", call_student(f"{name}.encode", model.encode, images.clone(),
                                                       labels.clone()),
                        "model.encode(x, labels)", (6, latent_dim), "(mu, logvar)")
        logits = to_float64(call_student(f"{name}.decode", model.decode, z, labels.clone()),
                            function=f"{name}.decode")
        listed = ", ".join(embeddings)
        for part, before, after in (("encode(x, labels)", torch.cat([values["mu"], values["logvar"]], 1),
                                     torch.cat(encoded, 1)),
                                    ("decode(z, labels)", values["logits"], logits)):
            if torch.allclose(before, after.reshape(before.shape), rtol=0.0, atol=1e-6):
                fail(name, f"{shown}.{part} did not change when the weights of its label "
                     f"embedding ({listed}) were changed.",
                     "Feed the label to both the encoder and the decoder through the learned "
                     "embedding (e.g. its rows scale and shift the hidden units); do not use a "
                     "one-hot vector.")


def _elbo_setup(CVAE: Callable, seed: int):  # noqa: N803
    model, _ = _build("CVAE", CVAE, LATENT_DIM)
    model.eval()
    _perturb_prior(model, seed)
    images, labels = _data(5, offset=seed % 50)
    eps = torch.randn(5, LATENT_DIM, generator=make_generator(seed))
    return model, images, labels, eps


def check_cvae_negative_elbo(cvae_negative_elbo: Callable, CVAE: Callable) -> None:  # noqa: N803
    """``cvae_negative_elbo(model, x, labels, eps, beta=1.0)``: ``-log p(x | z, y) + beta KL(q || p(z | y))``.

    The student's ``CVAE(4)`` is built with seeded weights, put in eval mode, and its prior
    is moved away from its initialisation (so that the KL to ``p(z | y)`` differs from the KL
    to N(0, I)). The expected value is computed here from the model's own ``encode``,
    ``prior`` and ``decode`` outputs with ``z = mu + exp(logvar / 2) * eps``. Cases: the
    default ``beta`` and ``beta`` = 0.25 and 4, on five binarized test digits. Shape ``(B,)``.
    Tolerance ``rtol=1e-5, atol=1e-3`` nats (the model computes in float32).
    """
    name = "cvae_negative_elbo"
    model, images, labels, eps = _elbo_setup(CVAE, SEED + 3)
    values = model_rate_distortion(model, images, labels, eps, function=name)
    rate, distortion = values["rate"], values["distortion"]
    for beta in (None, 0.25, 4.0):
        shown = 1.0 if beta is None else beta
        arguments = (model, images.clone(), labels.clone(), eps.clone())
        if beta is None:
            got = call_student(name, cvae_negative_elbo, *arguments)
            call = f"{name}(model, x, labels, eps) (default beta) on 5 digits"
        else:
            got = call_student(name, cvae_negative_elbo, *arguments, beta)
            call = f"{name}(model, x, labels, eps, beta={beta}) on 5 digits"
        want = distortion + shown * rate
        known = {
            "That is the ELBO; return the negative ELBO, -log p(x | z, y) + beta * KL.": -want,
            "The KL is subtracted: the negative ELBO adds beta * KL(q || p).": distortion - shown * rate,
            "beta multiplies the KL term only, not the reconstruction term.":
                shown * distortion + rate,
            "The KL must be taken to the learned prior p(z | y) = model.prior(labels), not to "
            "N(0, I).": distortion + shown * values["kl_standard"],
            "The KL direction is swapped: KL(q(z | x, y) || p(z | y)) has the encoder's "
            "Gaussian first.": distortion + shown * values["kl_swapped"],
            "Use the given eps: z = mu + exp(logvar / 2) * eps (you decoded z = mu).":
                values["decoded_mean_distortion"] + shown * rate,
            "Sum the reconstruction term over the pixels of each image; you took the mean.":
                values["pixel_mean_distortion"] + shown * rate,
            "Return one value per example, shape (B,); you reduced over the batch.": want.mean(),
        }
        if beta is None:
            known = {"The default beta is 1.0: with it, the objective is the plain negative ELBO.":
                     distortion, **known}
        assert_close(got, want, function=name, call=call, rtol=1e-5, atol=1e-3,
                     hint="mu, logvar = model.encode(x, labels); mu_p, logvar_p = model.prior(labels); "
                          "z = mu + exp(logvar / 2) * eps; distortion = binary cross-entropy of "
                          "model.decode(z, labels) with x, summed over pixels; return distortion + "
                          "beta * diag_gaussian_kl(mu, logvar, mu_p, logvar_p).",
                     known_mistakes=known)


def check_rate_distortion(rate_distortion: Callable, CVAE: Callable) -> None:  # noqa: N803
    """``rate_distortion(model, images, labels, generator)``: ``(rate (B,), distortion (B,))`` in nats.

    On the student's ``CVAE(4)`` (seeded, eval mode, prior moved as in
    :func:`check_cvae_negative_elbo`), eight binarized digits. The noise must be drawn as
    ``torch.randn(mu.shape, generator=generator)``, so both outputs are compared with values
    computed here from the model's outputs: the rate is the KL to ``p(z | y)`` and the
    distortion is ``-log p(x | z, y)``. Tolerance ``rtol=1e-5, atol=1e-3``.
    """
    name = "rate_distortion"
    model, _, _, _ = _elbo_setup(CVAE, SEED + 4)
    images, labels = _data(8, offset=7)
    seed = SEED + 5
    generator = make_generator(seed)
    before = generator.get_state()
    call = f"{name}(model, images of shape {tuple(images.shape)}, labels, generator)"
    got = call_student(name, rate_distortion, model, images.clone(), labels.clone(), generator)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        fail(name, f"{call} returned {type(got).__name__}; expected a tuple (rate, distortion).")
    if torch.equal(generator.get_state(), before):
        fail(name, f"{call} never drew from the generator it was given.",
             "Draw eps = torch.randn(mu.shape, generator=generator) after encoding; torch's "
             "global random state must not be used.")
    eps = torch.randn(len(images), LATENT_DIM, generator=make_generator(seed))
    values = model_rate_distortion(model, images, labels, eps, function=name)
    rate, distortion = values["rate"], values["distortion"]
    assert_close(got[0], rate, function=name, call=f"{call}, the rate", rtol=1e-5, atol=1e-3,
                 hint="The rate is KL(q(z | x, y) || p(z | y)) in closed form, one value per image.",
                 known_mistakes={
                     "Return (rate, distortion) in that order.": distortion,
                     "The rate is the KL to the learned prior model.prior(labels), not to N(0, I).":
                         values["kl_standard"],
                     "The KL direction is swapped: the encoder's Gaussian comes first.":
                         values["kl_swapped"],
                 })
    assert_close(got[1], distortion, function=name, call=f"{call}, the distortion",
                 rtol=1e-5, atol=1e-3,
                 hint="The distortion is -log p(x | z, y) at z = mu + exp(logvar / 2) * eps, summed "
                      "over the pixels of each image.",
                 known_mistakes={
                     "Return (rate, distortion) in that order.": rate,
                     "The distortion is the negative log-likelihood, >= 0.": -distortion,
                     "Sample z = mu + exp(logvar / 2) * eps with eps drawn from the generator "
                     "(you decoded the mean).": values["decoded_mean_distortion"],
                     "Sum over the pixels of each image; you took the mean.":
                         values["pixel_mean_distortion"],
                 })


# ----------------------------------------------------------------------------- training


def training_time_budget(images: torch.Tensor, labels: torch.Tensor) -> float:
    """Seconds allowed for one training run of ``TRAINING_EPOCHS`` epochs, under the current load.

    ``max(TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR * TRAINING_EPOCHS * t)`` where ``t`` is
    what the reference takes for one epoch, measured now.
    """
    state = torch.random.get_rng_state()
    torch.manual_seed(SEED)
    probe = reference.CVAE(LATENT_DIM)
    torch.random.set_rng_state(state)
    return calibrated_time_budget(
        TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR,
        lambda: reference.train_cvae(probe, images, labels, 1, 1.0, make_generator(SEED)),
        scale=TRAINING_EPOCHS)


def conditional_samples(model, labels: torch.Tensor, eps: torch.Tensor,
                        function: str = "train_cvae") -> torch.Tensor:
    """Decoded pixel probabilities of ``z = mu_p + exp(logvar_p / 2) * eps`` for each label.

    The prior parameters come from ``model.prior(labels)``, the noise ``eps`` ``(B, D)`` is
    drawn by the caller, and the sigmoid of the decoded logits is taken here. Returns
    ``(B, 1, 28, 28)`` float32.
    """
    mu_p, logvar_p = _pair("CVAE.prior", call_student("CVAE.prior", model.prior, labels.clone()),
                           "model.prior(labels)", tuple(eps.shape), "(mu_p, logvar_p)")
    z = (mu_p + torch.exp(0.5 * logvar_p) * eps.double()).float()  # (B, D)
    logits = to_float64(call_student(function, model.decode, z, labels.clone()),
                        function="CVAE.decode")
    assert_shape(logits, (len(labels), 1, 28, 28), function="CVAE.decode",
                 call="model.decode(z, labels)")
    return torch.sigmoid(logits).float()


def sample_accuracy(model, function: str = "train_cvae") -> tuple[float, list[float]]:
    """Share of conditional samples the course's digit classifier labels as requested.

    ``SAMPLES_PER_DIGIT`` samples per digit, noise drawn here with a fixed seed. Returns
    ``(overall share, [share per digit])``.
    """
    requested = torch.arange(10).repeat_interleave(SAMPLES_PER_DIGIT)  # (10 * S,)
    eps = torch.randn(len(requested), LATENT_DIM, generator=make_generator(SEED + 6))
    images = conditional_samples(model, requested, eps, function)
    with torch.enable_grad():  # the classifier is trained (once per process) on first use
        judge, _ = reference_digit_classifier()
    correct = (classify_digits(judge, images) == requested).float()  # (10 * S,)
    return float(correct.mean()), correct.reshape(10, SAMPLES_PER_DIGIT).mean(1).tolist()


@trains_model
def check_train_cvae(train_cvae: Callable, CVAE: Callable) -> float:  # noqa: N803
    """Train ``CVAE(LATENT_DIM)`` with the student's loop for each beta in ``BETAS``; return the accuracy.

    Each run calls ``train_cvae(model, images, labels, TRAINING_EPOCHS, beta, generator)`` on
    the 4,000 binarized training digits, with the same seeds, within
    :func:`training_time_budget`. The history must be a list of ``TRAINING_EPOCHS`` finite
    floats that decreases, the generator must have been used, and the prior
    ``model.prior(0..9)`` must have changed. For ``beta = 1``, at least
    ``SAMPLE_ACCURACY_BAND`` of the conditional samples (noise drawn here) must be labelled as
    the requested digit by the course's classifier. Over the three runs, the mean test rate
    (KL to ``p(z | y)``) must fall and the mean test distortion must rise as beta grows, by at
    least ``ORDER_MARGIN_NATS`` per step.
    Both are computed here on the 1,000 binarized test digits. Returns the sample accuracy
    at ``beta = 1``.
    """
    name = "train_cvae"
    images, labels = load_mnist("train", binarized=True)
    test_images, test_labels = load_mnist("test", binarized=True)
    budget = training_time_budget(images, labels)
    eps = torch.randn(len(test_images), LATENT_DIM, generator=make_generator(SEED + 7))
    classes = torch.arange(10)
    measured: dict[float, tuple[float, float]] = {}
    accuracy = math.nan
    for beta in (1.0, 0.25, 4.0):
        model, _ = _build("CVAE", CVAE, LATENT_DIM)
        prior_before = _pair("CVAE.prior", call_student("CVAE.prior", model.prior, classes.clone()),
                             "model.prior(labels)", (10, LATENT_DIM), "(mu_p, logvar_p)")
        generator = make_generator(SEED)
        before = generator.get_state()
        call = f"{name}(model, images, labels, epochs={TRAINING_EPOCHS}, beta={beta}, generator)"
        with time_limit(name, budget, what=call):
            history = call_student(name, train_cvae, model, images.clone(), labels.clone(),
                                   TRAINING_EPOCHS, beta, generator)
        check_loss_history(name, history, TRAINING_EPOCHS)
        if torch.equal(generator.get_state(), before):
            fail(name, f"{call} never drew from the generator it was given.",
                 "Shuffle with torch.randperm(len(images), generator=generator) and draw each "
                 "minibatch's eps with torch.randn(..., generator=generator).")
        model.eval()
        prior_after = _pair("CVAE.prior", call_student("CVAE.prior", model.prior, classes.clone()),
                            "model.prior(labels)", (10, LATENT_DIM), "(mu_p, logvar_p)")
        if all(torch.allclose(a, b, atol=1e-7) for a, b in zip(prior_before, prior_after)):
            fail(name, f"{call}: the prior model.prior(labels) did not change during training.",
                 "The prior p(z | y) is learned: take the KL to model.prior(labels) and give the "
                 "optimiser all of model.parameters().")
        values = model_rate_distortion(model, test_images, test_labels, eps, function=name)
        measured[beta] = (float(values["rate"].mean()), float(values["distortion"].mean()))
        if beta == 1.0:
            accuracy, per_digit = sample_accuracy(model, name)
            if not accuracy >= SAMPLE_ACCURACY_BAND:
                shown = ", ".join(f"{d}: {100 * a:.0f}%" for d, a in enumerate(per_digit))
                fail(name, f"after {TRAINING_EPOCHS} epochs at beta=1, the digit classifier "
                     f"labels {100 * accuracy:.0f}% of the conditional samples as the requested "
                     f"digit ({shown}); at least {100 * SAMPLE_ACCURACY_BAND:.0f}% is expected.",
                     "Pair each image with its own label in every minibatch (shuffle both with "
                     "the same order) and minimise the batch mean of cvae_negative_elbo with Adam.")
    rates = [measured[b][0] for b in BETAS]
    distortions = [measured[b][1] for b in BETAS]
    table = ", ".join(f"beta={b}: rate {r:.2f}, distortion {d:.2f}"
                      for b, r, d in zip(BETAS, rates, distortions))
    if not rates_and_distortions_ordered(rates, distortions):
        fail(name, f"the test rate (nats) should fall and the distortion rise as beta grows, by at "
             f"least {ORDER_MARGIN_NATS:g} nats from one beta to the next; measured {table}.",
             "Pass beta on to cvae_negative_elbo: it weights the KL term of the loss you minimise, "
             "and nothing else. Sum the reconstruction term over the pixels: averaged, it is too "
             "weak for the code to carry anything.")
    return accuracy
