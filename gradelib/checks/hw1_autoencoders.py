"""Autograder checks for ``hw1_autoencoders`` (syllabus §2).

Each ``check_*`` takes the student's function or class, runs it on seeded inputs, compares
with :mod:`gradelib.autoencoders` under the tolerances stated in its docstring, and raises
an ``AssertionError`` naming the function, the input, the expected and returned values and
a hint. Returned values are converted to plain float64 tensors before any comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from gradelib import autoencoders as reference
from gradelib.checks.assertions import (
    assert_close,
    assert_shape,
    calibrated_time_budget,
    call_student,
    check_loss_history,
    fail,
    forbid_autograd,
    to_float64,
    trains_model,
)
from gradelib.data import load_mnist
from gradelib.device import make_generator

__all__ = [
    "check_linear_ae_loss",
    "check_linear_ae_grad",
    "check_linear_ae_hessian",
    "check_classify_critical_point",
    "check_reconstruction_loss",
    "check_autoencoder",
    "check_train_autoencoder",
    "TRAINING_EPOCHS",
    "TRAINING_TIME_BUDGET_S",
    "TRAINING_TIME_FACTOR",
    "training_time_budget",
    "TEST_SSE_BAND",
]

SEED = 2024
RTOL, ATOL = 1e-6, 1e-9
AUTOGRAD_HINT = "Differentiate L(w1, w2) by hand and code the resulting expressions."

#: Epochs the hidden training check runs the student's ``train_autoencoder`` for.
TRAINING_EPOCHS = 10
#: Wall-clock seconds the hidden training check always allows for those epochs (the
#: reference needs about 8 s on an idle 2-core CPU).
TRAINING_TIME_BUDGET_S = 45.0
#: On a slower or busier machine the budget grows: it is at least this many times what the
#: reference takes for the same epochs, timed (one epoch) in the same process just before.
TRAINING_TIME_FACTOR = 5.0
#: Largest accepted mean test SSE per image (latent 32, 10 epochs, embedded MNIST). The
#: reference conv AE reaches about 10 and a one-hidden-layer MLP AE about 14; predicting the
#: mean training image scores about 52 (measured by tests/test_checks_hw1.py).
TEST_SSE_BAND = 20.0


def _linear_ae_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(label, w1, w2, x): random points, the origin, a zero-loss point, float32 input."""
    g = make_generator(SEED)
    x = 1.5 * torch.randn(40, generator=g, dtype=torch.float64) + 0.3
    cases = []
    for _ in range(3):
        w1, w2 = torch.randn(2, generator=g, dtype=torch.float64)
        cases.append(("a random point", w1, w2, x))
    zero = torch.tensor(0.0, dtype=torch.float64)
    cases.append(("the origin", zero, zero.clone(), x))
    cases.append(("a zero-loss point", torch.tensor(2.0, dtype=torch.float64),
                  torch.tensor(0.5, dtype=torch.float64), x))
    x32 = torch.randn(25, generator=g)
    cases.append(("float32 inputs", torch.tensor(0.7), torch.tensor(-1.3), x32))
    return cases


def _describe(label: str, w1: torch.Tensor, w2: torch.Tensor, x: torch.Tensor) -> str:
    return f"at {label} (w1={w1.item():.4g}, w2={w2.item():.4g}, x of shape {tuple(x.shape)})"


def _clones(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(t.clone() for t in tensors)


def check_linear_ae_loss(linear_ae_loss: Callable) -> None:
    """``linear_ae_loss(w1, w2, x)``: a 0-d tensor equal to the reference.

    Cases: three random ``(w1, w2)``, the origin, a point with ``w1 w2 = 1``, float32 input.
    Tolerance: ``rtol=1e-6, atol=1e-9`` (``rtol=1e-5`` for float32).
    """
    name = "linear_ae_loss"
    for label, w1, w2, x in _linear_ae_cases():
        got = call_student(name, linear_ae_loss, *_clones(w1, w2, x))
        want = reference.linear_ae_loss(w1, w2, x)
        residual = x - w2 * w1 * x
        float32 = x.dtype == torch.float32
        assert_close(
            got, want, function=name, call=f"{name} {_describe(label, w1, w2, x)}",
            rtol=1e-5 if float32 else RTOL, atol=ATOL,
            hint="L = mean over samples of (x_i - w2 * w1 * x_i)^2, a 0-d tensor.",
            known_mistakes={
                "You summed over samples; the loss is the mean.": (residual**2).sum(),
                "Square the residual before averaging.": residual.mean(),
                "Use the reconstruction error x - w2*w1*x, not x - w1 - w2.": (
                    (x - w1 - w2) ** 2).mean(),
            },
        )


def check_linear_ae_grad(linear_ae_grad: Callable) -> None:
    """``linear_ae_grad(w1, w2, x)``: ``(dL/dw1, dL/dw2)`` equal to the analytic reference.

    Also fails if the function calls torch's autograd (the gradient must be derived by
    hand). Same cases and tolerances as :func:`check_linear_ae_loss`.
    """
    name = "linear_ae_grad"
    for label, w1, w2, x in _linear_ae_cases():
        with forbid_autograd(name, AUTOGRAD_HINT):
            got = call_student(name, linear_ae_grad, *_clones(w1, w2, x))
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            fail(name, f"returned {type(got).__name__}; expected a tuple (dL/dw1, dL/dw2).")
        want = reference.linear_ae_grad(w1, w2, x)
        s = (x**2).mean()
        residual = 1 - w1 * w2
        float32 = x.dtype == torch.float32
        for which, got_part, want_part, other in (
            ("dL/dw1", got[0], want[0], w2), ("dL/dw2", got[1], want[1], w1)
        ):
            assert_close(
                got_part, want_part, function=name,
                call=f"{name} {_describe(label, w1, w2, x)}, component {which}",
                rtol=1e-5 if float32 else RTOL, atol=ATOL,
                hint="With s = mean(x^2), L = s (1 - w1 w2)^2; apply the chain rule.",
                known_mistakes={
                    "Check the sign: d/dw of (1 - w1 w2)^2 brings a factor -w_other.":
                        2 * s * other * residual,
                    "The factor 2 from differentiating the square is missing.":
                        -s * other * residual,
                    "The gradient components are swapped.": -2 * s * (w1 if other is w2 else w2)
                        * residual,
                },
            )


def check_linear_ae_hessian(linear_ae_hessian: Callable) -> None:
    """``linear_ae_hessian(w1, w2, x)``: the analytic ``(2, 2)`` Hessian, without autograd.

    Same cases and tolerances as :func:`check_linear_ae_loss`; at the origin it must be
    ``[[0, -2s], [-2s, 0]]``.
    """
    name = "linear_ae_hessian"
    for label, w1, w2, x in _linear_ae_cases():
        with forbid_autograd(name, AUTOGRAD_HINT):
            got = call_student(name, linear_ae_hessian, *_clones(w1, w2, x))
        want = reference.linear_ae_hessian(w1, w2, x)
        s = (x**2).mean()
        float32 = x.dtype == torch.float32
        without_product_rule = want.clone()
        without_product_rule[0, 1] = without_product_rule[1, 0] = 2 * s * w1 * w2 - 2 * s
        assert_close(
            got, want, function=name, call=f"{name} {_describe(label, w1, w2, x)}",
            rtol=1e-5 if float32 else RTOL, atol=ATOL,
            hint="Differentiate each gradient component with respect to w1 and w2; the "
                 "result is a symmetric 2x2 tensor.",
            known_mistakes={
                "The mixed derivative d2L/dw1dw2 needs the product rule on w2 (1 - w1 w2).":
                    without_product_rule,
                "The Hessian was returned negated.": -want,
            },
        )


def _hessian_cases() -> list[tuple[str, torch.Tensor, str]]:
    s = 1.7
    rotation = torch.tensor([[0.8, -0.6], [0.6, 0.8]], dtype=torch.float64)
    return [
        ("the origin of the linear AE", torch.tensor([[0.0, -2 * s], [-2 * s, 0.0]]), "saddle"),
        ("diag(2, 3)", torch.diag(torch.tensor([2.0, 3.0])), "minimum"),
        ("diag(-1, -4)", torch.diag(torch.tensor([-1.0, -4.0])), "maximum"),
        ("diag(5, -0.5)", torch.diag(torch.tensor([5.0, -0.5])), "saddle"),
        ("a rotated positive-definite matrix",
         rotation @ torch.diag(torch.tensor([3.0, 0.5], dtype=torch.float64)) @ rotation.T,
         "minimum"),
        ("a negative-definite matrix with off-diagonal terms",
         torch.tensor([[-2.0, 1.0], [1.0, -3.0]]), "maximum"),
        ("a matrix with positive diagonal but a negative eigenvalue",
         torch.tensor([[1.0, 3.0], [3.0, 1.0]]), "saddle"),
        ("a 3x3 Hessian with eigenvalues of both signs",
         torch.diag(torch.tensor([1.0, 2.0, -3.0])), "saddle"),
    ]


def check_classify_critical_point(classify_critical_point: Callable) -> None:
    """``classify_critical_point(hessian)``: exactly the str ``"minimum"``, ``"maximum"`` or
    ``"saddle"``, for eight non-degenerate symmetric Hessians (2x2 and 3x3, diagonal or not).
    """
    name = "classify_critical_point"
    for label, hessian, expected in _hessian_cases():
        got = call_student(name, classify_critical_point, hessian.clone())
        if type(got) is not str:
            fail(name, f"for {label} returned {type(got).__name__}; expected the str "
                 f"{expected!r}.")
        if got != expected:
            fail(name, f"for {label} (hessian={hessian.tolist()}) returned {got!r}; "
                 f"expected {expected!r}.",
                 "Use the signs of the Hessian's eigenvalues (torch.linalg.eigvalsh), not of "
                 "its diagonal entries or determinant alone.")


def check_reconstruction_loss(reconstruction_loss: Callable) -> None:
    """``reconstruction_loss(x_hat, x)``: per-image sum of squared errors, shape ``(B,)``.

    Cases: ``(5, 1, 28, 28)`` and ``(3, 2, 4, 6)`` seeded inputs in [0, 1], float32.
    Tolerance: ``rtol=1e-5, atol=1e-6``.
    """
    name = "reconstruction_loss"
    g = make_generator(SEED + 1)
    for shape in ((5, 1, 28, 28), (3, 2, 4, 6)):
        x_hat = torch.rand(shape, generator=g)
        x = torch.rand(shape, generator=g)
        got = call_student(name, reconstruction_loss, x_hat.clone(), x.clone())
        want = reference.reconstruction_loss(x_hat, x)
        squared = (x_hat - x) ** 2
        assert_close(
            got, want, function=name,
            call=f"{name}(x_hat, x) with x of shape {shape}", rtol=1e-5, atol=1e-6,
            hint="Square the error, then sum over channels, height and width, keeping one "
                 "value per image: shape (B,).",
            known_mistakes={
                "You averaged over pixels; the loss is the sum over the pixels of each image.":
                    squared.mean(dim=(1, 2, 3)),
                "You reduced over the batch too; return one value per image, shape (B,).":
                    squared.sum(),
                "Square the error (you summed absolute differences).":
                    (x_hat - x).abs().sum(dim=(1, 2, 3)),
            },
        )


def _fresh_model(model_class: Callable, latent_dim: int, seed: int) -> nn.Module:
    name = "Autoencoder"
    torch.manual_seed(seed)  # weight initialisation uses torch's global generator
    model = call_student(name, model_class, latent_dim)
    if not isinstance(model, nn.Module):
        fail(name, f"Autoencoder({latent_dim}) is a {type(model).__name__}; expected an "
             "nn.Module.")
    if not any(p.requires_grad for p in model.parameters()):
        fail(name, f"Autoencoder({latent_dim}) has no trainable parameters.")
    return model


def check_autoencoder(model_class: Callable) -> None:
    """``Autoencoder(latent_dim)``: shapes of ``encode``, ``decode`` and ``forward``.

    For ``latent_dim`` 2 and 32 on a seeded ``(6, 1, 28, 28)`` batch: ``encode`` gives
    ``(6, D)``, ``decode`` of a ``(6, D)`` code gives ``(6, 1, 28, 28)``, ``forward(x)``
    equals ``decode(encode(x))`` (tolerance ``1e-5``, eval mode), all finite, and the
    forward pass reaches every trainable parameter's gradient.
    """
    name = "Autoencoder"
    g = make_generator(SEED + 2)
    x = torch.rand(6, 1, 28, 28, generator=g)
    for latent_dim in (2, 32):
        model = _fresh_model(model_class, latent_dim, SEED)
        model.eval()
        with torch.no_grad():
            z = to_float64(call_student(f"{name}.encode", model.encode, x.clone()),
                           function=f"{name}.encode")
            assert_shape(z, (6, latent_dim), function=f"{name}.encode",
                         call=f"Autoencoder({latent_dim}).encode(x of shape (6, 1, 28, 28))",
                         hint="The code has one row of latent_dim numbers per image.")
            code = torch.randn(6, latent_dim, generator=g)
            decoded = to_float64(call_student(f"{name}.decode", model.decode, code),
                                 function=f"{name}.decode")
            assert_shape(decoded, (6, 1, 28, 28), function=f"{name}.decode",
                         call=f"Autoencoder({latent_dim}).decode(z of shape (6, {latent_dim}))",
                         hint="Reshape the decoder's output to (B, 1, 28, 28).")
            x_hat = call_student(f"{name}.forward", model, x.clone())
            composed = model.decode(model.encode(x.clone()))
        assert_close(x_hat, to_float64(composed, function=name), function=f"{name}.forward",
                     call=f"Autoencoder({latent_dim})(x)", rtol=1e-5, atol=1e-5,
                     hint="forward(x) must be decode(encode(x)): the reconstruction has to "
                          "pass through the bottleneck.")
        model.train()
        torch.manual_seed(SEED)
        out = model(x.clone())
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            fail(f"{name}.forward", "the output does not depend on the parameters "
                 "(no gradient can flow).", "Do not detach or wrap the output in no_grad.")
        out.float().sum().backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        if missing:
            fail(f"{name}.forward", f"parameters {missing[:3]} receive no gradient.",
                 "Every layer you define should be used in encode or decode.")


def training_time_budget(train_images: torch.Tensor) -> float:
    """Seconds allowed for ``TRAINING_EPOCHS`` epochs on this machine, under its current load.

    ``max(TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR * TRAINING_EPOCHS * t)`` where ``t`` is
    the time the reference takes for one epoch, measured now: a fixed wall-clock limit would
    fail correct work on a slow or busy grading machine.
    """
    torch.manual_seed(SEED)
    probe = reference.Autoencoder(32)
    return calibrated_time_budget(
        TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR,
        lambda: reference.train_autoencoder(probe, train_images, 1, make_generator(SEED)),
        scale=TRAINING_EPOCHS)


@trains_model
def check_train_autoencoder(train_autoencoder: Callable, model_class: Callable) -> float:
    """Train ``model_class(32)`` with ``train_autoencoder`` on embedded MNIST; return test SSE.

    Runs ``TRAINING_EPOCHS`` epochs on the 4,000 training digits with a seeded generator,
    within :func:`training_time_budget` seconds, then requires: the history is a list of
    ``TRAINING_EPOCHS`` finite floats that decreases from first to last epoch, and the
    mean per-image test SSE on the 1,000 test digits is at most ``TEST_SSE_BAND``.
    """
    name = "train_autoencoder"
    train_images, _ = load_mnist("train")
    test_images, _ = load_mnist("test")
    budget = training_time_budget(train_images)
    model = _fresh_model(model_class, 32, SEED)
    start = time.perf_counter()
    history = call_student(name, train_autoencoder, model, train_images.clone(),
                           TRAINING_EPOCHS, make_generator(SEED))
    elapsed = time.perf_counter() - start
    if elapsed > budget:
        fail(name, f"{TRAINING_EPOCHS} epochs took {elapsed:.1f} s; the budget on this "
             f"machine is {budget:.0f} s.", "Use minibatches (e.g. 64 images per step) "
             "rather than one image at a time, and avoid Python loops over pixels.")
    check_loss_history(name, history, TRAINING_EPOCHS)
    model.eval()
    with torch.no_grad():
        x_hat = model(test_images)
    test_sse = float(to_float64(reference.reconstruction_loss(x_hat.float(), test_images),
                                function=name).mean())
    if not test_sse <= TEST_SSE_BAND:
        fail(name, f"after {TRAINING_EPOCHS} epochs the mean test reconstruction error is "
             f"{test_sse:.2f} per image; expected at most {TEST_SSE_BAND:.0f}.",
             "Minimise the mean over the batch of reconstruction_loss with Adam (lr 1e-3) "
             "and shuffle the data with the generator you are given each epoch.")
    return test_sse
