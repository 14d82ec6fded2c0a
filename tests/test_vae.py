"""Unit tests of gradelib.vae: closed forms against torch.distributions, autograd and
quadrature, shapes, determinism, and the error messages of bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradelib import vae
from gradelib.data import load_mnist
from gradelib.device import make_generator


@pytest.fixture(scope="module")
def digits():
    images, labels = load_mnist("test", binarized=True)
    return images[:64].clone(), labels[:64].clone()


def _normal(mu, logvar):
    return torch.distributions.Normal(mu, torch.exp(0.5 * logvar))


# --- gaussian_kl ----------------------------------------------------------------------------

def test_gaussian_kl_matches_torch_distributions_and_is_zero_at_the_prior():
    g = make_generator(0)
    mu, logvar = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 5, generator=g,
                                                                                   dtype=torch.float64)
    standard = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(_normal(mu, logvar), standard).sum(1)
    torch.testing.assert_close(vae.gaussian_kl(mu, logvar), expected)
    assert vae.gaussian_kl(mu, logvar).shape == (7,)
    assert torch.equal(vae.gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3))
    assert bool((vae.gaussian_kl(mu, logvar) > 0).all())


def test_gaussian_kl_matches_a_monte_carlo_estimate():
    g = make_generator(1)
    mu, logvar = torch.randn(2, 3, generator=g, dtype=torch.float64), torch.randn(2, 3, generator=g,
                                                                                   dtype=torch.float64)
    eps = torch.randn(200_000, 2, 3, generator=g, dtype=torch.float64)
    z = vae.reparameterize(mu.expand_as(eps), logvar.expand_as(eps), eps)
    log_q = _normal(mu, logvar).log_prob(z).sum(-1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    estimate = (log_q - log_p).mean(0)
    stderr = (log_q - log_p).std(0) / math.sqrt(len(eps))
    assert bool(((estimate - vae.gaussian_kl(mu, logvar)).abs() < 4 * stderr).all())


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((torch.zeros(3, 2), torch.zeros(3, 3)), ValueError, "mu and logvar must have the same shape"),
        ((torch.zeros(3), torch.zeros(3)), ValueError, "mu must have 2 dimension"),
        (([0.0], torch.zeros(1, 1)), TypeError, "mu must be a torch.Tensor, got list"),
        ((torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, 2)), TypeError, "floating-point"),
    ],
)
def test_gaussian_kl_rejects_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        vae.gaussian_kl(*args)


# --- reparameterize -------------------------------------------------------------------------

def test_reparameterize_value_and_gradients():
    g = make_generator(2)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    eps = torch.randn(4, 3, generator=g, dtype=torch.float64)
    z = vae.reparameterize(mu, logvar, eps)
    torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * eps)
    weights = torch.randn(4, 3, generator=g, dtype=torch.float64)
    d_mu, d_logvar = torch.autograd.grad((weights * z).sum(), (mu, logvar))
    torch.testing.assert_close(d_mu, weights)
    torch.testing.assert_close(d_logvar, weights * eps * torch.exp(0.5 * logvar.detach()) / 2)


def test_reparameterize_samples_have_the_encoder_moments():
    mu, logvar = torch.tensor([[1.5, -2.0]]), torch.tensor([[0.5, -1.0]])
    eps = torch.randn(100_000, 2, generator=make_generator(3))
    z = vae.reparameterize(mu.expand_as(eps), logvar.expand_as(eps), eps)
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), logvar[0].exp(), atol=0, rtol=0.02)


def test_reparameterize_rejects_mismatched_noise():
    with pytest.raises(ValueError, match="mu and eps must have the same shape"):
        vae.reparameterize(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4))


# --- likelihoods and the negative ELBO ------------------------------------------------------

def test_bernoulli_log_likelihood_matches_torch_and_is_stable(digits):
    x = digits[0][:5]
    logits = 4 * torch.randn(5, 1, 28, 28, generator=make_generator(4))
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(dim=(1, 2, 3))
    torch.testing.assert_close(vae.bernoulli_log_likelihood(logits, x), expected)
    extreme = torch.full((2, 1, 2, 2), 100.0)
    target = torch.tensor([1.0, 0.0, 1.0, 0.0]).reshape(1, 1, 2, 2).repeat(2, 1, 1, 1)
    torch.testing.assert_close(vae.bernoulli_log_likelihood(extreme, target),
                               torch.full((2,), -200.0))


@pytest.mark.parametrize(
    ("logits", "x", "message"),
    [
        (torch.zeros(2, 4), torch.full((2, 4), 1.5), r"x must have values in \[0.0, 1.0\]"),
        (torch.zeros(2, 4), torch.zeros(2, 5), "logits and x must have the same shape"),
        (torch.zeros(4), torch.zeros(4), "logits must have a batch dimension"),
    ],
)
def test_bernoulli_log_likelihood_rejects_bad_input(logits, x, message):
    with pytest.raises(ValueError, match=message):
        vae.bernoulli_log_likelihood(logits, x)


def test_gaussian_log_likelihood_matches_torch_distributions():
    g = make_generator(5)
    mean, x = torch.randn(3, 1, 4, 4, generator=g), torch.rand(3, 1, 4, 4, generator=g)
    expected = torch.distributions.Normal(mean, math.sqrt(0.3)).log_prob(x).sum(dim=(1, 2, 3))
    torch.testing.assert_close(vae.gaussian_log_likelihood(mean, x, 0.3), expected)
    with pytest.raises(ValueError, match="variance must be positive, got 0"):
        vae.gaussian_log_likelihood(mean, x, 0)


def test_negative_elbo_is_reconstruction_plus_kl(digits):
    x = digits[0][:6]
    g = make_generator(6)
    logits, mu, logvar = torch.randn(6, 1, 28, 28, generator=g), torch.randn(6, 4, generator=g), \
        torch.randn(6, 4, generator=g)
    expected = -vae.bernoulli_log_likelihood(logits, x) + vae.gaussian_kl(mu, logvar)
    torch.testing.assert_close(vae.negative_elbo(x, logits, mu, logvar), expected)
    with pytest.raises(ValueError, match="x and mu must have the same batch size, got 6 and 5"):
        vae.negative_elbo(x, logits, mu[:5], logvar[:5])


# --- models ---------------------------------------------------------------------------------

def test_vae_shapes_and_forward(digits):
    torch.manual_seed(0)
    model = vae.VAE(7)
    x = digits[0][:3]
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, 7)
    assert model.decode(mu).shape == (3, 1, 28, 28)
    eps = torch.randn(3, 7, generator=make_generator(7))
    logits, mu2, _ = model(x, eps)
    torch.testing.assert_close(logits, model.decode(vae.reparameterize(mu, logvar, eps)))
    torch.testing.assert_close(mu2, mu)
    with pytest.raises(ValueError, match=r"z must have shape \(\*, 7\), got \(3, 6\)"):
        model.decode(torch.zeros(3, 6))
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 1, 28, 28\)"):
        model.encode(torch.zeros(3, 1, 14, 14))
    with pytest.raises(ValueError, match="latent_dim must be positive, got 0"):
        vae.VAE(0)


def test_conditional_vae_shapes_and_label_validation(digits):
    torch.manual_seed(0)
    model = vae.ConditionalVAE(5)
    x, y = digits[0][:4], digits[1][:4]
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (4, 5)
    assert model.decode(mu, y).shape == (4, 1, 28, 28)
    # the label changes the decoding
    assert not torch.allclose(model.decode(mu, y), model.decode(mu, (y + 1) % 10))
    with pytest.raises(ValueError, match=r"y must hold labels in 0..9"):
        model.decode(mu, torch.tensor([0, 1, 2, 10]))
    with pytest.raises(TypeError, match="y must have an integer dtype"):
        model.decode(mu, y.float())


# --- the importance-weighted bound ----------------------------------------------------------

def _log_evidence_by_quadrature(model, x, points=4001, limit=9.0):
    """log p(x) of a 1-D latent model: a Riemann sum of p(x|z) p(z) on a fine grid."""
    z = torch.linspace(-limit, limit, points, dtype=torch.float64)[:, None]  # (Z, 1)
    with torch.no_grad():
        logits = model.decode(z.float()).double()  # (Z, 1, 28, 28)
    log_px_z = torch.stack([vae.bernoulli_log_likelihood(logits, xi.expand_as(logits).double())
                            for xi in x])  # (B, Z)
    log_joint = log_px_z - 0.5 * (z[:, 0] ** 2 + math.log(2 * math.pi))
    return torch.logsumexp(log_joint, dim=1) + math.log(2 * limit / (points - 1))


def test_iwae_bound_increases_with_k_towards_the_true_log_likelihood(digits):
    """With a 1-D latent, log p(x) is computable by quadrature: L_1 <= L_10 <= L_100 <= L_1000
    ~ log p(x) (Burda et al., Theorem 1), up to the Monte Carlo error of 10 seeds."""
    torch.manual_seed(1)
    model = vae.VAE(1).eval()
    x = digits[0][:4]
    truth = _log_evidence_by_quadrature(model, x).mean()
    means, errors = {}, {}
    with torch.no_grad():
        for k in (1, 10, 100, 1000):
            runs = torch.stack([vae.iwae_bound(model, x, k, make_generator(s)).double().mean()
                                for s in range(10)])  # (10,) mean over the 4 images
            means[k], errors[k] = runs.mean(), runs.std() / math.sqrt(len(runs))
    for small, large in ((1, 10), (10, 100), (100, 1000)):
        slack = 3 * math.hypot(errors[small], errors[large])
        assert means[small] <= means[large] + slack, (small, large, means)
    assert abs(means[1000] - truth) <= 4 * errors[1000] + 1e-2, (means[1000], truth)
    assert truth - means[1] > 3 * errors[1], (means[1], truth)


def test_iwae_bound_with_one_sample_is_the_single_sample_elbo(digits):
    torch.manual_seed(2)
    model = vae.VAE(3).eval()
    x = digits[0][:5]
    with torch.no_grad():
        bound = vae.iwae_bound(model, x, 1, make_generator(8))
        mu, logvar = model.encode(x)
        eps = torch.randn(1, 5, 3, generator=make_generator(8))[0]
        z = vae.reparameterize(mu, logvar, eps)
        log_w = (vae.bernoulli_log_likelihood(model.decode(z), x)
                 + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
                 - _normal(mu, logvar).log_prob(z).sum(1))
    torch.testing.assert_close(bound, log_w, rtol=1e-5, atol=1e-3)
    assert bool(torch.isfinite(vae.iwae_bound(model, x, 50, make_generator(9))).all())
    torch.testing.assert_close(vae.iwae_bound(model, x, 7, make_generator(3)),
                               vae.iwae_bound(model, x, 7, make_generator(3)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="k must be positive, got 0"):
        vae.iwae_bound(model, x, 0, make_generator(0))
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        vae.iwae_bound(model, x, 3, 0)


# --- augmentation, training and evaluation --------------------------------------------------

def test_random_shift_moves_digits_by_at_most_max_shift(digits):
    x = digits[0][:32]
    shifted = vae.random_shift(x, 1, 1.0, make_generator(10))
    assert shifted.shape == x.shape and bool(((shifted == 0) | (shifted == 1)).all())
    rows = torch.arange(28.0)[:, None]

    def centre(images):
        mass = images[:, 0].sum(dim=(1, 2))
        return (images[:, 0] * rows).sum(dim=(1, 2)) / mass

    assert float((centre(shifted) - centre(x)).abs().max()) <= 1.0 + 0.05
    assert torch.equal(vae.random_shift(x, 1, 0.0, make_generator(10)), x)
    assert torch.equal(vae.random_shift(x, 0, 1.0, make_generator(10)), x)
    with pytest.raises(ValueError, match="probability must be in"):
        vae.random_shift(x, 1, 1.5, make_generator(0))


def test_train_vae_decreases_the_loss_and_is_deterministic(digits):
    images, labels = load_mnist("train", binarized=True)
    images, labels = images[:200], labels[:200]
    histories = []
    for _ in range(2):
        torch.manual_seed(0)
        model = vae.VAE(4)
        histories.append(vae.train_vae(model, images, 2, make_generator(0)))
    assert histories[0] == histories[1] and len(histories[0]) == 2
    assert histories[0][-1] < histories[0][0]
    assert not model.training
    torch.manual_seed(0)
    conditional = vae.ConditionalVAE(4)
    history = vae.train_vae(conditional, images, 2, make_generator(0), labels=labels,
                            config=vae.VAETrainingConfig(max_shift=0))
    assert history[-1] < history[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"epochs": 0}, ValueError, "epochs must be positive"),
        ({"generator": 0}, TypeError, "generator must be a torch.Generator"),
        ({"labels": torch.zeros(5, dtype=torch.int64)}, ValueError, r"labels must have shape \(10\), got \(5,\)"),
        ({"train_images": torch.zeros(10, 784)}, ValueError, "train_images must have 4 dimension"),
    ],
)
def test_train_vae_rejects_bad_input(kwargs, error, message):
    arguments = {"model": vae.VAE(2), "train_images": torch.zeros(10, 1, 28, 28), "epochs": 1,
                 "generator": make_generator(0), **kwargs}
    with pytest.raises(error, match=message):
        vae.train_vae(**arguments)


def test_evaluate_vae_reports_consistent_bounds(digits):
    torch.manual_seed(3)
    model = vae.VAE(2)
    result = vae.evaluate_vae(model, digits[0][:20], make_generator(11), ks=(1, 30), batch_size=8)
    assert set(result) == {"negative_elbo", "reconstruction", "kl", "iwae_1", "iwae_30"}
    assert result["negative_elbo"] == pytest.approx(result["reconstruction"] + result["kl"])
    assert result["iwae_30"] < result["iwae_1"]
    assert model.training  # restored
    alone = vae.evaluate_vae(model, digits[0][:20], make_generator(11), ks=(30,), batch_size=8)
    assert alone["iwae_30"] == result["iwae_30"] and alone["negative_elbo"] == result["negative_elbo"]


def test_train_reference_vae_returns_the_reference_model_and_history():
    model, history = vae.train_reference_vae(0, epochs=1)
    assert isinstance(model, vae.VAE) and model.latent_dim == vae.REFERENCE_LATENT_DIM
    assert len(history) == 1 and math.isfinite(history[0]) and not model.training


# --- the linear-Gaussian model --------------------------------------------------------------

@pytest.fixture(scope="module")
def linear_model():
    return vae.LinearGaussianModel.random(6, 2, make_generator(12), noise_var=0.4)


def test_linear_gaussian_posterior_matches_gaussian_conditioning(linear_model):
    x, _ = linear_model.sample(5, make_generator(13))
    w, b, s = linear_model.weight, linear_model.bias, linear_model.noise_var
    data_cov = w @ w.T + s * torch.eye(6, dtype=torch.float64)
    gain = w.T @ torch.linalg.inv(data_cov)  # (D, P): Schur-complement form
    means, cov = linear_model.posterior(x)
    torch.testing.assert_close(means, (x - b) @ gain.T)
    torch.testing.assert_close(cov, torch.eye(2, dtype=torch.float64) - gain @ w)


def test_linear_gaussian_elbo_decomposition_holds_to_float_precision(linear_model):
    g = make_generator(14)
    x, _ = linear_model.sample(8, g)
    q_mean = torch.randn(8, 2, generator=g, dtype=torch.float64)
    a = torch.randn(8, 2, 2, generator=g, dtype=torch.float64)
    q_cov = a @ a.transpose(1, 2) + 0.1 * torch.eye(2, dtype=torch.float64)  # (N, D, D)
    evidence = linear_model.log_evidence(x)
    decomposition = linear_model.elbo(x, q_mean, q_cov) + linear_model.kl_to_posterior(x, q_mean, q_cov)
    torch.testing.assert_close(decomposition, evidence, rtol=0, atol=1e-10)
    assert bool((linear_model.kl_to_posterior(x, q_mean, q_cov) > 0).all())
    post_mean, post_cov = linear_model.posterior(x)
    torch.testing.assert_close(linear_model.elbo(x, post_mean, post_cov), evidence, rtol=0, atol=1e-10)


def test_linear_gaussian_elbo_matches_monte_carlo(linear_model):
    g = make_generator(15)
    x, _ = linear_model.sample(3, g)
    q_mean = torch.randn(3, 2, generator=g, dtype=torch.float64)
    q_cov = torch.diag(torch.tensor([0.3, 0.8], dtype=torch.float64))
    q = torch.distributions.MultivariateNormal(q_mean, covariance_matrix=q_cov)
    z = q.sample((100_000,))  # (S, N, D) from torch's global generator, seeded below
    log_w = linear_model.log_joint(x, z) - q.log_prob(z)
    estimate, stderr = log_w.mean(0), log_w.std(0) / math.sqrt(len(z))
    assert bool(((estimate - linear_model.elbo(x, q_mean, q_cov)).abs() < 4 * stderr).all())


@pytest.fixture(autouse=True)
def _seed_global():
    torch.manual_seed(0)


def test_linear_gaussian_model_validates(linear_model):
    with pytest.raises(ValueError, match="noise_var must be positive"):
        vae.LinearGaussianModel(torch.zeros(3, 2), torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match=r"bias must have shape \(3\), got \(4,\)"):
        vae.LinearGaussianModel(torch.zeros(3, 2), torch.zeros(4), 1.0)
    x, _ = linear_model.sample(2, make_generator(0))
    with pytest.raises(ValueError, match=r"q_mean must have shape \(2, 2\)"):
        linear_model.elbo(x, torch.zeros(3, 2, dtype=torch.float64), torch.eye(2))


def test_vae_is_an_nn_module():
    assert isinstance(vae.VAE(2), nn.Module) and isinstance(vae.ConditionalVAE(2), nn.Module)
