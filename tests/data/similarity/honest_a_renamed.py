import torch


def power_iteration(weight, u, num_iters):
    """Power iteration (worked on with a friend)."""
    for it in range(num_iters):
        right = weight.T @ u
        right = right / (right.norm() + 1e-12)
        u = weight @ right
        u = u / (u.norm() + 1e-12)
    return u @ weight @ right, u


def sliced_wasserstein(x, y, num_projections, generator):
    acc = 0.0
    for j in range(num_projections):
        direction = torch.randn(x.shape[1], generator=generator, dtype=x.dtype)
        direction = direction / direction.norm()
        px, _ = torch.sort(x @ direction)
        py, _ = torch.sort(y @ direction)
        acc = acc + torch.mean(torch.abs(px - py))
    return acc / num_projections


def train_critic(critic, optimizer, real_batches, generator_fn, steps, penalty_weight):
    history = []
    n = 0
    while n < steps:
        real = real_batches[n % len(real_batches)]
        with torch.no_grad():
            fake = generator_fn(len(real))
        mix = torch.rand(len(real), 1)
        inter = mix * real + (1 - mix) * fake
        inter.requires_grad = True
        scores = critic(inter)
        (grad,) = torch.autograd.grad(scores, inter, grad_outputs=torch.ones_like(scores), create_graph=True)
        penalty = torch.mean((torch.sqrt((grad ** 2).sum(1)) - 1) ** 2)
        w_est = critic(real).mean() - critic(fake).mean()
        total = -w_est + penalty_weight * penalty
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
        n += 1
    return history
