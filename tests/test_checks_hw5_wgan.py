"""Tests of the hw5_wgan autograder checks (second edition): each accepts the reference and
rejects realistic wrong answers with a message that names the function and gives a targeted
hint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradelib.checks import hw5_wgan as checks
from gradelib.checks.references import hw5_wgan as reference
from gradelib.data import ring_mixture
from gradelib.device import make_generator

# ---------------------------------------------------------------------- power iteration


def test_power_iteration_accepts_the_reference():
    checks.check_power_iteration(reference.power_iteration)


def test_one_iteration_is_far_from_the_exact_singular_value():
    """The check's one-iteration cases tell Algorithm 1 from an exact (SVD) answer."""
    one_iteration = [case for case in checks._power_cases() if case[3] == 1]
    assert len(one_iteration) >= 3
    for label, weight, u, num_iters in one_iteration:
        estimate, _ = reference.power_iteration(weight, u, num_iters)
        exact = torch.linalg.matrix_norm(weight.double(), ord=2)
        assert float(estimate) < float(exact) * (1 - 1e-3), label  # below, by more than rtol
        assert float(estimate) <= float(exact) + 1e-6


def _iterate(weight, u, num_iters, *, normalise=True, fresh_v=False):
    for _ in range(num_iters):
        v = weight.T @ u
        v = v / v.norm() if normalise else v
        u = weight @ v
        u = u / u.norm() if normalise else u
    if fresh_v:
        v = F.normalize(weight.T @ u, dim=0)
    return u @ (weight @ v), u, v


def _svd(weight, u, num_iters):
    _, u_new, _ = _iterate(weight, u, num_iters)
    return torch.linalg.svdvals(weight)[0], u_new


@pytest.mark.parametrize("wrong, message", [
    (_svd, "No torch.linalg"),
    (lambda w, u, n: (w.norm(), _iterate(w, u, n)[1]), "Frobenius norm"),
    (lambda w, u, n: _iterate(w, u, n + 1)[:2], "not one more"),
    (lambda w, u, n: _iterate(w, u, n, fresh_v=True)[:2], "do not recompute v"),
    (lambda w, u, n: _iterate(w, u, n, normalise=False)[:2], "Normalise v and u"),
    (lambda w, u, n: (_iterate(w, u, n)[0], _iterate(w, u, n)[2]), "shape"),
    (lambda w, u, n: (_iterate(w, u, n)[0], u), "Return the updated u"),
    (lambda w, u, n: _iterate(w, u, n)[0], "expected a tuple"),
])
def test_power_iteration_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_power_iteration(wrong)


# ------------------------------------------------------------------- the normalised layer


def test_spectral_norm_linear_accepts_the_reference():
    checks.check_spectral_norm_linear(reference.SpectralNormLinear)


class _Layer(reference.SpectralNormLinear):
    """The reference with one thing changed (subclasses override ``sigma``/``forward``)."""

    def sigma(self):
        with torch.no_grad():
            u = self.u.clone()
            v = F.normalize(self.weight.T @ u, dim=0)
        return u @ (self.weight @ v)

    def advance(self):
        with torch.no_grad():
            _, u = reference.power_iteration(self.weight, self.u, 1)
            self.u.copy_(u)

    def forward(self, x):
        if self.training:
            self.advance()
        return F.linear(x, self.weight / self.sigma(), self.bias)


class _Frobenius(_Layer):
    def sigma(self):
        return self.weight.norm()


class _NotPersisted(_Layer):
    def forward(self, x):
        u = self.u
        if self.training:
            with torch.no_grad():
                _, u = reference.power_iteration(self.weight, self.u, 1)  # not stored
        v = F.normalize(self.weight.T @ u, dim=0).detach()
        return F.linear(x, self.weight / (u @ (self.weight @ v)), self.bias)


class _NonPersistentBuffer(_Layer):
    def __init__(self, in_features, out_features):
        super().__init__(in_features, out_features)
        u = self.u.clone()
        del self.u
        self.register_buffer("u", u, persistent=False)


class _PlainAttribute(_Layer):
    def __init__(self, in_features, out_features):
        super().__init__(in_features, out_features)
        u = self.u.clone()
        del self.u
        self.u = u


class _IteratesInEval(_Layer):
    def forward(self, x):
        self.advance()
        return F.linear(x, self.weight / self.sigma(), self.bias)


class _MiyatoSigma(_Layer):
    """Uses the sigma that power_iteration returns (the v from the old u)."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            old = self.u.clone()
            _, u = reference.power_iteration(self.weight, old, 1)
            v = F.normalize(self.weight.T @ old, dim=0)
            self.u.copy_(u)
        return F.linear(x, self.weight / (u @ (self.weight @ v)), self.bias)


class _ExactSigma(_Layer):
    def sigma(self):
        return torch.linalg.matrix_norm(self.weight, ord=2)


class _NotDetached(_Layer):
    def forward(self, x):
        u = self.u.clone()
        if self.training:
            v = F.normalize(self.weight.T @ u, dim=0)  # with gradients
            u = F.normalize(self.weight @ v, dim=0)
            self.u.copy_(u.detach())
        v = F.normalize(self.weight.T @ u, dim=0)
        return F.linear(x, self.weight / (u @ (self.weight @ v)), self.bias)


class _BiasNormalised(_Layer):
    def forward(self, x):
        if self.training:
            self.advance()
        sigma = self.sigma()
        return F.linear(x, self.weight / sigma, self.bias / sigma)


class _TorchSpectralNorm(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = torch.nn.utils.parametrizations.spectral_norm(nn.Linear(in_features,
                                                                              out_features))
        self.register_buffer("u", torch.ones(out_features) / math.sqrt(out_features))

    def forward(self, x):
        return self.linear(x)


class _Transposed(_Layer):
    def __init__(self, in_features, out_features):
        super().__init__(in_features, out_features)
        self.weight = nn.Parameter(self.weight.detach().T.clone())

    def forward(self, x):
        return x @ self.weight / self.weight.norm() + self.bias


class _NotUnit(_Layer):
    def __init__(self, in_features, out_features):
        super().__init__(in_features, out_features)
        with torch.no_grad():
            self.u.copy_(torch.randn(out_features))


@pytest.mark.parametrize("wrong, message", [
    (_Frobenius, "not by the Frobenius norm"),
    (_NotPersisted, "Store the updated u back in the buffer"),
    (_NonPersistentBuffer, "state_dict\\(\\) holds"),
    (_PlainAttribute, "expected a buffer u"),
    (_IteratesInEval, "In eval mode the layer must not iterate"),
    (_MiyatoSigma, "recomputed from the updated u"),
    (_ExactSigma, "do not compute it exactly"),
    (_NotDetached, "the gradient must not flow through the power iteration"),
    (_BiasNormalised, "Only the weight is normalised"),
    (_TorchSpectralNorm, "uses torch's spectral normalisation"),
    (_Transposed, "expected exactly"),
    (_NotUnit, "unit vector"),
])
def test_spectral_norm_linear_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_spectral_norm_linear(wrong)


def test_spectral_norm_linear_failure_names_the_pass_and_mode():
    with pytest.raises(AssertionError) as info:
        checks.check_spectral_norm_linear(_NotPersisted)
    message = str(info.value)
    assert message.startswith("SpectralNormLinear: state_dict()['u'] after forward pass 1 in "
                              "training mode")
    assert "expected" in message and "Hint:" in message


# ------------------------------------------------------------------- the sliced distance


def test_sliced_wasserstein_accepts_the_reference():
    checks.check_sliced_wasserstein(reference.sliced_wasserstein)


def _sliced(unit=True, kind="w1", global_rng=False, reduce="mean", per_projection=False):
    def fn(x, y, num_projections, generator):
        if global_rng:
            theta = torch.randn(num_projections, x.shape[1])
        else:
            theta = torch.randn(num_projections, x.shape[1], generator=generator)
        if unit:
            theta = theta / theta.norm(dim=1, keepdim=True)
        px, py = x @ theta.T, y @ theta.T
        if kind == "unsorted":
            return (px - py).abs().mean()
        diff = px.sort(dim=0).values - py.sort(dim=0).values
        if kind == "w2":
            return diff.pow(2).mean(dim=0).sqrt().mean()
        if kind == "w2_squared":
            return diff.pow(2).mean()
        per = diff.abs().mean(dim=0)  # (K,)
        if per_projection:
            return per
        return per.sum() if reduce == "sum" else per.mean()
    return fn


@pytest.mark.parametrize("wrong, message", [
    (_sliced(unit=False), "Normalise each direction to unit length"),
    (_sliced(kind="w2"), "W1, not W2"),
    (_sliced(kind="w2_squared"), "not the squared W2"),
    (_sliced(kind="unsorted"), "Sort each projected sample"),
    (_sliced(global_rng=True), "Draw the directions with the generator you are given"),
    (_sliced(reduce="sum"), "Average over the projections"),
    (_sliced(per_projection=True), "shape"),
])
def test_sliced_wasserstein_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_sliced_wasserstein(wrong)


# ---------------------------------------------------------------- the gradient-norm bound


def test_gradient_norm_bound_accepts_the_reference():
    checks.check_gradient_norm_bound(reference.gradient_norm_bound)


def _bound(at_data=False, reduce="max", whole_batch=False, squared=False, per_example=False):
    def fn(critic, x):
        points = x.detach().clone()
        if at_data:
            points = ring_mixture().sample(len(x), make_generator(0))
        points.requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(points).sum(), points)
        grad = grad.reshape(len(grad), -1)
        if whole_batch:
            return grad.norm()
        norms = grad.norm(dim=1)
        if per_example:
            return norms
        if squared:
            norms = norms ** 2
        return norms.mean() if reduce == "mean" else norms.max()
    return fn


def _in_place(critic, x):
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    with torch.no_grad():
        x.mul_(1.0 + 1e-3)  # "normalises" the points in place
    return grad.reshape(len(grad), -1).norm(dim=1).max()


@pytest.mark.parametrize("wrong, message", [
    (_bound(at_data=True), "at the points x you are given"),
    (_bound(reduce="mean"), "not the mean"),
    (_bound(whole_batch=True), "per example"),
    (_bound(squared=True), "not its square"),
    (_bound(per_example=True), "shape"),
    (_in_place, "changed x"),
])
def test_gradient_norm_bound_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_gradient_norm_bound(wrong)


# ----------------------------------------------------------------------------- training


def test_sn_critic_is_public_and_one_lipschitz():
    critic = checks.sn_critic(16)
    assert critic.portable_spec["path"] == "torch.nn.Sequential"
    layer = critic[0]
    assert layer.portable_spec["path"] == checks.SPECTRAL_NORM
    assert layer.portable_spec["args"][0] is not layer  # the recipe does not name itself
    critic.eval()
    x = 4 * torch.rand(200, 2, generator=make_generator(0)) - 2
    for _ in range(20):  # converge the power iterations
        critic.train()
        critic(x)
    critic.eval()
    assert float(reference.gradient_norm_bound(critic, x)) <= 1.0 + 1e-4


def test_expected_rng_state_does_not_depend_on_the_order_of_the_draws():
    ring, rng = ring_mixture(), make_generator(3)
    for _ in range(2):
        for _ in range(5):
            torch.randn(reference.BATCH_SIZE, 2, generator=rng)
            ring.sample(reference.BATCH_SIZE, rng)
        torch.randn(reference.BATCH_SIZE, 2, generator=rng)
    assert torch.equal(rng.get_state(), checks._expected_rng_state(3, 2, 5, 2))


@pytest.fixture(scope="module")
def reference_run():
    return checks.check_train_sn_wgan(reference.train_sn_wgan)


def test_train_sn_wgan_accepts_the_reference(reference_run):
    assert reference_run["modes"] >= checks.MIN_RING_MODES
    assert reference_run["sliced_w1"] <= checks.MAX_SLICED_W1
    assert 0 < reference_run["lipschitz_bound"] <= checks.MAX_LIPSCHITZ_BOUND


def _loop(generator_sign=-1.0, global_noise=False, keys=checks.HISTORY_KEYS, short=False):
    def train(generator, critic, data_sampler, steps, n_critic, generator_rng):
        m = reference.BATCH_SIZE
        opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.9))
        opt_c = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda i: 1 - i / steps)
                      for o in (opt_g, opt_c)]
        history = {key: [] for key in keys}

        def noise():
            if global_noise:
                return torch.randn(m, generator.latent_dim)
            return torch.randn(m, generator.latent_dim, generator=generator_rng)

        for _ in range(steps // 10 if short else steps):
            for _ in range(n_critic):
                real = data_sampler(m, generator_rng)
                with torch.no_grad():
                    fake = generator(noise())
                loss_c = critic(fake).mean() - critic(real).mean()
                opt_c.zero_grad()
                loss_c.backward()
                opt_c.step()
            loss_g = generator_sign * critic(generator(noise())).mean()
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            for scheduler in schedulers:
                scheduler.step()
            values = {"critic": loss_c.item(), "generator": loss_g.item(),
                      "wasserstein_estimate": -loss_c.item(),
                      "lipschitz_bound": float(reference.gradient_norm_bound(
                          critic, torch.cat([real, fake])))}
            for key in keys:
                history[key].append(values[key])
        return history
    return train


@pytest.mark.parametrize("wrong, message", [
    (_loop(generator_sign=1.0), "captures .* expected at least"),
    (_loop(global_noise=True), "generator_rng did not advance"),
    (_loop(keys=("critic", "generator")), "history\\['wasserstein_estimate'\\]: returned NoneType"),
    (_loop(short=True), f"expected a list of {checks.TRAINING_STEPS} floats"),
])
def test_train_sn_wgan_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_train_sn_wgan(wrong)
