"""The hw3 autograder checks accept the reference and reject realistic wrong answers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradelib import vae as ref
from gradelib.checks import assertions
from gradelib.checks import hw3_vae as checks

# The checks refuse gradelib's own objects handed in directly, so "the reference" here is a
# thin function of this module that returns the reference's values.


def kl_ok(mu, logvar):
    return ref.gaussian_kl(mu, logvar)


def reparameterize_ok(mu, logvar, eps):
    return ref.reparameterize(mu, logvar, eps)


def log_lik_ok(logits, x):
    return ref.bernoulli_log_likelihood(logits, x)


def negative_elbo_ok(x, logits, mu, logvar):
    return ref.negative_elbo(x, logits, mu, logvar)


def iwae_ok(model, x, k, generator):
    return ref.iwae_bound(model, x, k, generator)


class NotebookVAE(nn.Module):
    """The homework's suggested model, written independently of gradelib (784-H-2D / D-H-784)."""

    def __init__(self, latent_dim, hidden=400, final=None):
        super().__init__()
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * latent_dim))
        self.dec = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 784),
                                 *([final] if final is not None else []), nn.Unflatten(1, (1, 28, 28)))

    def encode(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z):
        return self.dec(z)


def notebook_train_vae(model, train_images, epochs, generator, pixel_reduction="sum"):
    """The homework's solution loop (Adam 1e-3, batches of 100), optionally with a bug."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(train_images), generator=generator)
        total = 0.0
        for start in range(0, len(train_images), 100):
            x = train_images[order[start:start + 100]]
            mu, logvar = model.encode(x)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator)
            per_pixel = F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="none")
            reconstruction = per_pixel.flatten(1).sum(1) if pixel_reduction == "sum" else \
                per_pixel.flatten(1).mean(1)
            kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
            loss = (reconstruction + kl).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        history.append(total / len(train_images))
    return history


# --- gaussian_kl ----------------------------------------------------------------------------

def test_kl_check_accepts_reference():
    checks.check_gaussian_kl(kl_ok)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda mu, lv: -0.5 * (mu**2 + lv.exp() - 1 - lv).sum(1), "wrong sign"),
        (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv).sum(1), r"'- 1' inside the sum is missing"),
        (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1 - lv).mean(1), "you took the mean"),
        (lambda mu, lv: (mu**2 + lv.exp() - 1 - lv).sum(1), "factor 1/2 is missing"),
        (lambda mu, lv: 0.5 * (mu**2 + (2 * lv).exp() - 1 - 2 * lv).sum(1), r"not exp\(2 \* logvar\)"),
        (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1 - lv).sum(), r"summed over the batch"),
        (lambda mu, lv: torch.distributions.kl_divergence(
            torch.distributions.Normal(mu, torch.exp(0.5 * lv)),
            torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1),
         "built a torch.distributions distribution"),
        (ref.gaussian_kl, "gradelib's reference implementation"),
    ],
    ids=["sign", "missing-minus-one", "mean-over-latents", "no-half", "logvar-as-log-sigma",
         "batch-sum", "torch-distributions", "reference-itself"],
)
def test_kl_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_gaussian_kl(wrong)


def test_kl_check_restores_torch_distributions():
    with pytest.raises(AssertionError):
        checks.check_gaussian_kl(lambda mu, lv: torch.distributions.Normal(mu, 1.0).mean.sum(1))
    assert torch.distributions.Normal(0.0, 1.0).stddev == 1.0  # the constructor works again


def test_kl_check_reports_not_implemented():
    def stub(mu, logvar):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="gaussian_kl: raised NotImplementedError"):
        checks.check_gaussian_kl(stub)


# --- reparameterize -------------------------------------------------------------------------

def test_reparameterize_checks_accept_reference():
    checks.check_reparameterize(reparameterize_ok)
    checks.check_reparameterize_gradients(reparameterize_ok)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda mu, lv, eps: mu + lv.exp() * eps, "exp\\(logvar\\) is the variance"),
        (lambda mu, lv, eps: mu + lv * eps, "logvar is a log-variance"),
        (lambda mu, lv, eps: mu + eps, "scaled by sigma"),
        (lambda mu, lv, eps: mu + torch.exp(0.5 * lv) * torch.randn_like(mu), "expected"),
        (lambda mu, lv, eps: torch.normal(mu, torch.exp(0.5 * lv)), "expected"),
        (lambda mu, lv, eps: (mu + torch.exp(0.5 * lv) * eps).sum(1), r"returned shape \(\d+,\)"),
    ],
    ids=["exp-logvar", "logvar-as-sigma", "unscaled", "own-noise", "torch-normal", "reduced"],
)
def test_reparameterize_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_reparameterize(wrong)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda mu, lv, eps: (mu + torch.exp(0.5 * lv) * eps).detach(), "does not require gradients"),
        (lambda mu, lv, eps: mu.detach() + torch.exp(0.5 * lv) * eps, "no gradient reached mu"),
        (lambda mu, lv, eps: mu + torch.exp(0.5 * lv.detach()) * eps, "no gradient reached logvar"),
        (lambda mu, lv, eps: mu + lv.exp() * eps, "with respect to logvar"),
        (lambda mu, lv, eps: torch.normal(mu, torch.exp(0.5 * lv)), "gradient is exactly zero"),
    ],
    ids=["detached", "mu-detached", "logvar-detached", "exp-logvar", "torch-normal"],
)
def test_reparameterize_gradient_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_reparameterize_gradients(wrong)


# --- bernoulli_log_likelihood ---------------------------------------------------------------

def test_log_likelihood_check_accepts_reference_and_logsigmoid_form():
    checks.check_bernoulli_log_likelihood(log_lik_ok)
    checks.check_bernoulli_log_likelihood(
        lambda l, x: (x * F.logsigmoid(l) + (1 - x) * F.logsigmoid(-l)).sum(dim=(1, 2, 3)))


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda l, x: F.binary_cross_entropy_with_logits(l, x, reduction="none").sum((1, 2, 3)),
         "negative log-likelihood"),
        (lambda l, x: -F.binary_cross_entropy_with_logits(l, x, reduction="none").mean((1, 2, 3)),
         "you took the mean"),
        (lambda l, x: -F.binary_cross_entropy_with_logits(l, x, reduction="sum"), "over the batch"),
        (lambda l, x: (x * torch.log(torch.sigmoid(l)) + (1 - x) * torch.log(1 - torch.sigmoid(l)))
         .sum((1, 2, 3)), "non-finite|stably"),
        (lambda l, x: -F.binary_cross_entropy_with_logits(torch.sigmoid(l), x, reduction="none")
         .sum((1, 2, 3)), "apply the sigmoid once"),
    ],
    ids=["sign", "mean-over-pixels", "batch-sum", "naive-log-sigmoid", "double-sigmoid"],
)
def test_log_likelihood_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_bernoulli_log_likelihood(wrong)


# --- negative_elbo --------------------------------------------------------------------------

def test_negative_elbo_check_accepts_reference():
    checks.check_negative_elbo(negative_elbo_ok)


def _bce(logits, x):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x, l, mu, lv: -ref.negative_elbo(x, l, mu, lv), "That is the ELBO"),
        (lambda x, l, mu, lv: _bce(l, x).sum(1) - ref.gaussian_kl(mu, lv), "enters with a plus sign"),
        (lambda x, l, mu, lv: _bce(l, x).sum(1), "KL term is missing"),
        (lambda x, l, mu, lv: _bce(l, x).mean(1) + ref.gaussian_kl(mu, lv), "you averaged it"),
        (lambda x, l, mu, lv: ref.negative_elbo(x, l, mu, lv).mean(), "reduced over the batch"),
    ],
    ids=["elbo-sign", "kl-sign", "no-kl", "mean-over-pixels", "batch-mean"],
)
def test_negative_elbo_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_negative_elbo(wrong)


# --- VAE ------------------------------------------------------------------------------------

def test_vae_check_accepts_notebook_model():
    checks.check_vae(NotebookVAE)


class DetachedDecoder(NotebookVAE):
    def decode(self, z):
        return self.dec(z.detach())


class WrongShapeDecoder(NotebookVAE):
    def decode(self, z):
        return self.dec(z).flatten(1)  # (B, 784)


class SingleOutputEncoder(NotebookVAE):
    def encode(self, x):
        return self.enc(x)  # (B, 2D) not split


class UnusedLayer(NotebookVAE):
    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        self.spare = nn.Linear(3, 3)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (DetachedDecoder, r"parameters \['enc"),
        (WrongShapeDecoder, r"returned shape \(5, 784\); expected \(5, 1, 28, 28\)"),
        (SingleOutputEncoder, "expected a tuple \\(mu, logvar\\)"),
        (UnusedLayer, r"parameters \['spare.weight"),
        (ref.VAE, "gradelib's reference implementation"),
    ],
    ids=["detached", "flat-decoder", "unsplit-encoder", "unused-layer", "reference-itself"],
)
def test_vae_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_vae(wrong)


# --- train_vae ------------------------------------------------------------------------------

def test_train_check_accepts_the_notebook_solution():
    score = checks.check_train_vae(notebook_train_vae, NotebookVAE)
    assert score < checks.TEST_NEGATIVE_ELBO_BAND - 10, score  # well inside the band


def test_train_check_rejects_mean_over_pixels():
    def averaged(model, images, epochs, generator):
        return notebook_train_vae(model, images, epochs, generator, pixel_reduction="mean")

    with pytest.raises(AssertionError, match=r"mean test negative ELBO is (1[4-9]\d|2\d\d)\.\d\d nats"):
        checks.check_train_vae(averaged, NotebookVAE)


def test_train_check_rejects_a_loop_that_never_steps():
    def no_step(model, images, epochs, generator):
        return [float(200 - e) for e in range(epochs)]  # plausible history, no training

    with pytest.raises(AssertionError, match=r"negative ELBO is \d+\.\d+ nats per image; expected "
                                             r"at most 135"):
        checks.check_train_vae(no_step, NotebookVAE)


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ([100.0] * 3, "expected a list of 15"),
        ([100.0] * 15, "did not decrease"),
        ((100.0,) * 15, "returned tuple"),
        ([100.0, math.nan] + [90.0] * 13, "non-finite"),
    ],
    ids=["short", "flat", "tuple", "nan"],
)
def test_train_check_rejects_bad_histories(history, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_train_vae(lambda *args: history, NotebookVAE)


def test_train_check_enforces_the_time_budget(monkeypatch):
    monkeypatch.setattr(checks, "training_time_budget", lambda images: -1.0)
    with pytest.raises(AssertionError, match=r"15 epochs took .* the budget on this machine is"):
        checks.check_train_vae(lambda *args: [2.0] * 14 + [1.0], NotebookVAE)


def test_time_budget_grows_with_the_machines_load(monkeypatch):
    images = torch.zeros(200, 1, 28, 28)
    assert checks.training_time_budget(images) >= checks.TRAINING_TIME_BUDGET_S
    # where one reference epoch takes 100 s, the budget is factor * epochs * 100 s
    clock = iter([0.0, 100.0])
    monkeypatch.setattr(assertions, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(checks.reference, "train_vae", lambda *args, **kwargs: [0.0])
    expected = checks.TRAINING_TIME_FACTOR * checks.TRAINING_EPOCHS * 100.0
    assert checks.training_time_budget(images) == expected


# --- iwae_bound -----------------------------------------------------------------------------

def test_iwae_check_accepts_reference():
    checks.check_iwae_bound(iwae_ok)


def _log_weights(model, x, k, generator, std_from_logvar=lambda lv: torch.exp(0.5 * lv),
                 shape="kbd"):
    mu, logvar = model.encode(x)
    b, d = mu.shape
    if shape == "kbd":
        eps = torch.randn(k, b, d, generator=generator)
    else:
        eps = torch.randn(b, k, d, generator=generator).transpose(0, 1)
    std = std_from_logvar(logvar)
    z = mu + std * eps
    logits = model.decode(z.reshape(k * b, d)).reshape(k, b, 784)
    log_px = -F.binary_cross_entropy_with_logits(
        logits, x.reshape(1, b, 784).expand(k, b, 784), reduction="none").sum(-1)
    log_pz = -0.5 * (z**2 + math.log(2 * math.pi)).sum(-1)
    log_qz = (-0.5 * (((z - mu) / std) ** 2 + math.log(2 * math.pi)) - std.log()).sum(-1)
    return log_px, log_pz, log_qz


def test_iwae_check_accepts_an_independent_implementation():
    def mine(model, x, k, generator):
        log_px, log_pz, log_qz = _log_weights(model, x, k, generator)
        return torch.logsumexp(log_px + log_pz - log_qz, 0) - math.log(k)

    checks.check_iwae_bound(mine)


def _variant(kind):
    def wrong(model, x, k, generator):
        if kind == "variance":
            log_px, log_pz, log_qz = _log_weights(model, x, k, generator, lambda lv: lv.exp())
        else:
            log_px, log_pz, log_qz = _log_weights(model, x, k, generator,
                                                  shape="bkd" if kind == "shape" else "kbd")
        log_w = log_px + log_pz - log_qz
        if kind == "mean":
            return log_w.mean(0)
        if kind == "no-log-k":
            return torch.logsumexp(log_w, 0)
        if kind == "naive":
            return torch.log(torch.exp(log_w).mean(0))
        if kind == "likelihood-only":
            return torch.logsumexp(log_px, 0) - math.log(k)
        return torch.logsumexp(log_w, 0) - math.log(k)
    return wrong


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("mean", "You averaged the log-weights"),
        ("no-log-k", "Subtract log\\(k\\)"),
        ("naive", "non-finite values"),
        ("likelihood-only", "include log p\\(z\\) - log q\\(z\\|x\\)"),
        ("shape", "Draw the noise exactly as torch.randn\\(k, B, D"),
        ("variance", "exp\\(logvar\\) is the variance"),
    ],
)
def test_iwae_check_rejects(kind, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_iwae_bound(_variant(kind))
