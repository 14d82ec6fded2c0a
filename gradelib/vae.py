"""Variational autoencoders: the ELBO, the reparameterization trick and the IWAE bound.

The code of the VAE chapter (syllabus §4), and what the course's likelihood table builds
on: the training loop, the reference model (:func:`train_reference_vae`), its evaluation,
a conditional VAE, and a linear-Gaussian latent model whose evidence and posterior are known
in closed form.

The model (Kingma & Welling, 2014, "Auto-Encoding Variational Bayes", AEVB) has a prior
``p(z) = N(0, I_D)``, a decoder ``p_theta(x | z) = prod_i Bernoulli(x_i; sigmoid(f_theta(z)_i))``
over the 784 pixels, and an encoder ``q_phi(z | x) = N(mu_phi(x), diag(exp(logvar_phi(x))))``.
For every ``q``,

    log p(x) = ELBO(x) + KL(q(z | x) || p(z | x)),
    ELBO(x)  = E_q[log p(x | z)] - KL(q(z | x) || p(z))        (AEVB, Eqs. 1-3)

The KL to the prior is in closed form (AEVB, Appendix B) and the expectation is estimated
with one reparameterized sample ``z = mu + sigma * eps``, ``eps ~ N(0, I)`` (AEVB, Section
2.4 and Eq. 10, minibatch Algorithm 1 with M = 100, L = 1). The importance-weighted bound
of Burda, Grosse & Salakhutdinov (2016, Eq. 8) uses k samples,

    L_k(x) = E[log (1/k) sum_j p(x, z_j) / q(z_j | x)],   ELBO = L_1 <= L_k <= L_{k+1} <= log p(x)

(their Theorem 1). Everything is in **nats**; bits per dimension are
``nats / (784 ln 2)`` for MNIST.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from gradelib.data import load_mnist
from gradelib.device import get_device, make_generator
from gradelib.validation import (
    require_generator,
    require_in_range,
    require_positive_int,
    require_same_shape,
    require_shape,
    require_tensor,
)

__all__ = [
    "gaussian_kl",
    "reparameterize",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "negative_elbo",
    "VAE",
    "ConditionalVAE",
    "iwae_bound",
    "VAETrainingConfig",
    "random_shift",
    "train_vae",
    "evaluate_vae",
    "REFERENCE_LATENT_DIM",
    "REFERENCE_EPOCHS",
    "train_reference_vae",
    "LinearGaussianModel",
]

LOG_2PI = math.log(2 * math.pi)


def _require_images(name: str, images: torch.Tensor) -> None:
    require_tensor(name, images, ndim=4, floating=True)
    require_shape(name, images, (None, 1, 28, 28))


# --------------------------------------------------------------------------- the ELBO's terms


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per example, in closed form.

    ``KL = 1/2 sum_d (mu_d^2 + exp(logvar_d) - 1 - logvar_d)`` (AEVB, Appendix B).

    Args:
        mu: ``(B, D)`` floating, the encoder's means.
        logvar: ``(B, D)`` floating, the encoder's log-variances ``log sigma^2``.

    Returns:
        ``(B,)`` tensor, nats, summed over the D latent dimensions; zero exactly when
        ``mu = 0`` and ``logvar = 0``.

    Raises:
        TypeError / ValueError: not 2-D floating tensors of the same shape.
    """
    require_tensor("mu", mu, ndim=2, floating=True)
    require_tensor("logvar", logvar, ndim=2, floating=True)
    require_same_shape("mu", mu, "logvar", logvar)
    return 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(dim=1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The reparameterization trick: ``z = mu + exp(logvar / 2) * eps`` (AEVB, Section 2.4).

    With ``eps ~ N(0, I)`` drawn by the caller, ``z ~ N(mu, diag(exp(logvar)))`` and ``z`` is
    a differentiable function of ``mu`` and ``logvar``: gradients reach the encoder.

    Args:
        mu: ``(B, D)`` floating.
        logvar: ``(B, D)`` floating, ``log sigma^2`` (so ``sigma = exp(logvar / 2)``).
        eps: standard normal noise of the same shape as ``mu`` (``(B, D)``; ``(k, B, D)``
            tensors of equal shapes are accepted too, elementwise).

    Returns:
        ``z``, same shape as ``eps``.

    Raises:
        TypeError / ValueError: not floating 2-D (or 3-D) tensors of identical shapes.
    """
    require_tensor("mu", mu, ndim=(2, 3), floating=True)
    require_tensor("logvar", logvar, ndim=(2, 3), floating=True)
    require_tensor("eps", eps, ndim=(2, 3), floating=True)
    require_same_shape("mu", mu, "logvar", logvar)
    require_same_shape("mu", mu, "eps", eps)
    return mu + torch.exp(0.5 * logvar) * eps


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``log p(x | z)`` of independent Bernoulli pixels with ``p = sigmoid(logits)``.

    ``sum_i [x_i log sigmoid(l_i) + (1 - x_i) log sigmoid(-l_i)]``, computed stably from the
    logits as ``-binary_cross_entropy_with_logits`` (AEVB, Appendix C.1).

    Args:
        logits: ``(B, ...)`` floating, the decoder's outputs before the sigmoid.
        x: targets of the same shape with values in [0, 1] (binarized images in the course).

    Returns:
        ``(B,)`` tensor, nats, summed over every non-batch dimension (all pixels); <= 0.

    Raises:
        TypeError / ValueError: shapes differ, fewer than 2 dimensions, or ``x`` outside [0, 1].
    """
    require_tensor("logits", logits, floating=True)
    require_tensor("x", x, floating=True)
    if logits.dim() < 2:
        raise ValueError(f"logits must have a batch dimension and pixels, got shape "
                         f"{tuple(logits.shape)}")
    require_same_shape("logits", logits, "x", x)
    require_in_range("x", x, 0.0, 1.0)
    log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return log_px.flatten(start_dim=1).sum(dim=1)  # (B, P) -> (B,)


def gaussian_log_likelihood(mean: torch.Tensor, x: torch.Tensor, variance: float) -> torch.Tensor:
    """``log N(x; mean, variance * I)`` per example: the Gaussian decoder ``N(f(z), c I)``.

    ``-||x - mean||^2 / (2c) - (P / 2) log(2 pi c)`` with ``P`` the number of pixels: squared
    error scaled by ``1 / (2c)`` plus a constant (AEVB, Appendix C.2).

    Args:
        mean: ``(B, ...)`` floating, the decoder's output ``f(z)``.
        x: same shape.
        variance: ``c > 0``.

    Returns:
        ``(B,)`` tensor, nats, summed over the non-batch dimensions.

    Raises:
        TypeError / ValueError: shapes differ, fewer than 2 dimensions, or ``variance <= 0``.
    """
    require_tensor("mean", mean, floating=True)
    require_tensor("x", x, floating=True)
    if mean.dim() < 2:
        raise ValueError(f"mean must have a batch dimension, got shape {tuple(mean.shape)}")
    require_same_shape("mean", mean, "x", x)
    if not float(variance) > 0:
        raise ValueError(f"variance must be positive, got {variance}")
    squared = ((x - mean) ** 2).flatten(start_dim=1)  # (B, P)
    return -squared.sum(dim=1) / (2 * variance) - 0.5 * squared.shape[1] * math.log(
        2 * math.pi * variance)


def negative_elbo(
    x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """The negative ELBO per example: ``-log p(x | z) + KL(q(z | x) || N(0, I))``.

    One-sample estimator with the KL in closed form (AEVB, Eq. 10): ``logits`` must be the
    decoding of a ``z`` drawn from ``q(z | x) = N(mu, diag(exp(logvar)))``.

    Args:
        x: ``(B, ...)`` targets in [0, 1].
        logits: decoder outputs, same shape as ``x``.
        mu, logvar: ``(B, D)`` encoder outputs.

    Returns:
        ``(B,)`` tensor, nats (an upper bound on ``-log p(x)`` in expectation). A training
        loss is its mean over the batch.

    Raises:
        TypeError / ValueError: as the two terms, or batch sizes that differ.
    """
    reconstruction = bernoulli_log_likelihood(logits, x)
    kl = gaussian_kl(mu, logvar)
    if reconstruction.shape != kl.shape:
        raise ValueError(f"x and mu must have the same batch size, got {x.shape[0]} and "
                         f"{mu.shape[0]}")
    return -reconstruction + kl


# --------------------------------------------------------------------------- models


class VAE(nn.Module):
    """The course's VAE for ``(B, 1, 28, 28)`` binarized digits: AEVB's one-hidden-layer MLPs.

    Encoder: flatten - linear 784->400 - ReLU - linear 400->2D, split into ``(mu, logvar)``.
    Decoder: linear D->400 - ReLU - linear 400->784 Bernoulli logits, reshaped to
    ``(B, 1, 28, 28)``. Kingma & Welling (2014, Appendix C) used one hidden layer of 500
    units for MNIST; 400 trains the 4,000 embedded digits as well and faster.

    Args:
        latent_dim: ``D``.

    Raises:
        TypeError / ValueError: ``latent_dim`` is not a positive int.
    """

    hidden_dim = 400

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = require_positive_int("latent_dim", latent_dim)
        self.encoder = nn.Sequential(
            nn.Flatten(),  # (B, 784)
            nn.Linear(784, self.hidden_dim), nn.ReLU(),
            nn.Linear(self.hidden_dim, 2 * latent_dim),  # (B, 2D): means and log-variances
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, self.hidden_dim), nn.ReLU(),
            nn.Linear(self.hidden_dim, 784),
            nn.Unflatten(1, (1, 28, 28)),  # (B, 1, 28, 28)
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 1, 28, 28)`` images to ``(mu, logvar)``, each ``(B, D)``."""
        _require_images("x", x)
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (B, D) each
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` latents to Bernoulli logits ``(B, 1, 28, 28)``."""
        require_tensor("z", z, ndim=2, floating=True)
        require_shape("z", z, (None, self.latent_dim))
        return self.decoder(z)

    def forward(
        self, x: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, reparameterize with the given ``eps`` ``(B, D)``, decode.

        Returns:
            ``(logits (B, 1, 28, 28), mu (B, D), logvar (B, D))``.
        """
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar, eps)), mu, logvar


class ConditionalVAE(nn.Module):
    """A conditional VAE (Sohn, Lee & Yan, 2015): encoder and decoder both see the label.

    ``q(z | x, y)`` and ``p(x | z, y)`` with prior ``N(0, I)``; the one-hot label is
    concatenated to the flattened image and to the latent. Decoding a prior sample with a
    chosen ``y`` draws that digit. Same layer sizes as :class:`VAE`.

    Args:
        latent_dim: ``D``.
        num_classes: number of labels (10 digits).

    Raises:
        TypeError / ValueError: an argument is not a positive int.
    """

    def __init__(self, latent_dim: int, num_classes: int = 10):
        super().__init__()
        self.latent_dim = require_positive_int("latent_dim", latent_dim)
        self.num_classes = require_positive_int("num_classes", num_classes)
        hidden = VAE.hidden_dim
        self.encoder = nn.Sequential(
            nn.Linear(784 + num_classes, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * latent_dim),  # (B, 2D)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim + num_classes, hidden), nn.ReLU(),
            nn.Linear(hidden, 784),
            nn.Unflatten(1, (1, 28, 28)),  # (B, 1, 28, 28)
        )

    def _one_hot(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        require_tensor("y", y, ndim=1, floating=False)
        require_shape("y", y, (batch,))
        if batch and not bool(((y >= 0) & (y < self.num_classes)).all()):
            raise ValueError(f"y must hold labels in 0..{self.num_classes - 1}, got "
                             f"{sorted(set(y.tolist()))[:5]}")
        return F.one_hot(y.long(), self.num_classes).float()  # (B, num_classes)

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(B, 1, 28, 28)`` and labels ``(B,)`` int to ``(mu, logvar)``, each ``(B, D)``."""
        _require_images("x", x)
        inputs = torch.cat([x.flatten(start_dim=1), self._one_hot(y, len(x)).to(x)], dim=1)
        mu, logvar = self.encoder(inputs).chunk(2, dim=1)  # (B, D) each
        return mu, logvar

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, D)`` and labels ``(B,)`` to Bernoulli logits ``(B, 1, 28, 28)``."""
        require_tensor("z", z, ndim=2, floating=True)
        require_shape("z", z, (None, self.latent_dim))
        return self.decoder(torch.cat([z, self._one_hot(y, len(z)).to(z)], dim=1))


def iwae_bound(model: nn.Module, x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """The importance-weighted lower bound ``L_k(x)`` on ``log p(x)`` (Burda et al., 2016, Eq. 8).

    With ``(mu, logvar) = model.encode(x)``, the noise is drawn once, exactly as
    ``eps = torch.randn(k, B, D, generator=generator)`` (on the generator's device, then moved
    to ``mu``'s), ``z_j = mu + exp(logvar / 2) * eps_j``, and

        log w_j = log p(x | z_j) + log N(z_j; 0, I) - log N(z_j; mu, diag(exp(logvar))),
        L_k     = logsumexp_j(log w_j) - log k                  (stable log-mean-exp).

    ``L_1`` is a one-sample estimate of the ELBO (with a Monte Carlo KL); the bound is
    non-decreasing in k in expectation and tends to ``log p(x)``.

    Args:
        model: has ``encode(x) -> (mu, logvar)`` ``(B, D)`` and ``decode(z) -> logits``
            shaped like ``x``, with Bernoulli pixels.
        x: ``(B, 1, 28, 28)`` images in [0, 1].
        k: number of importance samples per image.
        generator: the only source of randomness.

    Returns:
        ``(B,)`` tensor of lower bounds on ``log p(x)``, nats. Not wrapped in ``no_grad``
        (the bound is differentiable); evaluation callers add it. Memory grows as ``k * B``
        decoded images: evaluate large sets in chunks.

    Raises:
        TypeError / ValueError: bad ``x``, ``k`` or ``generator``.
    """
    _require_images("x", x)
    require_positive_int("k", k)
    require_generator("generator", generator)
    mu, logvar = model.encode(x)  # (B, D) each
    batch, latent_dim = mu.shape
    eps = torch.randn(k, batch, latent_dim, generator=generator,
                      device=generator.device).to(mu)  # (k, B, D)
    z = reparameterize(mu.expand(k, -1, -1), logvar.expand(k, -1, -1), eps)  # (k, B, D)
    logits = model.decode(z.reshape(k * batch, latent_dim))  # (k*B, 1, 28, 28)
    targets = x.expand(k, *x.shape).reshape(k * batch, *x.shape[1:])  # (k*B, 1, 28, 28)
    log_px_z = bernoulli_log_likelihood(logits, targets).reshape(k, batch)  # (k, B)
    log_pz = -0.5 * (z**2 + LOG_2PI).sum(dim=2)  # (k, B)
    log_qz = -0.5 * (eps**2 + logvar + LOG_2PI).sum(dim=2)  # (k, B): (z - mu)/sigma = eps
    log_w = log_px_z + log_pz - log_qz
    return torch.logsumexp(log_w, dim=0) - math.log(k)


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class VAETrainingConfig:
    """Hyperparameters of :func:`train_vae`.

    Attributes:
        batch_size: AEVB's minibatch size M = 100 (Algorithm 1): 40 Adam steps per epoch on
            the 4,000 embedded digits.
        learning_rate: 2e-3 for Adam (Kingma & Ba, 2015). With only 40 steps per epoch the
            default 1e-3 needs about 1.5 times as many epochs for the same test bound
            (measured: 95.4 nats after 60 epochs at 2e-3, 96.4 at 1e-3); the MLP is stable
            at 2e-3.
        max_shift: translate a training digit by up to this many pixels in each direction
            (0 turns augmentation off). 4,000 digits are few: without it the MLP VAE
            overfits after about 50 epochs and its test negative ELBO stalls near 100 nats;
            one-pixel shifts bring it to about 95 in 60 epochs (benchmarks/vae.py).
            Integer shifts keep binarized images in {0, 1}.
        shift_probability: the share of each minibatch that is shifted; half keeps the
            original, centred digits (the test digits are centred) in every batch.
    """

    batch_size: int = 100
    learning_rate: float = 2e-3
    max_shift: int = 1
    shift_probability: float = 0.5


def random_shift(
    images: torch.Tensor, max_shift: int, probability: float, generator: torch.Generator
) -> torch.Tensor:
    """Translate each image by a random integer offset in ``[-max_shift, max_shift]^2``.

    Pixels shifted in from outside are 0 (background). Draws, in this order, the
    horizontal offsets ``(B,)``, the vertical offsets ``(B,)`` and ``(B,)`` uniforms that
    decide which images (a share ``probability``) are shifted; the others are returned
    unchanged.

    Args:
        images: ``(B, C, H, W)``.
        max_shift: largest offset in pixels, ``>= 0``.
        probability: in [0, 1].
        generator: a CPU ``torch.Generator``.

    Returns:
        A new ``(B, C, H, W)`` tensor on the images' device.

    Raises:
        TypeError / ValueError: bad arguments.
    """
    require_tensor("images", images, ndim=4)
    require_generator("generator", generator)
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative int, got {max_shift!r}")
    if not 0.0 <= float(probability) <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    if max_shift == 0:
        return images.clone()
    batch, _, height, width = images.shape
    span = 2 * max_shift + 1
    dx = torch.randint(span, (batch,), generator=generator)
    dy = torch.randint(span, (batch,), generator=generator)
    shifted = torch.rand(batch, generator=generator) < probability
    dx = torch.where(shifted, dx, torch.full_like(dx, max_shift)).to(images.device)
    dy = torch.where(shifted, dy, torch.full_like(dy, max_shift)).to(images.device)
    padded = F.pad(images, (max_shift,) * 4)  # (B, C, H + 2s, W + 2s), zeros around
    rows = dy[:, None] + torch.arange(height, device=images.device)  # (B, H)
    cols = dx[:, None] + torch.arange(width, device=images.device)  # (B, W)
    batch_index = torch.arange(batch, device=images.device)[:, None, None]  # (B, 1, 1)
    crops = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]
    return crops.permute(0, 3, 1, 2).contiguous()  # (B, H, W, C) -> (B, C, H, W)


def train_vae(
    model: nn.Module,
    train_images: torch.Tensor,
    epochs: int,
    generator: torch.Generator,
    *,
    labels: torch.Tensor | None = None,
    config: VAETrainingConfig = VAETrainingConfig(),
    progress: bool = False,
) -> list[float]:
    """Train a VAE by minimising the batch mean of :func:`negative_elbo` with Adam (AEVB, Alg. 1).

    Every epoch shuffles with ``torch.randperm(N, generator=generator)``; each minibatch is
    augmented with :func:`random_shift` (unless ``config.max_shift == 0``), encoded, its
    noise drawn as ``torch.randn(B, D, generator=generator)`` (one sample per image, L = 1),
    reparameterized and decoded. ``generator`` is the only randomness besides the model's
    initialisation.

    Args:
        model: a :class:`VAE`-like module (``encode(x) -> (mu, logvar)``, ``decode(z) ->
            logits``), or with ``labels`` a :class:`ConditionalVAE`-like one (``encode(x, y)``,
            ``decode(z, y)``); trained in place on the device of its parameters.
        train_images: ``(N, 1, 28, 28)`` float32 in [0, 1] (binarized in the course).
        epochs: passes over the data.
        generator: a CPU ``torch.Generator``.
        labels: ``(N,)`` int labels to condition on, or None.
        config: the hyperparameters.
        progress: show a tqdm progress bar over epochs.

    Returns:
        Per-epoch mean training negative ELBO (on the augmented minibatches), nats per image,
        ``len == epochs``.

    Raises:
        TypeError / ValueError: bad ``train_images``, ``epochs``, ``generator`` or ``labels``.
    """
    _require_images("train_images", train_images)
    require_in_range("train_images", train_images, 0.0, 1.0)
    require_positive_int("epochs", epochs)
    require_generator("generator", generator)
    if labels is not None:
        require_tensor("labels", labels, ndim=1, floating=False)
        require_shape("labels", labels, (len(train_images),))
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    n = len(train_images)
    history: list[float] = []
    model.train()
    bar = tqdm(range(epochs), desc="training", unit="epoch", disable=not progress, leave=False)
    for _ in bar:
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, config.batch_size):
            index = order[start : start + config.batch_size]
            x = train_images[index].to(device)
            if config.max_shift:
                x = random_shift(x, config.max_shift, config.shift_probability, generator)
            condition = () if labels is None else (labels[index].to(device),)
            mu, logvar = model.encode(x, *condition)
            eps = torch.randn(mu.shape, generator=generator).to(mu)  # (B, D)
            logits = model.decode(reparameterize(mu, logvar, eps), *condition)
            loss = negative_elbo(x, logits, mu, logvar).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        history.append(total / n)
        bar.set_postfix(negative_elbo=f"{history[-1]:.1f}")
    model.eval()
    return history


@torch.no_grad()
def evaluate_vae(
    model: nn.Module,
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    ks: tuple[int, ...] = (1, 10, 100),
    batch_size: int = 100,
) -> dict[str, float]:
    """Test-set bounds of a (non-conditional) VAE, per-image means in nats.

    Args:
        model: as in :func:`iwae_bound`.
        images: ``(N, 1, 28, 28)`` in [0, 1] (the binarized embedded test set in the course).
        generator: draws every ``eps``: first one ``(B, D)`` sample per image for the ELBO,
            batch by batch; then each k starts from a copy of the generator's state at that
            point (so the k = 100 figure is the same whether or not other ks are asked for)
            and makes :func:`iwae_bound`'s draws batch by batch.
        ks: numbers of importance samples.
        batch_size: images per chunk (memory grows as ``k * batch_size`` decoded images).

    Returns:
        ``{"negative_elbo", "reconstruction", "kl", "iwae_<k>" for k in ks}``:
        ``reconstruction`` is the mean ``-log p(x | z)``, ``kl`` the mean closed-form KL,
        ``negative_elbo`` their sum, and ``iwae_<k>`` the mean ``-L_k(x)``: all upper bounds
        (in expectation) on the negative log-likelihood, nats per image. Divide by
        ``784 ln 2`` for bits/dim.

    Raises:
        TypeError / ValueError: bad ``images``, ``generator``, ``ks`` or ``batch_size``.
    """
    _require_images("images", images)
    require_generator("generator", generator)
    require_positive_int("batch_size", batch_size)
    for k in ks:
        require_positive_int("k", k)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    recon, kl = [], []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        mu, logvar = model.encode(x)
        eps = torch.randn(mu.shape, generator=generator).to(mu)
        logits = model.decode(reparameterize(mu, logvar, eps))
        recon.append(-bernoulli_log_likelihood(logits, x))
        kl.append(gaussian_kl(mu, logvar))
    reconstruction, divergence = torch.cat(recon).mean().item(), torch.cat(kl).mean().item()
    results = {"negative_elbo": reconstruction + divergence, "reconstruction": reconstruction,
               "kl": divergence}
    state = generator.get_state()
    for k in ks:
        generator_k = torch.Generator(device=generator.device)
        generator_k.set_state(state)
        bounds = [iwae_bound(model, images[s : s + batch_size].to(device), k, generator_k)
                  for s in range(0, len(images), batch_size)]
        results[f"iwae_{k}"] = -torch.cat(bounds).mean().item()
    model.train(was_training)
    return results


#: Latent size of the reference VAE of the book and of the likelihood table.
REFERENCE_LATENT_DIM = 20
#: Epochs of the reference training run: 60 epochs reach a test negative ELBO of about 95 nats
#: and fit the 60 s CPU training budget with margin (about 25-40 s on a 2-core CPU; measured by
#: benchmarks/vae.py, which records the time and the test bounds).
REFERENCE_EPOCHS = 60


def train_reference_vae(
    seed: int = 0,
    *,
    epochs: int = REFERENCE_EPOCHS,
    source: str | None = None,
    progress: bool = False,
) -> tuple[VAE, list[float]]:
    """Train the course's reference VAE (latent 20) on binarized MNIST; the book's model.

    Seeds torch's global generator with ``seed`` (weight initialisation), builds
    ``VAE(REFERENCE_LATENT_DIM)`` on :func:`gradelib.device.get_device`, and trains it with
    :func:`train_vae` (default :class:`VAETrainingConfig`, shuffling and noise from
    ``make_generator(seed)``) on ``load_mnist("train", binarized=True, source=source)``.
    The VAE chapter and the PixelCNN chapter's likelihood table both use this function, so
    they report the same model; evaluate it with :func:`evaluate_vae` on the binarized test
    set.

    Args:
        seed: seeds the initialisation, the shuffling and the noise.
        epochs: passes over the 4,000 embedded training digits.
        source: MNIST source, see :func:`gradelib.data.load_mnist` (embedded by default).
        progress: show a tqdm progress bar.

    Returns:
        ``(model, history)``: the trained model in eval mode and the per-epoch mean training
        negative ELBO (nats per image).

    Raises:
        TypeError / ValueError: from :func:`gradelib.data.load_mnist` (unknown ``source``)
            and :func:`train_vae` (``epochs`` not a positive int).
    """
    train_images, _ = load_mnist("train", binarized=True, source=source)
    torch.manual_seed(seed)
    model = VAE(REFERENCE_LATENT_DIM).to(get_device())
    history = train_vae(model, train_images, epochs, make_generator(seed), progress=progress)
    return model, history


# --------------------------------------------------------------------------- a tractable model


@dataclass(frozen=True)
class LinearGaussianModel:
    """A latent-variable model where everything is Gaussian and known in closed form.

    ``p(z) = N(0, I_D)``, ``p(x | z) = N(W z + b, s I_P)``: probabilistic PCA (Tipping &
    Bishop, 1999). Then (Bishop, 2006, Eqs. 2.113-2.117)

        p(x)     = N(b, W W^T + s I),
        p(z | x) = N(Sigma W^T (x - b) / s, Sigma),   Sigma = (I + W^T W / s)^{-1},

    and for a Gaussian ``q = N(m, S)`` the ELBO is closed-form too (:meth:`elbo`). All
    computations are in float64.

    Attributes:
        weight: ``W``, ``(P, D)``.
        bias: ``b``, ``(P,)``.
        noise_var: ``s > 0``.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    noise_var: float

    def __post_init__(self) -> None:
        require_tensor("weight", self.weight, ndim=2, floating=True)
        require_tensor("bias", self.bias, ndim=1, floating=True)
        require_shape("bias", self.bias, (self.weight.shape[0],))
        if not float(self.noise_var) > 0:
            raise ValueError(f"noise_var must be positive, got {self.noise_var}")

    @classmethod
    def random(cls, data_dim: int, latent_dim: int, generator: torch.Generator, *,
               noise_var: float = 0.5) -> LinearGaussianModel:
        """A model with standard normal ``W`` ``(data_dim, latent_dim)`` and ``b``."""
        require_positive_int("data_dim", data_dim)
        require_positive_int("latent_dim", latent_dim)
        require_generator("generator", generator)
        weight = torch.randn(data_dim, latent_dim, generator=generator, dtype=torch.float64)
        bias = torch.randn(data_dim, generator=generator, dtype=torch.float64)
        return cls(weight, bias, float(noise_var))

    @property
    def latent_dim(self) -> int:
        return int(self.weight.shape[1])

    def _x(self, x: torch.Tensor) -> torch.Tensor:
        require_tensor("x", x, ndim=2, floating=True)
        require_shape("x", x, (None, self.weight.shape[0]))
        return x.to(torch.float64)

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``(x (n, P), z (n, D))`` from the joint, float64."""
        require_positive_int("n", n)
        require_generator("generator", generator)
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)
        noise = torch.randn(n, len(self.bias), generator=generator, dtype=torch.float64)
        return z @ self.weight.T + self.bias + math.sqrt(self.noise_var) * noise, z

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x | z) + log p(z)`` for ``x (N, P)`` and ``z (..., N, D)``; shape ``(..., N)``."""
        x = self._x(x)
        residual = x - (z @ self.weight.T + self.bias)  # (..., N, P)
        log_px_z = -0.5 * ((residual**2).sum(-1) / self.noise_var
                           + x.shape[1] * math.log(2 * math.pi * self.noise_var))
        return log_px_z - 0.5 * (z**2 + LOG_2PI).sum(-1)

    def log_evidence(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` per row of ``x (N, P)``, shape ``(N,)``, from the marginal Gaussian."""
        x = self._x(x)
        covariance = self.weight @ self.weight.T + self.noise_var * torch.eye(
            len(self.bias), dtype=torch.float64)
        marginal = torch.distributions.MultivariateNormal(self.bias, covariance_matrix=covariance)
        return marginal.log_prob(x)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact posterior ``p(z | x)``: means ``(N, D)`` and the shared covariance ``(D, D)``."""
        x = self._x(x)
        precision = torch.eye(self.latent_dim, dtype=torch.float64) + (
            self.weight.T @ self.weight) / self.noise_var
        covariance = torch.linalg.inv(precision)
        means = (x - self.bias) @ self.weight @ covariance / self.noise_var  # (N, D)
        return means, covariance

    def elbo(self, x: torch.Tensor, q_mean: torch.Tensor, q_cov: torch.Tensor) -> torch.Tensor:
        """The ELBO of ``q(z | x) = N(q_mean, q_cov)`` in closed form, shape ``(N,)``.

        ``E_q[log p(x | z)] = -(||x - b - W m||^2 + tr(W S W^T)) / (2s) - (P/2) log(2 pi s)``
        and ``KL(q || N(0, I)) = (tr S + ||m||^2 - D - log det S) / 2``.

        Args:
            x: ``(N, P)``.
            q_mean: ``(N, D)``.
            q_cov: ``(D, D)`` shared or ``(N, D, D)`` per row, symmetric positive definite.
        """
        x = self._x(x)
        m, s_cov = self._q(x, q_mean, q_cov)
        residual = x - self.bias - m @ self.weight.T  # (N, P)
        trace_wsw = torch.einsum("pd,...de,pe->...", self.weight, s_cov, self.weight)
        expected_log_lik = -0.5 * (((residual**2).sum(1) + trace_wsw) / self.noise_var
                                   + x.shape[1] * math.log(2 * math.pi * self.noise_var))
        trace_s = torch.diagonal(s_cov, dim1=-2, dim2=-1).sum(-1)
        kl_prior = 0.5 * (trace_s + (m**2).sum(1) - self.latent_dim - torch.logdet(s_cov))
        return expected_log_lik - kl_prior

    def kl_to_posterior(self, x: torch.Tensor, q_mean: torch.Tensor,
                        q_cov: torch.Tensor) -> torch.Tensor:
        """``KL(q(z | x) || p(z | x))`` per row, shape ``(N,)`` (torch.distributions)."""
        x = self._x(x)
        m, s_cov = self._q(x, q_mean, q_cov)
        post_mean, post_cov = self.posterior(x)
        q = torch.distributions.MultivariateNormal(m, covariance_matrix=s_cov.expand(
            len(x), self.latent_dim, self.latent_dim))
        p = torch.distributions.MultivariateNormal(post_mean, covariance_matrix=post_cov)
        return torch.distributions.kl_divergence(q, p)

    def _q(self, x: torch.Tensor, q_mean: torch.Tensor,
           q_cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        require_tensor("q_mean", q_mean, ndim=2, floating=True)
        require_shape("q_mean", q_mean, (len(x), self.latent_dim))
        require_tensor("q_cov", q_cov, ndim=(2, 3), floating=True)
        d = self.latent_dim
        require_shape("q_cov", q_cov, (d, d) if q_cov.dim() == 2 else (len(x), d, d))
        return q_mean.to(torch.float64), q_cov.to(torch.float64)
