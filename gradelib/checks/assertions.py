"""The machinery every autograder check uses.

A check runs the student's function on seeded inputs, converts what it returned into a
plain ``torch.Tensor`` of dtype float64 (never trusting the returned object's own
``__eq__``, ``__float__`` or tensor subclass), compares it with the reference under stated
tolerances, and raises an :class:`AssertionError` whose message names the function, the
inputs, what was expected, what was returned and a hint.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
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
    "portable",
    "portable_attribute",
    "describe",
    "call_with_gradients",
    "seed_student",
    "time_limit",
    "PUBLIC_PREFIXES",
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
    token = CALL_OPTIONS.set({**CALL_OPTIONS.get(), "forbid_autograd": hint})
    try:
        for owner, name, _ in saved:
            setattr(owner, name, refuse)
        with torch.no_grad():
            yield
    finally:
        CALL_OPTIONS.reset(token)
        for owner, name, original in saved:
            setattr(owner, name, original)



def trains_model(check: Callable) -> Callable:
    """Mark a check that trains a model itself (seconds to minutes of CPU per call).

    The grading pipeline (``gradelib.grading``) runs every hidden check once per submission,
    in its trusted checker; the mark tells benchmarks and budgets which checks dominate the
    grading time. Returns ``check`` unchanged, with the attribute ``trains_model = True``.
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


# ----------------------------------------------------------------------------- the protocol
#
# When the grading pipeline runs a check, the student's objects are proxies
# (``gradelib.grading.remote.RemoteObject``) for objects that live in a sandboxed process:
# the check runs here, in a process that never executes student code, and every call on a
# proxy is a request whose arguments and reply are plain data (``gradelib.grading.wire``).
# In tests and under plain ``nbgrader`` the same check receives the real objects. A check
# therefore only calls the student's objects, reads their attributes, iterates them and
# takes ``len``; it passes plain data (None, bool, int, float, str, tensors, lists, tuples,
# str-keyed dicts), ``torch.Generator``s, objects built with :func:`portable`, and other
# student objects; and it gets plain data back, or a proxy for anything else. It never
# applies ``isinstance``/``type``/``inspect`` to a student object: :func:`describe` says what
# it is. Tensors come back detached: gradients through student code come from
# :func:`call_with_gradients`.

#: Options for the remote calls made inside a block (read by ``gradelib.grading.remote``):
#: ``forbid_autograd`` (a hint), ``deadline_s`` (seconds a single call may take).
CALL_OPTIONS: contextvars.ContextVar[dict] = contextvars.ContextVar("CALL_OPTIONS", default={})

#: Where a :func:`portable` object's constructor may come from: the public libraries and the
#: student-facing ``gradelib`` (never ``gradelib.checks`` or ``gradelib.grading``).
def _public_prefixes() -> tuple[str, ...]:
    from gradelib import FAMILIES, SUPPORT

    return ("torch.nn.", *(f"gradelib.{name}." for name in (*FAMILIES, *SUPPORT)))


PUBLIC_PREFIXES = _public_prefixes()


def _public_callable(path: str) -> Callable:
    if not isinstance(path, str) or not path.startswith(PUBLIC_PREFIXES) or ".checks" in path \
            or ".grading" in path or "._" in path:
        raise ValueError(f"path: expected a public callable under {PUBLIC_PREFIXES}, got {path!r}")
    module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


class PortableCallable:
    """A bound method of a :func:`portable` object (e.g. ``ring_mixture().sample``) that the
    grading pipeline can rebuild in the sandbox; calls it here."""

    def __init__(self, function: Callable, spec: dict):
        self._function, self.portable_spec = function, spec

    def __call__(self, *args, **kwargs):
        return self._function(*args, **kwargs)


def portable(path: str, *args, **kwargs):
    """Build a public object that can be passed to student code across the sandbox boundary.

    ``portable("torch.nn.Linear", 2, 1)`` is ``torch.nn.Linear(2, 1)``, remembered with its
    recipe (``path``, plain ``args``/``kwargs``, which may themselves be portable objects), so
    that the grading pipeline rebuilds the same object in the student's sandbox; a module's
    current ``state_dict`` travels with it at each call, and comes back after the call (an
    in-place change by student code, e.g. weight clipping, is seen here).

    Raises:
        ValueError: ``path`` is not under :data:`PUBLIC_PREFIXES`.
    """
    obj = _public_callable(path)(*args, **kwargs)
    spec = {"path": path, "args": list(args), "kwargs": dict(kwargs)}
    try:
        object.__setattr__(obj, "portable_spec", spec)
    except (AttributeError, TypeError) as error:
        raise ValueError(f"path: {path} builds a {type(obj).__name__}, which cannot carry its "
                         "recipe; wrap a method of it with portable_attribute") from error
    return obj


def portable_attribute(obj, name: str) -> PortableCallable:
    """``obj.<name>`` of a :func:`portable` object, itself portable (a data sampler, say).

    Raises:
        ValueError: ``obj`` was not built by :func:`portable`.
    """
    spec = getattr(obj, "portable_spec", None)
    if not isinstance(spec, dict):
        raise ValueError(f"obj: expected an object built by portable(), got {type(obj).__name__}")
    return PortableCallable(getattr(obj, name), {**spec, "attribute": name})


def describe(obj) -> dict:
    """What a student object is, as plain data (the same in-process and through a proxy).

    Returns:
        ``{"type": qualified name, "mro": [qualified names], "callable": bool,
        "modules": [{"name", "type", "parameters": {name: shape}, "buffers": {name: shape},
        "extra_repr"}]}`` (``modules`` empty unless ``obj`` is an ``nn.Module``) and
        ``"training"`` for a module.
    """
    describe_remote = getattr(obj, "_describe_remote", None)
    if callable(describe_remote) and type(obj).__module__ == "gradelib.grading.remote":
        return describe_remote()
    from gradelib.grading.harness import describe_object

    return describe_object(obj)


def call_with_gradients(function: str, fn: Callable, args: Sequence, kwargs: Mapping | None = None,
                        wrt: Sequence = ()) -> tuple[object, list]:
    """Call the student's ``fn`` and differentiate ``output.sum()`` where the student's process can.

    Args:
        function: the graded name (for messages).
        fn: the student's function (or a proxy).
        args, kwargs: plain arguments, portable modules included.
        wrt: what to differentiate with respect to: an ``int`` ``i`` for the tensor
            ``args[i]`` (made to require grad), or ``("parameters", i)`` for the parameters of
            the module ``args[i]`` (a dict ``{name: grad}``; ``None`` for a parameter the
            output does not depend on).

    Returns:
        ``(output, grads)``: the output (detached) and one entry per item of ``wrt``; a
        non-differentiable output fails the check.
    """
    remote = getattr(fn, "_call_with_gradients_remote", None)
    if callable(remote) and type(fn).__module__ == "gradelib.grading.remote":
        try:
            return remote(list(args), dict(kwargs or {}), list(wrt))
        except NotImplementedError:
            fail(function, "raised NotImplementedError.", "Replace `raise NotImplementedError()` "
                 "with your implementation.")
    from gradelib.grading.harness import gradients_of_call

    try:
        return gradients_of_call(fn, list(args), dict(kwargs or {}), list(wrt))
    except NotImplementedError:
        fail(function, "raised NotImplementedError.", "Replace `raise NotImplementedError()` "
             "with your implementation.")
    except AssertionError:
        raise
    except Exception as error:  # noqa: BLE001
        fail(function, f"raised {type(error).__name__}: {error}")


def seed_student(seed: int) -> None:
    """Seed torch's global generator where the student's code runs (here, and in the sandbox).

    Use it before building a student model, so that its weight initialisation is the same on
    every run of the check.
    """
    torch.manual_seed(seed)
    hook = _SEED_HOOK.get()
    if hook is not None:
        hook(seed)


_SEED_HOOK: contextvars.ContextVar[Callable | None] = contextvars.ContextVar("_SEED_HOOK", default=None)


class _Clock:
    seconds: float = 0.0


@contextlib.contextmanager
def time_limit(function: str, seconds: float, *, what: str = "training") -> Iterator[_Clock]:
    """Time a block of student calls; fail the check if it took longer than ``seconds``.

    Inside the block a single remote call may run up to ``2 * seconds`` before the pipeline
    stops it (so an endless loop ends); the block's wall time is measured here.
    """
    clock = _Clock()
    token = CALL_OPTIONS.set({**CALL_OPTIONS.get(), "deadline_s": 2.0 * float(seconds) + 10.0})
    start = time.perf_counter()
    try:
        yield clock
    finally:
        CALL_OPTIONS.reset(token)
        clock.seconds = time.perf_counter() - start
    if clock.seconds > seconds:
        fail(function, f"{what} took {clock.seconds:.1f} s; the budget on this machine is "
             f"{seconds:.1f} s.", "Vectorise the inner loop over the batch; avoid Python loops "
             "over pixels or examples.")
