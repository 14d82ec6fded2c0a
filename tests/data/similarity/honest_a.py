import torch


def power_iteration(weight, u, num_iters):
    """My power iteration."""
    for i in range(num_iters):
        v = weight.T @ u
        v = v / (v.norm() + 1e-12)
        u = weight @ v
        u = u / (u.norm() + 1e-12)
    return u @ weight @ v, u


def sliced_wasserstein(x, y, num_projections, generator):
    total = 0.0
    for p in range(num_projections):
        theta = torch.randn(x.shape[1], generator=generator, dtype=x.dtype)
        theta = theta / theta.norm()
        a, _ = torch.sort(x @ theta)
        b, _ = torch.sort(y @ theta)
        total = total + torch.mean(torch.abs(a - b))
    return total / num_projections


def train_critic(critic, optimizer, real_batches, generator_fn, steps, penalty_weight):
    losses = []
    i = 0
    while i < steps:
        x_real = real_batches[i % len(real_batches)]
        with torch.no_grad():
            x_fake = generator_fn(len(x_real))
        t = torch.rand(len(x_real), 1)
        x_hat = t * x_real + (1 - t) * x_fake
        x_hat.requires_grad = True
        out = critic(x_hat)
        (g,) = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out), create_graph=True)
        gp = torch.mean((torch.sqrt((g ** 2).sum(1)) - 1) ** 2)
        wasserstein = critic(x_real).mean() - critic(x_fake).mean()
        loss = -wasserstein + penalty_weight * gp
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        i += 1
    return losses
