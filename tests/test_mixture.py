"""Unit tests of gradelib.mixture: the 1-D Gaussian mixture, its EM fit, and grid integrals."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import kstest, norm

from gradelib.device import make_generator
from gradelib.mixture import (
    EMConfig,
    GaussianMixture1D,
    cross_entropy_on_grid,
    entropy_on_grid,
    fit_gaussian_mixture,
    kl_divergence_on_grid,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run many tiny tensor operations, where torch's intra-op threads cost more
    than they save (on a busy 2-core machine, EM ran 50x slower with two threads)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


@pytest.fixture
def three() -> GaussianMixture1D:
    return GaussianMixture1D(_t(0.5, 0.3, 0.2), _t(-2.0, 0.5, 3.0), _t(0.6, 1.0, 0.4))


# ---------------------------------------------------------------- the mixture itself


def test_log_prob_matches_torch_distributions(three):
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    library = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=three.weights),
        torch.distributions.Normal(three.means, three.stds),
    )
    got = three.log_prob(x)
    assert got.shape == (101,) and got.dtype == torch.float64
    torch.testing.assert_close(got, library.log_prob(x), rtol=1e-12, atol=1e-12)


def test_log_prob_is_finite_in_the_far_tail(three):
    # exp underflows to 0 at x = 60, but the log-density is dominated by the widest
    # component there and is computed in log space.
    x = _t(60.0)
    got = three.log_prob(x)
    component = torch.log(three.weights) + torch.distributions.Normal(
        three.means, three.stds).log_prob(x[:, None])
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, torch.logsumexp(component, dim=1))
    # at x = 200 every component's density underflows to 0, yet the log-density is finite
    assert float(torch.exp(three.component_log_probs(_t(200.0))).sum()) == 0.0
    assert torch.isfinite(three.log_prob(_t(200.0))).all()


def test_density_integrates_to_one(three):
    grid = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    total = torch.trapezoid(three.log_prob(grid).exp(), grid)
    assert abs(float(total) - 1.0) < 1e-10


def test_sample_is_deterministic_and_follows_the_density(three):
    a = three.sample(5000, make_generator(3))
    b = three.sample(5000, make_generator(3))
    c = three.sample(5000, make_generator(4))
    assert a.shape == (5000,) and a.dtype == torch.float64
    assert torch.equal(a, b) and not torch.equal(a, c)

    def cdf(values):
        return sum(float(w) * norm.cdf(values, float(m), float(s))
                   for w, m, s in zip(three.weights, three.means, three.stds))

    # Kolmogorov-Smirnov against the mixture's CDF: a seeded draw, so the p-value is fixed;
    # a wrong component choice (e.g. uniform instead of the weights) gives p < 1e-10.
    assert kstest(a.numpy(), cdf).pvalue > 1e-3
    wrong = GaussianMixture1D(_t(1 / 3, 1 / 3, 1 / 3), three.means, three.stds)
    assert kstest(wrong.sample(5000, make_generator(3)).numpy(), cdf).pvalue < 1e-10


@pytest.mark.parametrize(
    ("weights", "means", "stds", "error", "match"),
    [
        (_t(0.5, 0.6), _t(0, 1), _t(1, 1), ValueError, "sum to 1"),
        (_t(1.5, -0.5), _t(0, 1), _t(1, 1), ValueError, "non-negative"),
        (_t(0.5, 0.5), _t(0, 1), _t(1, 0), ValueError, "stds must be positive"),
        (_t(0.5, 0.5), _t(0, 1, 2), _t(1, 1), ValueError, "same shape"),
        ([0.5, 0.5], _t(0, 1), _t(1, 1), TypeError, "weights must be a torch.Tensor"),
        (torch.tensor([1, 0]), _t(0, 1), _t(1, 1), TypeError, "floating-point"),
        (_t(), _t(), _t(), ValueError, "at least one component"),
    ],
)
def test_bad_parameters_raise(weights, means, stds, error, match):
    with pytest.raises(error, match=match):
        GaussianMixture1D(weights, means, stds)


def test_bad_arguments_raise(three):
    with pytest.raises(ValueError, match="x must have 1 dimension"):
        three.log_prob(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        three.sample(10, 0)
    with pytest.raises(ValueError, match="n must be positive"):
        three.sample(0, make_generator(0))


# ---------------------------------------------------------------- the EM fit


def test_em_recovers_a_well_separated_mixture(three):
    x = three.sample(20000, make_generator(11))
    fitted, history = fit_gaussian_mixture(x, 3)
    order = torch.argsort(fitted.means)
    torch.testing.assert_close(fitted.means[order], three.means, atol=0.05, rtol=0)
    torch.testing.assert_close(fitted.stds[order], three.stds, atol=0.05, rtol=0)
    torch.testing.assert_close(fitted.weights[order], three.weights, atol=0.02, rtol=0)
    # the fit beats the true parameters on its own training data (it maximises likelihood)
    assert history[-1] >= float(three.log_prob(x).mean())
    assert history[-1] == pytest.approx(float(fitted.log_prob(x).mean()), abs=1e-12)


def test_em_never_decreases_the_likelihood(three):
    x = three.sample(3000, make_generator(12))
    for k in (2, 3, 5):
        _, history = fit_gaussian_mixture(x, k)
        steps = torch.diff(torch.tensor(history, dtype=torch.float64))
        assert float(steps.min()) > -1e-12, f"K={k}: EM decreased the log-likelihood"
        assert len(history) >= 2


def _likelihood_gradient(mixture: GaussianMixture1D, x: torch.Tensor) -> float:
    """Largest |gradient| of the mean log-likelihood w.r.t. weight logits, means, log stds."""
    logits = torch.log(mixture.weights).clone().requires_grad_(True)
    means = mixture.means.clone().requires_grad_(True)
    log_stds = torch.log(mixture.stds).clone().requires_grad_(True)
    z = (x[:, None] - means) / log_stds.exp()
    joint = torch.log_softmax(logits, 0) - 0.5 * z**2 - log_stds - 0.5 * math.log(2 * math.pi)
    grads = torch.autograd.grad(torch.logsumexp(joint, dim=1).mean(), (logits, means, log_stds))
    return max(float(g.abs().max()) for g in grads)


def test_em_solution_is_a_stationary_point_of_the_likelihood(three):
    """At convergence the autograd gradient of the mean log-likelihood vanishes (EM found a
    maximum); at EM's starting point it does not (so the test can fail)."""
    x = three.sample(4000, make_generator(13))
    fitted, _ = fit_gaussian_mixture(x, 3, config=EMConfig(tolerance=1e-13, max_iterations=5000))
    start, _ = fit_gaussian_mixture(x, 3, config=EMConfig(max_iterations=0))
    assert _likelihood_gradient(fitted, x) < 1e-5
    assert _likelihood_gradient(start, x) > 1e-2


def test_single_component_fit_is_the_sample_mean_and_biased_std():
    x = 2.0 + 3.0 * torch.randn(500, generator=make_generator(5), dtype=torch.float64)
    fitted, history = fit_gaussian_mixture(x, 1)
    torch.testing.assert_close(fitted.means, x.mean().reshape(1))
    torch.testing.assert_close(fitted.stds, x.std(correction=0).reshape(1))
    expected = -0.5 * math.log(2 * math.pi * math.e * float(x.var(correction=0)))
    assert history[-1] == pytest.approx(expected, abs=1e-10)


def test_fit_is_deterministic_and_accepts_float32(three):
    x = three.sample(1000, make_generator(6))
    a, ha = fit_gaussian_mixture(x, 3)
    b, hb = fit_gaussian_mixture(x.float(), 3)
    assert ha == fit_gaussian_mixture(x, 3)[1]
    torch.testing.assert_close(a.means, b.means, atol=1e-4, rtol=0)


def test_std_floor_stops_a_collapse():
    """Half the data sits on one value: without the floor a component's std would reach 0
    and the likelihood +inf; with it, the fit stays finite and the floor binds."""
    x = torch.cat([torch.zeros(50, dtype=torch.float64),
                   torch.randn(50, generator=make_generator(7), dtype=torch.float64)])
    config = EMConfig(min_std_fraction=1e-3)
    fitted, history = fit_gaussian_mixture(x, 2, config=config)
    floor = 1e-3 * float(x.std())
    assert float(fitted.stds.min()) >= floor * (1 - 1e-12)
    assert float(fitted.stds.min()) == pytest.approx(floor, rel=1e-9)
    assert all(math.isfinite(h) for h in history)


@pytest.mark.parametrize(
    ("x", "k", "error", "match"),
    [
        (_t(1.0, 2.0), 3, ValueError, "at least num_components=3"),
        (_t(1.0, float("nan"), 2.0), 1, ValueError, "finite"),
        (_t(1.0, 2.0), 0, ValueError, "num_components must be positive"),
        ([1.0, 2.0], 1, TypeError, "x must be a torch.Tensor"),
        (torch.zeros(2, 2, dtype=torch.float64), 1, ValueError, "x must have 1 dimension"),
    ],
)
def test_fit_rejects_bad_input(x, k, error, match):
    with pytest.raises(error, match=match):
        fit_gaussian_mixture(x, k)


# ---------------------------------------------------------------- integrals on a grid


def _log_normal(grid, mean, std):
    return torch.distributions.Normal(torch.tensor(mean, dtype=torch.float64),
                                      torch.tensor(std, dtype=torch.float64)).log_prob(grid)


def test_grid_integrals_match_closed_forms():
    grid = torch.linspace(-25, 25, 50001, dtype=torch.float64)
    m1, s1, m2, s2 = 0.3, 1.2, -1.0, 2.5
    log_p, log_q = _log_normal(grid, m1, s1), _log_normal(grid, m2, s2)
    entropy = 0.5 * math.log(2 * math.pi * math.e * s1**2)
    kl = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    assert float(entropy_on_grid(log_p, grid)) == pytest.approx(entropy, abs=1e-9)
    assert float(kl_divergence_on_grid(log_p, log_q, grid)) == pytest.approx(kl, abs=1e-9)
    # cross-entropy = entropy + KL, the identity chapter 1 is built on
    assert float(cross_entropy_on_grid(log_p, log_q, grid)) == pytest.approx(entropy + kl, abs=1e-9)
    # direction matters: KL(q || p) is a different number
    reverse = math.log(s1 / s2) + (s2**2 + (m1 - m2) ** 2) / (2 * s1**2) - 0.5
    assert float(kl_divergence_on_grid(log_q, log_p, grid)) == pytest.approx(reverse, abs=1e-8)
    assert abs(reverse - kl) > 0.1


def test_grid_integrals_reject_bad_grids():
    grid = torch.linspace(-1, 1, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="strictly increasing"):
        entropy_on_grid(torch.zeros(5, dtype=torch.float64), grid.flip(0))
    with pytest.raises(ValueError, match="same shape"):
        kl_divergence_on_grid(torch.zeros(5, dtype=torch.float64),
                              torch.zeros(4, dtype=torch.float64), grid)
    with pytest.raises(TypeError, match="log_q must be a torch.Tensor"):
        cross_entropy_on_grid(torch.zeros(5, dtype=torch.float64), [0.0] * 5, grid)
