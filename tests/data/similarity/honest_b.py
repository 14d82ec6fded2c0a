import math

import torch
import torch.nn.functional as F


def power_iteration(weight, u, num_iters):
    # alternate between the right and the left singular vector
    for _ in range(num_iters):
        v = F.normalize(torch.mv(weight.t(), u), dim=0)
        u = F.normalize(torch.mv(weight, v), dim=0)
    sigma = torch.sum(u * torch.mv(weight, v))
    return sigma, u


def sliced_wasserstein(x, y, num_projections, generator):
    n, d = x.shape
    w = torch.randn(num_projections, d, generator=generator, dtype=x.dtype)
    w = F.normalize(w, dim=1)
    px = (w @ x.T).sort(dim=1)[0]     # (P, N)
    py = (w @ y.T).sort(dim=1)[0]
    distances = (px - py).abs().sum(dim=1) / n
    return distances.mean()


def train_critic(critic, optimizer, real_batches, generator_fn, steps, penalty_weight):
    record = []
    for k in range(steps):
        real = real_batches[k % len(real_batches)]
        fake = generator_fn(real.size(0)).detach()
        eps = torch.rand(real.size(0), 1).expand_as(real)
        interp = eps * real + (1.0 - eps) * fake
        interp = interp.clone().requires_grad_()
        grad = torch.autograd.grad(critic(interp).sum(), interp, create_graph=True)[0]
        lip = (grad.pow(2).sum(dim=1).sqrt() - 1.0).pow(2).mean()
        objective = critic(fake).mean() - critic(real).mean()
        optimizer.zero_grad()
        (objective + penalty_weight * lip).backward()
        optimizer.step()
        record.append(float(objective + penalty_weight * lip))
    return record
