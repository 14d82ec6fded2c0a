"""Calibration reference (instructor side): three graded functions written as the course's
reference modules are, with argument checks and docstrings."""

import torch
import torch.nn.functional as F

EPS = 1e-12


def power_iteration(weight, u, num_iters):
    """Largest singular value of ``weight`` by power iteration (Miyato et al. 2018, Alg. 1).

    Returns (sigma, u): a 0-d tensor and the updated unit vector.
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError(f"weight must be a 2-D tensor, got {getattr(weight, 'shape', weight)!r}")
    if not isinstance(u, torch.Tensor) or tuple(u.shape) != (weight.shape[0],):
        raise ValueError(f"u must have shape ({weight.shape[0]},), got {tuple(getattr(u, 'shape', ()))}")
    if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
        raise ValueError(f"num_iters must be a positive int, got {num_iters!r}")
    v = None
    for _ in range(num_iters):
        v = F.normalize(weight.t() @ u, dim=0, eps=EPS)   # (in,)
        u = F.normalize(weight @ v, dim=0, eps=EPS)       # (out,)
    sigma = torch.dot(u, weight @ v)
    return sigma, u


def sliced_wasserstein(x, y, num_projections, generator):
    """Mean over random unit directions of the 1-D W1 between the projected samples.

    x, y: (N, D) with the same N; directions drawn from ``generator``.
    """
    if x.dim() != 2 or y.shape != x.shape:
        raise ValueError(f"x and y must be (N, D) of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if num_projections < 1:
        raise ValueError(f"num_projections must be >= 1, got {num_projections}")
    directions = torch.randn(x.shape[1], num_projections, generator=generator, dtype=x.dtype)
    directions = directions / directions.norm(dim=0, keepdim=True)   # (D, P)
    projected_x = torch.sort(x @ directions, dim=0).values          # (N, P)
    projected_y = torch.sort(y @ directions, dim=0).values          # (N, P)
    return (projected_x - projected_y).abs().mean(dim=0).mean()


def train_critic(critic, optimizer, real_batches, generator_fn, steps, penalty_weight):
    """Train a WGAN-GP critic for ``steps`` steps; returns the per-step losses."""
    history = []
    for step in range(steps):
        real = real_batches[step % len(real_batches)]
        fake = generator_fn(real.shape[0]).detach()
        alpha = torch.rand(real.shape[0], 1)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        scores = critic(mixed)
        grads = torch.autograd.grad(scores.sum(), mixed, create_graph=True)[0]
        penalty = ((grads.norm(2, dim=1) - 1) ** 2).mean()
        loss = critic(fake).mean() - critic(real).mean() + penalty_weight * penalty
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(loss))
    return history
