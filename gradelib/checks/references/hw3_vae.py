"""Reference implementations of the graded API of ``hw3_vae`` (syllabus §4, second edition).

Instructor side: the hidden checks in :mod:`gradelib.checks.hw3_vae` compare the student's
work with these functions. They are never shipped to students, and neither the book nor any
student-facing ``gradelib`` module imports them.

**A conditional VAE with a learned conditional prior** (Sohn, Lee & Yan, 2015): the
encoder ``q_phi(z | x, y)``, the decoder ``p_theta(x | z, y)`` (Bernoulli pixels), and a prior
``p_psi(z | y) = N(mu_psi(y), diag(exp(logvar_psi(y))))`` that is learned per label, where
the chapter's conditional VAE keeps ``N(0, I)``. The per-example objective weights the KL by
``beta`` (Higgins et al., 2017, Eq. 4):

    L_beta(x, y) = -log p_theta(x | z, y) + beta * KL(q_phi(z | x, y) || p_psi(z | y)),
    z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I)        (one reparameterized sample)

The KL between two diagonal Gaussians has the closed form

    KL = 1/2 sum_d [ logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1 ].

**The rate-distortion view** (Alemi et al., 2018): the *rate* ``R = KL(q || p)`` is how
many nats the code carries about ``x`` beyond what the prior already knows, and the
*distortion* ``D = -log p(x | z)`` is the reconstruction cost. The negative ELBO is
``D + R``. Minimising ``D + beta R`` traces the frontier: a larger ``beta`` buys a lower
rate with a higher distortion. Everything is in nats.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradelib.validation import (
    require_generator,
    require_in_range,
    require_positive_int,
    require_same_shape,
    require_shape,
    require_tensor,
)

__all__ = [
    "diag_gaussian_kl",
    "ConditionalPrior",
    "CVAE",
    "bernoulli_distortion",
    "cvae_negative_elbo",
    "CVAETrainingConfig",
    "train_cvae",
    "rate_distortion",
]


def _require_labels(labels: object, batch: int, num_classes: int | None = None) -> None:
    require_tensor("labels", labels, ndim=1, floating=False)
    require_shape("labels", labels, (batch,))
    if num_classes is not None and batch and not bool(((labels >= 0) & (labels < num_classes)).all()):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")


def _require_images(name: str, images: object) -> None:
    require_tensor(name, images, ndim=4, floating=True)
    require_shape(name, images, (None, 1, 28, 28))


def _require_beta(beta: object) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta >= 0:
        raise ValueError(f"beta must be a non-negative number, got {beta!r}")
    return float(beta)


def diag_gaussian_kl(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """``KL(N(mu_q, diag(exp(logvar_q))) || N(mu_p, diag(exp(logvar_p))))`` per example.

    ``1/2 sum_d [logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1]``
    (the KL of a product of independent Gaussians is the sum of the 1-D KLs). With
    ``mu_p = 0, logvar_p = 0`` this is the KL to ``N(0, I)`` of Kingma & Welling (2014,
    Appendix B).

    Args:
        mu_q, logvar_q: ``(B, D)`` floating, the first distribution (the encoder's ``q``).
        mu_p, logvar_p: ``(B, D)`` floating, the second one (the prior).

    Returns:
        ``(B,)`` tensor, nats, summed over the ``D`` dimensions, ``>= 0``, and zero exactly
        when the two Gaussians are equal.

    Raises:
        TypeError / ValueError: not 2-D floating tensors of one shape.
    """
    for name, value in (("mu_q", mu_q), ("logvar_q", logvar_q), ("mu_p", mu_p), ("logvar_p", logvar_p)):
        require_tensor(name, value, ndim=2, floating=True)
    require_same_shape("mu_q", mu_q, "logvar_q", logvar_q)
    require_same_shape("mu_q", mu_q, "mu_p", mu_p)
    require_same_shape("mu_q", mu_q, "logvar_p", logvar_p)
    ratio = torch.exp(logvar_q - logvar_p)  # sigma_q^2 / sigma_p^2, (B, D)
    mahalanobis = (mu_q - mu_p) ** 2 * torch.exp(-logvar_p)  # (B, D)
    return 0.5 * (ratio + mahalanobis - 1.0 - (logvar_q - logvar_p)).sum(dim=1)


class ConditionalPrior(nn.Module):
    """A learned Gaussian prior per label, ``p_psi(z | y) = N(mu_y, diag(exp(logvar_y)))``.

    One row of a table per class holds ``(mu_y, logvar_y)``. This is an ``nn.Embedding`` of
    width ``2 D``: the simplest form of the prior network of Sohn et al. (2015), whose
    prior is conditioned on the input, here on the label alone. The table starts
    at zero, so training starts from the chapter's ``N(0, I)`` for every label and moves each
    class's prior to where its codes are.

    Args:
        num_classes: number of labels (10 digits).
        latent_dim: ``D``.

    Raises:
        TypeError / ValueError: an argument is not a positive int.
    """

    def __init__(self, num_classes: int, latent_dim: int):
        super().__init__()
        self.num_classes = require_positive_int("num_classes", num_classes)
        self.latent_dim = require_positive_int("latent_dim", latent_dim)
        self.table = nn.Embedding(num_classes, 2 * latent_dim)
        nn.init.zeros_(self.table.weight)

    def forward(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels ``(B,)`` int64 to ``(mu_p, logvar_p)``, each ``(B, D)``.

        Raises:
            TypeError / ValueError: ``labels`` is not a 1-D integer tensor in ``0..num_classes-1``.
        """
        _require_labels(labels, len(labels) if isinstance(labels, torch.Tensor) else -1,
                        self.num_classes)
        mu, logvar = self.table(labels.long()).chunk(2, dim=1)  # (B, D) each
        return mu, logvar


class CVAE(nn.Module):
    """Conditional VAE with a learned prior (Sohn et al., 2015) for binarized ``(B, 1, 28, 28)`` digits.

    The label enters each network through a learned embedding that scales and shifts the
    hidden units, a FiLM layer (Perez et al., 2018, Eq. 1): for a hidden pre-activation
    ``h`` and a label ``y``, ``relu((1 + gamma_y) * h + beta_y)``, with ``(gamma_y, beta_y)``
    the row ``y`` of an ``nn.Embedding(num_classes, 2 * 400)``. A one-hot label concatenated
    to the input (the chapter's conditional VAE) can only shift the hidden units; the scale
    lets each digit select and weight its own features. The tables keep ``nn.Embedding``'s
    ``N(0, 1)`` initialisation, so each digit starts with its own random mix of features:
    trained as the hidden check trains, its conditional samples show the requested digit
    0.96-0.99 of the time over four seeds, against 0.60 when the tables start at zero and
    0.83 for the chapter's one-hot concatenation (benchmarks/hw3_vae.py).

    Encoder ``q(z | x, y)``: linear 784->400, FiLM by ``y``, linear 400->2D split into
    ``(mu, logvar)``. Decoder ``p(x | z, y)``: linear D->400, FiLM by ``y``, linear 400->784
    Bernoulli logits. Prior: :class:`ConditionalPrior`.

    Args:
        latent_dim: ``D``.
        num_classes: number of labels.

    Raises:
        TypeError / ValueError: an argument is not a positive int.
    """

    hidden_dim = 400

    def __init__(self, latent_dim: int, num_classes: int = 10):
        super().__init__()
        self.latent_dim = require_positive_int("latent_dim", latent_dim)
        self.num_classes = require_positive_int("num_classes", num_classes)
        hidden = self.hidden_dim
        self.encoder_hidden = nn.Linear(784, hidden)
        self.encoder_film = nn.Embedding(num_classes, 2 * hidden)  # (gamma_y, beta_y) per label
        self.encoder_out = nn.Linear(hidden, 2 * latent_dim)
        self.decoder_hidden = nn.Linear(latent_dim, hidden)
        self.decoder_film = nn.Embedding(num_classes, 2 * hidden)
        self.decoder_out = nn.Linear(hidden, 784)
        self.prior = ConditionalPrior(num_classes, latent_dim)

    @staticmethod
    def _film(table: nn.Embedding, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gamma, beta = table(labels.long()).chunk(2, dim=1)  # (B, H) each
        return torch.relu((1.0 + gamma) * h + beta)  # (B, H)

    def encode(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(B, 1, 28, 28)`` and labels ``(B,)`` to ``(mu, logvar)``, each ``(B, D)``."""
        _require_images("x", x)
        _require_labels(labels, len(x), self.num_classes)
        h = self._film(self.encoder_film, self.encoder_hidden(x.flatten(start_dim=1)), labels)
        mu, logvar = self.encoder_out(h).chunk(2, dim=1)  # (B, D) each
        return mu, logvar

    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, D)`` and labels ``(B,)`` to Bernoulli logits ``(B, 1, 28, 28)``."""
        require_tensor("z", z, ndim=2, floating=True)
        require_shape("z", z, (None, self.latent_dim))
        _require_labels(labels, len(z), self.num_classes)
        h = self._film(self.decoder_film, self.decoder_hidden(z), labels)
        return self.decoder_out(h).unflatten(1, (1, 28, 28))  # (B, 1, 28, 28)


def bernoulli_distortion(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``-log p(x | z)`` of Bernoulli pixels, summed over each image: ``(B,)`` nats.

    Computed stably from the logits (``F.binary_cross_entropy_with_logits``).

    Raises:
        TypeError / ValueError: not floating tensors of one shape with a batch dimension.
    """
    require_tensor("logits", logits, floating=True)
    require_tensor("x", x, floating=True)
    require_same_shape("logits", logits, "x", x)
    per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return per_pixel.flatten(start_dim=1).sum(dim=1)


def cvae_negative_elbo(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    """The beta-weighted negative ELBO of a :class:`CVAE` per example, with the given noise.

    ``-log p(x | z, y) + beta * KL(q(z | x, y) || p(z | y))``, with ``(mu, logvar) =
    model.encode(x, labels)``, the prior ``model.prior(labels)`` and one sample
    ``z = mu + exp(logvar / 2) * eps`` (the CVAE bound of Sohn et al., 2015, weighted as in
    Higgins et al., 2017, Eq. 4). ``beta`` multiplies the KL only. At ``beta = 1`` this is the
    negative ELBO, an upper bound on ``-log p(x | y)`` in expectation.

    Args:
        model: has ``encode(x, labels)``, ``decode(z, labels)`` (logits) and ``prior(labels)``.
        x: ``(B, 1, 28, 28)`` in [0, 1] (binarized in the course).
        labels: ``(B,)`` int64.
        eps: ``(B, D)`` standard normal noise.
        beta: the KL weight, ``>= 0``.

    Returns:
        ``(B,)`` tensor, nats, differentiable in the model's parameters. A training loss is
        its batch mean.

    Raises:
        TypeError / ValueError: bad shapes, dtypes, labels or ``beta``.
    """
    _require_images("x", x)
    _require_labels(labels, len(x))
    require_tensor("eps", eps, ndim=2, floating=True)
    beta = _require_beta(beta)
    mu, logvar = model.encode(x, labels)  # (B, D) each
    require_same_shape("eps", eps, "mu", mu)
    mu_p, logvar_p = model.prior(labels)  # (B, D) each
    z = mu + torch.exp(0.5 * logvar) * eps  # (B, D)
    distortion = bernoulli_distortion(model.decode(z, labels), x)
    return distortion + beta * diag_gaussian_kl(mu, logvar, mu_p, logvar_p)


@dataclass(frozen=True)
class CVAETrainingConfig:
    """Hyperparameters of :func:`train_cvae`.

    Attributes:
        batch_size: AEVB's minibatch size M = 100 (Kingma & Welling, 2014, Algorithm 1),
            40 Adam steps per epoch on the 4,000 embedded digits.
        learning_rate: 2e-3 for Adam (Kingma & Ba, 2015), as for the chapter's VAE. The
            graded run is only a few epochs long, and the MLP is stable at this rate.
    """

    batch_size: int = 100
    learning_rate: float = 2e-3


def train_cvae(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    beta: float,
    generator: torch.Generator,
    *,
    config: CVAETrainingConfig = CVAETrainingConfig(),
) -> list[float]:
    """Minimise the batch mean of :func:`cvae_negative_elbo` with Adam, prior included.

    Each epoch shuffles with ``torch.randperm(N, generator=generator)``. Each minibatch draws
    its noise as ``torch.randn(B, D, generator=generator)``, with ``D = model.latent_dim``.
    The optimiser holds all of ``model``'s parameters, so the prior ``p(z | y)`` is learned
    with the encoder and the decoder.

    Args:
        model: a :class:`CVAE`-like module with attribute ``latent_dim``, trained in place.
        images: ``(N, 1, 28, 28)`` float32 in [0, 1] (binarized in the course).
        labels: ``(N,)`` int64.
        epochs: passes over the data.
        beta: the KL weight.
        generator: a CPU ``torch.Generator``, the only randomness besides initialisation.
        config: the hyperparameters.

    Returns:
        Per-epoch mean of the training objective (nats per image), Python floats,
        ``len == epochs``.

    Raises:
        TypeError / ValueError: bad ``images``, ``labels``, ``epochs``, ``beta`` or ``generator``.
    """
    _require_images("images", images)
    require_in_range("images", images, 0.0, 1.0)
    _require_labels(labels, len(images))
    require_positive_int("epochs", epochs)
    beta = _require_beta(beta)
    require_generator("generator", generator)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    n = len(images)
    history: list[float] = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, config.batch_size):
            index = order[start : start + config.batch_size]
            x, y = images[index].to(device), labels[index].to(device)
            eps = torch.randn(len(index), model.latent_dim, generator=generator).to(device)
            loss = cvae_negative_elbo(model, x, y, eps, beta).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        history.append(total / n)
    model.eval()
    return history


@torch.no_grad()
def rate_distortion(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example rate and distortion of a conditional VAE (Alemi et al., 2018), nats.

    ``rate = KL(q(z | x, y) || p(z | y))`` in closed form, and ``distortion = -log p(x | z, y)``
    at one sample ``z = mu + exp(logvar / 2) * eps``, where the noise is drawn exactly as
    ``eps = torch.randn(mu.shape, generator=generator)`` after encoding. ``rate +
    distortion`` is the one-sample negative ELBO. The model is used in whatever mode it is
    in: call ``model.eval()`` first.

    Args:
        model: as in :func:`cvae_negative_elbo`.
        images: ``(B, 1, 28, 28)`` in [0, 1].
        labels: ``(B,)`` int64.
        generator: a CPU ``torch.Generator``.

    Returns:
        ``(rate (B,), distortion (B,))``, without gradients.

    Raises:
        TypeError / ValueError: bad ``images``, ``labels`` or ``generator``.
    """
    _require_images("images", images)
    _require_labels(labels, len(images))
    require_generator("generator", generator)
    mu, logvar = model.encode(images, labels)  # (B, D) each
    mu_p, logvar_p = model.prior(labels)
    eps = torch.randn(mu.shape, generator=generator).to(mu)  # (B, D)
    z = mu + torch.exp(0.5 * logvar) * eps
    distortion = bernoulli_distortion(model.decode(z, labels), images)
    return diag_gaussian_kl(mu, logvar, mu_p, logvar_p), distortion
