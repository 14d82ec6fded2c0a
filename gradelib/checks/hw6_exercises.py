"""Autograder checks for ``hw6_exercises`` (syllabus §7): review questions across the course.

Each question ``qN`` of the notebook has an **answer** (``qN_answer``: a bool for a
true/false question, a letter for a multiple-choice question, an int or a float for a
numeric one) and, for all but one question, a **demonstration**: a small function the student
writes (``q1_tanh_backward``, ``q2_predict``, ...) whose values support the answer. The
check ``check_qN`` verifies both, in one test cell, so that a true/false or multiple-choice
answer cannot score without the computation that justifies it.

Where the answers are kept
--------------------------
The answers are plain values in :data:`ANSWER_KEYS`, and this module is instructor-side: it
is not in the student kit and the grading sandbox does not mount ``gradelib.checks``, so no
digest or key reaches a student, and nothing can be searched offline. The grading pipeline
calls these checks in its trusted process: the student's ``qN_answer`` arrives as plain data
and is compared here (``gradelib/grading/trusted.py``).

- true/false: only a ``bool`` is accepted (:func:`canonical_bool`);
- multiple choice: the lower-case letter, after stripping spaces, brackets and a trailing
  full stop (:func:`canonical_choice`), which must be one of the question's options;
- integer: an int, or a whole number in a one-element tensor or NumPy scalar;
- number: accepted when ``|v - a| <= rtol * |a|`` for the key's answer ``a`` (``rtol = 1e-4``:
  right to about four significant digits).

Guessing is limited elsewhere: each multiple-choice question has at least four options and
the right letters differ between questions; half of the true/false answers are true, so a
constant answer gets exactly half of them; and every true/false question (and all but one
multiple-choice question) scores only together with its demonstration, which the check
evaluates on inputs of its own and compares with its own computation.

The numeric answers of the homework use inputs that differ from the book's worked examples
(e.g. another code size, another digit pair), so the book's dropdown solutions teach the
method without giving the graded number.

Every check raises ``AssertionError`` naming the function or answer, what was called,
what was expected and what came back, with a hint; returned values are converted with
:func:`gradelib.checks.assertions.to_float64` before any comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gradelib.checks.assertions import (
    assert_close,
    call_student,
    call_with_gradients,
    fail,
    forbid_autograd,
    to_float64,
)
from gradelib.device import make_generator

__all__ = [
    "AnswerKey",
    "ANSWER_KEYS",
    "canonical_bool",
    "canonical_choice",
    "canonical_integer",
    "check_answer",
    "check_q1",
    "check_q2",
    "check_q3",
    "check_q4",
    "check_q5",
    "check_q6",
    "check_q7",
    "check_q8",
    "check_q9",
    "check_q10",
    "check_q11",
    "check_q12",
    "check_q13",
    "check_q14",
    "check_q15",
    "check_q16",
    "check_q17",
    "check_q18",
]

SEED = 6060
CHOICE_LETTERS = ("a", "b", "c", "d", "e")


# --------------------------------------------------------------------------------------
# Canonical forms
# --------------------------------------------------------------------------------------


def canonical_bool(value: bool) -> str:
    """``"true"`` or ``"false"``.

    Raises:
        TypeError: ``value`` is not a ``bool`` (the strings ``"True"``/``"False"`` and the
            ints 0/1 are refused, so that an answer is never ambiguous).
    """
    if type(value) is not bool:
        raise TypeError(f"expected True or False (a bool), got {type(value).__name__} {value!r}")
    return "true" if value else "false"


def canonical_choice(value: str, options: tuple[str, ...] = CHOICE_LETTERS) -> str:
    """The option letter in lower case, ignoring spaces, brackets and a final full stop.

    ``"C"``, ``" c "``, ``"(c)"``, ``"c)"`` and ``"c."`` all become ``"c"``.

    Raises:
        TypeError: ``value`` is not a ``str``.
        ValueError: the letter is not one of ``options``.
    """
    if type(value) is not str:
        raise TypeError(f"expected a letter as a str, got {type(value).__name__} {value!r}")
    letter = value.strip().strip("().").strip().lower()
    if letter not in options:
        raise ValueError(f"expected one of {list(options)}, got {value!r}")
    return letter


def canonical_integer(value: int) -> str:
    """The decimal digits of an int, e.g. ``"-12"``.

    Raises:
        TypeError: ``value`` is not an int (bools are refused).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"expected an int, got {type(value).__name__} {value!r}")
    return str(int(value))


@dataclass(frozen=True)
class AnswerKey:
    """What the grader knows about one answer: its kind and the answer itself.

    Attributes:
        question: ``"q1"``, ``"q2"``, ...
        kind: ``"bool"``, ``"choice"``, ``"integer"`` or ``"number"``.
        answer: the right answer (a bool, a letter, an int or a float).
        options: for ``"choice"``, the accepted letters.
        rtol: for ``"number"``, the relative tolerance (see the module docstring).
        hint: shown when the answer is wrong; it points at the method, never at the answer.
    """

    question: str
    kind: str
    answer: bool | str | int | float
    options: tuple[str, ...] = ()
    rtol: float = 0.0
    hint: str = ""


ANSWER_KEYS: dict[str, AnswerKey] = {
    key.question: key
    for key in (
        AnswerKey(
            "q1", "bool", True,
            hint="Where is 1 - tanh(x)^2 largest, and what is its value there?",
        ),
        AnswerKey(
            "q2", "bool", True,
            hint="Which sign does (w/2) . x have compared with w . x?",
        ),
        AnswerKey(
            "q3", "choice", "d",
            options=CHOICE_LETTERS,
            hint="What is the smallest value sigmoid(relu(h)) can take?",
        ),
        AnswerKey(
            "q4", "choice", "e",
            options=CHOICE_LETTERS,
            hint=(
                "Which family's likelihood is a product of conditionals that one masked "
                "network evaluates in parallel?"
            ),
        ),
        AnswerKey(
            "q5", "number", 0.46199461346794524,
            rtol=1e-4,
            hint=(
                "The maximum-likelihood Gaussian matches the mean and variance of "
                "p_data; then KL = cross-entropy - entropy, both on a fine grid."
            ),
        ),
        AnswerKey(
            "q6", "choice", "b",
            options=CHOICE_LETTERS,
            hint="With w1 = w2 = w the loss is s (1 - w^2)^2 with s = mean(x^2) > 0.",
        ),
        AnswerKey(
            "q7", "number", -0.07605727815936594,
            rtol=1e-4,
            hint=(
                "Find the critical point of the tied loss that is not a minimum and "
                "evaluate L''(w) there with s = mean(x^2) of the stated data."
            ),
        ),
        AnswerKey(
            "q8", "number", 21.17709656291157,
            rtol=1e-4,
            hint=(
                "The optimal linear autoencoder projects onto the top-k principal "
                "subspace; its error is the sum of the remaining eigenvalues of the "
                "(1/N) covariance of the centred images."
            ),
        ),
        AnswerKey(
            "q9", "bool", False,
            hint=(
                "What happens to the reconstruction if the code is multiplied by an "
                "invertible matrix and the decoder by its inverse?"
            ),
        ),
        AnswerKey(
            "q10", "integer", 78,
            hint=(
                "Count the nonzero entries of your dependency map for the stated "
                "configuration."
            ),
        ),
        AnswerKey(
            "q11", "number", 0.37860245377323726,
            rtol=1e-4,
            hint=(
                "Sum the per-pixel negative log-likelihoods of each test image (nats), "
                "average over images, then divide by 784 ln 2."
            ),
        ),
        AnswerKey(
            "q12", "number", 2.76920500071634,
            rtol=1e-4,
            hint="KL = 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j).",
        ),
        AnswerKey(
            "q13", "number", 0.3938410362258904,
            rtol=1e-4,
            hint=(
                "The gap is log p(x) - ELBO = KL(q || p(z | x)), with "
                "p(x) = N(x; 0, 1 + sigma^2)."
            ),
        ),
        AnswerKey(
            "q14", "bool", True,
            hint=(
                "Compare the k-sample bound with the average of bounds built from "
                "subsets of k - 1 samples (Burda et al., 2016, Theorem 1)."
            ),
        ),
        AnswerKey(
            "q15", "number", -0.9433483923290393,
            rtol=1e-4,
            hint="V(D*, G) = sum_x p_data log D* + p_g log(1 - D*), with 0 log 0 = 0.",
        ),
        AnswerKey(
            "q16", "bool", False,
            hint="Compare sigmoid(l) and 1 - sigmoid(l) where sigmoid(l) = D(G(z)) is near 0.",
        ),
        AnswerKey(
            "q17", "number", 0.013257033840753139,
            rtol=1e-4,
            hint=(
                "The samples have 400 and 4,000 values: integrate |F_fours - F_all| over the "
                "pooled sorted values, each difference times the width of its interval."
            ),
        ),
        AnswerKey(
            "q18", "bool", False,
            hint=(
                "A linear critic's Lipschitz constant is the Euclidean norm of w; how "
                "large can it be when every |w_i| <= c on 784 pixels?"
            ),
        ),
    )
}


def _fail_form(name: str, error: Exception, expected: str) -> None:
    fail(name, f"{error}.", f"Set {name} to {expected}.")


def check_answer(question: str, value: object) -> None:
    """Check ``qN_answer`` against :data:`ANSWER_KEYS` (see the module docstring).

    The name used in messages is ``f"{question}_answer"``. Numbers may be Python or NumPy
    scalars or one-element tensors; they are converted with ``to_float64`` first.

    Raises:
        AssertionError: the answer has the wrong form or is not the right answer.
        KeyError: ``question`` is not one of :data:`ANSWER_KEYS`.
    """
    key = ANSWER_KEYS[question]
    name = f"{question}_answer"
    if value is Ellipsis or value is None:
        fail(name, f"is {value!r}; no answer was given.",
             "Replace the placeholder with your answer.")
    if key.kind == "bool":
        try:
            right = canonical_bool(value) == canonical_bool(key.answer)  # type: ignore[arg-type]
        except TypeError as error:
            _fail_form(name, error, "True or False, without quotes")
    elif key.kind == "choice":
        try:
            right = canonical_choice(value, key.options) == key.answer  # type: ignore[arg-type]
        except (TypeError, ValueError) as error:
            _fail_form(name, error, f"one of the letters {', '.join(key.options)} as a str, "
                       "e.g. \"a\"")
    elif key.kind == "integer":
        if isinstance(value, bool):
            fail(name, f"is {value!r}; expected an int.", "Set it to an int, e.g. "
                 "int(your_map.sum()).")
        if not isinstance(value, (int, np.integer)):
            number = to_float64(value, function=name).reshape(-1)
            if number.numel() != 1 or not float(number[0]).is_integer():
                fail(name, f"is {value!r}; expected a whole number.", "Set it to an int, e.g. "
                     "int(your_map.sum()).")
            value = int(float(number[0]))
        right = canonical_integer(value) == canonical_integer(key.answer)  # type: ignore[arg-type]
    else:
        number = to_float64(value, function=name)
        if number.numel() != 1:
            fail(name, f"has shape {tuple(number.shape)}; expected a single number.",
                 "Convert with float(...) or .item().")
        scalar = float(number.reshape(-1)[0])
        if not math.isfinite(scalar):
            fail(name, f"is {scalar!r}; expected a finite number.", key.hint)
        right = abs(scalar - float(key.answer)) <= key.rtol * abs(float(key.answer))
    if not right:
        tolerance = f" (accepted within a relative {key.rtol:g})" if key.kind == "number" else ""
        fail(name, f"{value!r} is not the right answer{tolerance}.", key.hint)


# --------------------------------------------------------------------------------------
# Demonstrations: each compared with the check's own computation on its own inputs
# --------------------------------------------------------------------------------------


def _g(offset: int) -> torch.Generator:
    return make_generator(SEED + offset)


def _call_by_hand(name: str, fn: Callable, *args, hint: str):
    """Call a demonstration that the question asks to derive by hand: torch's autograd is
    switched off and its entry points fail the check (with this question's own hint)."""
    try:
        with forbid_autograd(name):
            return call_student(name, fn, *args)
    except AssertionError as error:
        if "automatic differentiation" in str(error):
            fail(name, "called torch's automatic differentiation; the question asks for the "
                 "derivative from its formula.", hint)
        raise


def check_q1(q1_answer: object, q1_tanh_backward: Callable) -> None:
    """``q1_tanh_backward(x, upstream)``: ``upstream * (1 - tanh(x)^2)``, same shape; then q1.

    Cases: ``(4, 5)`` float64 with ``x ~ 3 N(0, 1)``, and ``(7,)`` float32; calling torch's
    autograd fails the check (the question asks for the formula). Tolerance:
    ``rtol=1e-6, atol=1e-9`` (``rtol=1e-5, atol=1e-6`` for float32).
    """
    name = "q1_tanh_backward"
    g = _g(1)
    for shape, dtype in (((4, 5), torch.float64), ((7,), torch.float32)):
        x = 3 * torch.randn(shape, generator=g, dtype=dtype)
        upstream = torch.randn(shape, generator=g, dtype=dtype)
        got = _call_by_hand(name, q1_tanh_backward, x.clone(), upstream.clone(),
                            hint="Use dz/dx = 1 - tanh(x)^2 and multiply by the upstream gradient.")
        t = torch.tanh(x.double())
        up = upstream.double()
        single = dtype == torch.float32
        assert_close(
            got, up * (1 - t**2), function=name,
            call=f"{name}(x, upstream) with x of shape {shape} ({dtype})",
            rtol=1e-5 if single else 1e-6, atol=1e-6 if single else 1e-9,
            hint="dL/dx = dL/dz * dz/dx with dz/dx = 1 - tanh(x)^2.",
            known_mistakes={
                "Multiply the local derivative by the upstream gradient (chain rule).":
                    1 - t**2,
                "The derivative of tanh is 1 - tanh(x)^2: the tanh is squared.": up * (1 - t),
                "Evaluate the derivative at z = tanh(x): 1 - z^2, not 1 - x^2.":
                    up * (1 - x.double() ** 2),
                "That is the logistic sigmoid's derivative s(1 - s); tanh's is 1 - tanh^2.":
                    up * torch.sigmoid(x.double()) * (1 - torch.sigmoid(x.double())),
            },
        )
    check_answer("q1", q1_answer)


def check_q2(q2_answer: object, q2_predict: Callable) -> None:
    """``q2_predict(w, x)``: labels, 1 where ``sigmoid(x @ w) > 1/2`` else 0, shape ``(N,)``.

    Cases: ``w`` of shape ``(6,)``, ``x`` of shape ``(50, 6)`` (float64) and ``(3,)``,
    ``(20, 3)`` (float32), continuous so no score is exactly 0. Compared exactly (bool or
    integer dtypes are accepted). Then the answer ``q2_answer``.
    """
    name = "q2_predict"
    g = _g(2)
    for n, d, dtype in ((50, 6, torch.float64), (20, 3, torch.float32)):
        w = torch.randn(d, generator=g, dtype=dtype)
        x = torch.randn(n, d, generator=g, dtype=dtype)
        got = call_student(name, q2_predict, w.clone(), x.clone())
        score = x.double() @ w.double()
        labels = (score > 0).double()
        assert_close(
            got, labels, function=name, call=f"{name}(w, x) with x of shape {(n, d)}",
            rtol=0.0, atol=0.0,
            hint="Predict 1 where sigmoid(x @ w) > 1/2 and 0 elsewhere: one label per row of x.",
            known_mistakes={
                "Return hard labels 0/1, not the probabilities sigmoid(x @ w).":
                    torch.sigmoid(score),
                "Class 1 is predicted where sigmoid(x @ w) > 1/2; your labels are flipped.":
                    1 - labels,
                "sigmoid(s) > 1/2 means the score s = x @ w is > 0; you thresholded the score "
                "at 1/2.": (score > 0.5).double(),
            },
        )
    check_answer("q2", q2_answer)


def check_q3(q3_answer: object, q3_head: Callable) -> None:
    """``q3_head(h)``: ``sigmoid(relu(h))`` elementwise; then the letter ``q3_answer``.

    Case: ``h`` of shape ``(40,)``, ``3 N(0, 1)`` float64 (half of it negative).
    Tolerance: ``rtol=1e-6, atol=1e-9``.
    """
    name = "q3_head"
    h = 3 * torch.randn(40, generator=_g(3), dtype=torch.float64)
    got = call_student(name, q3_head, h.clone())
    assert_close(
        got, torch.sigmoid(torch.relu(h)), function=name, call=f"{name}(h) with h of shape (40,)",
        rtol=1e-6, atol=1e-9, hint="The ReLU comes first, then the sigmoid: sigmoid(relu(h)).",
        known_mistakes={
            "The ReLU comes before the sigmoid; you returned sigmoid(h) (or relu(sigmoid(h)), "
            "which is the same).": torch.sigmoid(h),
            "The last layer is a sigmoid: apply it to the ReLU's output.": torch.relu(h),
        },
    )
    check_answer("q3", q3_answer)


def check_q4(q4_answer: object) -> None:
    """The letter ``q4_answer`` (taxonomy; no demonstration)."""
    check_answer("q4", q4_answer)


def _normal_log_density(grid: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return -0.5 * ((grid - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def check_q5(q5_answer: object, q5_kl_on_grid: Callable) -> None:
    """``q5_kl_on_grid(log_p, log_q, grid)``: ``sum_i p_i (log p_i - log q_i) dx`` on an even grid.

    Cases (float64, grid of 4,801 points on [-12, 12]): two Gaussians, and a two-component
    mixture against a Gaussian. The check's value is the Riemann sum; the trapezoidal rule
    agrees to round-off because the densities vanish at the ends. Tolerance:
    ``rtol=1e-6, atol=1e-9``. Then the answer ``q5_answer``.
    """
    name = "q5_kl_on_grid"
    grid = torch.linspace(-12.0, 12.0, 4801, dtype=torch.float64)
    dx = float(grid[1] - grid[0])
    mixture = torch.logaddexp(_normal_log_density(grid, -1.5, 0.7),
                              _normal_log_density(grid, 2.0, 1.2)) - math.log(2)
    cases = (
        ("p = N(0.3, 1.1^2), q = N(-0.5, 1.7^2)", _normal_log_density(grid, 0.3, 1.1),
         _normal_log_density(grid, -0.5, 1.7)),
        ("p = a two-component mixture, q = N(0.2, 2^2)", mixture,
         _normal_log_density(grid, 0.2, 2.0)),
    )
    for label, log_p, log_q in cases:
        got = call_student(name, q5_kl_on_grid, log_p.clone(), log_q.clone(), grid.clone())
        p, q = log_p.exp(), log_q.exp()
        assert_close(
            got, (p * (log_p - log_q)).sum() * dx, function=name,
            call=f"{name}(log_p, log_q, grid) with {label}", rtol=1e-6, atol=1e-9,
            hint="KL(p || q) = integral of p (log p - log q): multiply the sum by the spacing dx.",
            known_mistakes={
                "That is KL(q || p); maximum likelihood minimises KL(p_data || p_model), an "
                "expectation under p.": (q * (log_q - log_p)).sum() * dx,
                "That is the cross-entropy -sum p log q dx; subtract the entropy term.":
                    -(p * log_q).sum() * dx,
                "Multiply the sum by the grid spacing dx to approximate the integral.":
                    (p * (log_p - log_q)).sum(),
            },
        )
    check_answer("q5", q5_answer)


def _tied_loss(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The scalar linear autoencoder with tied weights w1 = w2 = w: mean (x - w^2 x)^2,
    written as s (1 - w^2)^2 with s = mean(x^2)."""
    return (x**2).mean() * (1 - w**2) ** 2


def check_q6(q6_answer: object, q6_tied_grad: Callable) -> None:
    """``q6_tied_grad(w, x)``: ``dL/dw`` of the tied loss ``L(w) = mean_i (x_i - w^2 x_i)^2``,
    derived by hand (``-4 s w (1 - w^2)``, ``s = mean(x^2)``), a 0-d tensor; then
    ``q6_answer``.

    Cases: four weights ``w`` (0-d, one on the zero-loss set) with ``x`` of shape ``(30,)``
    float64, and one with ``x`` of shape ``(8,)`` float32; calling torch's autograd fails
    the check. The check's closed form is compared with autograd of its own loss first.
    Tolerance: ``rtol=1e-6, atol=1e-9`` (``rtol=1e-5, atol=1e-6`` for float32).
    """
    name = "q6_tied_grad"
    g = _g(6)
    cases = [(w, 1.3 * torch.randn(30, generator=g, dtype=torch.float64) + 0.4)
             for w in (0.7, -1.4, 2.0, 1.0)]
    cases.append((0.45, torch.randn(8, generator=g, dtype=torch.float32)))
    for w_value, x in cases:
        w = torch.tensor(w_value, dtype=x.dtype)
        got = _call_by_hand(name, q6_tied_grad, w.clone(), x.clone(),
                            hint="Write L(w) = s (1 - w^2)^2 with s = mean(x^2), then "
                                 "differentiate with the chain rule.")
        xd, wd = x.double(), w.double()
        s = (xd**2).mean()
        want = -4 * s * wd * (1 - wd**2)
        leaf = wd.clone().requires_grad_(True)
        (by_autograd,) = torch.autograd.grad(_tied_loss(leaf, xd), leaf)
        torch.testing.assert_close(want, by_autograd)  # the check's own formula, cross-checked
        single = x.dtype == torch.float32
        assert_close(
            got, want, function=name,
            call=f"{name}(w={w_value}, x of shape ({len(x)},), {x.dtype})",
            rtol=1e-5 if single else 1e-6, atol=1e-6 if single else 1e-9,
            hint="L(w) = s (1 - w^2)^2 with s = mean(x^2): dL/dw = -4 s w (1 - w^2), a 0-d "
                 "tensor.",
            known_mistakes={
                "The tied weight is both the encoder and the decoder: d(w^2)/dw = 2w, so the "
                "factor is 4, not 2 (that is dL/dw1 of the untied model at w1 = w2 = w).":
                    -2 * s * wd * (1 - wd**2),
                "Check the sign: the loss decreases as w grows from 0 towards 1.": -want,
                "The loss is a mean over samples, not a sum.": want * len(x),
                "s is the mean of the squares, mean(x^2), not the square of the mean.":
                    -4 * xd.mean() ** 2 * wd * (1 - wd**2),
            },
        )
    check_answer("q6", q6_answer)


def check_q7(q7_answer: object, q7_tied_second_derivative: Callable) -> None:
    """``q7_tied_second_derivative(w, x)``: ``d^2L/dw^2`` of the tied loss
    ``L(w) = mean_i (x_i - w^2 x_i)^2``, derived by hand (``4 s (3 w^2 - 1)``,
    ``s = mean(x^2)``), a 0-d tensor; then ``q7_answer``.

    Cases: ``w`` in ``(0.6, -1.3, 0)`` with ``x`` of shape ``(25,)`` float64, and
    ``w = 0.8`` with ``x`` of shape ``(9,)`` float32; calling torch's autograd fails the
    check. The check's closed form is compared with autograd of its own loss first.
    Tolerance: ``rtol=1e-6`` (``1e-5`` for float32), ``atol=1e-9``.
    """
    name = "q7_tied_second_derivative"
    g = _g(7)
    x64 = torch.randn(25, generator=g, dtype=torch.float64) + 0.5
    x32 = torch.randn(9, generator=g, dtype=torch.float32) + 0.5
    for w_value, x in ((0.6, x64), (-1.3, x64), (0.0, x64), (0.8, x32)):
        w = torch.tensor(w_value, dtype=x.dtype)
        got = _call_by_hand(name, q7_tied_second_derivative, w.clone(), x.clone(),
                            hint="Differentiate L(w) = s (1 - w^2)^2 twice by hand.")
        xd, wd = x.double(), w.double()
        s = (xd**2).mean()
        want = 4 * s * (3 * wd**2 - 1)
        by_autograd = torch.autograd.functional.hessian(lambda v: _tied_loss(v, xd), wd)
        torch.testing.assert_close(want, by_autograd)  # the check's own formula, cross-checked
        assert_close(
            got, want, function=name, call=f"{name}(w={w_value}, x of shape ({len(x)},), {x.dtype})",
            rtol=1e-5 if x.dtype == torch.float32 else 1e-6, atol=1e-9,
            hint="L'(w) = -4 s w (1 - w^2); differentiate once more with the product rule: "
                 "L''(w) = 4 s (3 w^2 - 1), s = mean(x^2).",
            known_mistakes={
                "That is the untied model's mixed derivative d2L/dw1dw2 at w1 = w2 = w; tying "
                "moves both weights, so L'' = H11 + 2 H12 + H22.": 4 * s * wd**2 - 2 * s,
                "A factor 2 is missing: L = s (1 - w^2)^2 gives L''(w) = 4 s (3 w^2 - 1).":
                    want / 2,
                "Use the product rule on -4 s w (1 - w^2): both factors depend on w.":
                    -4 * s * (1 - wd**2),
                "Check the sign: L''(w) = 4 s (3 w^2 - 1).": -want,
                "s is the mean of the squares, mean(x^2), not the square of the mean.":
                    4 * xd.mean() ** 2 * (3 * wd**2 - 1),
            },
        )
    check_answer("q7", q7_answer)


def check_q8(q8_answer: object, q8_linear_ae_error: Callable) -> None:
    """``q8_linear_ae_error(x, k)``: the smallest mean squared error per row of a rank-``k``
    linear autoencoder with biases, i.e. the sum of all but the ``k`` largest eigenvalues of
    the ``1/N`` covariance of ``x``. A 0-d tensor or float.

    Cases: ``x`` of shape ``(60, 8)`` (correlated, nonzero mean) with ``k`` = 3 and 1,
    float64. Tolerance: ``rtol=1e-6, atol=1e-9``. Then ``q8_answer``.
    """
    name = "q8_linear_ae_error"
    g = _g(8)
    x = torch.randn(60, 8, generator=g, dtype=torch.float64) @ torch.randn(
        8, 8, generator=g, dtype=torch.float64) + 3.0
    centred = x - x.mean(dim=0)
    eig = torch.linalg.eigvalsh(centred.T @ centred / len(x)).flip(0)  # descending
    eig_unbiased = eig * len(x) / (len(x) - 1)
    eig_raw = torch.linalg.eigvalsh(x.T @ x / len(x)).flip(0)
    for k in (3, 1):
        got = call_student(name, q8_linear_ae_error, x.clone(), k)
        assert_close(
            got, eig[k:].sum(), function=name, call=f"{name}(x of shape (60, 8), k={k})",
            rtol=1e-6, atol=1e-9,
            hint="Centre x, form the covariance with 1/N, and sum the eigenvalues that the "
                 "k-dimensional code cannot keep.",
            known_mistakes={
                "Centre the data first: the biases of the autoencoder absorb the mean.":
                    eig_raw[k:].sum(),
                "Use the 1/N covariance (the error is a mean over the N rows), not 1/(N-1).":
                    eig_unbiased[k:].sum(),
                "That is the variance the code keeps; the error is what it discards.":
                    eig[:k].sum(),
                "The error is summed over the D coordinates of each row, not averaged.":
                    eig[k:].sum() / x.shape[1],
            },
        )
    check_answer("q8", q8_answer)


def check_q9(q9_answer: object, q9_equivalent_weights: Callable) -> None:
    """``q9_equivalent_weights(w_enc, w_dec, a)``: ``(a @ w_enc, w_dec @ inverse(a))``.

    Case: ``w_enc`` ``(3, 5)``, ``w_dec`` ``(5, 3)``, invertible ``a`` ``(3, 3)`` float64;
    each part compared with ``rtol=1e-6, atol=1e-9``, and the product of the returned pair
    must equal ``w_dec @ w_enc`` (the reconstruction is unchanged). Then ``q9_answer``.
    """
    name = "q9_equivalent_weights"
    g = _g(9)
    w_enc = torch.randn(3, 5, generator=g, dtype=torch.float64)
    w_dec = torch.randn(5, 3, generator=g, dtype=torch.float64)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64) + 3 * torch.eye(3, dtype=torch.float64)
    got = call_student(name, q9_equivalent_weights, w_enc.clone(), w_dec.clone(), a.clone())
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        fail(name, f"returned {type(got).__name__}; expected a tuple (new_w_enc, new_w_dec).")
    inverse = torch.linalg.inv(a)
    call = f"{name}(w_enc (3, 5), w_dec (5, 3), a (3, 3))"
    assert_close(got[0], a @ w_enc, function=name, call=call + ", new_w_enc", rtol=1e-6,
                 atol=1e-9, hint="The new code is a z = a w_enc x, so new_w_enc = a @ w_enc.",
                 known_mistakes={
                     "Use a itself, not its transpose: the new code is a @ (w_enc @ x).":
                         a.T @ w_enc,
                 })
    assert_close(
        got[1], w_dec @ inverse, function=name, call=call + ", new_w_dec", rtol=1e-6, atol=1e-9,
        hint="The decoder must undo a: new_w_dec = w_dec @ inverse(a).",
        known_mistakes={
            "The decoder must undo a, so it uses a's inverse, not a.": w_dec @ a,
            "Use the inverse of a, not its transposed inverse.": w_dec @ inverse.T,
        },
    )
    product = to_float64(got[1], function=name) @ to_float64(got[0], function=name)
    assert_close(product, w_dec @ w_enc, function=name, call=call + ", new_w_dec @ new_w_enc",
                 rtol=1e-6, atol=1e-9, hint="The reconstruction map must be unchanged.")
    check_answer("q9", q9_answer)


def _mask(kernel: int, mask_type: str) -> torch.Tensor:
    mask = torch.ones(kernel, kernel, dtype=torch.float64)
    centre = kernel // 2
    mask[centre, centre + (1 if mask_type == "B" else 0):] = 0
    mask[centre + 1:, :] = 0
    return mask


def _dependency_by_autograd(
    height: int, width: int, row: int, col: int, num_b: int, kernel: int = 3, first: str = "A"
) -> torch.Tensor:
    """Input pixels with a nonzero Jacobian entry for output (row, col): a stack of one
    ``kernel x kernel`` mask-``first`` and ``num_b`` type-B masked convolutions with all-one
    weights (positive, so no cancellation hides a dependency) and padding ``kernel // 2``."""
    image = torch.zeros(1, 1, height, width, dtype=torch.float64, requires_grad=True)
    hidden = F.conv2d(image, _mask(kernel, first)[None, None], padding=kernel // 2)
    for _ in range(num_b):
        hidden = F.conv2d(hidden, _mask(kernel, "B")[None, None], padding=kernel // 2)
    (jacobian_row,) = torch.autograd.grad(hidden[0, 0, row, col], image)
    return (jacobian_row[0, 0] != 0).double()  # (H, W)


def _causal_cone(height: int, width: int, row: int, col: int, radius: int, self_too: bool):
    rows = torch.arange(height)[:, None]
    cols = torch.arange(width)[None, :]
    above = (rows < row) & (rows >= row - radius) & ((cols - col).abs() <= radius)
    left = (rows == row) & (cols < col) & (cols >= col - radius)
    itself = (rows == row) & (cols == col) if self_too else torch.zeros_like(above)
    return (above | left | itself).double()


#: ``(height, width, row, col, num_b_layers, kernel_size)`` of the cases of :func:`check_q10`.
Q10_CASES = (
    (16, 16, 8, 8, 0, 3),
    (16, 16, 8, 8, 2, 5),
    (12, 10, 3, 8, 3, 3),
    (8, 8, 0, 0, 1, 5),
    (15, 13, 11, 4, 1, 7),
    (14, 12, 9, 10, 2, 5),
)


def check_q10(q10_answer: object, q10_dependency_map: Callable) -> None:
    """``q10_dependency_map(height, width, row, col, num_b_layers, kernel_size)``: 0/1 (or
    bool) map of shape ``(height, width)`` marking the input pixels that output pixel
    ``(row, col)`` of a stack of one type-A and ``num_b_layers`` type-B masked
    convolutions, all ``kernel_size x kernel_size`` (odd) with padding ``kernel_size // 2``,
    depends on.

    The check computes the map from the Jacobian of such a stack with all-one weights
    (autograd) for the configurations of :data:`Q10_CASES` (kernel sizes 3, 5 and 7, a
    corner pixel, which depends on nothing, and pixels near the borders); compared exactly.
    The question asks for the map from the masks' footprints: calling torch's autograd
    (which the course's ``receptive_field`` and the book's Jacobian method use) fails the
    check. Then ``q10_answer``.
    """
    name = "q10_dependency_map"
    for config in Q10_CASES:
        height, width, row, col, num_b, kernel = config
        got = _call_by_hand(name, q10_dependency_map, *config,
                            hint="Propagate the set of dependencies layer by layer through "
                                 "the masks' footprints, without autograd.")
        want = _dependency_by_autograd(height, width, row, col, num_b, kernel)
        got_t = to_float64(got, function=name)
        if got_t.shape == want.shape:
            got_t = (got_t != 0).double()  # bool maps and 0/1 maps alike
        reach = (num_b + 1) * (kernel // 2)
        known_mistakes = {
            "Stacked masked convolutions have a blind spot: pixels above and to the right of "
            "the diagonal are never reached.":
                _causal_cone(height, width, row, col, reach, self_too=False),
            "The first layer uses mask A, so output pixel (row, col) never sees input "
            "pixel (row, col).": _dependency_by_autograd(height, width, row, col, num_b,
                                                         kernel, first="B"),
        }
        if kernel != 3:
            known_mistakes["A kernel_size x kernel_size mask reaches kernel_size // 2 pixels "
                           "in each direction: you used the 3x3 footprint."] = (
                _dependency_by_autograd(height, width, row, col, num_b, 3))
        assert_close(
            got_t, want, function=name,
            call=f"{name}(height={height}, width={width}, row={row}, col={col}, "
                 f"num_b_layers={num_b}, kernel_size={kernel})", rtol=0.0, atol=0.0,
            hint="Propagate the set of dependencies layer by layer through the masks' "
                 "footprints (type A without the centre, then type B with it; every row "
                 "above the centre within kernel_size // 2, and the pixels to its left), "
                 "clipped to the image.",
            known_mistakes=known_mistakes,
        )
    check_answer("q10", q10_answer)


def check_q11(q11_answer: object, q11_independent_bernoulli_nll: Callable) -> None:
    """``q11_independent_bernoulli_nll(train, test)``: per-test-image NLL in nats, shape ``(B,)``,
    of independent per-pixel Bernoullis with ``p_j = (count_j + 1) / (N + 2)`` fitted on
    ``train``.

    Case: binary ``train`` ``(30, 1, 4, 4)`` (one pixel never on) and ``test`` ``(5, 1, 4,
    4)``, float32. Tolerance: ``rtol=1e-5, atol=1e-6``. Then ``q11_answer``.
    """
    name = "q11_independent_bernoulli_nll"
    g = _g(11)
    train = (torch.rand(30, 1, 4, 4, generator=g) > 0.6).float()
    train[:, 0, 0, 0] = 0.0  # never on in training: smoothing keeps its probability positive
    test = (torch.rand(5, 1, 4, 4, generator=g) > 0.5).float()
    test[0, 0, 0, 0] = 1.0
    got = call_student(name, q11_independent_bernoulli_nll, train.clone(), test.clone())

    def nll(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        return -(x * torch.log(p) + (1 - x) * torch.log1p(-p)).sum(dim=(1, 2, 3))

    smoothed = (train.double().sum(dim=0) + 1) / (len(train) + 2)  # (1, 4, 4)
    want = nll(smoothed, test)
    raw = train.double().mean(dim=0).clamp(1e-12, 1 - 1e-12)
    assert_close(
        got, want, function=name, call=f"{name}(train (30, 1, 4, 4), test (5, 1, 4, 4))",
        rtol=1e-5, atol=1e-6,
        hint="p_j = (number of training images with pixel j on + 1) / (N + 2); NLL of a test "
             "image = -sum_j [x_j log p_j + (1 - x_j) log(1 - p_j)], one value per image.",
        known_mistakes={
            "Use add-one smoothing p = (count + 1) / (N + 2): without it a pixel never on in "
            "training gets probability 0 and an infinite NLL.": nll(raw, test),
            "Report nats (natural logarithm), not bits.": want / math.log(2),
            "Sum over the pixels of each image, do not average.": want / 16,
        },
    )
    check_answer("q11", q11_answer)


def check_q12(q12_answer: object, q12_gaussian_kl: Callable) -> None:
    """``q12_gaussian_kl(mu, logvar)``: ``KL(N(mu, diag exp(logvar)) || N(0, I))``, ``(B,)``.

    Case: ``(6, 4)`` float64. Compared with the closed form and with
    ``torch.distributions.kl_divergence``; tolerance ``rtol=1e-6, atol=1e-9``. Then
    ``q12_answer``.
    """
    name = "q12_gaussian_kl"
    g = _g(12)
    mu = torch.randn(6, 4, generator=g, dtype=torch.float64)
    logvar = torch.randn(6, 4, generator=g, dtype=torch.float64)
    got = call_student(name, q12_gaussian_kl, mu.clone(), logvar.clone())
    terms = mu**2 + logvar.exp() - 1 - logvar
    want = 0.5 * terms.sum(dim=1)
    library = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()),
        torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu)),
    ).sum(dim=1)
    torch.testing.assert_close(want, library)  # the check's own formula, cross-checked
    assert_close(
        got, want, function=name, call=f"{name}(mu (6, 4), logvar (6, 4))", rtol=1e-6, atol=1e-9,
        hint="KL = 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j), one value per row.",
        known_mistakes={
            "The factor 1/2 is missing.": terms.sum(dim=1),
            "logvar is log(sigma^2): the variance is exp(logvar), not exp(2 logvar).":
                0.5 * (mu**2 + (2 * logvar).exp() - 1 - 2 * logvar).sum(dim=1),
            "Sum over the latent dimensions, do not average.": 0.5 * terms.mean(dim=1),
            "Return one KL per row, shape (B,), not the batch total.": want.sum(),
        },
    )
    check_answer("q12", q12_answer)


def _linear_gaussian_elbo(x, m, s2, sigma2):
    expected_log_lik = -0.5 * torch.log(2 * math.pi * sigma2) - ((x - m) ** 2 + s2) / (2 * sigma2)
    kl = 0.5 * (m**2 + s2 - 1 - torch.log(s2))
    return expected_log_lik, kl


def check_q13(q13_answer: object, q13_elbo: Callable) -> None:
    """``q13_elbo(x, m, s2, sigma2)``: the closed-form ELBO of ``z ~ N(0, 1)``,
    ``x | z ~ N(z, sigma2)`` with ``q(z) = N(m, s2)``, elementwise over ``(5,)`` tensors.

    The check's closed form is itself compared with a 200,000-sample Monte Carlo estimate.
    Tolerance: ``rtol=1e-6, atol=1e-9``. Then ``q13_answer``.
    """
    name = "q13_elbo"
    g = _g(13)
    x = 2 * torch.randn(5, generator=g, dtype=torch.float64)
    m = torch.randn(5, generator=g, dtype=torch.float64)
    s2 = torch.rand(5, generator=g, dtype=torch.float64) + 0.1
    sigma2 = torch.rand(5, generator=g, dtype=torch.float64) + 0.2
    got = call_student(name, q13_elbo, x.clone(), m.clone(), s2.clone(), sigma2.clone())
    expected_log_lik, kl = _linear_gaussian_elbo(x, m, s2, sigma2)
    want = expected_log_lik - kl
    z = m + s2.sqrt() * torch.randn(200_000, 5, generator=g, dtype=torch.float64)  # (S, 5)
    log_joint = (-0.5 * torch.log(2 * math.pi * sigma2) - (x - z) ** 2 / (2 * sigma2)
                 - 0.5 * math.log(2 * math.pi) - z**2 / 2)
    log_q = -0.5 * torch.log(2 * math.pi * s2) - (z - m) ** 2 / (2 * s2)
    torch.testing.assert_close((log_joint - log_q).mean(dim=0), want, rtol=0, atol=0.05)
    plug_in = -0.5 * torch.log(2 * math.pi * sigma2) - (x - m) ** 2 / (2 * sigma2)
    assert_close(
        got, want, function=name, call=f"{name}(x, m, s2, sigma2) with tensors of shape (5,)",
        rtol=1e-6, atol=1e-9,
        hint="ELBO = E_q[log N(x; z, sigma2)] - KL(N(m, s2) || N(0, 1)); the expectation of "
             "(x - z)^2 under q is (x - m)^2 + s2.",
        known_mistakes={
            "E_q[(x - z)^2] = (x - m)^2 + s2: the variance of q is missing.": plug_in - kl,
            "The KL term is subtracted from the expected log-likelihood, not added.":
                expected_log_lik + kl,
            "The Gaussian likelihood's normaliser -1/2 log(2 pi sigma2) is missing.":
                want + 0.5 * torch.log(2 * math.pi * sigma2),
        },
    )
    check_answer("q13", q13_answer)


def check_q14(q14_answer: object, q14_log_mean_exp: Callable) -> None:
    """``q14_log_mean_exp(log_w)``: ``log(mean(exp(log_w)))`` over the last dimension, stably.

    Case: ``(3, 7)`` float64 log-weights, one row near -1000 and one near +800 (where
    ``exp`` underflows or overflows). Tolerance: ``rtol=1e-9, atol=1e-9``. Then
    ``q14_answer``.
    """
    name = "q14_log_mean_exp"
    log_w = torch.randn(3, 7, generator=_g(14), dtype=torch.float64) * 2
    log_w[1] -= 1000.0
    log_w[2] += 800.0
    got = call_student(name, q14_log_mean_exp, log_w.clone())
    want = torch.logsumexp(log_w, dim=-1) - math.log(7)
    assert_close(
        got, want, function=name, call=f"{name}(log_w of shape (3, 7), rows near 0, -1000, +800)",
        rtol=1e-9, atol=1e-9,
        hint="Subtract the row maximum before exponentiating (the log-sum-exp trick), or use "
             "torch.logsumexp, then subtract log k.",
        known_mistakes={
            "log of the mean is logsumexp - log k: subtract log k.": torch.logsumexp(log_w, -1),
            "That is the mean of the log-weights (the k = 1 bound averaged); take the log of "
            "the mean of the weights.": log_w.mean(dim=-1),
        },
    )
    check_answer("q14", q14_answer)


def check_q15(q15_answer: object, q15_optimal_discriminator: Callable) -> None:
    """``q15_optimal_discriminator(p_data, p_g)``: ``p_data / (p_data + p_g)`` elementwise.

    Case: two strictly positive distributions on 6 points, float64. Tolerance:
    ``rtol=1e-6, atol=1e-9``. Then ``q15_answer``.
    """
    name = "q15_optimal_discriminator"
    g = _g(15)
    p_data = torch.rand(6, generator=g, dtype=torch.float64) + 0.05
    p_g = torch.rand(6, generator=g, dtype=torch.float64) + 0.05
    p_data, p_g = p_data / p_data.sum(), p_g / p_g.sum()
    got = call_student(name, q15_optimal_discriminator, p_data.clone(), p_g.clone())
    assert_close(
        got, p_data / (p_data + p_g), function=name, call=f"{name}(p_data (6,), p_g (6,))",
        rtol=1e-6, atol=1e-9,
        hint="Maximise p_data log D + p_g log(1 - D) pointwise: D* = p_data / (p_data + p_g).",
        known_mistakes={
            "D outputs the probability that x is real: the numerator is p_data, not p_g.":
                p_g / (p_data + p_g),
            "Normalise by p_data + p_g, not by p_g.": p_data / p_g,
            "D* = 1/2 only where p_g = p_data.": torch.full_like(p_data, 0.5),
        },
    )
    check_answer("q15", q15_answer)


def check_q16(q16_answer: object, q16_logit_gradients: Callable) -> None:
    """``q16_logit_gradients(logits)``: ``(d/dl log(1 - sigmoid(l)), d/dl [-log sigmoid(l)])``.

    Case: ``(9,)`` float64 logits from -8 to 8; each part compared with ``rtol=1e-6,
    atol=1e-9`` (the check's formulas ``-sigmoid(l)`` and ``sigmoid(l) - 1`` are verified
    with autograd, but the student's function may not call it). Then ``q16_answer``.
    """
    name = "q16_logit_gradients"
    logits = torch.linspace(-8, 8, 9, dtype=torch.float64)
    got = _call_by_hand(name, q16_logit_gradients, logits.clone(),
                        hint="Differentiate log(1 - sigmoid(l)) and -log sigmoid(l) with "
                             "sigmoid'(l) = sigmoid(l)(1 - sigmoid(l)).")
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        fail(name, f"returned {type(got).__name__}; expected a tuple (minimax_grad, "
             "nonsaturating_grad).")
    d = torch.sigmoid(logits)
    minimax, nonsaturating = -d, d - 1
    leaf = logits.clone().requires_grad_(True)
    (auto_minimax,) = torch.autograd.grad(F.logsigmoid(-leaf).sum(), leaf)
    (auto_nonsat,) = torch.autograd.grad((-F.logsigmoid(leaf)).sum(), leaf)
    torch.testing.assert_close(minimax, auto_minimax)
    torch.testing.assert_close(nonsaturating, auto_nonsat)
    call = f"{name}(logits = linspace(-8, 8, 9))"
    assert_close(
        got[0], minimax, function=name, call=call + ", minimax part", rtol=1e-6, atol=1e-9,
        hint="log(1 - sigmoid(l)) = -softplus(l); its derivative is -sigmoid(l).",
        known_mistakes={
            "Differentiate with respect to the logit l, not with respect to D = sigmoid(l).":
                -1 / (1 - d),
            "The parts are swapped: the minimax loss comes first.": nonsaturating,
            "Check the sign: log(1 - D) decreases as l grows.": d,
        },
    )
    assert_close(
        got[1], nonsaturating, function=name, call=call + ", non-saturating part", rtol=1e-6,
        atol=1e-9, hint="-log sigmoid(l) = softplus(-l); its derivative is sigmoid(l) - 1.",
        known_mistakes={
            "Differentiate with respect to the logit l, not with respect to D = sigmoid(l).":
                -1 / d,
            "The parts are swapped: the non-saturating loss comes second.": minimax,
            "Check the sign: -log D decreases as l grows.": 1 - d,
        },
    )
    check_answer("q16", q16_answer)


def _wasserstein_1d_cdf(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``W1`` between the empirical distributions of ``x`` ``(n,)`` and ``y`` ``(m,)``: the
    integral of ``|F_x - F_y|``, by quantiles (the check's own form, differentiable in ``x``)."""
    levels = torch.cat([torch.arange(1, len(x) + 1, dtype=torch.float64) / len(x),
                        torch.arange(1, len(y) + 1, dtype=torch.float64) / len(y)]).unique()
    start = torch.cat([levels.new_zeros(1), levels[:-1]])             # (K,) quantile steps
    qx = x.sort().values[(start * len(x) + 1e-9).floor().long().clamp(max=len(x) - 1)]
    qy = y.sort().values[(start * len(y) + 1e-9).floor().long().clamp(max=len(y) - 1)]
    return ((qx - qy).abs() * (levels - start)).sum()


def check_q17(q17_answer: object, q17_wasserstein_1d: Callable) -> None:
    """``q17_wasserstein_1d(x, y)``: ``W1`` between two 1-D samples of any sizes ``(n,)``, ``(m,)``.

    Cases (float64): 200 Gaussian points against 350 skewed ones, and 7 against 7; the
    check's value (the integral of the quantile functions' difference) is compared with
    ``scipy.stats.wasserstein_distance``. Tolerance: ``rtol=1e-6, atol=1e-9``. The result
    must be a torch computation: its gradient with respect to ``x`` (taken where the
    student's code runs) must equal the check's. Then ``q17_answer``.
    """
    from scipy.stats import wasserstein_distance

    name = "q17_wasserstein_1d"
    g = _g(17)
    cases = [(1.5 * torch.randn(200, generator=g, dtype=torch.float64) + 0.3,
              3 * torch.rand(350, generator=g, dtype=torch.float64) ** 3 - 0.5),
             (torch.randn(7, generator=g, dtype=torch.float64),
              torch.randn(7, generator=g, dtype=torch.float64) + 0.2)]
    for x, y in cases:
        n, m = len(x), len(y)
        got = call_student(name, q17_wasserstein_1d, x.clone(), y.clone())
        want = _wasserstein_1d_cdf(x, y)
        assert abs(float(want) - wasserstein_distance(x.numpy(), y.numpy())) < 1e-9
        k = min(n, m)
        paired = (torch.sort(x).values[:k] - torch.sort(y).values[:k]).abs().mean()
        assert_close(
            got, want, function=name, call=f"{name}(x ({n},), y ({m},))", rtol=1e-6, atol=1e-9,
            hint="W1 is the area between the two empirical CDFs: sum over consecutive values "
                 "t_j < t_(j+1) of the pooled sample of |F_x(t_j) - F_y(t_j)| (t_(j+1) - t_j).",
            known_mistakes={
                "Sort both samples first: pairing them in their given order is not optimal.":
                    (x[:k] - y[:k]).abs().mean(),
                "Matching sorted values one to one needs equal sizes; with n != m, compare "
                "the CDFs (or the quantile functions) instead of dropping values.": paired,
                "The difference of the means is only a lower bound on W1.": (x.mean() - y.mean()).abs(),
                "Weight each CDF difference by the width of its interval, t_(j+1) - t_j.":
                    _cdf_gaps(x, y).abs().mean(),
                "W1 integrates |F_x - F_y|; squaring the differences gives another distance.":
                    _wasserstein_1d_squared_cdf(x, y),
            },
        )
    x, y = cases[0]
    _, (grad,) = call_with_gradients(name, q17_wasserstein_1d, [x.clone(), y.clone()], wrt=[0])
    if grad is None:
        fail(name, "returned a value with no gradient with respect to x.",
             "Compute W1 with torch operations on x and y (sort, searchsorted, cumulative "
             "sums), not with scipy or numpy: a WGAN's generator needs its gradient.")
    reference_x = x.clone().requires_grad_(True)
    (want_grad,) = torch.autograd.grad(_wasserstein_1d_cdf(reference_x, y), reference_x)
    assert_close(grad, want_grad, function=name, call=f"the gradient of {name}(x, y) in x",
                 rtol=1e-6, atol=1e-9,
                 hint="Each point of x moves W1 by +-1/n: the sign of F_x - F_y just above it.")
    check_answer("q17", q17_answer)


def _cdf_gaps(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``F_x(t_j) - F_y(t_j)`` at each value ``t_j`` of the pooled sample but the last."""
    points = torch.cat([x, y]).sort().values[:-1]
    return (torch.searchsorted(x.sort().values, points, right=True) / len(x)
            - torch.searchsorted(y.sort().values, points, right=True) / len(y)).to(x.dtype)


def _wasserstein_1d_squared_cdf(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    points = torch.cat([x, y]).sort().values
    return (_cdf_gaps(x, y) ** 2 * (points[1:] - points[:-1])).sum()


def check_q18(q18_answer: object, q18_lipschitz_constant: Callable) -> None:
    """``q18_lipschitz_constant(w)``: the Lipschitz constant of ``f(x) = w . x`` for the
    Euclidean distance, ``||w||_2``.

    Cases: ``w`` of shape ``(784,)`` uniform in ``[-0.01, 0.01]`` and a sign pattern with
    every ``|w_i| = 0.01``, float64. Tolerance: ``rtol=1e-6, atol=1e-12``. Then
    ``q18_answer``.
    """
    name = "q18_lipschitz_constant"
    g = _g(18)
    uniform = 0.02 * torch.rand(784, generator=g, dtype=torch.float64) - 0.01
    signs = 0.01 * torch.sign(torch.randn(784, generator=g, dtype=torch.float64))
    for label, w in (("uniform in [-0.01, 0.01]", uniform), ("every |w_i| = 0.01", signs)):
        got = call_student(name, q18_lipschitz_constant, w.clone())
        assert_close(
            got, torch.linalg.vector_norm(w), function=name,
            call=f"{name}(w of shape (784,), {label})", rtol=1e-6, atol=1e-12,
            hint="|f(x) - f(y)| = |w . (x - y)| <= ||w||_2 ||x - y||_2, with equality for "
                 "x - y along w.",
            known_mistakes={
                "The largest weight bounds one coordinate's effect, not the gradient's length.":
                    w.abs().max(),
                "The l1 norm is the constant for the max-coordinate distance; use the "
                "Euclidean one.": w.abs().sum(),
                "Take the square root: ||w||_2, not ||w||_2^2.": (w**2).sum(),
            },
        )
    check_answer("q18", q18_answer)
