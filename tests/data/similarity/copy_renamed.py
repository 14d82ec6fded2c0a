import torch
import torch.nn.functional as F


def power_iteration(weight, u, num_iters):
    # my own power iteration
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError(f"bad matrix {getattr(weight, 'shape', weight)!r}")
    if not isinstance(u, torch.Tensor) or tuple(u.shape) != (weight.shape[0],):
        raise ValueError(f"bad vector ({weight.shape[0]},), {tuple(getattr(u, 'shape', ()))}")
    if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
        raise ValueError(f"bad count {num_iters!r}")
    right = None
    for _ in range(num_iters):
        right = F.normalize(weight.t() @ u, dim=0, eps=1e-12)
        u = F.normalize(weight @ right, dim=0, eps=1e-12)
    top = torch.dot(u, weight @ right)
    return top, u


def sliced_wasserstein(x, y, num_projections, generator):
    if x.dim() != 2 or y.shape != x.shape:
        raise ValueError(f"shapes {tuple(x.shape)} {tuple(y.shape)}")
    if num_projections < 1:
        raise ValueError(f"need projections, got {num_projections}")
    dirs = torch.randn(x.shape[1], num_projections, generator=generator, dtype=x.dtype)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    a = torch.sort(x @ dirs, dim=0).values
    b = torch.sort(y @ dirs, dim=0).values
    return (a - b).abs().mean(dim=0).mean()


def train_critic(critic, optimizer, real_batches, generator_fn, steps, penalty_weight):
    losses = []
    for it in range(steps):
        r = real_batches[it % len(real_batches)]
        f = generator_fn(r.shape[0]).detach()
        t = torch.rand(r.shape[0], 1)
        mid = (t * r + (1 - t) * f).requires_grad_(True)
        s = critic(mid)
        g = torch.autograd.grad(s.sum(), mid, create_graph=True)[0]
        gp = ((g.norm(2, dim=1) - 1) ** 2).mean()
        l = critic(f).mean() - critic(r).mean() + penalty_weight * gp
        optimizer.zero_grad()
        l.backward()
        optimizer.step()
        losses.append(float(l))
    return losses
