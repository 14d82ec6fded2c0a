import torch


def power_iteration(weight, u, num_iters):
    """Power method on W^T W, tracking the left vector."""
    W = weight
    v = torch.zeros(W.shape[1], dtype=W.dtype)
    n = 0
    while n < num_iters:
        v = torch.matmul(W.transpose(0, 1), u)
        v /= torch.linalg.vector_norm(v).clamp_min(1e-12)
        u = torch.matmul(W, v)
        u /= torch.linalg.vector_norm(u).clamp_min(1e-12)
        n += 1
    return (u * (W @ v)).sum(), u


def sliced_wasserstein(x, y, num_projections, generator):
    dirs = []
    for _ in range(num_projections):
        g = torch.randn(x.size(1), generator=generator, dtype=x.dtype)
        dirs.append(g / torch.linalg.vector_norm(g))
    dirs = torch.stack(dirs, dim=1)
    xs = torch.sort(torch.matmul(x, dirs), 0)[0]
    ys = torch.sort(torch.matmul(y, dirs), 0)[0]
    return torch.mean(torch.abs(xs - ys))


def train_critic(critic, optimizer, real_batches, generator_fn, steps, penalty_weight):
    out = []
    for s in range(steps):
        batch = real_batches[s % len(real_batches)]
        m = batch.shape[0]
        generated = generator_fn(m).detach()
        mix = torch.rand(m, 1)
        points = torch.lerp(generated, batch, mix).detach().requires_grad_(True)
        critic_out = critic(points).sum()
        grads, = torch.autograd.grad(critic_out, points, create_graph=True)
        penalty = (torch.linalg.vector_norm(grads, dim=1) - 1).square().mean()
        cost = critic(generated).mean() - critic(batch).mean() + penalty_weight * penalty
        optimizer.zero_grad()
        cost.backward()
        optimizer.step()
        out.append(cost.detach().item())
    return out
