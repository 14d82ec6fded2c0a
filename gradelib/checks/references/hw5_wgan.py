"""Reference implementations of ``hw5_wgan``, second edition (syllabus §6): instructor side.

The hidden checks of :mod:`gradelib.checks.hw5_wgan` compare the student's functions with
these. They live with the checks, never in the student-facing ``gradelib`` (the chapter,
:mod:`gradelib.wgan`, shows weight clipping and the gradient penalty; the homework is the
third way to keep a critic Lipschitz, spectral normalisation, and the sliced Wasserstein
distance).

- :func:`power_iteration`: Miyato et al. (2018), Algorithm 1, for one weight matrix.
- :class:`SpectralNormLinear`: ``y = x (W / sigma(W))^T + b`` with one power iteration per
  forward pass in training mode and a persistent buffer ``u``; it agrees exactly with
  ``torch.nn.utils.parametrizations.spectral_norm`` started from the same ``u`` (torch also
  stores ``v``, which after every iteration equals ``W^T u / ||W^T u||``).
- :func:`sliced_wasserstein`: Rabin et al. (2011), Deshpande et al. (2018): the mean over
  random unit directions of the 1-D W1 between the projected samples.
- :func:`gradient_norm_bound`: ``max_n ||grad f(x_n)||_2``, a lower bound on the critic's
  Lipschitz constant (any ``K`` with ``|f(x) - f(y)| <= K ||x - y||`` bounds every gradient).
- :func:`train_sn_wgan`: a WGAN whose critic is made Lipschitz by spectral normalisation
  alone (no clipping, no penalty), Adam as in Miyato et al. (2018, §4).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "power_iteration",
    "SpectralNormLinear",
    "sliced_wasserstein",
    "gradient_norm_bound",
    "train_sn_wgan",
    "BATCH_SIZE",
    "LEARNING_RATE",
    "BETAS",
]

#: Normalisation guard, as in torch's ``spectral_norm`` (``F.normalize``'s ``eps``).
EPS = 1e-12
#: Minibatch size ``m`` of :func:`train_sn_wgan`, real and fake alike.
BATCH_SIZE = 256
#: Adam's step size in :func:`train_sn_wgan`, both players.
LEARNING_RATE = 1e-3
#: Adam's ``(beta1, beta2)`` in :func:`train_sn_wgan` (Miyato et al., 2018, Table 1, setting C
#: uses ``(0.5, 0.999)``; ``(0.5, 0.9)`` is WGAN-GP's choice with DCGAN's ``beta1``).
BETAS = (0.5, 0.9)


def power_iteration(weight: torch.Tensor, u: torch.Tensor,
                    num_iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The power-iteration estimate of the largest singular value of ``weight``.

    Miyato et al. (2018), Algorithm 1, repeated ``num_iters`` times from ``u``::

        v <- W^T u / ||W^T u||,   u <- W v / ||W v||,

    then ``sigma = u^T W v`` with the last ``u`` and ``v``. No ``torch.linalg``.

    Args:
        weight: ``(out, in)`` floating tensor.
        u: ``(out,)`` floating tensor (any non-zero start; a unit vector in practice).
        num_iters: iterations, ``>= 1``.

    Returns:
        ``(sigma, u)``: a 0-d tensor and the updated ``(out,)`` unit vector, in
        ``weight``'s dtype. Differentiable where the inputs require gradients (the layer
        below calls it under ``torch.no_grad``).

    Raises:
        TypeError / ValueError: ``weight`` not 2-D, ``u`` not ``(out,)``, bad ``num_iters``.
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError(f"weight must be a 2-D tensor, got {getattr(weight, 'shape', weight)!r}")
    if not isinstance(u, torch.Tensor) or tuple(u.shape) != (weight.shape[0],):
        raise ValueError(f"u must have shape ({weight.shape[0]},), got "
                         f"{tuple(getattr(u, 'shape', ()))}")
    if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
        raise ValueError(f"num_iters must be a positive int, got {num_iters!r}")
    for _ in range(num_iters):
        v = F.normalize(weight.T @ u, dim=0, eps=EPS)  # (in,)
        u = F.normalize(weight @ v, dim=0, eps=EPS)  # (out,)
    sigma = u @ (weight @ v)  # 0-d
    return sigma, u


class SpectralNormLinear(nn.Module):
    """A linear layer with a spectrally normalised weight, ``y = x (W / sigma(W))^T + b``.

    ``sigma(W) = u^T W v`` with ``v = W^T u / ||W^T u||``, where ``u`` is a persistent
    buffer (it is saved in ``state_dict``). In training mode each forward pass first advances
    ``u`` by one step of :func:`power_iteration`; in eval mode ``u`` stays as it is. ``u`` and
    ``v`` are constants for autograd (the gradient flows through ``W`` only), as in Miyato et
    al. (2018, §2.2) and ``torch.nn.utils.parametrizations.spectral_norm``, with which the
    layer agrees when that one is started from the same ``u`` and ``v = W^T u / ||W^T u||``.

    Args:
        in_features, out_features: sizes, as ``nn.Linear``; parameters ``weight``
            ``(out, in)`` and ``bias`` ``(out,)`` initialised as ``nn.Linear``'s, buffer ``u``
            ``(out,)`` a random unit vector from the global generator.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation
        bound = 1 / math.sqrt(in_features)
        nn.init.uniform_(self.bias, -bound, bound)
        self.register_buffer("u", F.normalize(torch.randn(out_features), dim=0, eps=EPS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in)`` to ``(B, out)``."""
        if self.training:
            with torch.no_grad():
                _, u = power_iteration(self.weight, self.u, 1)
                self.u.copy_(u)
        with torch.no_grad():
            u = self.u.clone()  # the buffer changes in place at the next forward
            v = F.normalize(self.weight.T @ u, dim=0, eps=EPS)  # (in,)
        sigma = u @ (self.weight @ v)  # 0-d, differentiable in W
        return F.linear(x, self.weight / sigma, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, num_projections: int,
                       generator: torch.Generator) -> torch.Tensor:
    """Sliced W1 between two equal-size point clouds (Rabin et al., 2011; Deshpande et al., 2018).

    ``SW1 = (1/K) sum_k W1(<theta_k, x>, <theta_k, y>)`` over ``K = num_projections``
    directions ``theta_k = g_k / ||g_k||`` with ``g = torch.randn(K, d, generator=generator,
    dtype=x.dtype)`` (one draw; uniform on the sphere), each 1-D W1 by sorting.

    Args:
        x, y: ``(N, d)`` floating tensors, same shape.
        num_projections: ``K >= 1``.
        generator: a ``torch.Generator`` for the directions.

    Returns:
        0-d tensor, in the units of the points.

    Raises:
        ValueError: shapes differ or are not 2-D, bad ``num_projections``.
    """
    if x.dim() != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must be (N, d) of one shape, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    if isinstance(num_projections, bool) or not isinstance(num_projections, int) \
            or num_projections < 1:
        raise ValueError(f"num_projections must be a positive int, got {num_projections!r}")
    directions = torch.randn(num_projections, x.shape[1], generator=generator, dtype=x.dtype)
    directions = directions / directions.norm(dim=1, keepdim=True)  # (K, d), unit rows
    px = torch.sort(x @ directions.T, dim=0).values  # (N, K)
    py = torch.sort(y @ directions.T, dim=0).values  # (N, K)
    return (px - py).abs().mean()


def gradient_norm_bound(critic: Callable[[torch.Tensor], torch.Tensor],
                        x: torch.Tensor) -> torch.Tensor:
    """``max_n ||grad_x f(x_n)||_2``: a lower bound on the Lipschitz constant of ``critic``.

    The gradient of ``f(x).sum()`` with respect to ``x`` holds each example's input gradient
    (the critic scores examples independently); the norm is per example, over all non-batch
    dimensions. ``x`` itself is not modified.

    Args:
        critic: maps ``(B, ...)`` to ``(B,)`` (or ``(B, 1)``) scores.
        x: ``(B, ...)`` floating tensor, the points where the gradient is taken.

    Returns:
        0-d tensor (detached).
    """
    points = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (gradients,) = torch.autograd.grad(critic(points).sum(), points)
    return gradients.reshape(len(gradients), -1).norm(dim=1).max().detach()  # (B,) -> 0-d


def train_sn_wgan(generator: nn.Module, critic: nn.Module,
                  data_sampler: Callable[[int, torch.Generator], torch.Tensor], steps: int,
                  n_critic: int, generator_rng: torch.Generator) -> dict[str, list[float]]:
    """Train a WGAN whose critic is spectrally normalised (no clipping, no penalty).

    Each of the ``steps`` generator updates follows ``n_critic`` critic updates. A critic
    update draws ``real = data_sampler(m, generator_rng)`` and ``fake = generator(z)`` with
    ``z = torch.randn(m, generator.latent_dim, generator=generator_rng)`` (no gradient into
    the generator) and minimises ``mean f(fake) - mean f(real)``; the generator update draws
    fresh noise and minimises ``-mean f(G(z))``. Adam for both, step size
    :data:`LEARNING_RATE` decayed linearly to 0 over the run (``LambdaLR`` with
    ``1 - i / steps``, stepped after each generator update: the samples settle on the modes
    instead of jittering around them), :data:`BETAS`, ``m =`` :data:`BATCH_SIZE`.

    Returns:
        One float per generator step under ``"critic"`` (the last critic loss),
        ``"generator"`` (the generator loss), ``"wasserstein_estimate"`` (``mean f(real) -
        mean f(fake)`` on the last critic batch) and ``"lipschitz_bound"``
        (:func:`gradient_norm_bound` of the critic on that batch's real and fake points).
    """
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=LEARNING_RATE, betas=BETAS)
    optimizer_c = torch.optim.Adam(critic.parameters(), lr=LEARNING_RATE, betas=BETAS)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 - i / steps)
                  for optimizer in (optimizer_g, optimizer_c)]
    m, latent_dim = BATCH_SIZE, generator.latent_dim
    history: dict[str, list[float]] = {"critic": [], "generator": [],
                                       "wasserstein_estimate": [], "lipschitz_bound": []}
    generator.train()
    critic.train()
    for _ in range(steps):
        for _ in range(n_critic):
            real = data_sampler(m, generator_rng)
            with torch.no_grad():
                fake = generator(torch.randn(m, latent_dim, generator=generator_rng))
            real_scores, fake_scores = critic(real), critic(fake)
            loss_c = fake_scores.mean() - real_scores.mean()
            optimizer_c.zero_grad(set_to_none=True)
            loss_c.backward()
            optimizer_c.step()
        loss_g = -critic(generator(torch.randn(m, latent_dim, generator=generator_rng))).mean()
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()
        for scheduler in schedulers:
            scheduler.step()
        history["critic"].append(loss_c.item())
        history["generator"].append(loss_g.item())
        history["wasserstein_estimate"].append(-loss_c.item())
        history["lipschitz_bound"].append(
            gradient_norm_bound(critic, torch.cat([real, fake])).item())
    generator.eval()
    critic.eval()
    return history
