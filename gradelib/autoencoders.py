"""Autoencoders: the scalar linear autoencoder's loss landscape, and a convolutional AE.

The code of the autoencoder chapter (syllabus §2). The homework ``hw1_autoencoders`` takes the
next step (the matrix linear autoencoder and a denoising autoencoder); its graded references
live with its checks, on the instructor's side.

The scalar linear autoencoder reconstructs ``x_hat = w2 * w1 * x`` from scalars ``x_i`` with

    L(w1, w2) = mean_i (x_i - w2 w1 x_i)^2 = s (1 - w1 w2)^2,   s = mean_i x_i^2,

so every point of the hyperbola ``w1 w2 = 1`` has zero loss, and the origin is a critical
point whose Hessian ``[[0, -2s], [-2s, 0]]`` has eigenvalues ``±2s``: a saddle. This is the
one-dimensional case of Baldi & Hornik (1989), who showed that a linear autoencoder's
critical points are projections onto principal subspaces and that all local minima are
global.

The convolutional autoencoder follows the usual encoder/decoder design (Hinton &
Salakhutdinov, 2006, with convolutions as in Masci et al., 2011): two stride-2
convolutions down to a ``D``-dimensional code and two transposed convolutions back up,
with a sigmoid so that reconstructions lie in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gradelib.validation import (
    require_generator,
    require_positive_int,
    require_same_shape,
    require_shape,
    require_tensor,
)

__all__ = [
    "linear_ae_loss",
    "linear_ae_grad",
    "linear_ae_hessian",
    "classify_critical_point",
    "reconstruction_loss",
    "Autoencoder",
    "AutoencoderTrainingConfig",
    "train_autoencoder",
]


def _check_linear_ae_args(w1: torch.Tensor, w2: torch.Tensor, x: torch.Tensor) -> None:
    require_tensor("w1", w1, ndim=0, floating=True)
    require_tensor("w2", w2, ndim=0, floating=True)
    require_tensor("x", x, ndim=1, floating=True)
    if x.numel() == 0:
        raise ValueError("x must hold at least one sample, got shape (0,)")


def linear_ae_loss(w1: torch.Tensor, w2: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared reconstruction error of the scalar linear autoencoder.

    ``L(w1, w2) = mean_i (x_i - w2 * w1 * x_i)^2``.

    Args:
        w1: encoder weight, 0-d floating tensor.
        w2: decoder weight, 0-d floating tensor.
        x: data, ``(N,)`` floating tensor.

    Returns:
        0-d tensor, the loss (mean over the N samples), differentiable in w1 and w2.

    Raises:
        TypeError / ValueError: an argument is not a floating tensor of the stated shape.
    """
    _check_linear_ae_args(w1, w2, x)
    return ((x - w2 * w1 * x) ** 2).mean()


def linear_ae_grad(
    w1: torch.Tensor, w2: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic gradient of :func:`linear_ae_loss`, derived by hand (no autograd).

    With ``s = mean(x^2)``, ``L = s (1 - w1 w2)^2``, so

        dL/dw1 = -2 s w2 (1 - w1 w2),    dL/dw2 = -2 s w1 (1 - w1 w2).

    Returns:
        ``(dL/dw1, dL/dw2)``, two 0-d tensors.

    Raises:
        TypeError / ValueError: as :func:`linear_ae_loss`.
    """
    _check_linear_ae_args(w1, w2, x)
    s = (x**2).mean()
    residual = 1 - w1 * w2
    return -2 * s * w2 * residual, -2 * s * w1 * residual


def linear_ae_hessian(w1: torch.Tensor, w2: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Analytic Hessian of :func:`linear_ae_loss` with respect to ``(w1, w2)``.

    ``[[2 s w2^2, 4 s w1 w2 - 2 s], [4 s w1 w2 - 2 s, 2 s w1^2]]`` with ``s = mean(x^2)``;
    at the origin this is ``[[0, -2s], [-2s, 0]]``.

    Returns:
        ``(2, 2)`` symmetric tensor, same dtype as ``x``.

    Raises:
        TypeError / ValueError: as :func:`linear_ae_loss`.
    """
    _check_linear_ae_args(w1, w2, x)
    s = (x**2).mean()
    off_diagonal = 4 * s * w1 * w2 - 2 * s
    row1 = torch.stack([2 * s * w2**2, off_diagonal])
    row2 = torch.stack([off_diagonal, 2 * s * w1**2])
    return torch.stack([row1, row2])  # (2, 2)


def classify_critical_point(hessian: torch.Tensor, *, tol: float = 1e-9) -> str:
    """Second-derivative test at a critical point: ``"minimum"``, ``"maximum"`` or ``"saddle"``.

    The eigenvalues of the symmetric Hessian decide: all positive, a (strict local) minimum;
    all negative, a maximum; some positive and some negative, a saddle.

    Args:
        hessian: ``(n, n)`` symmetric floating tensor.
        tol: eigenvalues within ``tol * max|eigenvalue|`` of zero count as zero.

    Raises:
        TypeError / ValueError: ``hessian`` is not a square floating matrix or not symmetric.
        ValueError: the test is inconclusive (a zero eigenvalue and no eigenvalue of the
            opposite sign), e.g. on the zero-loss set ``w1 w2 = 1``.
    """
    require_tensor("hessian", hessian, ndim=2, floating=True)
    n = hessian.shape[0]
    require_shape("hessian", hessian, (n, n))
    if not torch.allclose(hessian, hessian.T, rtol=1e-6, atol=1e-12):
        raise ValueError("hessian must be symmetric, got a matrix with hessian != hessian.T")
    eigenvalues = torch.linalg.eigvalsh(hessian.to(torch.float64))
    scale = float(eigenvalues.abs().max())
    positive = bool((eigenvalues > tol * scale).any())
    negative = bool((eigenvalues < -tol * scale).any())
    if positive and negative:
        return "saddle"
    zero = bool((eigenvalues.abs() <= tol * scale).any()) or scale == 0.0
    if zero:
        raise ValueError(
            f"the second-derivative test is inconclusive: hessian has eigenvalues "
            f"{eigenvalues.tolist()} (a zero eigenvalue and none of the opposite sign)"
        )
    return "minimum" if positive else "maximum"


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors per image: ``sum_{c,h,w} (x_hat - x)^2``.

    Args:
        x_hat: reconstructions ``(B, C, H, W)``, floating.
        x: targets, same shape as ``x_hat``.

    Returns:
        ``(B,)`` tensor: one sum per image (squared intensity units, not averaged over pixels).

    Raises:
        TypeError / ValueError: not floating 4-D tensors, or shapes differ (no broadcasting).
    """
    require_tensor("x_hat", x_hat, ndim=4, floating=True)
    require_tensor("x", x, ndim=4, floating=True)
    require_same_shape("x_hat", x_hat, "x", x)
    return ((x_hat - x) ** 2).sum(dim=(1, 2, 3))


class Autoencoder(nn.Module):
    """Convolutional autoencoder for ``(B, 1, 28, 28)`` images in [0, 1].

    Encoder: conv 4x4/2 (16 ch, 14x14) - ReLU - conv 4x4/2 (32 ch, 7x7) - ReLU - linear to D.
    Decoder: the mirror image with transposed convolutions and a final sigmoid.

    Args:
        latent_dim: ``D``, the size of the code (the bottleneck).

    Raises:
        TypeError / ValueError: ``latent_dim`` is not a positive int.
    """

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = require_positive_int("latent_dim", latent_dim)
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=4, stride=2, padding=1),  # (B, 16, 14, 14)
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2, padding=1),  # (B, 32, 7, 7)
            nn.ReLU(),
            nn.Flatten(),  # (B, 32*7*7)
            nn.Linear(32 * 7 * 7, latent_dim),  # (B, D)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 32 * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (32, 7, 7)),  # (B, 32, 7, 7)
            nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1),  # (B, 16, 14, 14)
            nn.ReLU(),
            nn.ConvTranspose2d(16, 1, kernel_size=4, stride=2, padding=1),  # (B, 1, 28, 28)
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 28, 28)`` images to ``(B, D)`` codes."""
        require_tensor("x", x, ndim=4, floating=True)
        require_shape("x", x, (None, 1, 28, 28))
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` codes to ``(B, 1, 28, 28)`` reconstructions in [0, 1]."""
        require_tensor("z", z, ndim=2, floating=True)
        require_shape("z", z, (None, self.latent_dim))
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``: ``(B, 1, 28, 28)`` to ``(B, 1, 28, 28)``."""
        return self.decode(self.encode(x))


@dataclass(frozen=True)
class AutoencoderTrainingConfig:
    """Hyperparameters of :func:`train_autoencoder`.

    Attributes:
        batch_size: 64 gives ~63 Adam steps per epoch on the 4,000 embedded digits, enough
            for a conv AE to reach a test SSE near 10 in 10 epochs (seconds on a CPU).
        learning_rate: Adam's default 1e-3 (Kingma & Ba, 2015) works for this model.
    """

    batch_size: int = 64
    learning_rate: float = 1e-3


def train_autoencoder(
    model: nn.Module,
    train_images: torch.Tensor,
    epochs: int,
    generator: torch.Generator,
    *,
    config: AutoencoderTrainingConfig = AutoencoderTrainingConfig(),
) -> list[float]:
    """Train ``model`` to minimise the mean per-image :func:`reconstruction_loss` with Adam.

    Each epoch visits every image once in an order drawn from ``generator`` (the only
    source of randomness besides the model's own initialisation).

    Args:
        model: maps ``(B, 1, 28, 28)`` to ``(B, 1, 28, 28)``; trained in place on the
            device of its parameters.
        train_images: ``(N, 1, 28, 28)`` float32 in [0, 1].
        epochs: number of passes over the data.
        generator: a CPU ``torch.Generator`` for the shuffling.

    Returns:
        Per-epoch mean training loss (sum of squared errors per image, averaged over the
        images seen in the epoch), ``len == epochs``.

    Raises:
        TypeError / ValueError: bad ``train_images``, ``epochs`` or ``generator``.
    """
    require_tensor("train_images", train_images, ndim=4, floating=True)
    require_shape("train_images", train_images, (None, 1, 28, 28))
    require_positive_int("epochs", epochs)
    require_generator("generator", generator)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    n = len(train_images)
    history = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, config.batch_size):
            batch = train_images[order[start : start + config.batch_size]].to(device)
            loss = reconstruction_loss(model(batch), batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history.append(total / n)
    model.eval()
    return history
