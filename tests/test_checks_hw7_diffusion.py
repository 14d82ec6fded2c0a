"""Tests of the hw7_diffusion checks: each accepts the reference and rejects realistic mistakes."""

from __future__ import annotations

import pytest
import torch

from gradelib.checks import hw7_diffusion as checks
from gradelib.checks.references import hw7_diffusion as ref


# ----------------------------------------------------------------------------- linear_interpolant


def test_interpolant_accepts_reference():
    checks.check_linear_interpolant(ref.linear_interpolant)


def test_interpolant_rejects_reversed():
    with pytest.raises(AssertionError, match="yours is reversed"):
        checks.check_linear_interpolant(lambda x0, x1, t: ref.linear_interpolant(x1, x0, t))


def test_interpolant_rejects_t_not_broadcast():
    def unreshaped(x0, x1, t):
        return (1 - t) * x0 + t * x1  # (B,) against (B, D): wrong axis when B == D

    with pytest.raises(AssertionError, match="multiplies each coordinate"):
        checks.check_linear_interpolant(unreshaped)


def test_interpolant_rejects_two_dimensional_only_broadcast():
    def points_only(x0, x1, t):
        return (1 - t[:, None]) * x0 + t[:, None] * x1  # fails on images

    with pytest.raises(AssertionError, match="raised RuntimeError"):
        checks.check_linear_interpolant(points_only)


def test_interpolant_rejects_wrong_shape():
    with pytest.raises(AssertionError, match="returned shape"):
        checks.check_linear_interpolant(lambda x0, x1, t: ref.linear_interpolant(x0, x1, t).sum(-1))


# ----------------------------------------------------------------------------- flow_matching_loss


def _loss(*, target="x1 - x0", dropout=True, global_t=False, detach=False, per_example=False,
          reversed_=False):
    def loss(model, x1, labels, generator, p_uncond):
        batch = len(x1)
        x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
        t = torch.rand(batch, dtype=x1.dtype) if global_t else torch.rand(batch, generator=generator, dtype=x1.dtype)
        drop = torch.rand(batch, generator=generator, dtype=x1.dtype) < p_uncond
        if dropout:
            labels = torch.where(drop, torch.full_like(labels, model.num_classes), labels)
        x_t = ref.linear_interpolant(x1, x0, t) if reversed_ else ref.linear_interpolant(x0, x1, t)
        goal = x1 - x0 if target == "x1 - x0" else x0 - x1
        prediction = model(x_t, t, labels)
        if detach:
            prediction = prediction.detach()
        per = ((prediction - goal) ** 2).sum(1)
        return per if per_example else per.mean()

    return loss


def test_loss_accepts_reference():
    checks.check_flow_matching_loss(ref.flow_matching_loss)
    checks.check_flow_matching_loss(_loss())  # the same written independently


def test_loss_rejects_target_x0_minus_x1():
    with pytest.raises(AssertionError, match="not x0 - x1"):
        checks.check_flow_matching_loss(_loss(target="x0 - x1"))


def test_loss_rejects_reversed_interpolant():
    with pytest.raises(AssertionError, match="noise at t = 0, data at t = 1"):
        checks.check_flow_matching_loss(_loss(reversed_=True))


def test_loss_rejects_label_dropout_never_applied():
    with pytest.raises(AssertionError, match="never dropped"):
        checks.check_flow_matching_loss(_loss(dropout=False))


def test_loss_rejects_t_from_global_state():
    with pytest.raises(AssertionError, match="global generator"):
        checks.check_flow_matching_loss(_loss(global_t=True))


def test_loss_rejects_per_example_losses():
    with pytest.raises(AssertionError, match=r"returned shape \(64,\)"):
        checks.check_flow_matching_loss(_loss(per_example=True))


def test_loss_rejects_a_detached_prediction():
    with pytest.raises(AssertionError, match="does not depend on model"):
        checks.check_flow_matching_loss(_loss(detach=True))


# ----------------------------------------------------------------------------- guided_velocity


def test_guidance_accepts_reference():
    checks.check_guided_velocity(ref.guided_velocity)


def test_guidance_rejects_weight_on_the_wrong_term():
    def swapped(model, x, t, labels, guidance):
        null = torch.full_like(labels, model.num_classes)
        return (1 + guidance) * model(x, t, null) - guidance * model(x, t, labels)

    with pytest.raises(AssertionError, match="yours are swapped"):
        checks.check_guided_velocity(swapped)


def test_guidance_rejects_null_label_zero():
    def zero_null(model, x, t, labels, guidance):
        return (1 + guidance) * model(x, t, labels) - guidance * model(x, t, torch.zeros_like(labels))

    with pytest.raises(AssertionError, match="null label is model.num_classes"):
        checks.check_guided_velocity(zero_null)


def test_guidance_rejects_the_other_convention():
    def other(model, x, t, labels, guidance):
        null = torch.full_like(labels, model.num_classes)
        return guidance * model(x, t, labels) + (1 - guidance) * model(x, t, null)

    with pytest.raises(AssertionError, match="w = 0 is the conditional model"):
        checks.check_guided_velocity(other)


# ----------------------------------------------------------------------------- heun_sample


def test_heun_accepts_reference():
    checks.check_heun_sample(ref.heun_sample)


def test_heun_rejects_euler():
    with pytest.raises(AssertionError, match="This is Euler's method; Heun's adds a corrector"):
        checks.check_heun_sample(ref.euler_sample)


def test_heun_rejects_ignoring_guidance():
    with pytest.raises(AssertionError, match="Use the guided velocity"):
        checks.check_heun_sample(lambda m, x0, y, n, w: ref.heun_sample(m, x0, y, n, 0.0))


def test_heun_rejects_wrong_shape():
    with pytest.raises(AssertionError, match="returned shape"):
        checks.check_heun_sample(lambda m, x0, y, n, w: ref.heun_sample(m, x0, y, n, w)[None])


# ----------------------------------------------------------------------------- train_flow_matching


def test_training_accepts_reference():
    figures = checks.check_train_flow_matching(ref.train_flow_matching)
    assert figures["modes"] == 25 and figures["on_requested"] >= checks.MIN_ON_REQUESTED_MODE


def test_training_rejects_label_dropout_never_applied():
    def no_dropout(model, data, labels, steps, generator):
        optimizer = torch.optim.Adam(model.parameters(), lr=ref.LEARNING_RATE)
        history = []
        for _ in range(steps):
            rows = torch.randint(len(data), (ref.BATCH_SIZE,), generator=generator)
            loss = ref.flow_matching_loss(model, data[rows], labels[rows], generator, 0.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append(loss.item())
        return history

    with pytest.raises(AssertionError, match="Drop labels to the null label"):
        checks.check_train_flow_matching(no_dropout)


def test_training_rejects_a_loop_that_never_steps():
    def frozen(model, data, labels, steps, generator):
        return [ref.flow_matching_loss(model, data[:256], labels[:256], generator, 0.2).item()
                for _ in range(steps)]

    with pytest.raises(AssertionError, match="did not decrease|expected all 25"):
        checks.check_train_flow_matching(frozen)


def test_training_rejects_a_history_of_the_wrong_length():
    with pytest.raises(AssertionError, match="expected a list of 1500 per-step losses"):
        checks.check_train_flow_matching(lambda model, data, labels, steps, generator: [1.0, 0.5])
