"""Tests of gradelib.diffusion: the schedule, the forward process, the loss, the samplers,
the network and the training loop (syllabus §8, the chapter's DDPM)."""

from __future__ import annotations

import math

import pytest
import torch

from gradelib import diffusion as d
from gradelib.device import make_generator


def test_linear_schedule_matches_ho_et_al():
    schedule = d.DiffusionSchedule.linear()
    assert schedule.num_steps == 1000 and schedule.betas.dtype == torch.float64
    assert schedule.betas[0].item() == pytest.approx(1e-4) and schedule.betas[-1].item() == pytest.approx(0.02)
    alpha_bars = schedule.alpha_bars
    assert alpha_bars.shape == (1001,) and alpha_bars[0].item() == 1.0
    assert bool((alpha_bars[1:] < alpha_bars[:-1]).all())
    torch.testing.assert_close(alpha_bars[1:], torch.cumprod(1 - schedule.betas, 0))
    assert alpha_bars[-1].item() < 1e-4  # x_T is (almost) pure noise


def test_cosine_schedule_follows_its_formula():
    schedule = d.DiffusionSchedule.cosine(100)
    t = torch.arange(101, dtype=torch.float64) / 100
    f = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    expected = f / f[0]
    unclipped = schedule.betas < 0.999
    torch.testing.assert_close(schedule.alpha_bars[1:][unclipped], expected[1:][unclipped])


def test_schedule_rejects_bad_betas():
    with pytest.raises(ValueError, match="betas"):
        d.DiffusionSchedule(torch.tensor([0.1, 1.5], dtype=torch.float64))
    with pytest.raises(TypeError, match="num_steps"):
        d.DiffusionSchedule.linear(10.0)


def test_q_sample_matches_the_markov_chain_in_distribution():
    """Running q(x_t | x_{t-1}) t times gives the closed-form mean and variance."""
    schedule = d.DiffusionSchedule.linear(200)
    g = make_generator(0)
    n, t = 200_000, 150
    x0 = torch.full((n, 1), 1.5, dtype=torch.float64)
    x = x0.clone()
    for beta in schedule.betas[:t]:
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(n, 1, generator=g, dtype=torch.float64)
    alpha_bar = schedule.alpha_bars[t].item()
    closed = d.q_sample(x0, torch.full((n,), t), schedule, torch.randn(n, 1, generator=g, dtype=torch.float64))
    for sample in (x, closed):
        assert abs(sample.mean().item() - math.sqrt(alpha_bar) * 1.5) < 5 * math.sqrt(1 / n)
        assert abs(sample.var().item() - (1 - alpha_bar)) < 5 * math.sqrt(2 / n)


def test_q_sample_at_step_zero_is_the_data_and_validates():
    schedule = d.DiffusionSchedule.linear(10)
    x0, eps = torch.randn(3, 2, 2), torch.randn(3, 2, 2)
    torch.testing.assert_close(d.q_sample(x0, torch.zeros(3, dtype=torch.long), schedule, eps), x0)
    with pytest.raises(ValueError, match="eps"):
        d.q_sample(x0, torch.ones(3, dtype=torch.long), schedule, torch.randn(3, 4))
    with pytest.raises(ValueError, match="t must hold steps"):
        d.q_sample(x0, torch.full((3,), 11), schedule, eps)
    with pytest.raises(TypeError, match="t must have an integer dtype"):
        d.q_sample(x0, torch.ones(3), schedule, eps)


def test_ddpm_loss_is_the_documented_expression_and_uses_only_its_generator():
    torch.manual_seed(0)
    model = d.TimeConditionedMLP(hidden_dim=16, num_layers=1, time_dim=8)
    schedule = d.DiffusionSchedule.linear(50)
    x0 = torch.randn(32, 2, generator=make_generator(1))
    torch.manual_seed(5)
    loss = d.ddpm_loss(model, x0, schedule, make_generator(2))
    torch.manual_seed(6)
    again = d.ddpm_loss(model, x0, schedule, make_generator(2))
    assert loss.item() == again.item()
    g = make_generator(2)
    t = torch.randint(1, 51, (32,), generator=g)
    eps = torch.randn(32, 2, generator=g)
    x_t = d.q_sample(x0, t, schedule, eps)
    expected = ((eps - model(x_t, t.float() / 50)) ** 2).sum(1).mean()
    torch.testing.assert_close(loss, expected)
    assert loss.requires_grad


def _gaussian_oracle(mean: float, std: float, schedule: d.DiffusionSchedule):
    """The exact noise predictor E[eps | x_t] for data ~ N(mean, std^2)."""

    def predict(x, time):
        t = (time * schedule.num_steps).round().long()
        alpha_bar = schedule.alpha_bars[t].to(x)[:, None]
        return (1 - alpha_bar).sqrt() * (x - alpha_bar.sqrt() * mean) / (alpha_bar * std**2 + 1 - alpha_bar)

    return predict


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_samplers_with_the_exact_noise_predictor_recover_a_gaussian(sampler):
    schedule = d.DiffusionSchedule.linear(1000)
    oracle = _gaussian_oracle(1.0, 0.3, schedule)
    x_T = torch.randn(20_000, 1, generator=make_generator(3), dtype=torch.float64)
    if sampler == "ancestral":
        x = d.ancestral_sample(oracle, x_T, schedule, make_generator(4))
    else:
        x = d.ddim_sample(oracle, x_T, schedule, 100)
    assert abs(x.mean().item() - 1.0) < 0.02
    assert abs(x.std().item() - 0.3) < 0.02


def test_ddim_is_deterministic_and_validates_steps():
    schedule = d.DiffusionSchedule.linear(100)
    oracle = _gaussian_oracle(0.0, 1.0, schedule)
    x_T = torch.randn(5, 1, dtype=torch.float64)
    torch.testing.assert_close(d.ddim_sample(oracle, x_T, schedule, 10), d.ddim_sample(oracle, x_T, schedule, 10))
    with pytest.raises(ValueError, match="num_steps"):
        d.ddim_sample(oracle, x_T, schedule, 101)


def test_sinusoidal_embedding():
    t = torch.tensor([0.0, 0.5])
    features = d.sinusoidal_embedding(t, 8)
    assert features.shape == (2, 8)
    torch.testing.assert_close(features[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    torch.testing.assert_close(features[1, 0], torch.cos(torch.tensor(500.0)))
    with pytest.raises(ValueError, match="even"):
        d.sinusoidal_embedding(t, 7)


def test_time_conditioned_mlp_shapes_labels_and_null_label():
    torch.manual_seed(0)
    net = d.TimeConditionedMLP(data_dim=3, hidden_dim=8, num_layers=2, time_dim=4, num_classes=5)
    x, t = torch.randn(4, 3), torch.rand(4)
    out = net(x, t, torch.tensor([0, 4, 5, 1]))  # 5 is the null label
    assert out.shape == (4, 3)
    conditional, null = net(x, t, torch.zeros(4, dtype=torch.long)), net(x, t, torch.full((4,), 5))
    assert not torch.allclose(conditional, null)
    with pytest.raises(ValueError, match="labels are required"):
        net(x, t)
    with pytest.raises(ValueError, match="labels must be in 0..5"):
        net(x, t, torch.tensor([0, 1, 6, 1]))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\)"):
        net(torch.randn(4, 2), t, torch.zeros(4, dtype=torch.long))
    plain = d.TimeConditionedMLP(hidden_dim=8, num_layers=1, time_dim=4)
    with pytest.raises(ValueError, match="unconditional"):
        plain(torch.randn(2, 2), torch.rand(2), torch.zeros(2, dtype=torch.long))
    # one t for the whole batch and per-example times agree
    same = torch.full((4,), 0.3)
    rows = torch.cat([plain(torch.ones(1, 2), torch.tensor([0.3])) for _ in range(4)])
    torch.testing.assert_close(plain(torch.ones(4, 2), same), rows)


def test_train_ddpm_lowers_the_loss_and_returns_the_averaged_weights():
    torch.manual_seed(0)
    model = d.TimeConditionedMLP(hidden_dim=32, num_layers=2, time_dim=8)
    data = torch.randn(500, 2, generator=make_generator(0)) * 0.1 + 1.0
    config = d.DDPMTrainingConfig(batch_size=128, learning_rate=2e-3, ema_decay=0.9, num_steps=100)
    history = d.train_ddpm(model, data, 300, make_generator(1), config=config)
    assert len(history["loss"]) == 300 and history["seconds"] > 0
    assert sum(history["loss"][-30:]) < sum(history["loss"][:30])
    assert not model.training and history["schedule"].num_steps == 100
    with pytest.raises(TypeError, match="generator"):
        d.train_ddpm(model, data, 1, 0)


def test_latent_ddpm_trains_both_stages_and_samples_digits():
    images = torch.rand(64, 1, 28, 28, generator=make_generator(0))
    config = d.LatentDDPMConfig(latent_dim=4, autoencoder_epochs=1, hidden_dim=16, num_layers=1,
                                ddpm_steps=5, ddpm=d.DDPMTrainingConfig(batch_size=16, num_steps=20))
    model, history = d.train_latent_ddpm(images, 0, config=config)
    assert len(history["autoencoder_loss"]) == 1 and len(history["ddpm_loss"]) == 5
    assert history["autoencoder_seconds"] > 0 and history["ddpm_seconds"] > 0
    assert model.code_mean.shape == (4,) and bool((model.code_std > 0).all())
    for sampler in ("ancestral", "ddim"):
        digits = model.sample(3, make_generator(1), sampler=sampler, num_steps=4)
        assert digits.shape == (3, 1, 28, 28) and float(digits.min()) >= 0 and float(digits.max()) <= 1
    torch.testing.assert_close(model.sample(2, make_generator(2)), model.sample(2, make_generator(2)))
    with pytest.raises(ValueError, match="sampler"):
        model.sample(2, make_generator(1), sampler="heun")
