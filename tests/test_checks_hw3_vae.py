"""The hw3 autograder checks accept the reference and reject realistic wrong answers.

The function checks run in well under a second per case. The training check trains three
conditional VAEs and judges samples with the course's digit classifier: the test that
accepts the reference runs it in full, as graded (about 20 s on a quiet machine, more when
the machine is busy). The test with misaligned labels stops after the first run. The
other rejection tests shorten the runs where the branch they test does not depend on
the length of training.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradelib.checks import assertions
from gradelib.checks import hw3_vae as checks
from gradelib.checks.references import hw3_vae as ref
from gradelib.data import load_mnist
from gradelib.vae import ConditionalVAE

# --- diag_gaussian_kl ---------------------------------------------------------------------


def _terms(mq, lq, mp, lp):
    return lp - lq + torch.exp(lq - lp) + (mq - mp) ** 2 * torch.exp(-lp) - 1  # (B, D)


def test_kl_check_accepts_reference_and_a_log_sigma_form():
    checks.check_diag_gaussian_kl(ref.diag_gaussian_kl)

    def with_log_sigma(mq, lq, mp, lp):
        log_sq, log_sp = lq / 2, lp / 2
        return (log_sp - log_sq + (torch.exp(2 * log_sq) + (mq - mp) ** 2)
                / (2 * torch.exp(2 * log_sp)) - 0.5).sum(1)

    checks.check_diag_gaussian_kl(with_log_sigma)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda mq, lq, mp, lp: ref.diag_gaussian_kl(mp, lp, mq, lq), r"direction is swapped: that is KL\(p \|\| q\)"),
        (lambda mq, lq, mp, lp: -ref.diag_gaussian_kl(mq, lq, mp, lp), "wrong sign"),
        (lambda mq, lq, mp, lp: _terms(mq, lq, mp, lp).sum(1), "factor 1/2 is missing"),
        (lambda mq, lq, mp, lp: 0.5 * _terms(mq, lq, mp, lp).mean(1), "you took the mean"),
        (lambda mq, lq, mp, lp: 0.5 * (lp - lq + torch.exp(lq - lp) + (mq - mp) ** 2 - 1).sum(1),
         r"Divide \(mu_q - mu_p\)\^2 by the prior's variance"),
        (lambda mq, lq, mp, lp: 0.5 * (lq - lp + torch.exp(lq - lp) + (mq - mp) ** 2 * torch.exp(-lp) - 1).sum(1),
         "log term is logvar_p - logvar_q"),
        (lambda mq, lq, mp, lp: 0.5 * (lp - lq + torch.exp((lq - lp) / 2) + (mq - mp) ** 2 * torch.exp(-lp) - 1).sum(1),
         "not its square root"),
        (lambda mq, lq, mp, lp: 0.5 * (mq**2 + lq.exp() - 1 - lq).sum(1), r"KL to N\(0, I\): the prior .* is ignored"),
        (lambda mq, lq, mp, lp: ref.diag_gaussian_kl(mq, lq, mp, lp).sum(), "summed over the batch"),
        (lambda mq, lq, mp, lp: 0.5 * _terms(mq, lq, mp, lp), r"returned shape \(5, 3\); expected \(5,\)"),
    ],
    ids=["swapped", "sign", "no-half", "mean-over-latents", "no-prior-variance", "log-term-sign",
         "std-ratio", "standard-normal", "batch-sum", "not-summed"],
)
def test_kl_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_diag_gaussian_kl(wrong)


def test_kl_check_reports_not_implemented():
    def stub(mu_q, logvar_q, mu_p, logvar_p):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="diag_gaussian_kl: raised NotImplementedError"):
        checks.check_diag_gaussian_kl(stub)


# --- ConditionalPrior ---------------------------------------------------------------------


class OneHotPrior(nn.Module):
    """Another acceptable design: a linear layer on the one-hot label."""

    def __init__(self, num_classes, latent_dim):
        super().__init__()
        self.num_classes = num_classes
        self.linear = nn.Linear(num_classes, 2 * latent_dim)

    def forward(self, labels):
        return self.linear(F.one_hot(labels, self.num_classes).float()).chunk(2, dim=1)


class ZeroPrior(OneHotPrior):
    """Has a layer, but always returns N(0, I): the prior cannot learn."""

    def forward(self, labels):
        mu, logvar = super().forward(labels)
        return torch.zeros_like(mu), torch.zeros_like(logvar)


class NoParameterPrior(nn.Module):
    def __init__(self, num_classes, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim

    def forward(self, labels):
        return torch.zeros(len(labels), self.latent_dim), torch.zeros(len(labels), self.latent_dim)


class BatchCentredPrior(OneHotPrior):
    """Normalises over the batch, so a label's prior depends on the other labels."""

    def forward(self, labels):
        mu, logvar = super().forward(labels)
        return mu - mu.mean(0), logvar


class NoisyPrior(OneHotPrior):
    def forward(self, labels):
        mu, logvar = super().forward(labels)
        return mu + 0.1 * torch.randn_like(mu), logvar


class ConcatenatedPrior(OneHotPrior):
    def forward(self, labels):
        return self.linear(F.one_hot(labels, self.num_classes).float())  # (B, 2D)


def test_prior_check_accepts_reference_and_another_design():
    checks.check_conditional_prior(ref.ConditionalPrior)
    checks.check_conditional_prior(OneHotPrior)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (ZeroPrior, "did not change when the module's parameters were changed"),
        (NoParameterPrior, "has no parameters: the prior must be learned"),
        (BatchCentredPrior, "not on the batch"),
        (NoisyPrior, "differ although both labels are"),
        (ConcatenatedPrior, r"returned Tensor; expected a tuple \(mu_p, logvar_p\)"),
    ],
    ids=["zeros", "no-parameters", "batch-dependent", "noisy", "concatenated"],
)
def test_prior_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_conditional_prior(wrong)


# --- CVAE ---------------------------------------------------------------------------------


class SmallCVAE(nn.Module):
    """Another acceptable design: 200 hidden units, one learned 16-wide label embedding shared by
    the encoder and the decoder and concatenated to their inputs, a one-hot linear prior."""

    def __init__(self, latent_dim, num_classes=10, hidden=200, width=16):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.label = nn.Embedding(num_classes, width)
        self.enc = nn.Sequential(nn.Linear(784 + width, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim))
        self.dec = nn.Sequential(nn.Linear(latent_dim + width, hidden), nn.ReLU(), nn.Linear(hidden, 784))
        self.prior = OneHotPrior(num_classes, latent_dim)

    def _y(self, labels):
        return self.label(labels)  # (B, width)

    def encode(self, x, labels):
        return tuple(self.enc(torch.cat([x.flatten(1), self._y(labels)], 1)).chunk(2, dim=1))

    def decode(self, z, labels):
        return self.dec(torch.cat([z, self._y(labels)], 1)).reshape(-1, 1, 28, 28)


class ChapterCVAE(ConditionalVAE):
    """The chapter's conditional VAE (one-hot label concatenated) with a prior bolted on."""

    def __init__(self, latent_dim, num_classes=10):
        super().__init__(latent_dim, num_classes)
        self.prior = ref.ConditionalPrior(num_classes, latent_dim)


class UnusedEmbedding(ChapterCVAE):
    """Declares a label embedding but still feeds the one-hot label."""

    def __init__(self, latent_dim, num_classes=10):
        super().__init__(latent_dim, num_classes)
        self.label = nn.Embedding(num_classes, 16)


class EncoderOnlyEmbedding(SmallCVAE):
    """The decoder never sees the label (it gets zeros where the embedding should be)."""

    def decode(self, z, labels):
        return self.dec(torch.cat([z, torch.zeros(len(z), self.label.embedding_dim)], 1)).reshape(-1, 1, 28, 28)


class TenRowEmbedding(ref.CVAE):
    """Hard-codes ten rows for the label embeddings, whatever num_classes is."""

    def __init__(self, latent_dim, num_classes=10):
        super().__init__(latent_dim, num_classes)
        self.encoder_film = nn.Embedding(10, 2 * self.hidden_dim)
        self.decoder_film = nn.Embedding(10, 2 * self.hidden_dim)


class NoPrior(SmallCVAE):
    def __init__(self, latent_dim, num_classes=10):
        super().__init__(latent_dim, num_classes)
        del self.prior


class FixedPrior(SmallCVAE):
    def __init__(self, latent_dim, num_classes=10):
        super().__init__(latent_dim, num_classes)
        self.prior = NoParameterPrior(num_classes, latent_dim)


class UnsplitEncoder(SmallCVAE):
    def encode(self, x, labels):
        return self.enc(torch.cat([x.flatten(1), self._y(labels)], 1))  # (B, 2D)


class FlatDecoder(SmallCVAE):
    def decode(self, z, labels):
        return self.dec(torch.cat([z, self._y(labels)], 1))  # (B, 784)


def test_cvae_check_accepts_reference_and_another_design():
    checks.check_cvae(ref.CVAE)
    checks.check_cvae(SmallCVAE)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (NoPrior, "has no submodule named prior"),
        (FixedPrior, r"prior has no parameters: the prior p\(z \| y\) must be learned"),
        (ChapterCVAE, r"CVAE\(4\) has no nn.Embedding with num_classes = 10 rows besides the prior's"),
        (UnusedEmbedding, r"CVAE\(4\).encode\(x, labels\) did not change when the weights of its label "
                          r"embedding \(label\) were changed"),
        (EncoderOnlyEmbedding, r"CVAE\(4\).decode\(z, labels\) did not change when the weights"),
        (TenRowEmbedding, r"CVAE\(3, num_classes=5\) has no nn.Embedding with num_classes = 5 rows "
                          r"besides the prior's \(found encoder_film \(\(10, 800\)\)"),
        (UnsplitEncoder, r"returned Tensor; expected a tuple \(mu, logvar\)"),
        (FlatDecoder, r"returned shape \(6, 784\); expected \(6, 1, 28, 28\)"),
    ],
    ids=["no-prior", "fixed-prior", "chapter-one-hot", "unused-embedding", "encoder-only",
         "hard-coded-rows", "unsplit-encoder", "flat-decoder"],
)
def test_cvae_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_cvae(wrong)


# --- cvae_negative_elbo ----------------------------------------------------------------------


def _elbo(model, x, labels, eps, beta=1.0, *, beta_on="kl", kl_to="prior", sample=True,
          pixels="sum", sign=1.0, kl_sign=1.0):
    mu, logvar = model.encode(x, labels)
    mu_p, logvar_p = model.prior(labels)
    z = mu + torch.exp(0.5 * logvar) * eps if sample else mu
    per_pixel = F.binary_cross_entropy_with_logits(model.decode(z, labels), x, reduction="none").flatten(1)
    distortion = per_pixel.sum(1) if pixels == "sum" else per_pixel.mean(1)
    if kl_to == "prior":
        rate = ref.diag_gaussian_kl(mu, logvar, mu_p, logvar_p)
    elif kl_to == "standard":
        rate = ref.diag_gaussian_kl(mu, logvar, torch.zeros_like(mu), torch.zeros_like(mu))
    else:
        rate = ref.diag_gaussian_kl(mu_p, logvar_p, mu, logvar)
    if beta_on == "reconstruction":
        return sign * (beta * distortion + kl_sign * rate)
    return sign * (distortion + kl_sign * beta * rate)


def test_elbo_check_accepts_reference_and_an_independent_version():
    checks.check_cvae_negative_elbo(ref.cvae_negative_elbo, ref.CVAE)
    checks.check_cvae_negative_elbo(_elbo, ref.CVAE)
    checks.check_cvae_negative_elbo(_elbo, SmallCVAE)


def _variant(**options):
    def wrong(model, x, labels, eps, beta=1.0):
        return _elbo(model, x, labels, eps, beta, **options)
    return wrong


def _default_beta_zero(model, x, labels, eps, beta=0.0):
    return _elbo(model, x, labels, eps, beta)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_variant(sign=-1.0), "That is the ELBO; return the negative ELBO"),
        (_variant(kl_sign=-1.0), "The KL is subtracted"),
        (_variant(beta_on="reconstruction"), "beta multiplies the KL term only"),
        (_variant(kl_to="standard"), r"learned prior p\(z \| y\) = model.prior\(labels\), not to N\(0, I\)"),
        (_variant(kl_to="swapped"), "The KL direction is swapped"),
        (_variant(sample=False), "Use the given eps"),
        (_variant(pixels="mean"), "you took the mean"),
        (lambda *args, **kwargs: _elbo(*args, **kwargs).mean(), "you reduced over the batch"),
        (_default_beta_zero, "The default beta is 1.0"),
    ],
    ids=["elbo-sign", "kl-subtracted", "beta-on-reconstruction", "prior-ignored", "kl-swapped",
         "no-sample", "pixel-mean", "batch-mean", "default-beta"],
)
def test_elbo_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_cvae_negative_elbo(wrong, ref.CVAE)


# --- rate_distortion -------------------------------------------------------------------------


def _rate_distortion(model, images, labels, generator, *, global_rng=False, swap=False, kl_to="prior",
                     sign=1.0, sample=True, pixels="sum", single=False):
    with torch.no_grad():
        mu, logvar = model.encode(images, labels)
        mu_p, logvar_p = model.prior(labels)
        eps = torch.randn(mu.shape) if global_rng else torch.randn(mu.shape, generator=generator)
        z = mu + torch.exp(0.5 * logvar) * eps if sample else mu
        per_pixel = F.binary_cross_entropy_with_logits(model.decode(z, labels), images, reduction="none")
        per_pixel = per_pixel.flatten(1)
        distortion = sign * (per_pixel.sum(1) if pixels == "sum" else per_pixel.mean(1))
        if kl_to == "prior":
            rate = ref.diag_gaussian_kl(mu, logvar, mu_p, logvar_p)
        elif kl_to == "standard":
            rate = ref.diag_gaussian_kl(mu, logvar, torch.zeros_like(mu), torch.zeros_like(mu))
        else:
            rate = ref.diag_gaussian_kl(mu_p, logvar_p, mu, logvar)
    if single:
        return rate + distortion
    return (distortion, rate) if swap else (rate, distortion)


def _rd(**options):
    return lambda model, images, labels, generator: _rate_distortion(model, images, labels, generator, **options)


def test_rate_distortion_check_accepts_reference_and_an_independent_version():
    checks.check_rate_distortion(ref.rate_distortion, ref.CVAE)
    checks.check_rate_distortion(_rd(), SmallCVAE)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_rd(global_rng=True), "never drew from the generator it was given"),
        (_rd(swap=True), r"Return \(rate, distortion\) in that order"),
        (_rd(kl_to="standard"), r"KL to the learned prior model.prior\(labels\), not to N\(0, I\)"),
        (_rd(kl_to="swapped"), "The KL direction is swapped"),
        (_rd(sign=-1.0), "negative log-likelihood, >= 0"),
        (_rd(sample=False), "you decoded the mean"),
        (_rd(pixels="mean"), "you took the mean"),
        (_rd(single=True), r"returned Tensor; expected a tuple \(rate, distortion\)"),
    ],
    ids=["global-rng", "swapped-outputs", "prior-ignored", "kl-swapped", "distortion-sign",
         "no-sample", "pixel-mean", "one-tensor"],
)
def test_rate_distortion_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_rate_distortion(wrong, ref.CVAE)


# --- train_cvae (trains real models on embedded MNIST) ----------------------------------------


def _train(model, images, labels, epochs, beta, generator, *, beta_on="kl", freeze_prior=False,
           align_labels=True, labels_apart=False, use_beta=True, pixels="sum"):
    """An independent training loop (Adam 2e-3, batches of 100), optionally with one bug."""
    if labels_apart:  # the labels shuffled once, with their own permutation: pairs broken for good
        labels = labels[torch.randperm(len(labels), generator=generator)]
    parameters = [p for n, p in model.named_parameters() if not (freeze_prior and n.startswith("prior"))]
    optimizer = torch.optim.Adam(parameters, lr=2e-3)
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(images), 100):
            index = order[start:start + 100]
            x = images[index]
            y = labels[index] if align_labels else labels[start:start + 100]
            eps = torch.randn(len(x), model.latent_dim, generator=generator)
            loss = _elbo(model, x, y, eps, beta if use_beta else 1.0, beta_on=beta_on, pixels=pixels).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        history.append(total / len(images))
    return history


ORDER_MESSAGE = "the test rate .* should fall and the distortion rise as beta grows, by at least 0.5 nats"


def _loop(**options):
    return lambda *args: _train(*args, **options)


def test_train_check_accepts_the_reference():
    accuracy = checks.check_train_cvae(ref.train_cvae, ref.CVAE)
    assert accuracy > checks.SAMPLE_ACCURACY_BAND + 0.1, accuracy  # well inside the band


def test_train_check_rejects_labels_shuffled_apart_from_the_images(monkeypatch):
    # the loss falls (the model learns to ignore the label), so the sample band catches it
    monkeypatch.setattr(checks, "training_time_budget", lambda images, labels: 1e9)
    with pytest.raises(AssertionError, match=r"labels ([0-3]\d|\d)% of the conditional samples as the requested digit"):
        checks.check_train_cvae(_loop(labels_apart=True), ref.CVAE)


def test_train_check_rejects_labels_not_shuffled_with_the_images(monkeypatch):
    # pairs drawn anew each epoch: with FiLM the label steers every hidden unit, the loss rises
    monkeypatch.setattr(checks, "training_time_budget", lambda images, labels: 1e9)
    with pytest.raises(AssertionError, match="the loss did not decrease"):
        checks.check_train_cvae(_loop(align_labels=False), ref.CVAE)


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        (_loop(beta_on="reconstruction"), ORDER_MESSAGE),
        (_loop(use_beta=False), ORDER_MESSAGE),
        (_loop(pixels="mean"), ORDER_MESSAGE),
        (_loop(freeze_prior=True), r"the prior model.prior\(labels\) did not change during training"),
    ],
    ids=["beta-on-reconstruction", "beta-ignored", "pixel-mean", "prior-frozen"],
)
def test_train_check_rejects_short_runs_of_wrong_loops(monkeypatch, trainer, message):
    # the branches these test do not depend on how long the runs are
    monkeypatch.setattr(checks, "training_time_budget", lambda images, labels: 1e9)
    monkeypatch.setattr(checks, "TRAINING_EPOCHS", 2)
    monkeypatch.setattr(checks, "SAMPLE_ACCURACY_BAND", 0.0)
    with pytest.raises(AssertionError, match=message):
        checks.check_train_cvae(trainer, ref.CVAE)


def _no_generator(model, images, labels, epochs, beta, generator):
    return [float(200 - e) for e in range(epochs)]


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        (_no_generator, "never drew from the generator it was given"),
        (lambda *args: [100.0] * 3, "expected a list of 8"),
        (lambda *args: [100.0] * 8, "did not decrease"),
        (lambda *args: (101.0,) * 7 + (100.0,), "returned tuple"),
        (lambda *args: [100.0, math.nan] + [90.0] * 6, "non-finite"),
    ],
    ids=["ignores-generator", "short", "flat", "tuple", "nan"],
)
def test_train_check_rejects_bad_runs(monkeypatch, trainer, message):
    monkeypatch.setattr(checks, "training_time_budget", lambda images, labels: 1e9)
    with pytest.raises(AssertionError, match=message):
        checks.check_train_cvae(trainer, ref.CVAE)


def test_train_check_enforces_the_time_budget(monkeypatch):
    monkeypatch.setattr(checks, "training_time_budget", lambda images, labels: -1.0)
    with pytest.raises(AssertionError, match=r"took .* s; the budget on this machine is -1.0 s"):
        checks.check_train_cvae(_no_generator, ref.CVAE)


def test_time_budget_grows_with_the_machines_load(monkeypatch):
    images, labels = load_mnist("train", binarized=True)
    # where one reference epoch takes 100 s, the budget is factor * epochs * 100 s
    clock = iter([0.0, 100.0])
    monkeypatch.setattr(assertions, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(checks.reference, "train_cvae", lambda *args, **kwargs: [0.0])
    expected = checks.TRAINING_TIME_FACTOR * checks.TRAINING_EPOCHS * 100.0
    assert checks.training_time_budget(images, labels) == expected
    clock = iter([0.0, 0.01])
    assert checks.training_time_budget(images, labels) == checks.TRAINING_TIME_BUDGET_S
