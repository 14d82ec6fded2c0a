"""The hw1 autograder checks accept the reference and reject realistic wrong answers.

Also tests the conversion and budget machinery every check relies on
(``gradelib.checks.assertions``). The two tests that train a denoising autoencoder for the
full graded run are the slow ones (about 10-40 s each, depending on the machine's load);
everything else runs in well under a second per case.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradelib.checks import assertions
from gradelib.checks import hw1_autoencoders as checks
from gradelib.checks.assertions import to_float64
from gradelib.checks.references import hw1_autoencoders as ref
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


def test_loss_check_rejects_a_lying_tensor_subclass():
    def lying_loss(W1, W2, X):
        return torch.tensor(123.0, dtype=torch.float64).as_subclass(LyingTensor)

    with pytest.raises(AssertionError, match="linear_ae_loss: .* returned 123"):
        checks.check_linear_ae_loss(lying_loss)


# --- linear_ae_loss -------------------------------------------------------------------------

def _reconstructions(W1, W2, X):
    return X @ W1.T @ W2.T  # (N, d)


def test_loss_check_accepts_reference_and_the_trace_form():
    checks.check_linear_ae_loss(ref.linear_ae_loss)

    def trace_form(W1, W2, X):
        S = X.T @ X / len(X)
        E = torch.eye(X.shape[1], dtype=X.dtype) - W2 @ W1
        return torch.trace(E @ S @ E.T)

    checks.check_linear_ae_loss(trace_form)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda W1, W2, X: ((X - _reconstructions(W1, W2, X)) ** 2).sum(), "summed over the examples"),
        (lambda W1, W2, X: ((X - _reconstructions(W1, W2, X)) ** 2).mean(), "averaged over the d coordinates"),
        (lambda W1, W2, X: ((X - X @ W2 @ W1) ** 2).sum(1).mean(), "reconstruction is transposed"),
        (lambda W1, W2, X: (X - _reconstructions(W1, W2, X)).norm(dim=1).mean(), "Square the norm"),
        (lambda W1, W2, X: ((X - _reconstructions(W1, W2, X)) ** 2).sum(1), r"returned shape \(60,\); expected \(\)"),
        (lambda W1, W2, X: ((X - _reconstructions(W1, W2, X)) ** 2).sum(1).mean().reshape(1),
         r"returned shape \(1,\); expected \(\)"),
        (lambda W1, W2, X: float(((X - _reconstructions(W1, W2, X)) ** 2).sum(1).mean()) + 0.5, "expected"),
    ],
    ids=["sum-over-examples", "mean-over-entries", "transposed", "norm-not-squared",
         "per-example", "shape-1", "wrong-value"],
)
def test_loss_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_linear_ae_loss(wrong)


def test_loss_check_reports_not_implemented():
    def stub(W1, W2, X):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="linear_ae_loss: raised NotImplementedError"):
        checks.check_linear_ae_loss(stub)


# --- linear_ae_grads ------------------------------------------------------------------------

def _moments(W1, W2, X):
    S = X.T @ X / len(X)
    E = torch.eye(X.shape[1], dtype=X.dtype) - W2 @ W1
    return S, E


def test_grads_check_accepts_reference_and_the_residual_form():
    checks.check_linear_ae_grads(ref.linear_ae_grads)

    def residual_form(W1, W2, X):
        R = X - X @ W1.T @ W2.T  # (N, d)
        n = len(X)
        return -2 / n * W2.T @ R.T @ X, -2 / n * R.T @ X @ W1.T

    checks.check_linear_ae_grads(residual_form)


def _via_autograd_grad(W1, W2, X):
    W1 = W1.clone().requires_grad_()
    W2 = W2.clone().requires_grad_()
    with torch.enable_grad():
        return torch.autograd.grad(ref.linear_ae_loss(W1, W2, X), (W1, W2))


def _via_backward(W1, W2, X):
    W1 = W1.clone().requires_grad_()
    W2 = W2.clone().requires_grad_()
    with torch.enable_grad():
        ref.linear_ae_loss(W1, W2, X).backward()
    return W1.grad, W2.grad


def _via_torch_func(W1, W2, X):
    return torch.func.grad(lambda a, b: ref.linear_ae_loss(a, b, X), argnums=(0, 1))(W1, W2)


def _scaled(factor):
    def wrong(W1, W2, X):
        g1, g2 = ref.linear_ae_grads(W1, W2, X)
        return factor * g1, factor * g2
    return wrong


def _transposed_products(W1, W2, X):
    S, E = _moments(W1, W2, X)
    return -2 * W2.T @ S @ E.T, -2 * S @ E.T @ W1.T


def _swapped(W1, W2, X):
    g1, g2 = ref.linear_ae_grads(W1, W2, X)
    return g2.T, g1.T


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_scaled(-1.0), "Wrong sign"),
        (_scaled(0.5), "factor 2 from differentiating the square is missing"),
        (lambda W1, W2, X: tuple(len(X) * g for g in ref.linear_ae_grads(W1, W2, X)),
         "summed over the examples"),
        (_transposed_products, "A transposed product"),
        (_swapped, "transpose of dL/dW2 in place of dL/dW1"),
        (lambda W1, W2, X: tuple(g.T for g in ref.linear_ae_grads(W1, W2, X)),
         r"returned shape \(10, 3\); expected \(3, 10\)"),
        (lambda W1, W2, X: ref.linear_ae_grads(W1, W2, X)[0], "expected a tuple"),
        (_via_autograd_grad, "called torch's automatic differentiation"),
        (_via_backward, "called torch's automatic differentiation"),
        (_via_torch_func, "called torch's automatic differentiation"),
    ],
    ids=["sign", "no-factor-2", "sum-over-examples", "transposed", "swapped", "shapes",
         "not-a-tuple", "autograd-grad", "backward", "torch-func"],
)
def test_grads_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_linear_ae_grads(wrong)


def test_forbid_autograd_restores_torch():
    with pytest.raises(AssertionError):
        checks.check_linear_ae_grads(_via_autograd_grad)
    w = torch.tensor(2.0, requires_grad=True)
    (grad,) = torch.autograd.grad(w**2, w)  # autograd works again after the check
    assert grad.item() == 4.0 and torch.is_grad_enabled()


# --- pca_reconstruction_error ----------------------------------------------------------------

def test_pca_check_accepts_reference_and_the_svd_form():
    checks.check_pca_reconstruction_error(ref.pca_reconstruction_error)

    def from_singular_values(X, k):
        return (torch.linalg.svdvals(X)[k:] ** 2).sum() / len(X)

    checks.check_pca_reconstruction_error(from_singular_values)


def _eigenvalues(X):
    return torch.linalg.eigvalsh(X.T @ X / len(X))  # ascending


def _centred(X, k):
    C = X - X.mean(0)
    return torch.linalg.eigvalsh(C.T @ C / len(X))[: X.shape[1] - k].sum()


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_centred, "Do not centre X: the autoencoder has no bias"),
        (lambda X, k: torch.linalg.eigvalsh(torch.cov(X.T))[: X.shape[1] - k].sum(), "divide by N - 1"),
        (lambda X, k: _eigenvalues(X)[X.shape[1] - k:].sum(), "the sum of the k largest eigenvalues"),
        (lambda X, k: _eigenvalues(X)[k:].sum(), "ascending order"),
        (lambda X, k: torch.linalg.eigvalsh(X.T @ X)[: X.shape[1] - k].sum(), "Divide X\\^T X by N"),
        (lambda X, k: torch.linalg.svdvals(X / len(X) ** 0.5)[k:].sum(), "square them"),
        (lambda X, k: _eigenvalues(X)[: X.shape[1] - k], r"returned shape \(\d+,\); expected \(\)"),
    ],
    ids=["centred", "torch-cov", "kept-eigenvalues", "ascending-order", "no-division",
         "singular-values", "not-summed"],
)
def test_pca_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_pca_reconstruction_error(wrong)


# --- train_linear_ae -------------------------------------------------------------------------

def test_train_linear_ae_check_accepts_reference():
    checks.check_train_linear_ae(ref.train_linear_ae)


def _gd(sign=1.0, sequential=False, scale=0.01, w2_first=False, record_after=False,
        global_rng=False, grads=ref.linear_ae_grads):
    def train(X, k, steps, lr, generator):
        d = X.shape[1]
        draw = (lambda *shape: torch.randn(*shape, dtype=X.dtype)) if global_rng else \
            (lambda *shape: torch.randn(*shape, generator=generator, dtype=X.dtype))
        if w2_first:
            W2, W1 = scale * draw(d, k), scale * draw(k, d)
        else:
            W1, W2 = scale * draw(k, d), scale * draw(d, k)
        history = []
        for _ in range(steps):
            if not record_after:
                history.append(float(ref.linear_ae_loss(W1, W2, X)))
            g1, g2 = grads(W1, W2, X)
            W1 = W1 - sign * lr * g1
            if sequential:
                g2 = grads(W1, W2, X)[1]
            W2 = W2 - sign * lr * g2
            if record_after:
                history.append(float(ref.linear_ae_loss(W1, W2, X)))
        return W1, W2, history
    return train


def test_train_linear_ae_check_accepts_an_independent_loop():
    checks.check_train_linear_ae(_gd())


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_gd(global_rng=True), "never drew from the generator it was given"),
        (_gd(sign=-1.0), "Wrong sign: gradient descent moves against the gradient"),
        (_gd(sequential=True), "Update W1 and W2 at once"),
        (_gd(scale=1.0), "The start must be small"),
        (_gd(w2_first=True), "Draw W1 first, then W2"),
        (_gd(record_after=True), r"history\[t\] is the loss before update t"),
        (_gd(grads=_via_autograd_grad), "called torch's automatic differentiation"),
        (_gd(grads=_scaled(0.5)), "returned W1"),
        (lambda X, k, steps, lr, generator: _gd()(X, k, steps, lr, generator)[:2], "expected a tuple"),
        (lambda X, k, steps, lr, generator: _gd()(X, k, steps + 1, lr, generator),
         "expected a list of 5 losses"),
    ],
    ids=["global-rng", "ascent", "sequential", "large-start", "draw-order", "history-after",
         "autograd", "half-gradient", "no-history", "history-length"],
)
def test_train_linear_ae_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_train_linear_ae(wrong)


def test_train_linear_ae_check_rejects_a_run_that_stops_near_the_saddle(monkeypatch):
    # 5 steps from a start of scale 0.01 end next to the saddle at the origin
    monkeypatch.setattr(checks, "GD_STEPS", 5)
    with pytest.raises(AssertionError, match=r"the loss of the returned W1, W2 is .*PCA optimum"):
        checks.check_train_linear_ae(ref.train_linear_ae)


def test_train_linear_ae_check_measures_the_principal_angle(monkeypatch):
    monkeypatch.setattr(checks, "MAX_PRINCIPAL_ANGLE", 1e-12)
    with pytest.raises(AssertionError, match=r"largest principal angle between span\(W2 W1\)"):
        checks.check_train_linear_ae(ref.train_linear_ae)


def test_train_linear_ae_check_enforces_its_time_budget(monkeypatch):
    monkeypatch.setattr(checks, "calibrated_time_budget", lambda *args, **kwargs: -1.0)
    with pytest.raises(AssertionError, match=r"took .* s; the budget on this machine is -1.0 s"):
        checks.check_train_linear_ae(ref.train_linear_ae)


def test_the_reference_reaches_the_pca_optimum_and_subspace():
    X = checks.linear_ae_data(5)
    W1, W2, history = ref.train_linear_ae(X, 3, checks.GD_STEPS, checks.GD_LR, torch.Generator().manual_seed(0))
    optimum = float(ref.pca_reconstruction_error(X, 3))
    loss = float(ref.linear_ae_loss(W1, W2, X))
    assert optimum <= loss <= optimum * (1 + checks.MAX_LOSS_EXCESS / 10)
    second_moment = X.T @ X / len(X)
    # the start is next to the origin, where the loss is tr(X^T X / N), far above the optimum
    assert abs(history[0] - float(torch.trace(second_moment))) < 1e-2 * history[0]
    assert history[0] > 3 * optimum
    _, vectors = torch.linalg.eigh(second_moment)
    angles = ref.principal_angles(W2, vectors[:, -3:])
    assert float(angles.max()) < checks.MAX_PRINCIPAL_ANGLE / 10


# --- mask_noise --------------------------------------------------------------------------------

def test_mask_noise_check_accepts_reference_and_a_product_form():
    checks.check_mask_noise(ref.mask_noise)
    checks.check_mask_noise(
        lambda x, p, generator: x * (torch.rand(x.shape, generator=generator) >= p).to(x.dtype))


def _in_place(x, p, generator):
    return x.masked_fill_(torch.rand(x.shape, generator=generator) < p, 0.0)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x, p, generator: x.masked_fill(torch.rand(x.shape) < p, 0.0),
         "never drew from the generator it was given"),
        (lambda x, p, generator: F.dropout(x, p), "never drew from the generator it was given"),
        (lambda x, p, generator: x * (torch.rand(x.shape, generator=generator) < p).to(x.dtype),
         "Reversed: you kept the entries with u < drop_prob"),
        (lambda x, p, generator: x * (torch.rand(x.shape, generator=generator) >= p).to(x.dtype)
         / max(1 - p, 1e-12), "does not rescale the kept pixels"),
        (_in_place, "modified x in place"),
        (lambda x, p, generator: x * torch.bernoulli(torch.full_like(x, 1 - p), generator=generator),
         r"returned tensor of shape .*; expected tensor"),  # (another draw: bernoulli uses u < 1 - p)
        (lambda x, p, generator: x[torch.rand(x.shape, generator=generator) >= p],
         r"returned shape \(\d+,\); expected \(6, 1, 28, 28\)"),
    ],
    ids=["global-rng", "dropout", "reversed", "rescaled", "in-place", "bernoulli-draw", "flattened"],
)
def test_mask_noise_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_mask_noise(wrong)


# --- DenoisingAutoencoder --------------------------------------------------------------------------

class ChapterStyleDAE(nn.Module):
    """Another acceptable design: the chapter's plain autoencoder widths (16 and 32 channels)."""

    def __init__(self, latent_dim):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 7 * 7, latent_dim))
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 32 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1), nn.Sigmoid())

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        return self.decode(self.encode(x))


class MLPDenoiser(ChapterStyleDAE):
    """Not convolutional."""

    def __init__(self, latent_dim):
        nn.Module.__init__(self)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, 784),
                                     nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))


class FlatDecoder(ChapterStyleDAE):
    def decode(self, z):
        return self.decoder(z).flatten(1)  # (B, 784)


class SkipConnection(ChapterStyleDAE):
    """Bypasses the bottleneck: adds the corrupted input to the reconstruction."""

    def forward(self, x):
        return 0.5 * self.decode(self.encode(x)) + 0.5 * x


class WideCode(ChapterStyleDAE):
    def encode(self, x):
        return torch.cat([self.encoder(x), self.encoder(x)], dim=1)  # (B, 2D)


class NotAModule:
    def __init__(self, latent_dim):
        self.latent_dim = latent_dim


class NoParameters(nn.Module):
    def __init__(self, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim

    def forward(self, x):
        return x


def test_dae_check_accepts_reference_and_another_design():
    checks.check_denoising_autoencoder(ref.DenoisingAutoencoder)
    checks.check_denoising_autoencoder(ChapterStyleDAE)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (MLPDenoiser, "has no convolutional layer"),
        (FlatDecoder, r"returned shape \(6, 784\); expected \(6, 1, 28, 28\)"),
        (SkipConnection, "has to pass through the code"),
        (WideCode, r"returned shape \(6, 4\); expected \(6, 2\)"),
        (NotAModule, "expected an nn.Module"),
        (NoParameters, "has no parameters"),
    ],
    ids=["mlp", "flat-decoder", "skip-connection", "wide-code", "not-a-module", "no-parameters"],
)
def test_dae_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_denoising_autoencoder(wrong)


# --- train_denoising_autoencoder (trains real models on embedded MNIST) ----------------------------

def _clean_inputs(model, images, drop_prob, epochs, generator):
    """A plain autoencoder's loop: the model never sees corrupted inputs."""
    return ref.train_denoising_autoencoder(model, images, 0.0, epochs, generator)


def test_train_dae_check_accepts_the_reference():
    sse = checks.check_train_denoising_autoencoder(ref.train_denoising_autoencoder,
                                                   ref.DenoisingAutoencoder)
    assert sse < checks.TEST_SSE_BAND - 5, sse  # well inside the band


def test_train_dae_check_rejects_a_plain_autoencoder_loop(monkeypatch):
    monkeypatch.setattr(checks, "training_time_budget", lambda images: 1e9)
    with pytest.raises(AssertionError, match=r"error against the clean test digits is (2|3|4)\d\.\d\d per image"):
        checks.check_train_denoising_autoencoder(_clean_inputs, ref.DenoisingAutoencoder)


def _one_step_per_epoch(model, images, drop_prob, epochs, generator):
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    history = []
    for _ in range(epochs):
        batch = images[torch.randperm(len(images), generator=generator)[:32]]
        loss = ref.sum_squared_error(model(ref.mask_noise(batch, drop_prob, generator)), batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


def _never_steps(model, images, drop_prob, epochs, generator):
    torch.randperm(len(images), generator=generator)
    return [float(100 - e) for e in range(epochs)]  # a plausible history, no training


def _ignores_generator(model, images, drop_prob, epochs, generator):
    return [float(100 - e) for e in range(epochs)]


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        (_one_step_per_epoch, r"error against the clean test digits is .* at most 20\.0 is expected"),
        (_never_steps, r"error against the clean test digits is .*the corrupted inputs themselves score"),
        (_ignores_generator, "never drew from the generator it was given"),
        (lambda *args: [1.0] * 3, "expected a list of 6"),
        (lambda *args: [1.0] * 6, "did not decrease"),
        (lambda *args: (2.0,) * 5 + (1.0,), "returned tuple"),
        (lambda *args: [2.0, float("nan"), 1.5, 1.2, 1.1, 1.0], "non-finite"),
    ],
    ids=["underfit", "no-step", "ignores-generator", "short-history",
         "flat-history", "tuple-history", "nan-history"],
)
def test_train_dae_check_rejects(monkeypatch, trainer, message):
    monkeypatch.setattr(checks, "training_time_budget", lambda images: 1e9)
    with pytest.raises(AssertionError, match=message):
        checks.check_train_denoising_autoencoder(trainer, ChapterStyleDAE)


def test_train_dae_check_enforces_the_time_budget(monkeypatch):
    monkeypatch.setattr(checks, "training_time_budget", lambda images: -1.0)
    with pytest.raises(AssertionError, match=r"6 epochs took .* s; the budget on this machine is -1.0 s"):
        checks.check_train_denoising_autoencoder(_never_steps, ChapterStyleDAE)


def test_time_budget_grows_with_the_machines_load(monkeypatch):
    images, _ = load_mnist("train")
    # where one reference epoch takes 100 s, the budget is factor * epochs * 100 s
    clock = iter([0.0, 100.0])
    monkeypatch.setattr(assertions, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(checks.reference, "train_denoising_autoencoder", lambda *args, **kwargs: [0.0])
    expected = checks.TRAINING_TIME_FACTOR * checks.TRAINING_EPOCHS * 100.0
    assert checks.training_time_budget(images) == expected
    # and where it is quick, the floor applies
    clock = iter([0.0, 0.01])
    assert checks.training_time_budget(images) == checks.TRAINING_TIME_BUDGET_S
