"""Tests of the hw5_wgan autograder checks: each accepts the reference and rejects realistic
wrong answers with a message that names the function and gives a targeted hint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradelib import wgan
from gradelib.checks import hw5_wgan as checks


# ------------------------------------------------------------------------- W1 in 1-D


def test_wasserstein_1d_accepts_the_reference():
    checks.check_wasserstein_1d(wgan.wasserstein_1d)


@pytest.mark.parametrize("wrong, message", [
    (lambda x, y: (x - y).abs().mean(), "Sort the samples first"),
    (lambda x, y: (x.mean() - y.mean()).abs(), "not the distance between the means"),
    (lambda x, y: (x.sort().values - y.sort().values).abs().sum(), "do not sum"),
    (lambda x, y: ((x.sort().values - y.sort().values) ** 2).mean(), "not squared"),
    (lambda x, y: (x.sort().values - y.sort().values).abs(), "shape"),
    (lambda x, y: [float((x.sort().values - y.sort().values).abs().mean())], "expected a torch.Tensor"),
])
def test_wasserstein_1d_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_wasserstein_1d(wrong)


# ------------------------------------------------------------------- parallel lines


def _lines(kl_inf=True, js_bits=False, js_zero_at_zero=True, w_abs=True):
    def fn(theta):
        t = float(theta)
        apart = t != 0 or not js_zero_at_zero
        return {"kl": (math.inf if kl_inf else 1e6) if t != 0 else 0.0,
                "js": (1.0 if js_bits else math.log(2)) if apart else 0.0,
                "w": theta.abs() if w_abs else theta}
    return fn


def test_parallel_lines_accepts_the_reference_and_plain_numbers():
    checks.check_parallel_lines_divergences(wgan.parallel_lines_divergences)
    checks.check_parallel_lines_divergences(_lines())


@pytest.mark.parametrize("wrong, message", [
    (_lines(kl_inf=False), "expected \\+inf"),
    (_lines(js_bits=True), "Use nats"),
    (_lines(js_zero_at_zero=False), "JS = 0"),
    (_lines(w_abs=False), "never negative"),
    (lambda theta: (0.0, 0.0, 0.0), "expected a dict"),
    (lambda theta: {"KL": 0.0, "JS": 0.0, "W": 0.0}, "keys 'kl', 'js' and 'w'"),
])
def test_parallel_lines_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_parallel_lines_divergences(wrong)


# ---------------------------------------------------------------------------- losses


def test_losses_accept_the_reference():
    checks.check_critic_loss(wgan.critic_loss)
    checks.check_generator_loss(wgan.generator_loss)


@pytest.mark.parametrize("wrong, message", [
    (lambda r, f: r.mean() - f.mean(), "sign is flipped"),
    (lambda r, f: f.sum() - r.sum(), "do not sum"),
    (lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean(), "No logarithms"),
    (lambda r, f: (f - r).mean(), "critic_loss: raised RuntimeError: The size of tensor"),
])
def test_critic_loss_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_critic_loss(wrong)


@pytest.mark.parametrize("wrong, message", [
    (lambda f: f.mean(), "sign is flipped"),
    (lambda f: -f.sum(), "do not sum"),
    (lambda f: F.softplus(-f).mean(), "non-saturating GAN loss"),
    (lambda f: -f, "shape"),
])
def test_generator_loss_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_generator_loss(wrong)


# --------------------------------------------------------------------------- clipping


def test_clip_weights_accepts_the_reference():
    checks.check_clip_weights_(wgan.clip_weights_)


def _rebind_loop_variable(critic, c):
    for p in critic.parameters():
        p = p.clamp(-c, c)  # noqa: F841 - the mistake: the result is thrown away


def _replace_data(critic, c):
    for p in critic.parameters():
        p.data = p.data.clamp(-c, c)


def _new_parameters(critic, c):
    for module in critic.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            setattr(module, name, nn.Parameter(p.detach().clamp(-c, c)))


def _weights_only(critic, c):
    with torch.no_grad():
        for name, p in critic.named_parameters():
            if name.endswith("weight"):
                p.clamp_(-c, c)


def _returns_module(critic, c):
    with torch.no_grad():
        for p in critic.parameters():
            p.clamp_(-c, c)
    return critic


def _without_no_grad(critic, c):
    for p in critic.parameters():
        p.clamp_(-c, c)


@pytest.mark.parametrize("wrong, message", [
    (_rebind_loop_variable, "Rebinding a loop variable"),
    (_replace_data, "new storage"),
    (_new_parameters, "new object"),
    (_weights_only, "weights and biases alike"),
    (_returns_module, "expected None"),
    (_without_no_grad, "raised RuntimeError: a leaf Variable"),
])
def test_clip_weights_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_clip_weights_(wrong)


# ------------------------------------------------------------------- gradient penalty


def test_gradient_penalty_accepts_the_reference():
    checks.check_gradient_penalty(wgan.gradient_penalty)


def _penalty(at="mixed", squared_norm=False, batch_norm=False, create_graph=True, swap=False):
    def fn(critic, real, fake, eps):
        if at == "real":
            x = real.clone()
        elif swap:
            x = eps * fake + (1 - eps) * real
        else:
            x = eps * real + (1 - eps) * fake
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=create_graph)
        grad = grad.reshape(len(grad), -1)
        if batch_norm:
            return (grad.norm() - 1) ** 2
        if squared_norm:
            return (grad.norm(dim=1) ** 2).mean()
        return ((grad.norm(dim=1) - 1) ** 2).mean()
    return fn


def _fresh_eps(critic, real, fake, eps):
    return _penalty()(critic, real, fake, torch.rand_like(eps))


@pytest.mark.parametrize("wrong, message", [
    (_penalty(at="real"), "not at the real points only"),
    (_penalty(squared_norm=True), "not \\|\\|grad\\|\\|\\^2"),
    (_penalty(batch_norm=True), "per example"),
    (_penalty(swap=True), "with the eps you are given"),
    (_penalty(create_graph=False), "create_graph=True"),
    (_fresh_eps, "gradient_penalty: "),
])
def test_gradient_penalty_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_gradient_penalty(wrong)
