"""gradelib.autoencoders: the reference of hw1 against autograd and closed forms."""

from __future__ import annotations

import pytest
import torch

from gradelib import autoencoders as ae
from gradelib.data import load_mnist
from gradelib.device import make_generator, seed_everything


def _points():
    g = make_generator(0)
    x = torch.randn(30, generator=g, dtype=torch.float64)
    ws = [torch.randn(2, generator=g, dtype=torch.float64) for _ in range(4)]
    return x, ws + [torch.zeros(2, dtype=torch.float64)]


def test_loss_matches_factored_form():
    x, points = _points()
    s = (x**2).mean()
    for w1, w2 in points:
        torch.testing.assert_close(ae.linear_ae_loss(w1, w2, x), s * (1 - w1 * w2) ** 2)


def test_gradient_and_hessian_match_autograd():
    x, points = _points()
    for w1, w2 in points:
        w = torch.stack([w1, w2]).requires_grad_()
        auto_grad = torch.autograd.grad(ae.linear_ae_loss(w[0], w[1], x), w)[0]
        torch.testing.assert_close(torch.stack(ae.linear_ae_grad(w1, w2, x)), auto_grad)
        auto_hessian = torch.autograd.functional.hessian(
            lambda v: ae.linear_ae_loss(v[0], v[1], x), torch.stack([w1, w2]))
        torch.testing.assert_close(ae.linear_ae_hessian(w1, w2, x), auto_hessian)


def test_origin_is_a_saddle_with_eigenvalues_plus_minus_2s():
    x, _ = _points()
    s = (x**2).mean()
    zero = torch.tensor(0.0, dtype=torch.float64)
    hessian = ae.linear_ae_hessian(zero, zero, x)
    torch.testing.assert_close(torch.linalg.eigvalsh(hessian), torch.stack([-2 * s, 2 * s]))
    assert ae.classify_critical_point(hessian) == "saddle"


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [([[2.0, 0.0], [0.0, 1.0]], "minimum"), ([[-2.0, 1.0], [1.0, -3.0]], "maximum"),
     ([[1.0, 3.0], [3.0, 1.0]], "saddle")],
)
def test_classify_critical_point(matrix, expected):
    assert ae.classify_critical_point(torch.tensor(matrix)) == expected


def test_classify_degenerate_and_bad_input_raise():
    # on the zero-loss hyperbola the Hessian is singular: the test is inconclusive
    x, _ = _points()
    on_hyperbola = ae.linear_ae_hessian(torch.tensor(2.0, dtype=torch.float64),
                                        torch.tensor(0.5, dtype=torch.float64), x)
    with pytest.raises(ValueError, match="inconclusive"):
        ae.classify_critical_point(on_hyperbola)
    with pytest.raises(ValueError, match="hessian must be symmetric"):
        ae.classify_critical_point(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"hessian must have shape \(2, 2\), got \(2, 3\)"):
        ae.classify_critical_point(torch.zeros(2, 3))


def test_linear_ae_argument_errors_name_the_argument():
    x = torch.randn(5)
    with pytest.raises(ValueError, match=r"w1 must have 0 dimension\(s\), got shape \(1,\)"):
        ae.linear_ae_loss(torch.ones(1), torch.tensor(1.0), x)
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        ae.linear_ae_grad(torch.tensor(1.0), torch.tensor(1.0), [1.0, 2.0])
    with pytest.raises(TypeError, match="w2 must have a floating-point dtype"):
        ae.linear_ae_hessian(torch.tensor(1.0), torch.tensor(1), x)


def test_reconstruction_loss_is_per_image_sum():
    x = torch.zeros(3, 1, 2, 2)
    x_hat = torch.zeros(3, 1, 2, 2)
    x_hat[1, 0, 0, 0] = 2.0
    x_hat[2] = 1.0
    torch.testing.assert_close(ae.reconstruction_loss(x_hat, x), torch.tensor([0.0, 4.0, 4.0]))
    with pytest.raises(ValueError, match=r"must have the same shape, got \(3, 1, 2, 2\) and \(1, 1, 2, 2\)"):
        ae.reconstruction_loss(x_hat, x[:1])


def test_autoencoder_shapes_and_errors():
    model = ae.Autoencoder(latent_dim=5)
    x = torch.rand(4, 1, 28, 28)
    assert model.encode(x).shape == (4, 5)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (4, 1, 28, 28) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    with pytest.raises(ValueError, match=r"z must have shape \(\*, 5\), got \(4, 6\)"):
        model.decode(torch.zeros(4, 6))
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 1, 28, 28\), got \(4, 1, 14, 14\)"):
        model.encode(torch.zeros(4, 1, 14, 14))
    with pytest.raises(ValueError, match="latent_dim must be positive, got 0"):
        ae.Autoencoder(0)


def test_training_is_deterministic_and_learns():
    images, _ = load_mnist("train")
    subset = images[:512]
    histories = []
    for _ in range(2):
        seed_everything(0)
        model = ae.Autoencoder(8)
        histories.append(ae.train_autoencoder(model, subset, 3, make_generator(1)))
    assert histories[0] == histories[1]
    assert len(histories[0]) == 3 and histories[0][-1] < histories[0][0]
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        ae.train_autoencoder(model, subset, 1, 1)
