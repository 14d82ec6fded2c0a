import torch
import torch.nn.functional as F


def power_iteration(W, vec, n):
    out = None
    for k in range(n):
        out = F.normalize(W.t() @ vec, dim=0, eps=1e-12)
        vec = F.normalize(W @ out, dim=0, eps=1e-12)
    s = torch.dot(vec, W @ out)
    return s, vec


def sliced_wasserstein(a, b, p, gen):
    d = torch.randn(a.shape[1], p, generator=gen, dtype=a.dtype)
    d = d / d.norm(dim=0, keepdim=True)
    sa = torch.sort(a @ d, dim=0).values
    sb = torch.sort(b @ d, dim=0).values
    return (sa - sb).abs().mean(dim=0).mean()


def train_critic(critic, optimizer, real_batches, generator_fn, steps, penalty_weight):
    hist = []
    for i in range(steps):
        xr = real_batches[i % len(real_batches)]
        xf = generator_fn(xr.shape[0]).detach()
        w = torch.rand(xr.shape[0], 1)
        xm = (w * xr + (1 - w) * xf).requires_grad_(True)
        sc = critic(xm)
        gr = torch.autograd.grad(sc.sum(), xm, create_graph=True)[0]
        pen = ((gr.norm(2, dim=1) - 1) ** 2).mean()
        total = critic(xf).mean() - critic(xr).mean() + penalty_weight * pen
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        hist.append(float(total))
    return hist
