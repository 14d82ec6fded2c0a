"""The sandboxed side of the trusted-checker protocol: run the student's code, answer calls.

``python harness.py`` runs inside the sandbox (``sandbox.py``), as a fresh interpreter with no
IPython. It executes the cells it is sent (the instructor's setup cells and the student's
code, in notebook order, each under a clock; an error is recorded and execution goes on),
then serves requests from the trusted checker until its input ends: look up a name, call an
object, read an attribute, iterate, describe, differentiate a call. Every argument and every
reply is plain data (``wire.py``); what is not plain data stays here and is named by a handle.

It holds no check, no answer and no reference implementation: what it computes is only what
the student's code computes on inputs chosen by the trusted side, which compares them with
its own references in a process that never runs student code. A student who rewrites this
process (its framing, its tables, its replies) can change only the outputs it reports, which
is no more than their own functions could return.

The file imports only the standard library, torch and ``wire.py``: it is mounted into the
sandbox on its own, without ``gradelib.checks`` or ``gradelib.grading``.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
import traceback

import torch

if __name__ == "__main__":  # a loose file beside wire.py in the sandbox (python -I: no script dir)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import wire  # type: ignore[import-not-found]
else:  # imported from the package in the instructor's environment
    from gradelib.grading import wire

#: Where a portable object's constructor may come from: ``assertions.PUBLIC_PREFIXES``, sent
#: by the trusted side with the setup (this file imports nothing of gradelib's).
PUBLIC_PREFIXES = ["torch.nn."]
REPLY_TENSOR_BYTES = 256 * 2**20
REQUEST_BYTES = 512 * 2**20

_AUTOGRAD_ENTRY_POINTS = [
    ("torch.autograd", "grad"), ("torch.autograd", "backward"), ("torch.Tensor", "backward"),
    ("torch.autograd.functional", "jacobian"), ("torch.autograd.functional", "hessian"),
    ("torch.autograd.functional", "vjp"), ("torch.autograd.functional", "jvp"),
    ("torch.func", "grad"), ("torch.func", "grad_and_value"), ("torch.func", "jacrev"),
    ("torch.func", "jacfwd"), ("torch.func", "hessian"), ("torch.func", "vjp"), ("torch.func", "jvp"),
]


class AutogradForbidden(RuntimeError):
    """Raised inside a call made under ``forbid_autograd`` when student code uses autograd."""


# ----------------------------------------------------------------------------- shared helpers

def _qualname(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def describe_object(obj) -> dict:
    """Plain-data description of an object (``assertions.describe`` documents the fields)."""
    kind = type(obj)
    info = {"type": _qualname(kind), "mro": [_qualname(k) for k in kind.__mro__], "callable": callable(obj),
            "modules": []}
    if isinstance(obj, torch.nn.Module):
        info["training"] = bool(obj.training)
        for name, module in obj.named_modules():
            info["modules"].append({
                "name": name, "type": _qualname(type(module)),
                "parameters": {n: list(p.shape) for n, p in module.named_parameters(recurse=False)},
                "buffers": {n: list(b.shape) for n, b in module.named_buffers(recurse=False) if b is not None},
                "extra_repr": str(module.extra_repr())[:500]})
    return info


def build_portable(spec: dict):
    """Rebuild a portable object from its recipe (``assertions.portable``).

    Raises:
        ValueError: the recipe names a callable outside ``PUBLIC_PREFIXES``.
    """
    path = spec.get("path")
    if not isinstance(path, str) or not path.startswith(tuple(PUBLIC_PREFIXES)) or ".checks" in path \
            or ".grading" in path or "._" in path:
        raise ValueError(f"portable object {path!r} is not public")
    module_name, _, attribute = path.rpartition(".")
    factory = getattr(importlib.import_module(module_name), attribute)
    args = [_from_portable(a) for a in spec.get("args", [])]
    kwargs = {k: _from_portable(v) for k, v in spec.get("kwargs", {}).items()}
    obj = factory(*args, **kwargs)
    state = spec.get("state")
    if state is not None and isinstance(obj, torch.nn.Module):
        obj.load_state_dict(state)
    if spec.get("attribute"):
        return getattr(obj, spec["attribute"])
    return obj


def _from_portable(value):
    if isinstance(value, dict) and set(value) == {"__portable__"}:
        return build_portable(value["__portable__"])
    if isinstance(value, list):
        return [_from_portable(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_from_portable(v) for v in value)
    return value


def gradients_of_call(fn, args: list, kwargs: dict, wrt: list):
    """Call ``fn(*args, **kwargs)`` and differentiate ``output.sum()`` (``assertions.call_with_gradients``).

    Returns:
        ``(output detached, grads)``.

    Raises:
        TypeError: ``wrt`` names an argument that is not a tensor or a module, or the output
            is not a tensor.
    """
    args = list(args)
    inputs: list[torch.Tensor] = []
    layout: list = []
    for item in wrt:
        if isinstance(item, int) and not isinstance(item, bool):
            if not isinstance(args[item], torch.Tensor):
                raise TypeError(f"wrt {item}: argument is not a tensor")
            args[item] = args[item].detach().clone().requires_grad_(True)
            layout.append(("tensor", len(inputs)))
            inputs.append(args[item])
        elif isinstance(item, (list, tuple)) and len(item) == 2 and item[0] == "parameters":
            module = args[item[1]]
            if not isinstance(module, torch.nn.Module):
                raise TypeError(f"wrt {item}: argument is not a module")
            names = []
            for name, parameter in module.named_parameters():
                names.append((name, len(inputs)))
                inputs.append(parameter)
            layout.append(("parameters", names))
        else:
            raise TypeError(f"wrt: expected an int or ('parameters', i), got {item!r}")
    with torch.enable_grad():
        output = fn(*args, **kwargs)
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"returned {type(output).__name__}; expected a tensor")
        if output.requires_grad and inputs:
            grads = torch.autograd.grad(output.sum(), inputs, allow_unused=True)
        else:
            grads = [None] * len(inputs)
    result = []
    for kind, where in layout:
        if kind == "tensor":
            result.append(None if grads[where] is None else grads[where].detach())
        else:
            result.append({name: None if grads[i] is None else grads[i].detach() for name, i in where})
    return output.detach(), result


# ----------------------------------------------------------------------------- the server

class _NoIPython:
    """What ``get_ipython()`` returns here: magics (``%matplotlib inline``) do nothing."""

    def run_line_magic(self, *args, **kwargs):
        return None

    def run_cell_magic(self, *args, **kwargs):
        return None

    def system(self, *args, **kwargs):
        return None

    getoutput = system


class Harness:
    """The request loop; ``namespace`` is the student's globals, ``handles`` what stays here."""

    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd, self.write_fd = read_fd, write_fd
        self.namespace: dict = {"__name__": "__main__", "__builtins__": __builtins__, "get_ipython": _NoIPython}
        self.handles: dict[int, object] = {}
        self.next_handle = 1

    # --- plain data in and out
    def to_wire(self, value, depth: int = 0):
        if value is None or type(value) in (bool, int, float, str) or isinstance(value, torch.Tensor):
            return value
        if type(value).__module__ == "numpy":
            import numpy as np

            if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.kind in "biuf":
                return torch.from_numpy(np.array(value, copy=True))
        if depth < 8 and isinstance(value, (list, tuple)):  # torch.Size, namedtuples: plain tuples
            items = [self.to_wire(v, depth + 1) for v in value]
            return items if isinstance(value, list) else tuple(items)
        if depth < 8 and isinstance(value, dict) and all(type(k) is str for k in value):  # OrderedDict
            return {k: self.to_wire(v, depth + 1) for k, v in value.items()}
        handle = self.next_handle
        self.next_handle += 1
        self.handles[handle] = value
        return {"__handle__": handle, "type": _qualname(type(value)), "callable": callable(value)}

    def from_wire(self, value):
        if isinstance(value, dict):
            if set(value) == {"__handle__"}:
                return self.handles[value["__handle__"]]
            if set(value) == {"__generator__"}:
                generator = torch.Generator()
                generator.set_state(value["__generator__"]["state"].to(torch.uint8))
                return generator
            if set(value) == {"__portable__"}:
                return build_portable(value["__portable__"])
            return {k: self.from_wire(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.from_wire(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.from_wire(v) for v in value)
        return value

    def send(self, message) -> None:
        try:
            frame = wire.encode(message, REPLY_TENSOR_BYTES)
        except wire.WireError as error:
            frame = wire.encode({"id": message.get("id"), "error": {"type": "WireError", "message": str(error)}},
                                REPLY_TENSOR_BYTES)
        view = memoryview(frame)
        while view:
            written = os.write(self.write_fd, view)
            view = view[written:]

    def receive(self):
        return wire.decode(wire.read_frame(lambda n: os.read(self.read_fd, n), REQUEST_BYTES))

    # --- running code
    def run_cells(self, cells: list[dict], cell_timeout: float, progress=None) -> list[dict]:
        """Run each cell under ``cell_timeout``; ``progress(index)`` after each one."""
        statuses = []
        for index, cell in enumerate(cells):
            start = time.monotonic()
            status = "ok"
            try:
                code = compile(cell["code"], f"<cell {cell['label']}>", "exec")
                with _alarm(cell_timeout):
                    exec(code, self.namespace)  # noqa: S102 - the student's code, in the sandbox
            except BaseException as error:  # noqa: BLE001 - recorded, execution goes on
                status = f"{type(error).__name__}: {str(error)[:300]}"
            statuses.append({"label": cell["label"], "status": status,
                             "seconds": round(time.monotonic() - start, 3)})
            if progress is not None:
                progress(index)
        return statuses

    def target(self, request: dict):
        if "handle" in request:
            return self.handles[request["handle"]]
        name = request["name"]
        if name not in self.namespace:
            raise NameError(f"name {name!r} is not defined")
        return self.namespace[name]

    def call(self, request: dict):
        fn = self.target(request)
        args = [self.from_wire(a) for a in request.get("args", [])]
        kwargs = {k: self.from_wire(v) for k, v in request.get("kwargs", {}).items()}
        versions = [a._version if isinstance(a, torch.Tensor) else None for a in args]
        kw_versions = {k: v._version if isinstance(v, torch.Tensor) else None for k, v in kwargs.items()}
        options = request.get("options", {})
        with _autograd_forbidden(options.get("forbid_autograd")):
            if request["op"] == "call_with_gradients":
                result = gradients_of_call(fn, args, kwargs, request.get("wrt", []))
            else:
                result = fn(*args, **kwargs)
        updates = {"args": [_update(a, v) for a, v in zip(args, versions)],
                   "kwargs": {k: _update(v, kw_versions[k]) for k, v in kwargs.items()}}
        return self.to_wire(result), updates

    def serve(self) -> None:
        setup = self.receive()
        torch.set_num_threads(int(setup.get("threads", 1)))
        PUBLIC_PREFIXES[:] = [str(p) for p in setup.get("public_prefixes", [])] or PUBLIC_PREFIXES
        statuses = self.run_cells(setup.get("cells", []), float(setup.get("cell_timeout", 300)),
                                  lambda index: self.send({"id": setup.get("id"), "progress": index}))
        self.send({"id": setup.get("id"), "ok": statuses})
        while True:
            try:
                request = self.receive()
            except EOFError:
                return
            reply = {"id": request.get("id")}
            start = time.process_time()
            try:
                op = request.get("op")
                if "seed" in request:
                    torch.manual_seed(int(request["seed"]))
                if op == "get":
                    reply["ok"] = self.to_wire(self.target(request))
                elif op == "getattr":
                    reply["ok"] = self.to_wire(getattr(self.target(request), request["attribute"]))
                elif op in ("call", "call_with_gradients"):
                    reply["ok"], reply["updates"] = self.call(request)
                elif op == "iter":
                    reply["ok"] = [self.to_wire(v) for v in list(self.target(request))[:10_000]]
                elif op == "len":
                    reply["ok"] = len(self.target(request))
                elif op == "describe":
                    reply["ok"] = describe_object(self.target(request))
                elif op == "seed":
                    reply["ok"] = None
                else:
                    raise ValueError(f"unknown request {op!r}")
            except BaseException as error:  # noqa: BLE001 - the student's error, reported as data
                if isinstance(error, KeyboardInterrupt):
                    raise
                reply.pop("ok", None)
                reply["error"] = {"type": type(error).__name__, "message": str(error)[:2000],
                                  "traceback": "".join(traceback.format_exception(error, limit=-4))[-3000:]}
            reply["cpu_s"] = round(time.process_time() - start, 3)
            self.send(reply)


def _update(value, version):
    """What the trusted side copies back after a call: a module's state, a changed tensor,
    a generator's state."""
    if isinstance(value, torch.nn.Module):
        return {"state": {k: v for k, v in value.state_dict().items()}}
    if isinstance(value, torch.Tensor) and value._version != version:
        return {"tensor": value}
    if isinstance(value, torch.Generator):
        return {"generator": value.get_state()}
    return None


class _alarm:
    """SIGALRM after ``seconds`` (the trusted side's clock is the one that counts)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        def expire(signum, frame):
            raise TimeoutError(f"cell ran over {self.seconds:g} s")

        self.previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)
        return False


class _autograd_forbidden:
    def __init__(self, hint):
        self.hint = hint

    def __enter__(self):
        self.saved = []
        if not self.hint:
            return
        hint = self.hint

        def refuse(*_args, **_kwargs):
            raise AutogradForbidden(f"called torch's automatic differentiation. Hint: {hint}")

        for owner_path, name in _AUTOGRAD_ENTRY_POINTS:
            owner = torch.Tensor if owner_path == "torch.Tensor" else importlib.import_module(owner_path)
            self.saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, refuse)
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()

    def __exit__(self, *exc):
        if self.saved:
            self.no_grad.__exit__(*exc)
        for owner, name, original in self.saved:
            setattr(owner, name, original)
        return False


def main() -> None:
    """Keep the channel on private descriptors; the student's stdio goes to /dev/null."""
    read_fd, write_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.stdin = open(os.devnull)  # noqa: SIM115
    os.environ.setdefault("MPLBACKEND", "Agg")
    Harness(read_fd, write_fd).serve()


if __name__ == "__main__":
    main()
