"""Unit tests of gradelib.pixelcnn: masks, causality, losses, units, sampling, validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gradelib import pixelcnn as pc
from gradelib.pixelcnn import jacobian_violations
from gradelib.device import make_generator


# ----------------------------------------------------------------------------- causal_mask


def test_causal_mask_3x3_values_written_out():
    a = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert torch.equal(pc.causal_mask(3, "A"), a.reshape(1, 1, 3, 3))
    assert torch.equal(pc.causal_mask(3, "B"), b.reshape(1, 1, 3, 3))


@pytest.mark.parametrize("k", [1, 3, 5, 7, 9])
def test_causal_mask_counts_and_raster_rule(k):
    c = k // 2
    for mask_type, extra in (("A", 0), ("B", 1)):
        mask = pc.causal_mask(k, mask_type, in_channels=3, out_channels=2)
        assert mask.shape == (2, 3, k, k) and mask.dtype == torch.float32
        assert int(mask[0, 0].sum()) == (k * k - 1) // 2 + extra
        for u in range(k):
            for v in range(k):
                before = u * k + v < c * k + c
                keep = before or (mask_type == "B" and (u, v) == (c, c))
                assert mask[1, 2, u, v].item() == float(keep)
        assert torch.equal(mask, mask[:1, :1].expand_as(mask))  # same mask for every pair


def test_causal_mask_1x1():
    assert torch.equal(pc.causal_mask(1, "A"), torch.zeros(1, 1, 1, 1))
    assert torch.equal(pc.causal_mask(1, "B"), torch.ones(1, 1, 1, 1))


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((4, "A"), ValueError, "kernel_size must be odd"),
        ((0, "A"), ValueError, "kernel_size must be positive"),
        ((3.0, "A"), TypeError, "kernel_size must be an int"),
        ((3, "C"), ValueError, r"mask_type must be one of \['A', 'B'\], got 'C'"),
        ((3, "a"), ValueError, "mask_type"),
        ((3, "A", 0), ValueError, "in_channels must be positive"),
        ((3, "A", 1, -2), ValueError, "out_channels must be positive"),
    ],
)
def test_causal_mask_rejects_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        pc.causal_mask(*args)


# ----------------------------------------------------------------------------- MaskedConv2d


def test_masked_conv_equals_conv_with_masked_weight_and_keeps_size():
    torch.manual_seed(0)
    layer = pc.MaskedConv2d("A", 2, 3, 5)
    x = torch.randn(4, 2, 9, 7)
    out = layer(x)
    assert out.shape == (4, 3, 9, 7)
    expected = F.conv2d(x, layer.weight * pc.causal_mask(5, "A", 2, 3), layer.bias, padding=2)
    torch.testing.assert_close(out, expected)
    with torch.no_grad():  # the mask is applied in forward, so new weights are masked too
        layer.weight.normal_()
    expected = F.conv2d(x, layer.weight * pc.causal_mask(5, "A", 2, 3), layer.bias, padding=2)
    torch.testing.assert_close(layer(x), expected)


def test_masked_conv_masked_weights_get_zero_gradient_and_mask_is_a_buffer():
    layer = pc.MaskedConv2d("B", 1, 2, 3, bias=False)
    assert layer.bias is None and "mask" in dict(layer.named_buffers())
    layer(torch.randn(2, 1, 5, 5)).sum().backward()
    assert torch.all(layer.weight.grad[layer.mask == 0] == 0)
    assert torch.any(layer.weight.grad[layer.mask == 1] != 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"stride": 2}, "stride=1"), ({"groups": 2}, "groups=1"), ({"padding": 0}, "padding must be")],
)
def test_masked_conv_rejects_settings_that_break_causality(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pc.MaskedConv2d("B", 2, 2, 3, **kwargs)


def test_masked_conv_with_dilation_stays_causal():
    layer = pc.MaskedConv2d("A", 1, 1, 3, dilation=2)
    x = torch.zeros(1, 1, 6, 6, requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x)[0, 0, 3, 3], x)
    future = torch.ones(6, 6, dtype=torch.bool).flatten()
    future[: 3 * 6 + 3] = False
    assert torch.all(grad.flatten()[future] == 0)


# ----------------------------------------------------------------------------- PixelCNN


def _tiny(seed: int = 0, **kwargs) -> pc.PixelCNN:
    torch.manual_seed(seed)
    config = pc.PixelCNNConfig(**({"hidden_channels": 8, "num_layers": 2} | kwargs))
    return pc.PixelCNN(config).eval()


def test_pixelcnn_shapes_any_size():
    model = _tiny()
    for shape in ((2, 1, 28, 28), (3, 1, 5, 9)):
        assert model((torch.rand(shape) < 0.5).float()).shape == shape


def test_pixelcnn_is_exactly_causal_and_uses_its_context():
    model = _tiny(1)
    x = (torch.rand(1, 1, 8, 8, generator=make_generator(0)) < 0.4).float()
    jacobian, violations = jacobian_violations(model, x)
    assert not violations.any()
    assert torch.all(jacobian.triu() == 0)  # j >= i: exactly zero, not merely small
    assert (jacobian.tril(-1) != 0).float().mean() > 0.2  # and it does depend on the past
    # Cross-check the batched Jacobian against torch.autograd.functional.jacobian.
    full = torch.autograd.functional.jacobian(lambda v: model(v).reshape(-1), x)
    torch.testing.assert_close(jacobian, full.reshape(64, 64).double())


def test_pixelcnn_with_type_b_first_layer_is_not_causal():
    model = _tiny(2)
    model.first.mask = pc.causal_mask(7, "B", 1, 8)  # the A/B mix-up
    x = torch.zeros(1, 1, 6, 6)
    _, violations = jacobian_violations(model, x)
    assert violations.diagonal().any()


def test_pixelcnn_validates_input_and_config():
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 1, \*, \*\)"):
        _tiny()(torch.zeros(2, 3, 8, 8))
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        _tiny()(torch.zeros(2, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(TypeError, match="config must be a PixelCNNConfig"):
        pc.PixelCNN({"hidden_channels": 4})
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        pc.PixelCNN(pc.PixelCNNConfig(kernel_size=4))


# ----------------------------------------------------------------------------- receptive field


def test_receptive_field_single_layer_is_the_flipped_mask():
    field = pc.receptive_field([5], 9, 9, 4, 4)
    expected = torch.zeros(9, 9, dtype=torch.float64)
    expected[2:7, 2:7] = pc.causal_mask(5, "A")[0, 0].double()
    assert torch.equal(field, expected)


def test_receptive_field_has_the_blind_spot_and_matches_a_network():
    kernel_sizes = [3, 3, 3, 3]
    field = pc.receptive_field(kernel_sizes, 12, 12, 8, 6)
    assert torch.all(field.flatten()[8 * 12 + 6 :] == 0)  # causal
    assert field[7, 9] == 0 and field[6, 10] == 0  # blind spot up and to the right
    assert field[7, 7] > 0 and field[4, 6] > 0 and field[8, 2] > 0  # seen: nearby past
    # A random network with the same layout depends on exactly these pixels.
    torch.manual_seed(3)
    model = pc.PixelCNN(pc.PixelCNNConfig(hidden_channels=6, num_layers=3, first_kernel_size=3))
    x = torch.zeros(1, 1, 12, 12, requires_grad=True)
    (grad,) = torch.autograd.grad(model.eval()(x)[0, 0, 8, 6], x)
    support = grad[0, 0] != 0
    assert torch.all(field[support] > 0)  # never outside the structural field
    assert support.sum() >= 0.8 * (field > 0).sum()  # and fills most of it


def test_receptive_field_rejects_bad_pixel():
    with pytest.raises(ValueError, match=r"row must be an int in \[0, 4\], got 5"):
        pc.receptive_field([3], 5, 5, 5, 0)
    with pytest.raises(ValueError, match="kernel_sizes must hold"):
        pc.receptive_field([], 5, 5, 0, 0)


# ----------------------------------------------------------------------------- losses and units


def test_bernoulli_nll_closed_form_and_autograd():
    g = make_generator(4)
    logits = (3 * torch.randn(4, 1, 5, 6, generator=g, dtype=torch.float64)).requires_grad_()
    x = (torch.rand(4, 1, 5, 6, generator=g) < 0.5).double()
    nll = pc.bernoulli_nll(logits, x)
    p = torch.sigmoid(logits)
    expected = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(dim=(1, 2, 3))
    torch.testing.assert_close(nll, expected)
    (grad,) = torch.autograd.grad(nll.sum(), logits)
    torch.testing.assert_close(grad, p - x)  # d/dl of BCE is sigmoid(l) - x


def test_bernoulli_nll_of_zero_logits_is_n_log_2_and_stable_for_large_logits():
    x = (torch.rand(3, 1, 28, 28, generator=make_generator(5)) < 0.5).float()
    torch.testing.assert_close(pc.bernoulli_nll(torch.zeros_like(x), x),
                               torch.full((3,), 784 * math.log(2)))
    logits = torch.full((1, 1, 2, 2), 80.0)
    x = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    torch.testing.assert_close(pc.bernoulli_nll(logits, x), torch.tensor([80.0]))


def test_bernoulli_nll_rejects_bad_input():
    logits = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="x must be binarized"):
        pc.bernoulli_nll(logits, torch.full((2, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="logits and x must have the same shape"):
        pc.bernoulli_nll(logits, torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match="logits must have 4 dimension"):
        pc.bernoulli_nll(torch.zeros(2, 16), torch.zeros(2, 16))


def test_nats_to_bits_per_dim():
    nats = torch.tensor([784 * math.log(2), 0.0, 81.30])
    bits = pc.nats_to_bits_per_dim(nats, 784)
    torch.testing.assert_close(bits, torch.tensor([1.0, 0.0, 81.30 / 784 / math.log(2)]))
    assert pc.nats_to_bits_per_dim(math.log(2), 1).item() == pytest.approx(1.0)
    # A fair coin per pixel costs exactly one bit per dimension.
    fair = pc.bernoulli_nll(torch.zeros(2, 1, 3, 3), torch.ones(2, 1, 3, 3))
    torch.testing.assert_close(pc.nats_to_bits_per_dim(fair, 9), torch.ones(2))
    with pytest.raises(ValueError, match="num_dims must be positive"):
        pc.nats_to_bits_per_dim(nats, 0)
    with pytest.raises(TypeError, match="nats must have a floating-point dtype"):
        pc.nats_to_bits_per_dim(torch.tensor([1, 2]), 784)


# ----------------------------------------------------------------------------- sampling


def test_sample_is_binary_deterministic_and_ignores_global_state():
    model = _tiny(6)
    torch.manual_seed(1)
    a = pc.sample(model, 3, 6, 5, make_generator(7))
    torch.manual_seed(2)
    b = pc.sample(model, 3, 6, 5, make_generator(7))
    c = pc.sample(model, 3, 6, 5, make_generator(8))
    assert a.shape == (3, 1, 6, 5) and a.dtype == torch.float32
    assert torch.all((a == 0) | (a == 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not model.training  # restored: it was in eval mode before


def test_sample_follows_the_model_conditionals_exactly():
    """Replaying the draws: pixel i is 1 exactly when u_i < sigmoid(logit_i(sample))."""
    model = _tiny(7)
    images = pc.sample(model, 4, 5, 5, make_generator(9))
    g = make_generator(9)
    uniforms = torch.stack([torch.rand(4, generator=g) for _ in range(25)], dim=1)  # (4, 25)
    with torch.no_grad():
        p = torch.sigmoid(model(images)).reshape(4, 25)  # causal: the same conditionals
    torch.testing.assert_close(images.reshape(4, 25), (uniforms < p).float())


def test_sample_with_context_rows_matches_the_full_canvas():
    """The row-window speed-up changes the cost, not the images."""
    model = _tiny(8)

    class FullCanvas(torch.nn.Module):  # the same network without context_rows
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            assert x.shape[-2] == 9, "the full canvas is evaluated"
            return self.inner(x)

    assert model.context_rows == 3 + 2 * 1
    fast = pc.sample(model, 3, 9, 6, make_generator(10))
    slow = pc.sample(FullCanvas(), 3, 9, 6, make_generator(10))
    assert torch.equal(fast, slow)


def test_context_rows_is_the_height_of_the_receptive_field():
    model = pc.PixelCNN(pc.PixelCNNConfig(hidden_channels=4, num_layers=3, kernel_size=5))
    field = pc.receptive_field([7, 5, 5, 5], 20, 12, 15, 6)
    rows = torch.nonzero(field.sum(dim=1)).flatten()
    assert model.context_rows == 3 + 3 * 2 == 15 - int(rows.min())


def test_sample_rejects_bad_arguments():
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        pc.sample(_tiny(), 2, 4, 4, 0)
    with pytest.raises(ValueError, match="n must be positive"):
        pc.sample(_tiny(), 0, 4, 4, make_generator(0))


# ----------------------------------------------------------------------------- training


def test_train_pixelcnn_decreases_nll_and_is_deterministic():
    images = (torch.rand(64, 1, 8, 8, generator=make_generator(10)) < 0.3).float()
    images[:, :, :, ::2] = 0  # structure for the model to learn: every other column is 0
    histories, states = [], []
    for _ in range(2):
        model = _tiny(11).train()
        config = pc.PixelCNNTrainingConfig(batch_size=16, learning_rate=1e-2)
        histories.append(pc.train_pixelcnn(model, images, 3, make_generator(12), config=config))
        states.append(model.state_dict())
    assert len(histories[0]) == 3 and histories[0][-1] < histories[0][0]
    assert histories[0] == histories[1]
    test = pc.evaluate_nll(model, images)
    assert test.shape == (64,) and test.mean() < 64 * math.log(2)  # better than fair coins
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key])


def test_train_pixelcnn_rejects_non_binary_images():
    with pytest.raises(ValueError, match="train_images must be binarized"):
        pc.train_pixelcnn(_tiny(), torch.rand(4, 1, 8, 8), 1, make_generator(0))
