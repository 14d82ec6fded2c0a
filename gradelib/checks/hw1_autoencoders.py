"""Autograder checks for ``hw1_autoencoders`` (syllabus §2, second edition).

Part 1 is the matrix linear autoencoder (Baldi & Hornik, 1989). Part 2 is a denoising
convolutional autoencoder with masking noise (Vincent et al., 2008). Each ``check_<name>``
takes the student's function or class, calls it on inputs chosen here, and compares what it
returns with :mod:`gradelib.checks.references.hw1_autoencoders` in float64, under the
tolerances stated in its docstring. It raises an ``AssertionError`` that names the function,
the call, the expected and returned values and a hint (``known_mistakes`` recognise the usual
errors).

The checks follow the trusted-checker protocol (``gradelib.checks.assertions``). Student
objects may be proxies, so a check only calls them and reads what they return (plain
tensors). Randomness is drawn here, or passed to the student as a ``torch.Generator`` whose
state is compared afterwards. Every metric (losses, principal angles, test errors) is
computed here from returned values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from gradelib.checks.assertions import (
    assert_close,
    assert_shape,
    calibrated_time_budget,
    call_student,
    check_loss_history,
    describe,
    fail,
    forbid_autograd,
    seed_student,
    time_limit,
    to_float64,
    trains_model,
)
from gradelib.checks.references import hw1_autoencoders as reference
from gradelib.data import load_mnist
from gradelib.device import make_generator

__all__ = [
    "check_linear_ae_loss",
    "check_linear_ae_grads",
    "check_pca_reconstruction_error",
    "check_train_linear_ae",
    "check_mask_noise",
    "check_denoising_autoencoder",
    "check_train_denoising_autoencoder",
    "linear_ae_data",
    "GD_STEPS",
    "GD_LR",
    "MAX_LOSS_EXCESS",
    "MAX_PRINCIPAL_ANGLE",
    "LATENT_DIM",
    "TRAIN_DROP_PROB",
    "TEST_DROP_PROB",
    "TRAINING_EPOCHS",
    "TRAINING_TIME_BUDGET_S",
    "TRAINING_TIME_FACTOR",
    "training_time_budget",
    "denoising_test_errors",
    "TEST_SSE_BAND",
    "MAX_SHARE_OF_CORRUPTED_SSE",
]

SEED = 1989
AUTOGRAD_HINT = ("Differentiate L(W1, W2) = tr((I - W2 W1) S (I - W2 W1)^T) with S = X^T X / N "
                 "by hand and code the two matrix expressions.")
FLOAT64 = {"rtol": 1e-7, "atol": 1e-10}
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}

# ----------------------------------------------------------------------------- Part 1

#: Eigenvalues of the population second moment of the synthetic data (d = 10). The gap
#: between the 3rd and 4th (4 vs 1) makes the top-3 subspace well defined, and gradient
#: descent converges to it in a few hundred steps.
SPECTRUM = (6.0, 5.0, 4.0, 1.0, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05)
#: Code size of the synthetic cases.
K = 3
#: Gradient descent run by :func:`check_train_linear_ae`. The top eigenvalue of the data's
#: second moment is about 8.3, so plain gradient descent is stable for lr < 1/(2 * 8.3) = 0.06
#: (at 0.08 it diverges). Measured by benchmarks/hw1_autoencoders.py (recorded in
#: benchmarks/results/hw1_autoencoders.json): the reference's relative excess over the PCA
#: error is 3.5e-4 after 20 steps, 1.7e-5 after 50, 5.8e-6 after 100 and 5.7e-7 after 300,
#: in 0.1 s.
GD_STEPS = 300
GD_LR = 0.05
#: Largest accepted relative excess of the trained loss over the PCA optimum. The reference
#: has 5.7e-7 after GD_STEPS steps. A run stopped next to the saddle at the origin is far
#: above: after 5 steps the excess is 5.5 and after 10 steps 1.7.
MAX_LOSS_EXCESS = 1e-4
#: Largest accepted principal angle, in radians, between span(W2 W1) and the top-k
#: eigenvectors of X^T X / N. The reference reaches 5.0e-5 after 300 steps and 8.5e-3
#: after 20 (benchmarks/hw1_autoencoders.py).
MAX_PRINCIPAL_ANGLE = 1e-2


def linear_ae_data(seed: int, n: int = 400, spectrum: tuple[float, ...] = SPECTRUM,
                   offset: float = 0.5) -> torch.Tensor:
    """Seeded ``(n, d)`` float64 data with a chosen second-moment spectrum and a non-zero mean.

    The rows are ``diag(sqrt(spectrum)) z`` rotated by a random orthogonal matrix, plus a
    mean of norm about ``offset * sqrt(d)``. The mean makes the uncentred second moment
    differ from the covariance, so centring the data is a detectable mistake.
    """
    g = make_generator(seed)
    d = len(spectrum)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    scale = torch.tensor(spectrum, dtype=torch.float64).sqrt()
    mean = offset * torch.randn(d, generator=g, dtype=torch.float64)
    return (z * scale) @ rotation.T + mean  # (n, d)


def _eigenvectors(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors (columns) of ``X^T X / N``, float64."""
    values, vectors = torch.linalg.eigh(X.T.double() @ X.double() / len(X))
    return values.flip(0), vectors.flip(1)


def _linear_ae_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(label, W1, W2, X)``: random points, critical points, a k = 1 case, float32 inputs."""
    g = make_generator(SEED)
    X = linear_ae_data(SEED, n=60)
    d = X.shape[1]
    _, vectors = _eigenvectors(X)
    top = vectors[:, :K]  # (d, K)
    saddle = vectors[:, [0, 1, 3]]  # eigenvectors 1, 2 and 4: a critical point, not a minimum
    cases = [
        ("a random point (k=3, d=10)", torch.randn(K, d, generator=g, dtype=torch.float64),
         torch.randn(d, K, generator=g, dtype=torch.float64), X),
        ("another random point with an unbalanced W1, W2 (k=3, d=10)",
         3.0 * torch.randn(K, d, generator=g, dtype=torch.float64),
         0.2 * torch.randn(d, K, generator=g, dtype=torch.float64), X),
        ("a random point with k=1, d=10", torch.randn(1, d, generator=g, dtype=torch.float64),
         torch.randn(d, 1, generator=g, dtype=torch.float64), X),
        ("the origin W1 = 0, W2 = 0 (a saddle)", torch.zeros(K, d, dtype=torch.float64),
         torch.zeros(d, K, dtype=torch.float64), X),
        ("the global minimum W1 = V_k^T, W2 = V_k (top-3 eigenvectors of X^T X / N)",
         top.T.contiguous(), top.clone(), X),
        ("a saddle W1 = V^T, W2 = V with V the eigenvectors 1, 2 and 4 of X^T X / N",
         saddle.T.contiguous(), saddle.clone(), X),
    ]
    x32 = linear_ae_data(SEED + 1, n=30).float()
    cases.append(("float32 inputs (k=3, d=10)", torch.randn(K, d, generator=g),
                  torch.randn(d, K, generator=g), x32))
    return cases


def _describe(label: str, W1: torch.Tensor, X: torch.Tensor) -> str:
    return (f"at {label}, W1 of shape {tuple(W1.shape)}, X of shape {tuple(X.shape)} "
            f"and dtype {X.dtype}")


def _tolerance(X: torch.Tensor) -> dict:
    return FLOAT32 if X.dtype == torch.float32 else FLOAT64


def check_linear_ae_loss(linear_ae_loss: Callable) -> None:
    """``linear_ae_loss(W1, W2, X)``: a 0-d tensor, ``(1/N) sum_n ||x_n - W2 W1 x_n||^2``.

    Cases: two random points, ``k = 1``, the origin (loss ``mean ||x||^2``), the global
    minimum (the PCA error), a saddle, float32 inputs. Tolerance: ``rtol=1e-7, atol=1e-10``
    in float64, ``rtol=1e-4, atol=1e-5`` for float32 inputs.
    """
    name = "linear_ae_loss"
    for label, W1, W2, X in _linear_ae_cases():
        got = call_student(name, linear_ae_loss, W1.clone(), W2.clone(), X.clone())
        W1d, W2d, Xd = W1.double(), W2.double(), X.double()
        want = reference.linear_ae_loss(W1d, W2d, Xd)
        residual = Xd - Xd @ W1d.T @ W2d.T  # (N, d)
        assert_close(
            got, want, function=name, call=f"{name}(W1, W2, X) {_describe(label, W1, X)}",
            **_tolerance(X),
            hint="L = mean over the N examples of the squared norm of x_n - W2 W1 x_n; with one "
                 "example per row of X, the reconstructions are X @ W1.T @ W2.T. Return a 0-d tensor.",
            known_mistakes={
                "You summed over the examples; the loss is the mean over the N rows of X.":
                    (residual**2).sum(),
                "You averaged over the d coordinates too: sum the squares over each example's "
                "coordinates, then average over the examples.": (residual**2).mean(),
                "The reconstruction is transposed: X @ W2 @ W1 applies (W2 W1)^T. With one example "
                "per row, x_hat_n^T = x_n^T W1^T W2^T, i.e. X @ W1.T @ W2.T.":
                    ((Xd - Xd @ W2d @ W1d) ** 2).sum(dim=1).mean(),
                "Square the norm: L averages ||x_n - W2 W1 x_n||^2, not the norm itself.":
                    residual.norm(dim=1).mean(),
            },
        )


def _gradient_mistakes(W1: torch.Tensor, W2: torch.Tensor, X: torch.Tensor) -> dict[str, dict]:
    """The values typical mistakes give, per component (float64)."""
    n, d = X.shape
    S = X.T @ X / n  # (d, d)
    E = torch.eye(d, dtype=X.dtype) - W2 @ W1  # (d, d)
    g1, g2 = -2 * W2.T @ E @ S, -2 * E @ S @ W1.T
    return {
        "dL/dW1": {
            "Wrong sign: the loss decreases along -dL/dW1 = +2 W2^T (I - W2 W1) S.": -g1,
            "The factor 2 from differentiating the square is missing.": g1 / 2,
            "You summed over the examples (a factor N too large): L is a mean.": n * g1,
            "A transposed product: with R = X - X W1^T W2^T, dL/dW1 = -(2/N) W2^T R^T X, not "
            "-(2/N) W2^T X^T R.": -2 * W2.T @ S @ E.T,
            "You returned the transpose of dL/dW2 in place of dL/dW1.": g2.T,
        },
        "dL/dW2": {
            "Wrong sign: the loss decreases along -dL/dW2 = +2 (I - W2 W1) S W1^T.": -g2,
            "The factor 2 from differentiating the square is missing.": g2 / 2,
            "You summed over the examples (a factor N too large): L is a mean.": n * g2,
            "A transposed product: with R = X - X W1^T W2^T, dL/dW2 = -(2/N) R^T X W1^T, not "
            "-(2/N) X^T R W1^T.": -2 * S @ E.T @ W1.T,
            "You returned the transpose of dL/dW1 in place of dL/dW2.": g1.T,
        },
    }


def check_linear_ae_grads(linear_ae_grads: Callable) -> None:
    """``linear_ae_grads(W1, W2, X)``: ``(dL/dW1 (k, d), dL/dW2 (d, k))``, derived by hand.

    The call runs under :func:`forbid_autograd`: any use of torch's automatic
    differentiation fails the check. Same cases as :func:`check_linear_ae_loss`; at the
    origin, the global minimum and the saddle both gradients must vanish. Tolerance:
    ``rtol=1e-7, atol=1e-10`` in float64, ``rtol=1e-4, atol=1e-5`` for float32 inputs.
    """
    name = "linear_ae_grads"
    for label, W1, W2, X in _linear_ae_cases():
        with forbid_autograd(name, AUTOGRAD_HINT):
            got = call_student(name, linear_ae_grads, W1.clone(), W2.clone(), X.clone())
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            fail(name, f"{name}(W1, W2, X) returned {type(got).__name__}; expected a tuple "
                 "(dL_dW1, dL_dW2).")
        W1d, W2d, Xd = W1.double(), W2.double(), X.double()
        want = reference.linear_ae_grads(W1d, W2d, Xd)
        mistakes = _gradient_mistakes(W1d, W2d, Xd)
        for index, which in enumerate(("dL/dW1", "dL/dW2")):
            assert_close(
                got[index], want[index], function=name,
                call=f"{name}(W1, W2, X) {_describe(label, W1, X)}, component {which}",
                **_tolerance(X),
                hint="With S = X^T X / N and E = I - W2 W1: dL/dW1 = -2 W2^T E S (shape (k, d)) "
                     "and dL/dW2 = -2 E S W1^T (shape (d, k)).",
                known_mistakes=mistakes[which],
            )


def check_pca_reconstruction_error(pca_reconstruction_error: Callable) -> None:
    """``pca_reconstruction_error(X, k)``: the sum of the ``d - k`` smallest eigenvalues of ``X^T X / N``.

    Cases: the synthetic data (with a non-zero mean) for k = 1, 3, 9 and 10 (error 0),
    float32 inputs, and 300 embedded MNIST digits (d = 784) with k = 16. Returns a 0-d tensor.
    Tolerance ``rtol=1e-6, atol=1e-8`` (``rtol=1e-4, atol=1e-4`` for float32 inputs).
    """
    name = "pca_reconstruction_error"
    X = linear_ae_data(SEED + 2)
    digits, _ = load_mnist("test")
    pixels = digits[torch.arange(300) * 10 // 3].reshape(300, -1).double()  # (300, 784), 30 per digit
    cases = [(f"the synthetic data (N=400, d=10) with k={k}", X, k) for k in (1, 3, 9, 10)]
    cases.append(("float32 synthetic data with k=3", X.float(), 3))
    cases.append(("300 MNIST test digits as rows (N=300, d=784) with k=16", pixels, 16))
    for label, data, k in cases:
        got = call_student(name, pca_reconstruction_error, data.clone(), k)
        Xd = data.double()
        n, d = Xd.shape
        want = reference.pca_reconstruction_error(Xd, k)
        ascending = torch.linalg.eigvalsh(Xd.T @ Xd / n).clamp(min=0)
        centred = Xd - Xd.mean(dim=0)
        covariance = torch.linalg.eigvalsh(centred.T @ centred / n).clamp(min=0)
        float32 = data.dtype == torch.float32
        assert_close(
            got, want, function=name, call=f"{name}(X, k) for {label}",
            rtol=1e-4 if float32 else 1e-6, atol=1e-4 if float32 else 1e-8,
            hint="The best rank-k error is the sum of the d - k smallest eigenvalues of "
                 "X^T X / N (torch.linalg.eigvalsh returns them in ascending order). Return a 0-d tensor.",
            known_mistakes={
                "Do not centre X: the autoencoder has no bias, so its optimum is set by the "
                "uncentred second moment X^T X / N, not by the covariance.":
                    covariance[: d - k].sum(),
                "Do not centre X or divide by N - 1 (torch.cov): use X^T X / N.":
                    covariance[: d - k].sum() * n / (n - 1),
                "That is the sum of the k largest eigenvalues (what the code keeps); the error "
                "is the sum of the d - k eigenvalues it discards.": ascending[d - k:].sum(),
                "torch.linalg.eigvalsh sorts eigenvalues in ascending order: the discarded ones "
                "are the first d - k, not eigenvalues[k:].": ascending[k:].sum(),
                "Divide X^T X by N: the loss is a mean over the examples.":
                    n * ascending[: d - k].sum(),
                "Singular values of X / sqrt(N) are the square roots of the eigenvalues of "
                "X^T X / N: square them.": ascending[: d - k].sqrt().sum(),
            },
        )


def _gd_variant(X: torch.Tensor, k: int, steps: int, lr: float, seed: int, *, sign: float = 1.0,
                sequential: bool = False, scale: float = reference.INIT_SCALE,
                w2_first: bool = False, record_after: bool = False):
    """Gradient descent as the reference, or with one typical mistake (check side, float64)."""
    g = make_generator(seed)
    n, d = X.shape
    if w2_first:
        W2 = scale * torch.randn(d, k, generator=g, dtype=X.dtype)
        W1 = scale * torch.randn(k, d, generator=g, dtype=X.dtype)
    else:
        W1 = scale * torch.randn(k, d, generator=g, dtype=X.dtype)
        W2 = scale * torch.randn(d, k, generator=g, dtype=X.dtype)
    history = []
    for _ in range(steps):
        if not record_after:
            history.append(float(reference.linear_ae_loss(W1, W2, X)))
        g1, g2 = reference.linear_ae_grads(W1, W2, X)
        W1 = W1 - sign * lr * g1
        if sequential:
            g2 = reference.linear_ae_grads(W1, W2, X)[1]
        W2 = W2 - sign * lr * g2
        if record_after:
            history.append(float(reference.linear_ae_loss(W1, W2, X)))
    return W1, W2, torch.tensor(history, dtype=torch.float64)


def _unpack_training(name: str, got: object, k: int, d: int, steps: int, call: str):
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        fail(name, f"{call} returned {type(got).__name__}; expected a tuple (W1, W2, history).")
    W1 = to_float64(got[0], function=name, what="W1")
    W2 = to_float64(got[1], function=name, what="W2")
    assert_shape(W1, (k, d), function=name, call=f"{call}: W1", hint="W1 is the encoder, (k, d).")
    assert_shape(W2, (d, k), function=name, call=f"{call}: W2", hint="W2 is the decoder, (d, k).")
    history = check_loss_history(name, got[2], steps, what="losses (one per step, before it)",
                                 must_decrease=False)
    return W1, W2, torch.tensor(history, dtype=torch.float64)


def check_train_linear_ae(train_linear_ae: Callable) -> None:
    """``train_linear_ae(X, k, steps, lr, generator)``: gradient descent to the PCA optimum.

    1. Exactness: 5 steps at lr 0.05 on seeded data, and the returned ``W1``, ``W2`` and
       history must equal the reference's. The start is drawn with ``generator`` exactly as
       the notebook says, the update is simultaneous, and ``history[t]`` is the loss before
       step ``t``. Tolerance ``rtol=1e-6, atol=1e-9``.
    2. Convergence: ``GD_STEPS`` steps at ``GD_LR`` on other data (N = 400, d = 10, k = 3).
       The loss of the returned matrices (computed here) must be within ``MAX_LOSS_EXCESS``
       (relative) of :func:`pca_reconstruction_error`. The largest principal angle between
       span(W2 W1) and the top-3 eigenvectors of ``X^T X / N`` must be below
       ``MAX_PRINCIPAL_ANGLE`` radians.

    Both calls run under :func:`forbid_autograd` (the loop must use the hand-derived
    gradients), and the second within a time budget (20 times what the reference takes,
    at least 20 s).
    """
    name = "train_linear_ae"
    X = linear_ae_data(SEED + 3, n=80)
    d = X.shape[1]
    steps, lr, seed = 5, 0.05, SEED + 4
    generator = make_generator(seed)
    before = generator.get_state()
    call = f"{name}(X of shape {tuple(X.shape)}, k={K}, steps={steps}, lr={lr}, generator)"
    with forbid_autograd(name, AUTOGRAD_HINT):
        got = call_student(name, train_linear_ae, X.clone(), K, steps, lr, generator)
    W1, W2, history = _unpack_training(name, got, K, d, steps, call)
    if torch.equal(generator.get_state(), before):
        fail(name, f"{call} never drew from the generator it was given.",
             "Draw the start with it: W1 = 0.01 * torch.randn(k, d, generator=generator, "
             "dtype=X.dtype), then W2 = 0.01 * torch.randn(d, k, generator=generator, "
             "dtype=X.dtype). Never use torch's global random state.")
    want_w1, want_w2, want_history = _gd_variant(X, K, steps, lr, seed)
    variants = {
        "Wrong sign: gradient descent moves against the gradient, W <- W - lr * dL/dW.":
            _gd_variant(X, K, steps, lr, seed, sign=-1.0),
        "Update W1 and W2 at once, both from the gradients at the same point (you updated "
        "W1 first, then took dL/dW2 at the new W1).": _gd_variant(X, K, steps, lr, seed, sequential=True),
        "The start must be small: scale the standard normal draws by 0.01.":
            _gd_variant(X, K, steps, lr, seed, scale=1.0),
        "Draw W1 first, then W2 (the order of the draws fixes which numbers each gets).":
            _gd_variant(X, K, steps, lr, seed, w2_first=True),
        "history[t] is the loss before update t (history[0] is the loss at the random start).":
            _gd_variant(X, K, steps, lr, seed, record_after=True),
    }
    for index, (which, got_part, want_part) in enumerate(
            (("W1", W1, want_w1), ("W2", W2, want_w2), ("history", history, want_history))):
        assert_close(
            got_part, want_part, function=name, call=f"{call}, returned {which}",
            rtol=1e-6, atol=1e-9,
            hint="Draw W1 = 0.01 * torch.randn(k, d, generator=generator, dtype=X.dtype) and then W2 "
                 "likewise (d, k); at each step record the loss, then set W1, W2 = W1 - lr * dW1, "
                 "W2 - lr * dW2 with (dW1, dW2) = linear_ae_grads(W1, W2, X).",
            known_mistakes={hint: variant[index] for hint, variant in variants.items()},
        )

    X = linear_ae_data(SEED + 5)
    values, vectors = _eigenvectors(X)
    optimum = float(reference.pca_reconstruction_error(X, K))
    budget = calibrated_time_budget(
        20.0, 20.0, lambda: reference.train_linear_ae(X, K, GD_STEPS, GD_LR, make_generator(SEED)))
    call = f"{name}(X of shape {tuple(X.shape)}, k={K}, steps={GD_STEPS}, lr={GD_LR}, generator)"
    with forbid_autograd(name, AUTOGRAD_HINT), time_limit(name, budget, what=call):
        got = call_student(name, train_linear_ae, X.clone(), K, GD_STEPS, GD_LR,
                           make_generator(SEED + 6))
    W1, W2, history = _unpack_training(name, got, K, d, GD_STEPS, call)
    loss = float(reference.linear_ae_loss(W1, W2, X))
    if not math.isfinite(loss) or not loss <= optimum * (1 + MAX_LOSS_EXCESS):
        fail(name, f"{call}: the loss of the returned W1, W2 is {loss:.6g}; the PCA optimum "
             f"(sum of the 7 smallest eigenvalues of X^T X / N) is {optimum:.6g}, and the "
             f"accepted excess is {MAX_LOSS_EXCESS:g} (relative).",
             "Gradient descent from a small start leaves the saddle at the origin and, since "
             "every local minimum is global, ends at the PCA optimum. Check the update and that "
             "you return the final matrices.")
    product = W2 @ W1  # (d, d), rank <= k
    left, _, _ = torch.linalg.svd(product)
    angle = float(reference.principal_angles(left[:, :K], vectors[:, :K]).max())
    if not angle <= MAX_PRINCIPAL_ANGLE:
        fail(name, f"{call}: the largest principal angle between span(W2 W1) and the top-{K} "
             f"eigenvectors of X^T X / N is {angle:.3g} rad; expected at most "
             f"{MAX_PRINCIPAL_ANGLE:g}.", "At the global minimum W2 W1 is the orthogonal "
             "projection onto the top-k principal subspace.")


# ----------------------------------------------------------------------------- Part 2

#: Code size of the models the hidden checks build.
LATENT_DIM = 32
#: Masking probability the training check passes to the student's training loop.
TRAIN_DROP_PROB = 0.5
#: Masking probability of the test digits (drawn here, on the check side).
TEST_DROP_PROB = 0.5
#: Epochs the hidden training check runs the student's loop for.
TRAINING_EPOCHS = 6
#: Wall-clock seconds always allowed for those epochs. The reference took 56 s with a load
#: average of 18 on 2 cores (benchmarks/hw1_autoencoders.py), which is several times what it
#: takes on a quiet machine. The budget stops runaway loops, not honest ones.
TRAINING_TIME_BUDGET_S = 90.0
#: On a slower or busier machine the budget grows to this many times what the reference
#: takes for the same epochs, timed (one epoch) just before (:func:`training_time_budget`).
TRAINING_TIME_FACTOR = 5.0
#: Largest accepted mean test SSE per image against the clean digits, on the 1,000 test digits
#: with half their pixels dropped. Measured by benchmarks/hw1_autoencoders.py (recorded in
#: benchmarks/results/hw1_autoencoders.json) after TRAINING_EPOCHS epochs. The solution
#: scores 11.05. Two weaker but acceptable variants score 11.69 (the chapter's narrower
#: 16/32-channel autoencoder) and 14.80 (the solution's model with Adam 1e-3 and batches of
#: 64). Broken loops score 31.27 (the model never sees corrupted inputs), 32.64 (kept pixels
#: rescaled by 1/(1-p), as in dropout) and 88.32 (it reconstructs the corrupted input). The
#: corrupted input itself scores 44.11.
TEST_SSE_BAND = 20.0
#: The denoised error must also be at most this share of the corrupted input's own error
#: (44.11 per image at drop_prob 0.5, so 22.1): a model that is not "well under" the input
#: it was given has not denoised.
MAX_SHARE_OF_CORRUPTED_SSE = 0.5


def check_mask_noise(mask_noise: Callable) -> None:
    """``mask_noise(x, drop_prob, generator)``: entries with ``u < drop_prob`` set to 0, others kept.

    ``u = torch.rand(x.shape, generator=generator)`` is drawn exactly as the notebook says,
    so the result must equal the reference exactly (tolerance 0). Cases: six MNIST digits at
    drop_prob 0.5, a float64 ``(3, 7)`` tensor at 0.3, drop_prob 0 (nothing dropped) and 1
    (everything dropped). ``x`` must not be modified. When 0 < drop_prob < 1 the generator
    must have been used.
    """
    name = "mask_noise"
    digits, _ = load_mnist("test")
    g = make_generator(SEED + 10)
    cases = [("six MNIST digits (6, 1, 28, 28)", digits[::170][:6].clone(), 0.5),
             ("a float64 tensor (3, 7)", torch.rand(3, 7, generator=g, dtype=torch.float64) + 0.1, 0.3),
             ("six MNIST digits with drop_prob=0", digits[1::170][:6].clone(), 0.0),
             ("six MNIST digits with drop_prob=1", digits[2::170][:6].clone(), 1.0)]
    for index, (label, x, drop_prob) in enumerate(cases):
        seed = SEED + 11 + index
        generator = make_generator(seed)
        before = generator.get_state()
        argument = x.clone()
        call = f"{name}(x, drop_prob={drop_prob}, generator) for {label}"
        got = call_student(name, mask_noise, argument, drop_prob, generator)
        if not torch.equal(argument, x):
            fail(name, f"{call} modified x in place.", "Return a new tensor (e.g. "
                 "x.masked_fill(mask, 0.0) or x * keep): the clean x is still needed as the "
                 "training target.")
        want = reference.mask_noise(x, drop_prob, make_generator(seed))
        if 0.0 < drop_prob < 1.0 and torch.equal(generator.get_state(), before):
            fail(name, f"{call} never drew from the generator it was given.",
                 "Draw u = torch.rand(x.shape, generator=generator); torch's global random "
                 "state must not be used, so that the grader can reproduce your mask.")
        u = torch.rand(x.shape, generator=make_generator(seed))
        assert_close(
            got, want, function=name, call=call, rtol=0.0, atol=0.0,
            hint="Draw u = torch.rand(x.shape, generator=generator) once and set the entries with "
                 "u < drop_prob to 0, leaving the others unchanged.",
            known_mistakes={
                "Reversed: you kept the entries with u < drop_prob. Drop them (set them to 0) and "
                "keep the others, so that a share drop_prob of the pixels is lost.":
                    x * (u < drop_prob).to(x.dtype),
                "Masking noise does not rescale the kept pixels (that is inverted dropout, as in "
                "F.dropout): keep them unchanged.":
                    x * (u >= drop_prob).to(x.dtype) / max(1.0 - drop_prob, 1e-12),
            },
        )


def _conv_layers(info: dict) -> list[str]:
    return [m["name"] or "(the model)" for m in info.get("modules", [])
            if m["type"].rsplit(".", 1)[-1] in ("Conv2d", "ConvTranspose2d")]


def _build_model(name: str, model_class: Callable, latent_dim: int, seed: int):
    """Instantiate the student's class with its weights seeded; check it is a trainable module."""
    seed_student(seed)
    model = call_student(name, model_class, latent_dim)
    info = describe(model)
    if "torch.nn.modules.module.Module" not in info.get("mro", []):
        fail(name, f"{name}({latent_dim}) is a {info.get('type')}; expected an nn.Module.",
             "Subclass torch.nn.Module and call super().__init__() first.")
    count = sum(math.prod(shape) for m in info["modules"] for shape in m["parameters"].values())
    if count == 0:
        fail(name, f"{name}({latent_dim}) has no parameters.",
             "Create the layers in __init__ as attributes (self.encoder = nn.Sequential(...)).")
    return model, info


def check_denoising_autoencoder(model_class: Callable) -> None:
    """``DenoisingAutoencoder(latent_dim)``: a convolutional module with ``encode``, ``decode``, ``forward``.

    For ``latent_dim`` 2 and 32, in eval mode, on six masked MNIST digits: ``encode`` gives
    ``(6, D)``, ``decode`` of a ``(6, D)`` code gives ``(6, 1, 28, 28)``, all finite, and
    ``forward(x)`` equals ``decode(encode(x))`` (tolerance ``1e-5``). The model must hold a
    ``Conv2d`` or ``ConvTranspose2d`` layer.
    """
    name = "DenoisingAutoencoder"
    digits, _ = load_mnist("test")
    x = reference.mask_noise(digits[::167][:6], 0.5, make_generator(SEED + 20))  # (6, 1, 28, 28)
    for latent_dim in (2, LATENT_DIM):
        model, info = _build_model(name, model_class, latent_dim, SEED)
        if not _conv_layers(info):
            fail(name, f"{name}({latent_dim}) has no convolutional layer (its modules are "
                 f"{sorted({m['type'].rsplit('.', 1)[-1] for m in info['modules']})}).",
                 "The assignment asks for a convolutional autoencoder: use nn.Conv2d in the "
                 "encoder (and nn.ConvTranspose2d in the decoder).")
        model.eval()
        z = to_float64(call_student(f"{name}.encode", model.encode, x.clone()),
                       function=f"{name}.encode")
        assert_shape(z, (6, latent_dim), function=f"{name}.encode",
                     call=f"{name}({latent_dim}).encode(x of shape (6, 1, 28, 28))",
                     hint="The code is one row of latent_dim numbers per image.")
        code = torch.randn(6, latent_dim, generator=make_generator(SEED + 21))
        decoded = to_float64(call_student(f"{name}.decode", model.decode, code),
                             function=f"{name}.decode")
        assert_shape(decoded, (6, 1, 28, 28), function=f"{name}.decode",
                     call=f"{name}({latent_dim}).decode(z of shape (6, {latent_dim}))",
                     hint="Reshape the decoder's output to (B, 1, 28, 28).")
        if not bool(torch.isfinite(decoded).all()):
            fail(f"{name}.decode", f"{name}({latent_dim}).decode(z) returned non-finite values.")
        x_hat = call_student(f"{name}.forward", model, x.clone())
        composed = call_student(f"{name}.decode", model.decode, z.float())
        assert_close(x_hat, to_float64(composed, function=f"{name}.decode"),
                     function=f"{name}.forward", call=f"{name}({latent_dim})(x)",
                     rtol=1e-5, atol=1e-5,
                     hint="forward(x) must be decode(encode(x)): the reconstruction has to pass "
                          "through the code.")


def training_time_budget(train_images: torch.Tensor) -> float:
    """Seconds allowed for ``TRAINING_EPOCHS`` epochs on this machine, under its current load.

    ``max(TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR * TRAINING_EPOCHS * t)`` where ``t`` is
    what the reference takes for one epoch, measured now.
    """
    state = torch.random.get_rng_state()
    torch.manual_seed(SEED)
    probe = reference.DenoisingAutoencoder(LATENT_DIM)
    torch.random.set_rng_state(state)
    return calibrated_time_budget(
        TRAINING_TIME_BUDGET_S, TRAINING_TIME_FACTOR,
        lambda: reference.train_denoising_autoencoder(probe, train_images, TRAIN_DROP_PROB, 1,
                                                      make_generator(SEED)),
        scale=TRAINING_EPOCHS)


def denoising_test_errors(model, test_images: torch.Tensor,
                          function: str = "train_denoising_autoencoder") -> tuple[float, float]:
    """Mean per-image SSE against the clean test digits: ``(denoised, corrupted input)``.

    The masks are drawn here (drop_prob ``TEST_DROP_PROB``, a fixed seed), the model (in eval
    mode) is called on the corrupted digits, and both errors are computed here.
    """
    corrupted = reference.mask_noise(test_images, TEST_DROP_PROB, make_generator(SEED + 30))
    x_hat = to_float64(call_student(function, model, corrupted.clone()), function=function,
                       what="the trained model's output")
    assert_shape(x_hat, tuple(test_images.shape), function=function,
                 call=f"the trained model on {len(test_images)} corrupted test digits")
    if not bool(torch.isfinite(x_hat).all()):
        fail(function, "the trained model returns non-finite values on the test digits.",
             "Lower the learning rate, or end the decoder with a sigmoid.")
    clean = test_images.double()
    denoised = float(reference.sum_squared_error(x_hat, clean).mean())
    baseline = float(reference.sum_squared_error(corrupted.double(), clean).mean())
    return denoised, baseline


@trains_model
def check_train_denoising_autoencoder(train_denoising_autoencoder: Callable,
                                      model_class: Callable) -> float:
    """Train ``model_class(LATENT_DIM)`` with the student's loop; return the denoised test SSE.

    Runs ``train_denoising_autoencoder(model, train_images, TRAIN_DROP_PROB, TRAINING_EPOCHS,
    generator)`` on the 4,000 embedded training digits within :func:`training_time_budget`.
    The history must be a list of ``TRAINING_EPOCHS`` finite floats that decreases, and the
    generator must have been used. Then the 1,000 test digits are corrupted here (drop_prob
    ``TEST_DROP_PROB``) and fed to the trained model in eval mode. The mean per-image SSE of
    its output against the clean digits must be at most ``TEST_SSE_BAND``, and at most
    ``MAX_SHARE_OF_CORRUPTED_SSE`` times the corrupted input's own error.
    """
    name = "train_denoising_autoencoder"
    train_images, _ = load_mnist("train")
    test_images, _ = load_mnist("test")
    budget = training_time_budget(train_images)
    model, _ = _build_model("DenoisingAutoencoder", model_class, LATENT_DIM, SEED)
    generator = make_generator(SEED)
    before = generator.get_state()
    with time_limit(name, budget, what=f"{TRAINING_EPOCHS} epochs"):
        history = call_student(name, train_denoising_autoencoder, model, train_images.clone(),
                               TRAIN_DROP_PROB, TRAINING_EPOCHS, generator)
    check_loss_history(name, history, TRAINING_EPOCHS)
    if torch.equal(generator.get_state(), before):
        fail(name, "the training loop never drew from the generator it was given.",
             "Shuffle with torch.randperm(len(train_images), generator=generator) and corrupt each "
             "minibatch with mask_noise(x, drop_prob, generator).")
    model.eval()
    denoised, corrupted = denoising_test_errors(model, test_images, name)
    limit = min(TEST_SSE_BAND, MAX_SHARE_OF_CORRUPTED_SSE * corrupted)
    if not denoised <= limit:
        fail(name, f"after {TRAINING_EPOCHS} epochs the mean squared error against the clean test "
             f"digits is {denoised:.2f} per image; the corrupted inputs themselves score "
             f"{corrupted:.2f}, and at most {limit:.1f} is expected.",
             "Feed the model mask_noise(x, drop_prob, generator) but compare its output with the "
             "clean x; minimise the batch mean of the per-image sum of squared errors with Adam.")
    return denoised
