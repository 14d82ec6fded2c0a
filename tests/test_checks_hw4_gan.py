"""Tests of the hw4_gan autograder checks: each accepts the reference and rejects realistic
wrong answers with a message that names the function and gives a targeted hint."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from gradelib import gan
from gradelib.checks import assertions
from gradelib.checks import hw4_gan as checks


# ------------------------------------------------------------------------------ losses


def test_discriminator_loss_accepts_the_reference():
    checks.check_discriminator_loss(gan.discriminator_loss)


def test_discriminator_loss_accepts_bce_with_logits():
    def bce(real, fake):
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))

    checks.check_discriminator_loss(bce)


@pytest.mark.parametrize("wrong, message", [
    (lambda r, f: -gan.discriminator_loss(r, f), "sign is flipped"),
    (lambda r, f: -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean()),
     "(?s)not finite.*softplus"),
    (lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum(), "do not sum"),
    (lambda r, f: F.softplus(r).mean() + F.softplus(-f).mean(), "swapped"),
    (lambda r, f: F.softplus(-r).mean(), "fake term is missing"),
    (lambda r, f: -(torch.log(torch.sigmoid(r) + 1e-8).mean()
                    + torch.log(1 - torch.sigmoid(f) + 1e-8).mean()), "discriminator_loss: .*extreme"),
    (lambda r, f: F.softplus(-r) + F.softplus(f)[: len(r)], "shape"),
])
def test_discriminator_loss_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_discriminator_loss(wrong)


def test_generator_losses_accept_the_reference():
    checks.check_generator_loss_minimax(gan.generator_loss_minimax)
    checks.check_generator_loss_nonsaturating(gan.generator_loss_nonsaturating)


@pytest.mark.parametrize("wrong, message", [
    (lambda f: F.softplus(f).mean(), "sign is flipped"),
    (lambda f: torch.log(1 - torch.sigmoid(f)).mean(), "not finite"),
    (gan.generator_loss_nonsaturating, "non-saturating loss"),
    (lambda f: -F.softplus(f).sum(), "do not sum"),
])
def test_generator_loss_minimax_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_generator_loss_minimax(wrong)


@pytest.mark.parametrize("wrong, message", [
    (gan.generator_loss_minimax, "saturating \\(minimax\\) loss"),
    (lambda f: -torch.log(torch.sigmoid(f)).mean(), "not finite"),
    (lambda f: -F.softplus(-f).mean(), "sign is flipped"),
    (lambda f: F.softplus(f).mean(), "discriminator's term"),
    (lambda f: F.softplus(-f).sum(), "do not sum"),
])
def test_generator_loss_nonsaturating_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_generator_loss_nonsaturating(wrong)


def test_a_failure_message_names_the_function_the_input_and_the_values():
    with pytest.raises(AssertionError) as info:
        checks.check_generator_loss_nonsaturating(gan.generator_loss_minimax)
    message = str(info.value)
    assert message.startswith("generator_loss_nonsaturating: ")
    assert "random logits (B=16)" in message and "expected" in message and "Hint:" in message


# ---------------------------------------------------------------- theory on discrete data


def test_optimal_discriminator_accepts_the_reference_and_the_plain_formula():
    checks.check_optimal_discriminator(gan.optimal_discriminator)
    checks.check_optimal_discriminator(lambda p, q: p / (p + q))


@pytest.mark.parametrize("wrong, message", [
    (lambda p, q: q / (p + q), "probability of \\*real\\*"),
    (lambda p, q: p / q, "not by p_model|non-finite"),
    (lambda p, q: torch.full_like(p, 0.5), "optimal_discriminator: "),
    (lambda p, q: (p / (p + q)).flatten(), "shape"),
])
def test_optimal_discriminator_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_optimal_discriminator(wrong)


def test_js_divergence_accepts_the_reference():
    checks.check_js_divergence(gan.js_divergence)


def _kl(p, q):
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum()


@pytest.mark.parametrize("wrong, message", [
    (lambda p, q: _kl(p, (p + q) / 2) + _kl(q, (p + q) / 2), "1/2 factors are missing"),
    (lambda p, q: gan.js_divergence(p, q) / math.log(2), "nats"),
    (lambda p, q: _kl(p, (p + q) / 2) / 2, "Both halves"),
    (lambda p, q: (p * torch.log(2 * p / (p + q))).sum() / 2
     + (q * torch.log(2 * q / (p + q))).sum() / 2, "0 log 0"),
    (lambda p, q: _kl(p, q), "KL\\(p \\|\\| q\\)|not finite|non-finite"),
    (lambda p, q: (_kl(p, p + q) + _kl(q, p + q)) / 2, "mixture"),
])
def test_js_divergence_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_js_divergence(wrong)


# ------------------------------------------------------------------------ mode coverage


def test_mode_coverage_accepts_the_reference():
    checks.check_mode_coverage(gan.mode_coverage)


def _coverage(radius_std=3.0, count_all=False, percent=False, as_list=False):
    def fn(samples, centers, std):
        d, nearest = torch.cdist(samples, centers).min(dim=1)
        hq = d <= radius_std * std
        modes = len(torch.unique(nearest if count_all else nearest[hq]))
        share = float(hq.float().mean()) * (100 if percent else 1)
        return [modes, share] if as_list else (modes, share)
    return fn


@pytest.mark.parametrize("wrong, message", [
    (_coverage(radius_std=1.0), "3 standard deviations"),
    (_coverage(count_all=True), "Only high-quality samples"),
    (_coverage(percent=True), "fraction in \\[0, 1\\], not a percentage"),
    (lambda s, c, std: _coverage()(s, c, std)[0], "expected a tuple"),
    (lambda s, c, std: (_coverage()(s, c, std)[0], 1.0), "high-quality share"),
])
def test_mode_coverage_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_mode_coverage(wrong)


def test_mode_coverage_accepts_a_list_pair():
    checks.check_mode_coverage(_coverage(as_list=True))


# ----------------------------------------------------------------------------- training


def _reference_train_gan(generator, discriminator, data_sampler, steps, k, generator_rng):
    return gan.train_gan(generator, discriminator, data_sampler, steps, k, generator_rng)


def test_train_gan_accepts_the_reference_within_its_band():
    modes, share = checks.check_train_gan(_reference_train_gan)
    assert modes >= checks.MIN_RING_MODES and share >= checks.MIN_HIGH_QUALITY


def test_train_gan_rejects_a_loop_that_never_trains():
    def no_training(generator, discriminator, data_sampler, steps, k, generator_rng):
        return {"discriminator": [1.0] * steps, "generator": [1.0] * steps}

    with pytest.raises(AssertionError, match="train_gan: after 1500 steps .* captures 0 of 8"):
        checks.check_train_gan(no_training)


def test_train_gan_rejects_a_loop_that_trains_only_the_discriminator():
    def discriminator_only(generator, discriminator, data_sampler, steps, k, generator_rng):
        optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
        history = {"discriminator": [], "generator": []}
        for _ in range(steps // 10):  # a tenth of the steps keeps the test fast
            real = data_sampler(256, generator_rng)
            with torch.no_grad():
                fake = generator(torch.randn(256, 2, generator=generator_rng))
            loss = gan.discriminator_loss(discriminator(real), discriminator(fake))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history["discriminator"] = [loss.item()] * steps
        history["generator"] = [0.0] * steps
        return history

    with pytest.raises(AssertionError, match="expected at least 5 modes"):
        checks.check_train_gan(discriminator_only)


def test_train_gan_rejects_wrong_histories():
    def short(generator, discriminator, data_sampler, steps, k, generator_rng):
        return {"discriminator": [0.0], "generator": [0.0]}

    def not_a_dict(generator, discriminator, data_sampler, steps, k, generator_rng):
        return [0.0] * steps

    def nan_losses(generator, discriminator, data_sampler, steps, k, generator_rng):
        return {"discriminator": [math.nan] * steps, "generator": [0.0] * steps}

    with pytest.raises(AssertionError, match="length 1; expected a list of 1500"):
        checks.check_train_gan(short)
    with pytest.raises(AssertionError, match="expected a dict"):
        checks.check_train_gan(not_a_dict)
    with pytest.raises(AssertionError, match="non-finite"):
        checks.check_train_gan(nan_losses)


def test_train_gan_enforces_its_time_budget(monkeypatch):
    monkeypatch.setattr(checks, "training_time_budget", lambda: 0.0)

    def instant(generator, discriminator, data_sampler, steps, k, generator_rng):
        return {"discriminator": [0.0] * steps, "generator": [0.0] * steps}

    with pytest.raises(AssertionError, match="the budget on this machine is 0 s"):
        checks.check_train_gan(instant)


def test_train_gan_reports_student_exceptions():
    def broken(*args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(AssertionError, match="train_gan: raised RuntimeError: mat1"):
        checks.check_train_gan(broken)


def test_time_budget_grows_with_the_machines_load(monkeypatch):
    assert checks.training_time_budget() >= checks.TRAINING_TIME_BUDGET_S
    # where a tenth of the steps takes 100 s, the budget is factor * 10 * 100 s
    clock = iter([0.0, 100.0])
    monkeypatch.setattr(assertions, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(checks.reference, "train_gan", lambda *args, **kwargs: {})
    assert checks.training_time_budget() == checks.TRAINING_TIME_FACTOR * 10 * 100.0
