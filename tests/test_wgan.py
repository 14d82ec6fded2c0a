"""Unit tests of gradelib.wgan (syllabus §6)."""

from __future__ import annotations

import dataclasses
import math

import ot
import pytest
import torch
from scipy.stats import wasserstein_distance
from torch import nn

from gradelib import gan, wgan
from gradelib.data import ring_mixture
from gradelib.device import make_generator


def test_wasserstein_1d_matches_scipy():
    g = make_generator(0)
    for n in (1, 7, 300):
        x = torch.randn(n, generator=g, dtype=torch.float64)
        y = 0.5 + 2 * torch.rand(n, generator=g, dtype=torch.float64)
        assert wgan.wasserstein_1d(x, y).item() == pytest.approx(
            wasserstein_distance(x.numpy(), y.numpy()), rel=1e-12, abs=1e-12)


def test_wasserstein_1d_of_a_shift_is_the_shift_and_is_differentiable():
    x = torch.randn(50, generator=make_generator(1), dtype=torch.float64)
    shift = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    w = wgan.wasserstein_1d(x, x + shift)
    assert w.item() == pytest.approx(0.7)
    (grad,) = torch.autograd.grad(w, shift)
    assert grad.item() == pytest.approx(1.0)


def test_wasserstein_1d_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        wgan.wasserstein_1d(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="x must have 1 dimension"):
        wgan.wasserstein_1d(torch.zeros(3, 1), torch.zeros(3, 1))


def test_exact_wasserstein_in_one_dimension_agrees_with_sorting():
    g = make_generator(2)
    x, y = torch.randn(40, 1, generator=g), 1 + torch.randn(40, 1, generator=g)
    assert wgan.exact_wasserstein(x, y) == pytest.approx(
        wgan.wasserstein_1d(x[:, 0].double(), y[:, 0].double()).item(), rel=1e-9)


def test_exact_wasserstein_between_point_clouds():
    g = make_generator(3)
    x = torch.randn(30, 2, generator=g)
    shift = torch.tensor([[3.0, 4.0]])
    assert wgan.exact_wasserstein(x, x + shift) == pytest.approx(5.0, rel=1e-6)  # a translation
    y = torch.randn(45, 2, generator=g)  # unequal sizes: compare with POT directly
    cost = ot.dist(x.double().numpy(), y.double().numpy(), metric="euclidean")
    assert wgan.exact_wasserstein(x, y) == pytest.approx(
        float(ot.emd2(ot.unif(30), ot.unif(45), cost)), rel=1e-9)


@pytest.mark.parametrize("theta", [0.0, 0.25, -1.5])
def test_parallel_lines_divergences(theta):
    result = wgan.parallel_lines_divergences(theta)
    if theta == 0:
        assert {k: float(v) for k, v in result.items()} == {"kl": 0.0, "js": 0.0, "w": 0.0}
    else:
        assert math.isinf(float(result["kl"])) and float(result["kl"]) > 0
        assert float(result["js"]) == pytest.approx(math.log(2))
        assert float(result["w"]) == pytest.approx(abs(theta))


def test_parallel_lines_js_agrees_with_a_discretisation():
    # discretise the segments: P on column 0, Q on column 1 of a (2, 50) grid, uniform in y
    p = torch.zeros(2, 50, dtype=torch.float64)
    p[0] = 1 / 50
    q = torch.flip(p, dims=[0])
    assert gan.js_divergence(p.flatten(), q.flatten()).item() == pytest.approx(
        float(wgan.parallel_lines_divergences(1.0)["js"]))


def test_parallel_lines_w_has_gradient_sign_theta_and_accepts_tensors():
    theta = torch.tensor([-0.5, 0.0, 2.0], requires_grad=True)
    result = wgan.parallel_lines_divergences(theta)
    assert result["kl"].shape == (3,)
    (grad,) = torch.autograd.grad(result["w"].sum(), theta)
    torch.testing.assert_close(grad, torch.tensor([-1.0, 0.0, 1.0]))
    with pytest.raises(TypeError, match="theta must be a number"):
        wgan.parallel_lines_divergences("0.5")


def test_losses_signs_and_reductions():
    real = torch.tensor([1.0, 2.0, 3.0])
    fake = torch.tensor([0.0, -2.0])
    assert wgan.critic_loss(real, fake).item() == pytest.approx(-1.0 - 2.0)
    assert wgan.generator_loss(fake).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one score"):
        wgan.generator_loss(torch.zeros(0))


def test_clip_weights_acts_in_place_on_every_parameter():
    torch.manual_seed(0)
    critic = gan.MLPDiscriminator(hidden_dim=8)
    params = {n: (p, p.data_ptr(), p.detach().clone()) for n, p in critic.named_parameters()}
    assert wgan.clip_weights_(critic, 0.05) is None
    for name, p in critic.named_parameters():
        original, pointer, values = params[name]
        assert p is original and p.data_ptr() == pointer
        torch.testing.assert_close(p.detach(), values.clamp(-0.05, 0.05))
    with pytest.raises(ValueError, match="c must be positive"):
        wgan.clip_weights_(critic, -1.0)
    with pytest.raises(TypeError, match="critic must be an nn.Module"):
        wgan.clip_weights_([torch.zeros(2)], 0.1)


def test_gradient_penalty_of_a_linear_critic_in_closed_form():
    critic = nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[1.0, 2.0, 2.0]]))  # gradient norm 3 everywhere
    g = make_generator(4)
    real, fake = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    penalty = wgan.gradient_penalty(critic, real, fake, torch.rand(5, 1, generator=g))
    assert penalty.item() == pytest.approx(4.0)  # (3 - 1)^2
    (grad,) = torch.autograd.grad(penalty, critic.weight)  # 2 (|w| - 1) w / |w|
    torch.testing.assert_close(grad, 2 * 2 * critic.weight.detach() / 3)


def test_gradient_penalty_is_per_example_and_uses_eps():
    class Quadratic(nn.Module):  # f(x) = |x|^2 / 2, gradient x
        def __init__(self):
            super().__init__()
            self.unused = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return 0.5 * (x**2).flatten(1).sum(1) + 0 * self.unused

    real = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    fake = torch.zeros(2, 2)
    eps = torch.tensor([[1.0], [0.5]])  # x_hat = real: norms 5 and 0
    value = wgan.gradient_penalty(Quadratic(), real, fake, eps)
    assert value.item() == pytest.approx(((5 - 1) ** 2 + (0 - 1) ** 2) / 2)
    images = torch.rand(4, 1, 3, 3, generator=make_generator(5))
    conv_value = wgan.gradient_penalty(Quadratic(), images, torch.zeros_like(images),
                                       torch.ones(4, 1, 1, 1))
    norms = images.flatten(1).norm(dim=1)
    assert conv_value.item() == pytest.approx(((norms - 1) ** 2).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="eps of shape"):
        wgan.gradient_penalty(Quadratic(), real, fake, torch.rand(3, 1))


@pytest.mark.parametrize("config", [wgan.WGAN_CLIPPING, wgan.WGAN_GP])
def test_train_wgan_runs_and_is_deterministic(config):
    def run():
        torch.manual_seed(0)
        generator = gan.MLPGenerator(hidden_dim=16)
        critic = gan.MLPDiscriminator(hidden_dim=16)
        history = wgan.train_wgan(generator, critic, ring_mixture().sample, 3,
                                  make_generator(0), config=config)
        return critic, history

    critic, first = run()
    _, second = run()
    assert first["critic"] == second["critic"] and len(first["generator"]) == 3
    if config.lipschitz == "clip":
        assert all(p.abs().max() <= config.clip for p in critic.parameters())
        assert first["gradient_penalty"] == [0.0, 0.0, 0.0]
    else:
        assert all(v > 0 for v in first["gradient_penalty"])


def test_train_wgan_rejects_bad_config():
    with pytest.raises(ValueError, match="config.lipschitz must be one of"):
        wgan.train_wgan(gan.MLPGenerator(), gan.MLPDiscriminator(), ring_mixture().sample, 1,
                        make_generator(0), config=wgan.WGANTrainingConfig(lipschitz="spectral"))


# ------------------------------------------------------------- gradients across a support gap


def test_segment_sample_lies_on_the_segment_and_is_differentiable_in_theta():
    theta = torch.tensor(0.7, requires_grad=True)
    points = wgan.segment_sample(theta, 50, make_generator(0))
    assert points.shape == (50, 2)
    assert torch.all(points[:, 0] == 0.7) and points[:, 1].min() >= 0 and points[:, 1].max() <= 1
    (grad,) = torch.autograd.grad(points[:, 0].sum(), theta)
    assert grad.item() == 50


def test_gradients_across_gaps_vanish_for_js_and_not_for_wasserstein():
    config = wgan.GapExperimentConfig(steps=150, eval_size=1024)
    torch.manual_seed(0)
    js = wgan.gradients_across_gaps((1.0, 0.5), "js", make_generator(0), config=config)
    torch.manual_seed(0)
    w = wgan.gradients_across_gaps((1.0, 0.5), "wasserstein", make_generator(0), config=config)
    assert [r["theta"] for r in js] == [1.0, 0.5]
    assert js[0]["estimate"] == pytest.approx(math.log(2), abs=0.01)  # a confident discriminator
    assert abs(js[0]["gradient"]) < 0.02 * abs(w[0]["gradient"])  # already 50x smaller
    for result in w:
        assert result["gradient"] == pytest.approx(1.0, abs=0.25)  # dW1/dtheta = 1
        assert result["estimate"] == pytest.approx(result["theta"], rel=0.25)  # W1 = |theta|


def test_gradients_across_gaps_rejects_bad_arguments():
    with pytest.raises(ValueError, match="thetas must be non-zero"):
        wgan.gradients_across_gaps((1.0, 0.0), "js", make_generator(0))
    with pytest.raises(ValueError, match="loss must be one of"):
        wgan.gradients_across_gaps((1.0,), "kl", make_generator(0))


# ------------------------------------------------------------------ moment matching (MMD)


def _mmd_by_pairs(x, y, widths):
    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(torch.exp(-d2 / (2 * s**2)) for s in widths)
    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def test_mmd_loss_matches_the_pairwise_formula_and_is_zero_for_equal_samples():
    g = make_generator(6)
    x = torch.randn(40, 2, generator=g, dtype=torch.float64)
    y = 0.5 + torch.randn(30, 2, generator=g, dtype=torch.float64)
    widths = (0.1, 1.0, 3.0)
    torch.testing.assert_close(wgan.mmd_loss(x, y, widths), _mmd_by_pairs(x, y, widths))
    assert wgan.mmd_loss(x, x, widths).item() == pytest.approx(0.0, abs=1e-12)
    assert wgan.mmd_loss(x, y, widths).item() > 0
    torch.testing.assert_close(wgan.mmd_loss(x, y, widths), wgan.mmd_loss(y, x, widths))


def test_mmd_loss_is_differentiable_and_its_gradient_pulls_samples_to_the_data():
    data = torch.zeros(20, 2, dtype=torch.float64)
    samples = torch.full((20, 2), 0.5, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(wgan.mmd_loss(samples, data, (1.0,)), samples)
    assert torch.all(grad > 0)  # a gradient step moves every sample towards the origin


def test_mmd_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="bandwidths must be"):
        wgan.mmd_loss(torch.zeros(3, 2), torch.zeros(3, 2), ())
    with pytest.raises(ValueError, match="y must have shape"):
        wgan.mmd_loss(torch.zeros(3, 2), torch.zeros(3, 3), (1.0,))


def test_train_mmd_lowers_the_mmd_and_is_deterministic():
    def run():
        torch.manual_seed(0)
        generator = gan.MLPGenerator(hidden_dim=16)
        config = wgan.MMDTrainingConfig(batch_size=64, bandwidths=(0.5, 2.0))
        return wgan.train_mmd(generator, ring_mixture().sample, 60, make_generator(0),
                              config=config)

    first, second = run(), run()
    assert first["mmd"] == second["mmd"] and len(first["mmd"]) == 60
    assert sum(first["mmd"][-10:]) < sum(first["mmd"][:10])


# ------------------------------------------------------------ the equal-budget comparison


@pytest.mark.parametrize("key", ["gan", "wgan_clip", "wgan_gp", "mmd"])
def test_train_toy_runs_every_method_deterministically(key):
    method = dataclasses.replace(wgan.TOY_COMPARISON["ring"][key], steps=3, hidden_dim=16)

    def run():
        records = []
        generator, critic, history = wgan.train_toy(
            ring_mixture(), method, 0, monitor=lambda step, seconds, g, c: records.append(step) or {},
            monitor_every=2)
        return generator, critic, history, records

    generator, critic, history, records = run()
    assert records == [2, 3] and not generator.training
    assert (critic is None) == (key == "mmd")
    again = run()
    for a, b in zip(generator.parameters(), again[0].parameters()):
        assert torch.equal(a, b)


def test_comparison_settings_share_budgets_and_seeds():
    assert set(wgan.TOY_COMPARISON) == set(wgan.TOY_BUDGET_SECONDS) == {"ring", "grid"}
    assert not set(wgan.TOY_TUNING_SEEDS) & set(wgan.TOY_HELD_OUT_SEEDS)
    assert len(wgan.TOY_HELD_OUT_SEEDS) == 5
    for toy, methods in wgan.TOY_COMPARISON.items():
        assert list(methods) == ["gan", "wgan_clip", "wgan_gp", "mmd"]
        for key, method in methods.items():
            assert method in wgan.TOY_CANDIDATES[toy][key]  # chosen among the tuned candidates
    with pytest.raises(ValueError, match="method.trainer must be one of"):
        wgan.train_toy(ring_mixture(), wgan.ToyMethod("x", "vae", 1, None), 0)
