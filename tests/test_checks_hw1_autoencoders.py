"""The hw1 autograder checks accept the reference and reject realistic wrong answers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gradelib import autoencoders as ref
from gradelib.checks import assertions
from gradelib.checks import hw1_autoencoders as checks
from gradelib.checks.assertions import to_float64
from gradelib.data import load_mnist


class AlwaysEqual:
    """What a student (or a bug) might return: an object that claims to equal anything."""

    def __eq__(self, other):
        return True

    def __float__(self):
        return 0.0


class LyingTensor(torch.Tensor):
    """A tensor subclass whose arithmetic always reports zero difference."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        result = super().__torch_function__(func, types, args, kwargs or {})
        if func in (torch.Tensor.sub, torch.Tensor.__sub__, torch.sub, torch.Tensor.abs):
            return torch.zeros_like(torch.Tensor.as_subclass(result, torch.Tensor))
        return result


# --- the conversion every check relies on -------------------------------------------------

def test_to_float64_strips_subclasses_and_rejects_impostors():
    lying = torch.tensor([1.0, 2.0]).as_subclass(LyingTensor)
    plain = to_float64(lying, function="f")
    assert type(plain) is torch.Tensor and plain.dtype == torch.float64
    assert plain.tolist() == [1.0, 2.0]
    with pytest.raises(AssertionError, match=r"f: the return value has type .*AlwaysEqual"):
        to_float64(AlwaysEqual(), function="f")
    with pytest.raises(AssertionError, match="has type builtins.list"):
        to_float64([1.0], function="f")


# --- linear_ae_loss -------------------------------------------------------------------------

def test_loss_check_accepts_reference():
    checks.check_linear_ae_loss(ref.linear_ae_loss)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda w1, w2, x: ((x - w2 * w1 * x) ** 2).sum(), "summed over samples"),
        (lambda w1, w2, x: (x - w2 * w1 * x).mean(), "Square the residual"),
        (lambda w1, w2, x: ((x - w1 - w2) ** 2).mean(), "not x - w1 - w2"),
        (lambda w1, w2, x: ((x - w2 * w1 * x) ** 2), r"returned shape \((40|25),\); expected \(\)"),
        (lambda w1, w2, x: AlwaysEqual(), "has type .*AlwaysEqual"),
        (lambda w1, w2, x: ref.linear_ae_loss(w1, w2, x).as_subclass(LyingTensor) + 1,
         "expected"),
    ],
    ids=["sum", "no-square", "wrong-residual", "no-reduction", "always-equal", "lying-subclass"],
)
def test_loss_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_linear_ae_loss(wrong)


def test_loss_check_reports_not_implemented():
    def stub(w1, w2, x):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="raised NotImplementedError"):
        checks.check_linear_ae_loss(stub)


# --- linear_ae_grad -------------------------------------------------------------------------

def test_grad_check_accepts_reference():
    checks.check_linear_ae_grad(ref.linear_ae_grad)


def _grad_sign_flipped(w1, w2, x):
    g1, g2 = ref.linear_ae_grad(w1, w2, x)
    return -g1, -g2


def _grad_no_factor_two(w1, w2, x):
    g1, g2 = ref.linear_ae_grad(w1, w2, x)
    return g1 / 2, g2 / 2


def _grad_swapped(w1, w2, x):
    g1, g2 = ref.linear_ae_grad(w1, w2, x)
    return g2, g1


def _grad_by_autograd(w1, w2, x):
    w1 = w1.clone().requires_grad_()
    w2 = w2.clone().requires_grad_()
    with torch.enable_grad():
        return torch.autograd.grad(ref.linear_ae_loss(w1, w2, x), (w1, w2))


def _grad_by_backward(w1, w2, x):
    w1 = w1.clone().requires_grad_()
    w2 = w2.clone().requires_grad_()
    with torch.enable_grad():
        ref.linear_ae_loss(w1, w2, x).backward()
    return w1.grad, w2.grad


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_grad_sign_flipped, "Check the sign"),
        (_grad_no_factor_two, "factor 2"),
        (_grad_swapped, "swapped"),
        (_grad_by_autograd, "automatic differentiation"),
        (_grad_by_backward, "automatic differentiation"),
        (lambda w1, w2, x: torch.stack(ref.linear_ae_grad(w1, w2, x)), "expected a tuple"),
    ],
    ids=["sign", "factor-two", "swapped", "autograd.grad", "backward", "stacked"],
)
def test_grad_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_linear_ae_grad(wrong)


def test_forbid_autograd_restores_torch():
    original = torch.autograd.grad
    with pytest.raises(AssertionError):
        checks.check_linear_ae_grad(_grad_by_autograd)
    assert torch.autograd.grad is original and torch.is_grad_enabled()


# --- linear_ae_hessian ----------------------------------------------------------------------

def test_hessian_check_accepts_reference():
    checks.check_linear_ae_hessian(ref.linear_ae_hessian)


def _hessian_no_product_rule(w1, w2, x):
    s = (x**2).mean()
    off = 2 * s * w1 * w2 - 2 * s
    return torch.stack([torch.stack([2 * s * w2**2, off]), torch.stack([off, 2 * s * w1**2])])


def _hessian_by_autograd(w1, w2, x):
    with torch.enable_grad():
        return torch.autograd.functional.hessian(
            lambda w: ref.linear_ae_loss(w[0], w[1], x), torch.stack([w1, w2]))


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_hessian_no_product_rule, "product rule"),
        (lambda w1, w2, x: -ref.linear_ae_hessian(w1, w2, x), "negated"),
        (lambda w1, w2, x: ref.linear_ae_hessian(w1, w2, x).flatten(), r"shape \(4,\)"),
        (_hessian_by_autograd, "automatic differentiation"),
    ],
    ids=["no-product-rule", "negated", "flat", "autograd"],
)
def test_hessian_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_linear_ae_hessian(wrong)


# --- classify_critical_point ------------------------------------------------------------------

def test_classify_check_accepts_reference():
    checks.check_classify_critical_point(ref.classify_critical_point)


def _classify_by_determinant(h):
    return "saddle" if torch.det(h) < 0 else "minimum"


def _classify_by_diagonal(h):
    d = torch.diagonal(h)
    if bool((d > 0).all()):
        return "minimum"
    if bool((d < 0).all()):
        return "maximum"
    return "saddle"


def _classify_swapped(h):
    answer = ref.classify_critical_point(h)
    return {"minimum": "maximum", "maximum": "minimum"}.get(answer, answer)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_classify_by_determinant, "expected 'maximum'"),
        (_classify_by_diagonal, "returned 'minimum'; expected 'saddle'"),
        (_classify_swapped, "expected 'minimum'"),
        (lambda h: AlwaysEqual(), "returned AlwaysEqual; expected the str"),
    ],
    ids=["determinant-only", "diagonal-only", "min-max-swapped", "always-equal"],
)
def test_classify_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_classify_critical_point(wrong)


# --- reconstruction_loss -----------------------------------------------------------------------

def test_reconstruction_check_accepts_reference():
    checks.check_reconstruction_loss(ref.reconstruction_loss)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x_hat, x: ((x_hat - x) ** 2).mean(dim=(1, 2, 3)), "averaged over pixels"),
        (lambda x_hat, x: ((x_hat - x) ** 2).sum(), "reduced over the batch"),
        (lambda x_hat, x: (x_hat - x).abs().sum(dim=(1, 2, 3)), "summed absolute"),
        (lambda x_hat, x: ((x_hat - x) ** 2).sum(dim=(2, 3)), r"returned shape \(5, 1\)"),
        (lambda x_hat, x: torch.nn.functional.mse_loss(x_hat, x, reduction="none").sum(dim=(2, 3)),
         r"shape \(5, 1\)"),
    ],
    ids=["mean", "batch-sum", "abs", "channels-kept", "mse-loss-channels-kept"],
)
def test_reconstruction_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_reconstruction_loss(wrong)


# --- Autoencoder --------------------------------------------------------------------------------

def test_autoencoder_check_accepts_reference():
    checks.check_autoencoder(ref.Autoencoder)


class Bypass(ref.Autoencoder):
    def forward(self, x):
        return x  # skips the bottleneck


class WideCode(ref.Autoencoder):
    def __init__(self, latent_dim):
        super().__init__(2 * latent_dim)


class FlatDecoder(ref.Autoencoder):
    def decode(self, z):
        return super().decode(z).flatten(1)

    def forward(self, x):
        return super().decode(self.encode(x))


class Detached(ref.Autoencoder):
    def forward(self, x):
        return super().forward(x).detach()


class UnusedLayer(ref.Autoencoder):
    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        self.extra = nn.Linear(3, 3)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (Bypass, "must be decode\\(encode\\(x\\)\\)"),
        (WideCode, r"encode.*returned shape \(6, 4\); expected \(6, 2\)"),
        (FlatDecoder, r"decode.*returned shape \(6, 784\)"),
        (Detached, "does not depend on the parameters"),
        (UnusedLayer, "receive no gradient"),
    ],
    ids=["bypass", "wrong-latent-size", "flat-decoder", "detached", "unused-layer"],
)
def test_autoencoder_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_autoencoder(wrong)


# --- train_autoencoder (trains real models on embedded MNIST) ----------------------------------

class MLPAutoencoder(nn.Module):
    """A weaker but acceptable student design: one hidden layer of 256 units each way."""

    def __init__(self, latent_dim):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
                                     nn.Linear(256, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, 784),
                                     nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        return self.decode(self.encode(x))


def test_train_check_accepts_reference_and_a_weaker_acceptable_model():
    reference_sse = checks.check_train_autoencoder(ref.train_autoencoder, ref.Autoencoder)
    mlp_sse = checks.check_train_autoencoder(ref.train_autoencoder, MLPAutoencoder)
    # the band leaves room above both, as its documentation says
    assert reference_sse < mlp_sse < checks.TEST_SSE_BAND


def _never_steps(model, images, epochs, generator):
    with torch.no_grad():
        loss = ref.reconstruction_loss(model(images[:256]), images[:256]).mean().item()
    return [loss] * epochs


def _one_step_per_epoch(model, images, epochs, generator):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(epochs):
        batch = images[torch.randperm(len(images), generator=generator)[:64]]
        loss = ref.reconstruction_loss(model(batch), batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


def _per_batch_history(model, images, epochs, generator):
    return _one_step_per_epoch(model, images, 3 * epochs, generator)


def _tensor_history(model, images, epochs, generator):
    return [torch.tensor([float("nan")])] * epochs


class MeanImage(nn.Module):
    """Ignores its input: always predicts a learned image (the mean, after training)."""

    def __init__(self, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim
        self.image = nn.Parameter(torch.zeros(1, 1, 28, 28))

    def encode(self, x):
        return torch.zeros(len(x), self.latent_dim) + 0 * self.image.sum()

    def decode(self, z):
        return self.image.expand(len(z), 1, 28, 28) + 0 * z.sum()

    def forward(self, x):
        return self.decode(self.encode(x))


@pytest.mark.parametrize(
    ("trainer", "model", "message"),
    [
        (_never_steps, ref.Autoencoder, "the loss did not decrease"),
        (_one_step_per_epoch, ref.Autoencoder, r"mean test reconstruction error is .*expected at most 20"),
        (_per_batch_history, ref.Autoencoder, "length 30; expected a list of 10"),
        (_tensor_history, ref.Autoencoder, "non-scalar or non-finite"),
        (ref.train_autoencoder, MeanImage, r"mean test reconstruction error is 5\d\.\d\d"),
    ],
    ids=["no-step", "underfit", "per-batch-history", "nan-history", "mean-image-model"],
)
def test_train_check_rejects(trainer, model, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_train_autoencoder(trainer, model)


def test_train_check_enforces_time_budget(monkeypatch):
    monkeypatch.setattr(checks, "training_time_budget", lambda images: 0.0)
    with pytest.raises(AssertionError, match=r"took .* s; the budget on this machine is 0 s"):
        checks.check_train_autoencoder(_one_step_per_epoch, ref.Autoencoder)


def test_time_budget_grows_with_the_machines_load(monkeypatch):
    images, _ = load_mnist("train")
    assert checks.training_time_budget(images) >= checks.TRAINING_TIME_BUDGET_S
    # where one reference epoch takes 100 s, the budget is factor * epochs * 100 s
    clock = iter([0.0, 100.0])
    monkeypatch.setattr(assertions, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(checks.reference, "train_autoencoder", lambda *args, **kwargs: [0.0])
    expected = checks.TRAINING_TIME_FACTOR * checks.TRAINING_EPOCHS * 100.0
    assert checks.training_time_budget(images) == expected
