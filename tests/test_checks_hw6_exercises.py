"""Tests of gradelib.checks.hw6_exercises: the answer keys and every demonstration check.

The numeric answers are recomputed here from scratch (data, closed forms, quadrature), so the
stored answers are tested against an independent computation, not against themselves. The
true/false and multiple-choice answers are the answer key of the homework (they are also the
solutions in solutions/hw6_exercises); each key is tested to accept exactly one option.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradelib.checks import hw6_exercises as hw6
from gradelib.checks.hw6_exercises import (
    AnswerKey,
    canonical_bool,
    canonical_choice,
    check_answer,
)
from gradelib.data import load_mnist
from gradelib.device import make_generator


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensor operations: torch's intra-op threads only add overhead on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


#: The answer key of the true/false and multiple-choice questions.
KEY = {"q1": True, "q2": True, "q3": "d", "q4": "e", "q6": "b", "q9": False, "q14": True,
       "q16": False, "q18": False}


def _log_normal(x: torch.Tensor, mean: float, var: float) -> torch.Tensor:
    return -0.5 * (x - mean) ** 2 / var - 0.5 * math.log(2 * math.pi * var)


def _dependency_by_propagation(height, width, row, col, num_b_layers, kernel_size=3, first="A"):
    """Independent of the check's autograd method: walk the masks' footprints backwards
    (``first="B"``: the first layer's mask wrongly keeps its centre tap)."""
    reached = {(row, col)}
    c = kernel_size // 2
    footprint_b = [(di, dj) for di in range(-c, 0) for dj in range(-c, c + 1)]
    footprint_b += [(0, dj) for dj in range(-c, 0)] + [(0, 0)]  # the centre tap last
    for layer in range(num_b_layers + 1):
        last = layer == num_b_layers  # the first layer of the stack, mask A
        offsets = footprint_b[:-1] if last and first == "A" else footprint_b
        reached = {(i + di, j + dj) for i, j in reached for di, dj in offsets
                   if 0 <= i + di < height and 0 <= j + dj < width}
    out = torch.zeros(height, width, dtype=torch.bool)
    for i, j in reached:
        out[i, j] = True
    return out


@pytest.fixture(scope="module")
def numeric_answers() -> dict[str, float]:
    """Every numeric answer, computed independently of the check module."""
    answers = {}
    grid = torch.linspace(-20, 20, 200001, dtype=torch.float64)
    log_p = torch.logaddexp(_log_normal(grid, -3, 1), _log_normal(grid, 3, 1)) - math.log(2)
    # ML Gaussian = moment matching: mean 0, variance 1 + 3^2
    answers["q5"] = float(torch.trapezoid(log_p.exp() * (log_p - _log_normal(grid, 0, 10)), grid))
    images, labels = load_mnist("train")
    ink = images.double().mean(dim=(1, 2, 3))
    # the tied loss L(w) = mean (x - w^2 x)^2 at its maximum w = 0, by autograd
    answers["q7"] = float(torch.autograd.functional.hessian(
        lambda w: ((ink - w * w * ink) ** 2).mean(), torch.tensor(0.0, dtype=torch.float64)))
    flat = images.reshape(len(images), -1).double()
    singular = torch.linalg.svdvals(flat - flat.mean(dim=0))
    answers["q8"] = float((singular[16:] ** 2).sum() / len(flat))
    answers["q10"] = int(_dependency_by_propagation(16, 16, 8, 8, 2, kernel_size=5).sum())
    train, _ = load_mnist("train", binarized=True)
    test, _ = load_mnist("test", binarized=True)
    p = (train.double().sum(dim=0) + 1) / (len(train) + 2)
    dist = torch.distributions.Bernoulli(probs=p)
    answers["q11"] = float(-dist.log_prob(test.double()).sum(dim=(1, 2, 3)).mean()
                           / (784 * math.log(2)))
    mu, logvar = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.0, -0.7, 0.4])
    answers["q12"] = float(torch.distributions.kl_divergence(
        torch.distributions.Normal(mu.double(), (0.5 * logvar.double()).exp()),
        torch.distributions.Normal(0.0, 1.0)).sum())
    # posterior of z ~ N(0,1), x|z ~ N(z, 0.5) at x = 1.5: N(1.5/1.5, 0.5/1.5)
    q = torch.distributions.Normal(torch.tensor(0.5, dtype=torch.float64), torch.tensor(0.5))
    posterior = torch.distributions.Normal(torch.tensor(1.0, dtype=torch.float64),
                                           torch.tensor(1 / 3, dtype=torch.float64).sqrt())
    answers["q13"] = float(torch.distributions.kl_divergence(q, posterior))
    p_data = np.array([0.5, 0.3, 0.2, 0.0])
    p_g = np.array([0.1, 0.2, 0.3, 0.4])
    m = (p_data + p_g) / 2
    js = 0.5 * sum(a * math.log(a / b) for a, b in zip(p_data, m) if a > 0) + 0.5 * sum(
        a * math.log(a / b) for a, b in zip(p_g, m) if a > 0)
    answers["q15"] = -math.log(4) + 2 * js
    from scipy.stats import wasserstein_distance

    answers["q17"] = wasserstein_distance(ink[labels == 4].numpy(), ink.numpy())
    return answers


# ------------------------------------------------------------------ canonical forms


def test_canonical_bool_and_choice_forms():
    assert canonical_bool(True) == "true" and canonical_bool(False) == "false"
    for spelling in ("C", " c ", "(c)", "c)", "c."):
        assert canonical_choice(spelling) == "c"
    with pytest.raises(TypeError, match="bool"):
        canonical_bool("True")
    with pytest.raises(TypeError, match="bool"):
        canonical_bool(1)
    with pytest.raises(ValueError, match="one of"):
        canonical_choice("f")
    with pytest.raises(TypeError, match="letter as a str"):
        canonical_choice(3)


@pytest.fixture
def test_key(monkeypatch):
    """Install a numeric key for a made-up question and return a function that sets it."""

    def install(answer: float, rtol: float) -> None:
        monkeypatch.setitem(hw6.ANSWER_KEYS, "qtest",
                            AnswerKey("qtest", "number", answer, rtol=rtol, hint="a hint"))

    return install


@pytest.mark.parametrize("rtol", [1e-4, 1e-3])
def test_numeric_tolerance_accepts_inside_and_rejects_outside(test_key, rtol):
    """|v - a| <= rtol |a| is accepted, anything farther rejected, at every scale."""
    g = np.random.default_rng(0)
    for _ in range(40):
        answer = float(g.choice([-1, 1]) * 10 ** g.uniform(-6, 6))
        test_key(answer, rtol)
        for factor in (1.0, 1 + 0.95 * rtol, 1 - 0.95 * rtol):
            check_answer("qtest", answer * factor)
        for factor in (1 + 1.05 * rtol, 1 - 1.05 * rtol, -1.0):
            with pytest.raises(AssertionError, match="qtest_answer: .* is not the right answer"):
                check_answer("qtest", answer * factor)


def test_numeric_tolerance_is_relative_to_the_answer(test_key):
    test_key(10.0, 1e-4)
    check_answer("qtest", 10.0009)
    check_answer("qtest", 9.9991)
    with pytest.raises(AssertionError, match="not the right answer"):
        check_answer("qtest", 10.0012)
    test_key(-0.00345, 1e-4)
    check_answer("qtest", np.float32(-0.00345))
    check_answer("qtest", torch.tensor([-0.00345]))


def test_no_answer_key_is_a_digest_and_none_is_student_facing():
    """The keys are plain answers on the instructor's side: no hashes to search offline, and
    no student-facing gradelib module mentions them."""
    import pathlib

    for key in hw6.ANSWER_KEYS.values():
        assert not (isinstance(key.answer, str) and len(key.answer) > 1), key
    package = pathlib.Path(hw6.__file__).resolve().parents[1]
    for path in package.glob("*.py"):
        assert "ANSWER_KEYS" not in path.read_text(), path


def test_numeric_answer_form_errors(test_key):
    test_key(2.5, 1e-4)
    with pytest.raises(AssertionError, match="has type builtins.list"):
        check_answer("qtest", [2.5])
    with pytest.raises(AssertionError, match="expected a single number"):
        check_answer("qtest", torch.tensor([2.5, 2.5]))
    with pytest.raises(AssertionError, match="expected a finite number"):
        check_answer("qtest", float("nan"))
    with pytest.raises(AssertionError, match="no answer was given"):
        check_answer("qtest", ...)


# ------------------------------------------------------------------ the stored answer keys


def test_every_key_is_tested_here():
    assert set(hw6.ANSWER_KEYS) == {f"q{i}" for i in range(1, 19)}
    assert set(KEY) | {"q5", "q7", "q8", "q10", "q11", "q12", "q13", "q15", "q17"} == set(
        hw6.ANSWER_KEYS)


@pytest.mark.parametrize("question", sorted(KEY, key=lambda q: int(q[1:])))
def test_bool_and_choice_keys_accept_exactly_one_option(question):
    key = hw6.ANSWER_KEYS[question]
    options = [True, False] if key.kind == "bool" else list(key.options)
    assert len(options) >= (2 if key.kind == "bool" else 4)
    accepted = []
    for option in options:
        try:
            check_answer(question, option)
            accepted.append(option)
        except AssertionError as error:
            assert f"{question}_answer: " in str(error) and "not the right answer" in str(error)
    assert accepted == [KEY[question]]
    if key.kind == "choice":
        check_answer(question, f" ({KEY[question].upper()}) ")


def test_constant_guessing_strategies_score_little():
    """Answering every true/false question alike gets exactly half of them; answering every
    multiple-choice question with one letter gets at most one of them."""
    bools = [q for q, v in KEY.items() if isinstance(v, bool)]
    letters = [q for q, v in KEY.items() if isinstance(v, str)]

    def passes(question, value):
        try:
            check_answer(question, value)
            return True
        except AssertionError:
            return False

    for guess in (True, False):
        assert sum(passes(q, guess) for q in bools) == len(bools) // 2
    for guess in "abcde":
        assert sum(passes(q, guess) for q in letters) <= 1


def test_form_errors_for_bool_choice_and_integer():
    expected = r"q1_answer: .*got str 'True'.*\nHint: Set q1_answer to True or False"
    with pytest.raises(AssertionError, match=expected):
        check_answer("q1", "True")
    with pytest.raises(AssertionError, match="q3_answer: .*one of"):
        check_answer("q3", "f")
    with pytest.raises(AssertionError, match="q3_answer: .*letter as a str"):
        check_answer("q3", 4)
    with pytest.raises(AssertionError, match="q10_answer: .*whole number"):
        check_answer("q10", 33.5)
    with pytest.raises(AssertionError, match="q10_answer: .*whole number"):
        check_answer("q10", float("inf"))
    with pytest.raises(AssertionError, match="q10_answer: is True; expected an int"):
        check_answer("q10", True)


@pytest.mark.parametrize("question", ["q5", "q7", "q8", "q10", "q11", "q12", "q13", "q15", "q17"])
def test_numeric_keys_accept_the_independent_answer(numeric_answers, question):
    answer = numeric_answers[question]
    check_answer(question, answer)
    if question == "q10":
        check_answer(question, torch.tensor(float(answer)))
        check_answer(question, np.int64(answer))
        for wrong in (answer - 1, answer + 1):
            with pytest.raises(AssertionError, match="q10_answer: .* is not the right answer"):
                check_answer(question, wrong)
        return
    rtol = hw6.ANSWER_KEYS[question].rtol
    check_answer(question, np.float32(answer))
    for wrong in (answer * (1 + 3 * rtol), answer * (1 - 3 * rtol), -answer):
        with pytest.raises(AssertionError, match=f"{question}_answer: .* is not the right answer"):
            check_answer(question, wrong)


def test_numeric_keys_reject_typical_wrong_answers(numeric_answers):
    """Realistic mistakes give other numbers, and those are refused."""
    from scipy.stats import wasserstein_distance

    images, labels = load_mnist("train")
    ink = images.double().mean(dim=(1, 2, 3))
    wrong = {
        # the untied saddle's eigenvalues +-2s; the sign; (mean x)^2 for mean(x^2)
        "q7": [2 * float((ink**2).mean()), -2 * float((ink**2).mean()),
               4 * float((ink**2).mean()), -4 * float(ink.mean() ** 2)],
        "q10": [int(_dependency_by_propagation(16, 16, 8, 8, 2).sum()),  # 3x3 footprint
                int(_dependency_by_propagation(16, 16, 8, 8, 3, kernel_size=5).sum())],
        "q8": [numeric_answers["q8"] * 4000 / 3999],  # 1/(N-1) covariance
        "q11": [numeric_answers["q11"] * math.log(2)],  # nats per dim, not bits
        "q13": [-numeric_answers["q13"]],
        "q15": [-math.log(4)],  # the value at p_g = p_data
        "q17": [abs(float(ink[labels == 4].mean() - ink.mean())),  # the means' gap
                wasserstein_distance(ink[labels == 4].numpy(), ink[labels == 9].numpy())],
    }
    for question, values in wrong.items():
        for value in values:
            with pytest.raises(AssertionError, match="not the right answer"):
                check_answer(question, value)


# ------------------------------------------------------------------ reference demonstrations


def q1_tanh_backward(x, upstream):
    return upstream * (1 - torch.tanh(x) ** 2)


def q2_predict(w, x):
    return (torch.sigmoid(x @ w) > 0.5).long()


def q3_head(h):
    return torch.sigmoid(torch.relu(h))


def q5_kl_on_grid(log_p, log_q, grid):
    return torch.trapezoid(log_p.exp() * (log_p - log_q), grid)


def q6_tied_grad(w, x):
    return -4 * (x**2).mean() * w * (1 - w * w)


def q7_tied_second_derivative(w, x):
    s = (x**2).mean()
    return 12 * s * w * w - 4 * s


def q8_linear_ae_error(x, k):
    centred = x - x.mean(dim=0)
    return (torch.linalg.svdvals(centred)[k:] ** 2).sum() / len(x)


def q9_equivalent_weights(w_enc, w_dec, a):
    return a @ w_enc, torch.linalg.solve(a.T, w_dec.T).T


def q10_dependency_map(height, width, row, col, num_b_layers, kernel_size):
    return _dependency_by_propagation(height, width, row, col, num_b_layers, kernel_size)


def q11_independent_bernoulli_nll(train, test):
    p = (train.sum(dim=0) + 1) / (len(train) + 2)
    return -(test * p.log() + (1 - test) * (1 - p).log()).sum(dim=(1, 2, 3))


def q12_gaussian_kl(mu, logvar):
    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(dim=1)


def q13_elbo(x, m, s2, sigma2):
    expected = -0.5 * torch.log(2 * math.pi * sigma2) - ((x - m) ** 2 + s2) / (2 * sigma2)
    return expected - 0.5 * (m**2 + s2 - 1 - torch.log(s2))


def q14_log_mean_exp(log_w):
    return torch.logsumexp(log_w, dim=-1) - math.log(log_w.shape[-1])


def q15_optimal_discriminator(p_data, p_g):
    return p_data / (p_data + p_g)


def q16_logit_gradients(logits):
    d = torch.sigmoid(logits)
    return -d, d - 1


def q17_wasserstein_1d(x, y):
    points = torch.cat([x, y]).sort().values
    cdf_x = torch.searchsorted(x.sort().values, points[:-1], right=True).to(x.dtype) / len(x)
    cdf_y = torch.searchsorted(y.sort().values, points[:-1], right=True).to(x.dtype) / len(y)
    return ((cdf_x - cdf_y).abs() * points.diff()).sum()


def q18_lipschitz_constant(w):
    return torch.linalg.vector_norm(w)


REFERENCE = {
    "q1": q1_tanh_backward, "q2": q2_predict, "q3": q3_head, "q5": q5_kl_on_grid,
    "q6": q6_tied_grad, "q7": q7_tied_second_derivative, "q8": q8_linear_ae_error,
    "q9": q9_equivalent_weights, "q10": q10_dependency_map,
    "q11": q11_independent_bernoulli_nll, "q12": q12_gaussian_kl, "q13": q13_elbo,
    "q14": q14_log_mean_exp, "q15": q15_optimal_discriminator, "q16": q16_logit_gradients,
    "q17": q17_wasserstein_1d, "q18": q18_lipschitz_constant,
}


def _answer(question, numeric_answers):
    return KEY[question] if question in KEY else numeric_answers[question]


def _check(question):
    return getattr(hw6, f"check_{question}")


@pytest.mark.parametrize("question", [f"q{i}" for i in range(1, 19)])
def test_checks_accept_the_reference(numeric_answers, question):
    answer = _answer(question, numeric_answers)
    if question == "q4":
        hw6.check_q4(answer)
    else:
        _check(question)(answer, REFERENCE[question])


@pytest.mark.parametrize("question", [q for q in REFERENCE])
def test_checks_reject_a_wrong_answer_with_a_right_demonstration(numeric_answers, question):
    answer = _answer(question, numeric_answers)
    if isinstance(answer, bool):
        wrong = not answer
    elif isinstance(answer, str):
        wrong = "a" if answer != "a" else "b"
    else:
        wrong = answer + 1 if question == "q10" else answer * 1.01
    with pytest.raises(AssertionError, match=f"{question}_answer: .* is not the right answer"):
        _check(question)(wrong, REFERENCE[question])


@pytest.mark.parametrize("question", [q for q in REFERENCE])
def test_checks_reject_a_right_answer_without_a_demonstration(numeric_answers, question):
    """Guessing the answer of a true/false question scores nothing without the computation."""

    def stub(*args):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="raised NotImplementedError"):
        _check(question)(_answer(question, numeric_answers), stub)


def _sig(z):
    return torch.sigmoid(z)


def _tanh_backward_by_autograd(x, upstream):
    leaf = x.clone().requires_grad_(True)
    return torch.autograd.grad(torch.tanh(leaf), leaf, grad_outputs=upstream)[0]


def _tied_grad_by_autograd(w, x):
    leaf = w.clone().requires_grad_(True)
    return torch.autograd.grad(((x - leaf * leaf * x) ** 2).mean(), leaf)[0]


def _tied_second_derivative_by_autograd(w, x):
    return torch.autograd.functional.hessian(lambda v: ((x - v * v * x) ** 2).mean(), w)


def _receptive_field_map(height, width, row, col, num_b_layers, kernel_size):
    """The course's own helper (kit and book): autograd through a stack of masks."""
    from gradelib.pixelcnn import receptive_field

    return receptive_field([kernel_size] * (num_b_layers + 1), height, width, row, col) > 0


def _w1_sorted_pairs(x, y):
    """The book's equal-size W1, the larger sample cut to the smaller's size."""
    k = min(len(x), len(y))
    return (x.sort().values[:k] - y.sort().values[:k]).abs().mean()


def _cdf_differences(x, y):
    points = torch.cat([x, y]).sort().values
    return points, (torch.searchsorted(x.sort().values, points[:-1], right=True) / len(x)
                    - torch.searchsorted(y.sort().values, points[:-1], right=True) / len(y))


def _w1_unweighted_gaps(x, y):
    return _cdf_differences(x, y)[1].abs().mean().to(x.dtype)


def _w1_squared_gaps(x, y):
    points, gaps = _cdf_differences(x, y)
    return (gaps.to(x.dtype) ** 2 * points.diff()).sum()


def _w1_by_scipy(x, y):
    from scipy.stats import wasserstein_distance

    return torch.tensor(wasserstein_distance(x.detach().numpy(), y.detach().numpy()), dtype=x.dtype)


def _logit_gradients_by_autograd(logits):
    leaf = logits.clone().requires_grad_(True)
    minimax = torch.autograd.grad(F.logsigmoid(-leaf).sum(), leaf)[0]
    return minimax, torch.autograd.grad((-F.logsigmoid(leaf)).sum(), leaf)[0]


#: Realistic wrong demonstrations: (question, wrong function, part of the expected message).
WRONG_DEMOS = [
    ("q1", lambda x, u: 1 - torch.tanh(x) ** 2, "chain rule"),
    ("q1", lambda x, u: u * (1 - torch.tanh(x)), "the tanh is squared"),
    ("q1", lambda x, u: u * (1 - x**2), "not 1 - x\\^2"),
    ("q1", lambda x, u: u * _sig(x) * (1 - _sig(x)), "sigmoid's derivative"),
    ("q1", _tanh_backward_by_autograd, "automatic differentiation.*\nHint: Use dz/dx"),
    ("q2", lambda w, x: _sig(x @ w), "not the probabilities"),
    ("q2", lambda w, x: (x @ w < 0).long(), "labels are flipped"),
    ("q2", lambda w, x: (x @ w > 0.5).long(), "thresholded the score"),
    ("q2", lambda w, x: (x @ w > 0).long()[:, None], "returned shape \\(50, 1\\)"),
    ("q3", lambda h: _sig(h), "ReLU comes before the sigmoid"),
    ("q3", lambda h: torch.relu(_sig(h)), "ReLU comes before the sigmoid"),
    ("q3", lambda h: torch.relu(h), "apply it to the ReLU's output"),
    ("q5", lambda lp, lq, g: torch.trapezoid(lq.exp() * (lq - lp), g),
     "That is KL\\(q \\|\\| p\\)"),
    ("q5", lambda lp, lq, g: -torch.trapezoid(lp.exp() * lq, g), "cross-entropy"),
    ("q5", lambda lp, lq, g: (lp.exp() * (lp - lq)).sum(), "grid spacing dx"),
    ("q6", lambda w, x: q6_tied_grad(w, x) / 2, "the factor is 4, not 2"),
    ("q6", lambda w, x: -q6_tied_grad(w, x), "Check the sign"),
    ("q6", lambda w, x: q6_tied_grad(w, x) * len(x), "mean over samples, not a sum"),
    ("q6", lambda w, x: -4 * x.mean() ** 2 * w * (1 - w * w), "mean of the squares"),
    ("q6", _tied_grad_by_autograd, "automatic differentiation.*\nHint: Write L\\(w\\)"),
    ("q6", lambda w, x: (-2 * (x**2).mean() * w * (1 - w * w),) * 2, "has type builtins.tuple"),
    ("q7", lambda w, x: 4 * (x**2).mean() * w * w - 2 * (x**2).mean(), "untied model's mixed"),
    ("q7", lambda w, x: q7_tied_second_derivative(w, x) / 2, "factor 2 is missing"),
    ("q7", lambda w, x: -4 * (x**2).mean() * (1 - w * w), "product rule"),
    ("q7", lambda w, x: -q7_tied_second_derivative(w, x), "Check the sign"),
    ("q7", lambda w, x: 4 * x.mean() ** 2 * (3 * w * w - 1), "mean of the squares"),
    ("q7", _tied_second_derivative_by_autograd,
     "automatic differentiation.*\nHint: Differentiate L\\(w\\)"),
    ("q8", lambda x, k: (torch.linalg.svdvals(x)[k:] ** 2).sum() / len(x), "Centre the data"),
    ("q8", lambda x, k: (torch.linalg.svdvals(x - x.mean(0))[k:] ** 2).sum() / (len(x) - 1),
     "not 1/\\(N-1\\)"),
    ("q8", lambda x, k: (torch.linalg.svdvals(x - x.mean(0))[:k] ** 2).sum() / len(x),
     "variance the code keeps"),
    ("q8", lambda x, k: q8_linear_ae_error(x, k) / x.shape[1], "not averaged"),
    ("q9", lambda e, d, a: (a @ e, d @ a), "inverse, not a"),
    ("q9", lambda e, d, a: (a @ e, d @ torch.linalg.inv(a).T), "not its transposed inverse"),
    ("q9", lambda e, d, a: (a.T @ e, d @ torch.linalg.inv(a.T)), "not its transpose"),
    ("q9", lambda e, d, a: a @ e, "expected a tuple"),
    ("q10", lambda h, w, r, c, n, k: hw6._causal_cone(h, w, r, c, (n + 1) * (k // 2),
                                                      self_too=False), "blind spot"),
    ("q10", lambda h, w, r, c, n, k: _dependency_by_propagation(h, w, r, c, n, k, first="B"),
     "never sees input pixel"),
    ("q10", lambda h, w, r, c, n, k: _dependency_by_propagation(h, w, r, c, n), "3x3 footprint"),
    ("q10", lambda h, w, r, c, n, k: q10_dependency_map(h, w, r, c, n, k).T, "Propagate the set"),
    ("q10", _receptive_field_map, "automatic differentiation.*\nHint: Propagate the set"),
    ("q11", lambda tr, te: -(te * tr.mean(0).clamp(1e-12).log()
                             + (1 - te) * (1 - tr.mean(0)).clamp(1e-12).log()).sum(dim=(1, 2, 3)),
     "add-one smoothing"),
    ("q11", lambda tr, te: q11_independent_bernoulli_nll(tr, te) / math.log(2), "not bits"),
    ("q11", lambda tr, te: q11_independent_bernoulli_nll(tr, te) / 16, "do not average"),
    ("q12", lambda m, lv: 2 * q12_gaussian_kl(m, lv), "factor 1/2 is missing"),
    ("q12", lambda m, lv: q12_gaussian_kl(m, 2 * lv), "not exp\\(2 logvar\\)"),
    ("q12", lambda m, lv: q12_gaussian_kl(m, lv) / m.shape[1], "do not average"),
    ("q12", lambda m, lv: q12_gaussian_kl(m, lv).sum(), "not the batch total"),
    ("q13", lambda x, m, s2, v: -0.5 * torch.log(2 * math.pi * v) - (x - m) ** 2 / (2 * v)
     - 0.5 * (m**2 + s2 - 1 - torch.log(s2)), "variance of q is missing"),
    ("q13", lambda x, m, s2, v: q13_elbo(x, m, s2, v) + (m**2 + s2 - 1 - torch.log(s2)),
     "not added"),
    ("q13", lambda x, m, s2, v: q13_elbo(x, m, s2, v) + 0.5 * torch.log(2 * math.pi * v),
     "normaliser"),
    ("q14", lambda lw: torch.log(torch.exp(lw).mean(dim=-1)), "non-finite"),
    ("q14", lambda lw: torch.logsumexp(lw, dim=-1), "subtract log k"),
    ("q14", lambda lw: lw.mean(dim=-1), "mean of the log-weights"),
    ("q15", lambda pd, pg: pg / (pd + pg), "numerator is p_data"),
    ("q15", lambda pd, pg: pd / pg, "not by p_g"),
    ("q15", lambda pd, pg: torch.full_like(pd, 0.5), "only where p_g = p_data"),
    ("q16", lambda l: (-1 / (1 - _sig(l)), -1 / _sig(l)), "not with respect to D"),
    ("q16", lambda l: (_sig(l) - 1, -_sig(l)), "parts are swapped"),
    ("q16", lambda l: (_sig(l), 1 - _sig(l)), "Check the sign"),
    ("q16", _logit_gradients_by_autograd, "automatic differentiation"),
    ("q17", lambda x, y: (x[: len(y)] - y[: len(x)]).abs().mean(), "Sort both samples"),
    ("q17", lambda x, y: (x.mean() - y.mean()).abs(), "lower bound"),
    ("q17", _w1_sorted_pairs, "needs equal sizes"),
    ("q17", _w1_unweighted_gaps, "width of its interval"),
    ("q17", _w1_squared_gaps, "squaring the differences"),
    ("q17", _w1_by_scipy, "not with scipy or numpy"),
    ("q18", lambda w: w.abs().max(), "largest weight"),
    ("q18", lambda w: w.abs().sum(), "l1 norm"),
    ("q18", lambda w: (w**2).sum(), "square root"),
]


@pytest.mark.parametrize(("question", "wrong", "message"), WRONG_DEMOS,
                         ids=[f"{q}-{i}" for i, (q, _, _) in enumerate(WRONG_DEMOS)])
def test_checks_reject_wrong_demonstrations(numeric_answers, question, wrong, message):
    with pytest.raises(AssertionError, match=f"(?s)q{question[1:]}_\\w+: .*{message}"):
        _check(question)(_answer(question, numeric_answers), wrong)


def test_every_demonstration_check_has_at_least_three_wrong_answers():
    counts = {q: sum(1 for w in WRONG_DEMOS if w[0] == q) for q in REFERENCE}
    assert min(counts.values()) >= 3, counts


def test_q10_reference_maps_agree_with_autograd():
    """The propagation in this file and the check's Jacobian are two independent methods."""
    for config in ((16, 16, 8, 8, 3, 3), (9, 7, 4, 0, 2, 3), (5, 5, 0, 3, 1, 3),
                   (16, 16, 8, 8, 2, 5), (11, 9, 6, 7, 1, 7)) + hw6.Q10_CASES:
        torch.testing.assert_close(_dependency_by_propagation(*config).double(),
                                   hw6._dependency_by_autograd(*config))


def test_q10_cases_catch_each_known_mistake():
    """Each mistake of check_q10 differs from the right map in at least one case (else its
    message could never be shown), and the right map has a blind spot in some case."""
    differs = {"blind spot": False, "first B": False, "3x3": False}
    for height, width, row, col, num_b, kernel in hw6.Q10_CASES:
        want = hw6._dependency_by_autograd(height, width, row, col, num_b, kernel)
        reach = (num_b + 1) * (kernel // 2)
        cone = hw6._causal_cone(height, width, row, col, reach, self_too=False)
        first_b = hw6._dependency_by_autograd(height, width, row, col, num_b, kernel, first="B")
        small = hw6._dependency_by_autograd(height, width, row, col, num_b, 3)
        differs["blind spot"] |= not torch.equal(cone, want)
        differs["first B"] |= not torch.equal(first_b, want)
        differs["3x3"] |= kernel != 3 and not torch.equal(small, want)
    assert all(differs.values()), differs
