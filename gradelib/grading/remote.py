"""The trusted side of the protocol: a sandboxed student process, and proxies for its objects.

``StudentProcess`` starts ``harness.py`` inside a ``Sandbox``, sends it the cells to run, and
then makes one request at a time, each under its own clock and size cap: it writes one frame,
reads exactly one frame back, and checks that the reply answers that request (its ``id``,
exactly one of ``ok``/``error``, plain data only). A reply that is late, too large,
malformed or missing ends the process and raises :class:`StudentProcessFault` (a
``BaseException``, so a check's own ``except Exception`` cannot swallow it); the trusted
runner (``trusted.py``) turns that into a failed check with a flag.

``RemoteObject`` is what a check receives in place of a student object. Calling it, reading
an attribute, iterating it or taking ``len`` are requests; what comes back is plain data (a
fresh ``torch.Tensor``, numbers, containers of those) or another ``RemoteObject``. Nothing the
student process sends is ever executed here, and no student object's method runs here: every
comparison a check makes happens on plain data in this process.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import torch

from gradelib.checks import assertions
from gradelib.grading import wire
from gradelib.grading.sandbox import Sandbox

HARNESS_FILES = ("harness.py", "wire.py")
REQUEST_TENSOR_BYTES = 512 * 2**20
#: How much longer than ``Limits.cell_timeout`` the trusted side waits for a setup cell's
#: progress frame (the harness's own alarm fires first; student code may block it), and what
#: the first cell gets on top for the interpreter's start and torch's import under load.
CELL_SLACK_S = 10.0
STARTUP_SLACK_S = 60.0
#: Exception types a student's error keeps its name for (anything else is ``StudentError``).
BUILTIN_ERRORS = {e.__name__: e for e in (NotImplementedError, ValueError, TypeError, RuntimeError,
                                          IndexError, KeyError, AttributeError, ZeroDivisionError,
                                          NameError, TimeoutError, OverflowError, MemoryError,
                                          RecursionError)}


class StudentProcessFault(BaseException):
    """The student process did not answer a request properly (late, dead, malformed)."""


class NotPortable(BaseException):
    """A check tried to send something that cannot cross into the sandbox (a check's bug,
    never the student's: a ``BaseException``, so ``call_student`` does not blame the student)."""


class StudentError(Exception):
    """An exception raised by student code whose type is not a builtin one (its name and
    message are data; ``error_type`` holds the name)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type

    def __str__(self) -> str:
        return f"({self.error_type}) {self.args[0]}"


def _remote_error(error: dict) -> BaseException:
    kind = str(error.get("type", "Error"))[:60]
    message = str(error.get("message", ""))[:2000]
    if kind == "AutogradForbidden":
        return AssertionError(message)
    if kind in BUILTIN_ERRORS:
        return BUILTIN_ERRORS[kind](message)
    return StudentError(kind, message)


class StudentProcess:
    """One sandboxed ``harness.py`` process and the requests made to it.

    Args:
        sandbox: where it runs (bwrap or limits only), with its limits.
        harness_dir: a directory holding ``harness.py`` and ``wire.py`` (``stage_harness``);
            mounted read-only at ``/grader`` under bwrap.
        reply_bytes: the cap on one reply frame.
    """

    def __init__(self, sandbox: Sandbox, harness_dir: Path, reply_bytes: int = 300 * 2**20):
        self.sandbox, self.harness_dir, self.reply_bytes = sandbox, Path(harness_dir), reply_bytes
        self.proc: subprocess.Popen | None = None
        self.ids = itertools.count(1)
        self.requests = 0
        self.dead: str | None = None

    # --- the process
    def start(self, cells: list[dict], deadline_s: float) -> list[dict]:
        """Start the harness, run ``cells`` (``[{"label", "code"}]``); their statuses.

        The harness reports each cell as it finishes (a ``progress`` frame with the cell's
        index), so a cell that never ends is found after ``cell_timeout`` + ``CELL_SLACK_S``
        (+ ``STARTUP_SLACK_S`` for the first, which follows the interpreter's start and
        torch's import), not at the end of ``deadline_s``, the budget of the whole run.

        Raises:
            StudentProcessFault: a cell did not finish on that clock, the cells did not
                finish within ``deadline_s``, or the process died or replied wrongly.
        """
        inside = "/grader/harness.py" if self.sandbox.mode == "bwrap" else str(self.harness_dir / "harness.py")
        cmd = self.sandbox.command([sys.executable, "-I", "-X", "faulthandler", inside],
                                   extra_ro=[(self.harness_dir, Path("/grader"))])
        env = dict(self.sandbox.env(), MPLBACKEND="Agg")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, cwd=str(self.sandbox.workdir),
                                     preexec_fn=self.sandbox.preexec, start_new_session=True, bufsize=0)
        cell_timeout = self.sandbox.limits.cell_timeout
        request_id = self._send({"op": "setup", "cells": cells, "cell_timeout": cell_timeout,
                                 "threads": 1, "public_prefixes": list(assertions.PUBLIC_PREFIXES)},
                                deadline_s)
        end = time.monotonic() + deadline_s
        for index, cell in enumerate(cells):
            wait = cell_timeout + CELL_SLACK_S + (STARTUP_SLACK_S if index == 0 else 0.0)
            if time.monotonic() + wait >= end:  # the run's budget ends first
                wait, why = end - time.monotonic(), f"no reply within {deadline_s:g} s"
            else:
                why = f"cell {str(cell['label'])[:80]} did not finish within {wait:g} s"
            progress = self._receive(request_id, max(wait, 0.0), why)
            if progress.get("progress") != index:
                self.kill("a setup frame out of order")
                raise StudentProcessFault("a setup frame that is not the next cell's progress "
                                          "(forged or out of order)")
        reply = self._receive(request_id, max(end - time.monotonic(), 1.0), f"no reply within {deadline_s:g} s")
        statuses = reply.get("ok")
        if not isinstance(statuses, list) or len(statuses) != len(cells) or \
                not all(isinstance(s, dict) and isinstance(s.get("status"), str) for s in statuses):
            self.kill("the setup reply is not one status per cell")
            raise StudentProcessFault("the setup reply is not one status per cell")
        return [{"label": str(c["label"]), "status": str(s["status"])[:300],
                 "seconds": float(s.get("seconds", 0.0)) if isinstance(s.get("seconds"), (int, float)) else 0.0}
                for c, s in zip(cells, statuses)]

    def kill(self, why: str) -> None:
        """End the process (and everything it started); later requests fault with ``why``."""
        self.dead = self.dead or why
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, 9)
            except OSError:
                pass
            self.sandbox.kill_all()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass

    def close(self) -> None:
        """End the process after the last request."""
        self.kill("closed by the trusted checker")

    # --- one request, one reply
    def _exchange(self, message: dict, deadline_s: float) -> dict:
        request_id = self._send(message, deadline_s)
        reply = self._receive(request_id, deadline_s, f"no reply within {deadline_s:g} s")
        if "progress" in reply:  # only the setup request has progress frames
            self._out_of_protocol("a progress frame for a request that has none")
        return reply

    def _send(self, message: dict, deadline_s: float) -> int:
        """Write one request frame; its id."""
        if self.dead:
            raise StudentProcessFault(f"the student process is gone ({self.dead})")
        request_id = next(self.ids)
        self.requests += 1
        frame = wire.encode({**message, "id": request_id}, REQUEST_TENSOR_BYTES)
        with self._channel(f"no reply within {deadline_s:g} s"):
            self._write(frame, time.monotonic() + deadline_s)
        return request_id

    def _receive(self, request_id: int, deadline_s: float, timeout_why: str) -> dict:
        """Read exactly one frame: a reply (``ok`` or ``error``) or a ``progress`` frame of
        request ``request_id``; anything else ends the process."""
        deadline = time.monotonic() + deadline_s
        with self._channel(timeout_why):
            reply = wire.decode(wire.read_frame(lambda n: self._read(n, deadline), self.reply_bytes))
        kinds = sum(key in reply for key in ("ok", "error", "progress")) if isinstance(reply, dict) else 0
        if not isinstance(reply, dict) or reply.get("id") != request_id or kinds != 1:
            self._out_of_protocol("a reply that does not answer the request")
        return reply

    @contextlib.contextmanager
    def _channel(self, timeout_why: str):
        """A clock run out, the process gone or bytes out of protocol on the channel: the
        process is ended and the fault raised, saying which."""
        try:
            yield
        except TimeoutError:
            self.kill(timeout_why)
            raise StudentProcessFault(f"{timeout_why} (the process was ended)") from None
        except EOFError:
            self.kill("the process ended")
            code = self.proc.returncode if self.proc else None
            raise StudentProcessFault(f"the student process ended (exit code {code})") from None
        except (wire.WireError, OSError) as error:
            self.kill(f"malformed reply: {error}")
            raise StudentProcessFault(f"malformed reply: {str(error)[:200]}") from None

    def _out_of_protocol(self, why: str):
        self.kill(why)
        raise StudentProcessFault("a reply that does not answer the request it was sent for "
                                  "(forged or out of order)")

    def _write(self, data: bytes, deadline: float) -> None:
        fd = self.proc.stdin.fileno()
        os.set_blocking(fd, False)
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            _, ready, _ = select.select([], [fd], [], min(remaining, 1.0))
            if ready:
                try:
                    view = view[os.write(fd, view[: 1 << 20]):]
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    raise EOFError from None

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if ready:
                return os.read(fd, n)

    def request(self, message: dict, deadline_s: float | None = None):
        """Send one request; return its ``ok`` value (proxies made for handles) or raise the
        student's error as a local exception of a builtin type (``StudentError`` otherwise)."""
        options = assertions.CALL_OPTIONS.get()
        if deadline_s is None:
            deadline_s = float(options.get("deadline_s", self.sandbox.limits.cell_timeout))
        if options.get("forbid_autograd") and message.get("op", "").startswith("call"):
            message = {**message, "options": {"forbid_autograd": str(options["forbid_autograd"])}}
        reply = self._exchange(message, deadline_s)
        if "error" in reply:
            error = reply["error"] if isinstance(reply["error"], dict) else {}
            raise _remote_error(error)
        return reply

    # --- values
    def to_wire(self, value, depth: int = 0):
        """A check-side argument as plain data (proxies by handle, generators by state,
        portable objects by recipe and weights).

        Raises:
            NotPortable: ``value`` cannot cross into the sandbox (a check written wrongly).
        """
        if depth > 10:
            raise NotPortable("argument nested too deep")
        if isinstance(value, RemoteObject):
            if value._process is not self:
                raise NotPortable("a student object of another process")
            return {"__handle__": value._handle}
        if value is None or type(value) in (bool, int, float, str) or isinstance(value, torch.Tensor):
            return value
        if isinstance(value, torch.Generator):
            return {"__generator__": {"state": value.get_state()}}
        spec = getattr(value, "portable_spec", None) if not isinstance(value, RemoteObject) else None
        if isinstance(spec, dict):
            out = {"path": spec["path"], "args": [self.to_wire(a, depth + 1) for a in spec["args"]],
                   "kwargs": {k: self.to_wire(v, depth + 1) for k, v in spec["kwargs"].items()}}
            module = value._function.__self__ if isinstance(value, assertions.PortableCallable) else value
            if isinstance(module, torch.nn.Module):
                out["state"] = dict(module.state_dict())
            if spec.get("attribute"):
                out["attribute"] = spec["attribute"]
            return {"__portable__": out}
        if type(value) in (list, tuple):
            items = [self.to_wire(v, depth + 1) for v in value]
            return items if type(value) is list else tuple(items)
        if type(value) is dict:
            return {str(k): self.to_wire(v, depth + 1) for k, v in value.items()}
        raise NotPortable(f"a {type(value).__module__}.{type(value).__qualname__} cannot be sent to student code; "
                          "build it with gradelib.checks.assertions.portable")

    def from_wire(self, value, label: str):
        if isinstance(value, dict):
            if "__handle__" in value and type(value["__handle__"]) is int:
                return RemoteObject(self, value["__handle__"], label, str(value.get("type", "?"))[:200])
            return {k: self.from_wire(v, f"{label}[{k!r}]") for k, v in value.items()}
        if isinstance(value, list):
            return [self.from_wire(v, f"{label}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return tuple(self.from_wire(v, f"{label}[{i}]") for i, v in enumerate(value))
        return value

    def seed(self, seed: int) -> None:
        """Seed torch's global generator in the student process (``assertions.seed_student``)."""
        self.request({"op": "seed", "seed": int(seed)})

    def get(self, name: str):
        """The student's global ``name``: plain data, or a proxy."""
        return self.from_wire(self.request({"op": "get", "name": name})["ok"], name)

    def call(self, target: dict, args, kwargs, label: str, op: str = "call", wrt=None):
        message = {"op": op, **target, "args": [self.to_wire(a) for a in args],
                   "kwargs": {k: self.to_wire(v) for k, v in kwargs.items()}}
        if wrt is not None:
            message["wrt"] = [w if isinstance(w, int) else list(w) for w in wrt]
        reply = self.request(message)
        self._apply_updates(args, kwargs, reply.get("updates"))
        return self.from_wire(reply["ok"], f"{label}(...)")

    def _apply_updates(self, args, kwargs, updates) -> None:
        """Copy back what the call changed in the check's own arguments (module weights,
        tensors changed in place, generator states), after validating each against the
        argument's own shapes and dtypes."""
        if not isinstance(updates, dict):
            return
        pairs = list(zip(args, updates.get("args", []) if isinstance(updates.get("args"), list) else []))
        kw = updates.get("kwargs") if isinstance(updates.get("kwargs"), dict) else {}
        pairs += [(kwargs[k], v) for k, v in kw.items() if k in kwargs]
        for original, update in pairs:
            if not isinstance(update, dict) or isinstance(original, RemoteObject):
                continue
            try:
                if isinstance(original, torch.nn.Module) and isinstance(update.get("state"), dict):
                    mine = original.state_dict()
                    state = update["state"]
                    if set(state) == set(mine) and all(isinstance(state[k], torch.Tensor) and
                                                       state[k].shape == mine[k].shape for k in mine):
                        original.load_state_dict({k: state[k].to(mine[k].dtype) for k in mine})
                elif isinstance(original, torch.Tensor) and isinstance(update.get("tensor"), torch.Tensor):
                    new = update["tensor"]
                    if new.shape == original.shape:
                        with torch.no_grad():
                            original.copy_(new.to(original.dtype))
                elif isinstance(original, torch.Generator) and isinstance(update.get("generator"), torch.Tensor):
                    original.set_state(update["generator"].to(torch.uint8))
            except (RuntimeError, ValueError, TypeError):
                continue  # an update that does not fit is ignored: the check sees the old value


class RemoteObject:
    """A student object that lives in the sandboxed process (see the module docstring)."""

    __slots__ = ("_process", "_handle", "_label", "_type")

    def __init__(self, process: StudentProcess, handle: int, label: str, type_name: str):
        object.__setattr__(self, "_process", process)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_type", type_name)

    def __call__(self, *args, **kwargs):
        return self._process.call({"handle": self._handle}, args, kwargs, self._label)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        reply = self._process.request({"op": "getattr", "handle": self._handle, "attribute": name})
        return self._process.from_wire(reply["ok"], f"{self._label}.{name}")

    def __setattr__(self, name, value):
        raise AttributeError("student objects are read-only for checks")

    def __iter__(self):
        reply = self._process.request({"op": "iter", "handle": self._handle})
        return iter(self._process.from_wire(reply["ok"], f"list({self._label})"))

    def __len__(self) -> int:
        value = self._process.request({"op": "len", "handle": self._handle})["ok"]
        if type(value) is not int or value < 0:
            raise TypeError(f"len({self._label}) is not a non-negative int")
        return value

    def __repr__(self) -> str:
        return f"<student {self._type} {self._label}>"

    def _describe_remote(self) -> dict:
        info = self._process.request({"op": "describe", "handle": self._handle})["ok"]
        if not isinstance(info, dict):
            raise TypeError("describe: not a dict")
        return info

    def _call_with_gradients_remote(self, args: list, kwargs: dict, wrt: list):
        result = self._process.call({"handle": self._handle}, args, kwargs, self._label,
                                    op="call_with_gradients", wrt=wrt)
        if not isinstance(result, tuple) or len(result) != 2 or not isinstance(result[1], list) \
                or len(result[1]) != len(wrt):
            raise TypeError("call_with_gradients: a reply of the wrong form")
        return result


def stage_harness(directory: Path) -> Path:
    """Copy ``harness.py`` and ``wire.py`` (nothing else) into ``directory``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).parent
    for name in HARNESS_FILES:
        (directory / name).write_bytes((here / name).read_bytes())
    return directory
