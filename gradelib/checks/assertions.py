"""The machinery every autograder check uses.

A check runs the student's function on seeded inputs, converts what it returned into a
plain ``torch.Tensor`` of dtype float64 (never trusting the returned object's own
``__eq__``, ``__float__`` or tensor subclass), compares it with the reference under stated
tolerances, and raises an :class:`AssertionError` whose message names the function, the
inputs, what was expected, what was returned and a hint.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "fail",
    "to_float64",
    "call_student",
    "assert_shape",
    "assert_close",
    "forbid_autograd",
    "calibrated_time_budget",
    "check_loss_history",
]


def fail(function: str, problem: str, hint: str | None = None) -> None:
    """Raise the AssertionError every check uses: ``"<function>: <problem> Hint: <hint>"``."""
    message = f"{function}: {problem}"
    if hint:
        message += f"\nHint: {hint}"
    raise AssertionError(message)


def to_float64(value: object, *, function: str, what: str = "the return value") -> torch.Tensor:
    """Convert a returned value to a fresh, plain ``torch.Tensor`` of dtype float64 on the CPU.

    Accepts ``torch.Tensor`` (any subclass is stripped to the base class without running
    the subclass's ``__torch_function__``), NumPy arrays and scalars, and Python ``int`` /
    ``float`` of exact type. Anything else (lists, objects with a custom ``__eq__``,
    ``bool``) fails the check with a message naming ``function``.
    """
    if isinstance(value, torch.Tensor):
        with torch._C.DisableTorchFunction():
            plain = torch.Tensor.as_subclass(value, torch.Tensor)
            plain = torch.Tensor.detach(plain)
            if plain.is_complex():
                fail(function, f"{what} is a complex tensor ({plain.dtype}); expected real numbers.")
            result = torch.Tensor.to(plain, device="cpu", dtype=torch.float64, copy=True)
    elif type(value) is np.ndarray or isinstance(value, np.generic):
        array = np.asarray(value)
        if array.dtype.kind not in "iuf":
            fail(function, f"{what} is a NumPy array of dtype {array.dtype}; expected numbers.")
        result = torch.from_numpy(np.array(array, dtype=np.float64, copy=True))
    elif type(value) in (int, float):
        result = torch.tensor(float(value), dtype=torch.float64)
    else:
        fail(
            function,
            f"{what} has type {type(value).__module__}.{type(value).__qualname__}; "
            "expected a torch.Tensor.",
            "Return the tensor you computed (not a list, a string or a wrapper object).",
        )
    assert type(result) is torch.Tensor and result.dtype == torch.float64  # noqa: S101
    return result


def call_student(function: str, fn: Callable, *args, **kwargs):
    """Call the student's ``fn``; turn any exception into a check failure that names it."""
    if not callable(fn):
        fail(function, f"expected a function, got {type(fn).__name__}.")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        fail(function, "raised NotImplementedError.", "Replace `raise NotImplementedError()` "
             "with your implementation.")
    except AssertionError:
        raise
    except Exception as error:  # noqa: BLE001 - any student error becomes a clear failure
        fail(function, f"raised {type(error).__name__}: {error}")


def assert_shape(
    actual: torch.Tensor, expected: Sequence[int], *, function: str, call: str, hint: str | None = None
) -> None:
    """Fail unless ``actual.shape == expected`` exactly (no broadcasting allowed)."""
    if tuple(actual.shape) != tuple(expected):
        fail(
            function,
            f"{call} returned shape {tuple(actual.shape)}; expected {tuple(expected)}.",
            hint,
        )


def _short(t: torch.Tensor) -> str:
    if t.numel() == 1:
        return f"{t.item():.8g}"
    flat = t.flatten()
    head = ", ".join(f"{v:.6g}" for v in flat[:4].tolist())
    return f"tensor of shape {tuple(t.shape)} starting [{head}{', ...' if flat.numel() > 4 else ''}]"


def assert_close(
    actual: object,
    expected: torch.Tensor,
    *,
    function: str,
    call: str,
    rtol: float,
    atol: float,
    hint: str | None = None,
    known_mistakes: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Fail unless ``actual`` equals ``expected`` elementwise within ``atol + rtol * |expected|``.

    ``actual`` is converted with :func:`to_float64` first, its shape must equal
    ``expected.shape`` exactly, and NaN or infinity never matches. ``known_mistakes`` maps a
    hint to the value a typical mistake produces; when the returned value matches one
    (within the same tolerances), that hint replaces the generic ``hint``. Returns the
    converted tensor.
    """
    got = to_float64(actual, function=function)
    want = to_float64(expected, function="reference")
    for mistake_hint, mistake in (known_mistakes or {}).items():
        wrong = to_float64(mistake, function="reference")
        if wrong.shape == got.shape and bool(
            ((got - wrong).abs() <= atol + rtol * wrong.abs()).all()
        ):
            hint = mistake_hint
            break
    assert_shape(got, want.shape, function=function, call=call, hint=hint)
    if not bool(torch.isfinite(got).all()):
        fail(function, f"{call} returned non-finite values: {_short(got)}.", hint)
    error = (got - want).abs()
    allowed = atol + rtol * want.abs()
    if bool((error > allowed).any()):
        worst = int(torch.argmax(error - allowed))
        fail(
            function,
            f"{call} returned {_short(got)}; expected {_short(want)} "
            f"(largest error {error.flatten()[worst].item():.3g} at flat index {worst}; "
            f"tolerance atol={atol:g}, rtol={rtol:g}).",
            hint,
        )
    return got


_AUTOGRAD_ENTRY_POINTS = [
    (torch.autograd, "grad"),
    (torch.autograd, "backward"),
    (torch.Tensor, "backward"),
    (torch.autograd.functional, "jacobian"),
    (torch.autograd.functional, "hessian"),
    (torch.autograd.functional, "vjp"),
    (torch.autograd.functional, "jvp"),
    (torch.func, "grad"),
    (torch.func, "grad_and_value"),
    (torch.func, "jacrev"),
    (torch.func, "jacfwd"),
    (torch.func, "hessian"),
    (torch.func, "vjp"),
    (torch.func, "jvp"),
]


@contextlib.contextmanager
def forbid_autograd(
    function: str, hint: str = "Differentiate by hand and code the resulting expressions."
) -> Iterator[None]:
    """Fail the check if the code inside calls torch's automatic differentiation.

    Used where the assignment asks for a derivative written by hand. Autograd is switched
    off with :func:`torch.no_grad` and torch's autograd entry points are replaced by a
    function that fails the check (with ``hint``), for the duration of the block only.
    """

    def refuse(*_args, **_kwargs):
        fail(
            function,
            "called torch's automatic differentiation; this function must compute the "
            "derivative from your own formula.",
            hint,
        )

    saved = [(owner, name, getattr(owner, name)) for owner, name in _AUTOGRAD_ENTRY_POINTS]
    try:
        for owner, name, _ in saved:
            setattr(owner, name, refuse)
        with torch.no_grad():
            yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)



def trains_model(check: Callable) -> Callable:
    """Mark a check that trains a model itself (seconds to minutes of CPU per call).

    The grading pipeline (``gradelib.grading``) runs such a check once per submission, in its
    verification process outside the student's kernel, rather than a second time in the
    kernel; plain ``nbgrader autograde`` runs it in the kernel as usual. Returns ``check``
    unchanged, with the attribute ``trains_model = True``.
    """
    check.trains_model = True
    return check


def calibrated_time_budget(floor_s: float, factor: float, probe: Callable[[], object],
                           scale: float = 1.0) -> float:
    """Seconds a timed student run may take on this machine, under its current load.

    Runs ``probe`` (a short piece of the reference's own work, e.g. one epoch) and returns
    ``max(floor_s, factor * scale * t)`` where ``t`` is the probe's wall time and ``scale``
    how many probes the timed run is worth. A fixed wall-clock limit would fail correct work
    on a slow or busy grading machine; measuring the reference in the same process, just
    before, keeps the limit meaningful there while still catching code that is many times
    slower than it needs to be.
    """
    start = time.perf_counter()
    probe()
    seconds = time.perf_counter() - start
    return max(float(floor_s), float(factor) * float(scale) * seconds)


def check_loss_history(function: str, history: object, length: int, *,
                       what: str = "per-epoch mean losses", must_decrease: bool = True,
                       nonfinite_hint: str = "Append one float per epoch, e.g. the mean of "
                                              "loss.item() over the epoch.") -> list[float]:
    """Check a training loop's returned loss history; return it as Python floats.

    ``history`` must be a list of ``length`` finite scalars (floats, 0-d or
    one-element tensors); with ``must_decrease`` its last value must be below its first
    (a loop that never steps the optimiser keeps the loss flat).
    """
    if not isinstance(history, list) or len(history) != length:
        fail(function, f"returned {type(history).__name__} of length "
             f"{len(history) if hasattr(history, '__len__') else '?'}; expected a list of "
             f"{length} {what}.")
    values = []
    for i, value in enumerate(history):
        converted = to_float64(value, function=function, what=f"history[{i}]")
        values.append(float(converted.reshape(-1)[0]) if converted.numel() == 1 else math.nan)
    if not all(math.isfinite(v) for v in values):
        shown = values if len(values) <= 20 else values[:10] + ["..."] + values[-5:]
        fail(function, f"the loss history holds non-scalar or non-finite values: {shown}.",
             nonfinite_hint)
    if must_decrease and not values[-1] < values[0]:
        fail(function, f"the loss did not decrease: first {values[0]:.4g}, last "
             f"{values[-1]:.4g}.", "Call optimizer.zero_grad(), loss.backward() and "
             "optimizer.step() for every minibatch.")
    return values
