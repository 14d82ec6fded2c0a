"""Reference answers of ``hw7_diffusion`` (syllabus §8): flow matching with classifier-free guidance.

Instructor side only: the hidden checks of :mod:`gradelib.checks.hw7_diffusion` compare the
student's functions with these. Nothing in the book or the student kit imports this module.

Conventions fixed by the homework notebook:

- ``x0`` is noise ``N(0, I)``, ``x1`` data; the linear interpolant
  ``x_t = (1 - t) x0 + t x1`` has the constant velocity ``x1 - x0``
  (Lipman et al., 2023, Eqs. 20-23 with ``sigma_min = 0``; Liu et al., 2023, Eq. 1).
- The model is called ``model(x, t, labels)`` with ``t`` a ``(B,)`` float in ``[0, 1]`` and
  ``labels`` ``(B,)`` int64; the **null label** is ``model.num_classes``.
- Randomness of :func:`flow_matching_loss`, drawn with the given generator in this order:
  ``x0 = torch.randn(x1.shape, dtype=x1.dtype)``, ``t = torch.rand(B, dtype=x1.dtype)``,
  ``u = torch.rand(B, dtype=x1.dtype)``; label ``i`` is dropped when ``u_i < p_uncond``.
- Guidance (Ho & Salimans, 2022, Eq. 6, written for velocities):
  ``(1 + w) v(x, t, y) - w v(x, t, null)``.
- :func:`heun_sample` integrates ``dx/dt = guided velocity`` from ``t = 0`` to ``t = 1`` on
  ``num_steps`` equal steps with Heun's method (the explicit trapezoidal rule; Karras et al.,
  2022, Algorithm 1, here without the noise levels' change of variables).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "BATCH_SIZE",
    "LEARNING_RATE",
    "P_UNCOND",
    "linear_interpolant",
    "flow_matching_loss",
    "guided_velocity",
    "heun_sample",
    "euler_sample",
    "train_flow_matching",
]

#: The training settings the notebook recommends (the check does not require them).
BATCH_SIZE = 256
LEARNING_RATE = 2e-3
P_UNCOND = 0.2


def linear_interpolant(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``(1 - t) x0 + t x1`` with ``t`` ``(B,)`` broadcast over each example's dimensions."""
    t = t.to(x0).reshape(-1, *([1] * (x0.dim() - 1)))  # (B, 1, ..., 1)
    return (1 - t) * x0 + t * x1


def flow_matching_loss(model: nn.Module, x1: torch.Tensor, labels: torch.Tensor,
                       generator: torch.Generator, p_uncond: float) -> torch.Tensor:
    """``mean_b sum_i (v(x_t, t, y~) - (x1 - x0))^2`` with labels dropped to null w.p. ``p_uncond``."""
    batch = len(x1)
    x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
    t = torch.rand(batch, generator=generator, dtype=x1.dtype)
    drop = torch.rand(batch, generator=generator, dtype=x1.dtype) < p_uncond
    labels = torch.where(drop, torch.full_like(labels, model.num_classes), labels)
    prediction = model(linear_interpolant(x0, x1, t), t, labels)
    return ((prediction - (x1 - x0)) ** 2).flatten(1).sum(1).mean()


def guided_velocity(model: nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                    guidance: float) -> torch.Tensor:
    """``(1 + w) v(x, t, y) - w v(x, t, null)``."""
    null = torch.full_like(labels, model.num_classes)
    return (1 + guidance) * model(x, t, labels) - guidance * model(x, t, null)


@torch.no_grad()
def heun_sample(model: nn.Module, x0: torch.Tensor, labels: torch.Tensor, num_steps: int,
                guidance: float) -> torch.Tensor:
    """Heun's method from ``t = 0`` to ``t = 1``: ``2 * num_steps`` guided velocities."""
    x, h = x0.clone(), 1.0 / num_steps
    for k in range(num_steps):
        t = torch.full((len(x),), k / num_steps, dtype=x.dtype)
        t_next = torch.full((len(x),), (k + 1) / num_steps, dtype=x.dtype)
        slope = guided_velocity(model, x, t, labels, guidance)
        predicted = x + h * slope
        x = x + h / 2 * (slope + guided_velocity(model, predicted, t_next, labels, guidance))
    return x


@torch.no_grad()
def euler_sample(model: nn.Module, x0: torch.Tensor, labels: torch.Tensor, num_steps: int,
                 guidance: float) -> torch.Tensor:
    """Euler's method on the same steps (a known mistake, and the cheaper sampler)."""
    x, h = x0.clone(), 1.0 / num_steps
    for k in range(num_steps):
        t = torch.full((len(x),), k / num_steps, dtype=x.dtype)
        x = x + h * guided_velocity(model, x, t, labels, guidance)
    return x


def train_flow_matching(model: nn.Module, data: torch.Tensor, labels: torch.Tensor, steps: int,
                        generator: torch.Generator) -> list[float]:
    """Adam on :func:`flow_matching_loss`, minibatches drawn with ``generator``; per-step losses."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 - i / steps)
    history = []
    model.train()
    for _ in range(steps):
        rows = torch.randint(len(data), (BATCH_SIZE,), generator=generator)
        loss = flow_matching_loss(model, data[rows], labels[rows], generator, P_UNCOND)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        decay.step()
        history.append(loss.item())
    model.eval()
    return history
