"""Verification outside the student's kernel, and the "own work" rule.

The in-kernel run (``kernel.py``) executes the hidden tests in the same interpreter as the
student's code, which can rewrite them (IPython input and AST transformers, patched
modules, objects whose ``__eq__`` is always true). This module grades again in a *fresh*
process, in the same sandbox, that never runs an IPython shell:

1. the parent builds a plan from the instructor's source notebook (``verification_plan``):
   the student's code cells in order, the instructor's setup cells they need (imports,
   data; chosen by the names the student's code and the checks use), and for each test
   cell the ``gradelib.checks`` calls of its hidden tests (``check_q1(q1_answer,
   q1_tanh_backward)``), with the student's names as arguments;
2. the child (``python -m gradelib.grading.verify``, reading the plan on stdin) imports the
   check functions *before* any student code runs, snapshots the ``gradelib``, ``torch``,
   ``numpy``, ``math`` and ``builtins`` module dictionaries, executes each cell with a
   per-cell alarm (errors are recorded, execution continues), runs each test cell's checks
   right where the test cell is (so a later crash keeps the earlier results), and writes
   one JSON line per result on a pipe (the student's own stdout/stderr go to /dev/null);
   a check whose modules were modified since the snapshot counts as failed ("tampered");
3. own work: a graded name bound to ``gradelib``'s reference implementation of the same
   name (identity, ``__wrapped__``/``functools.partial``, a subclass, a ``gradelib``
   ``__module__``, or a function whose code refers to the reference through a global,
   closure or default) is reported by the child; the parent also reads the student's code
   (``own_work_static``) for imports of the reference module (``from gradelib.autoencoders
   import reconstruction_loss as f``, ``import gradelib.autoencoders as g``,
   ``importlib.import_module("gradelib.autoencoders")``, ``__import__``). The reference
   stays importable for everything else.

Residual risk, stated plainly: the checks run in the same process as the student's code,
so a determined student can still forge this process's results (find the pipe, patch an
object the snapshot does not cover). The grade is the minimum of both runs, so a forger
must defeat two different processes, and the code scan (``tamper.py``) flags the usual
tools (IPython hooks, ``sys.modules``, ``builtins``, ``os._exit``...).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import symtable
import threading
import time
import uuid

from gradelib.grading.cells import cell_source, grade_id, hidden_tests, is_graded, is_solution, nbgrader_metadata
from gradelib.grading.sandbox import Sandbox

# gradelib modules that hold reference implementations (the graded API of each family).
REFERENCE_MODULES = ("gradelib.autoencoders", "gradelib.pixelcnn", "gradelib.vae", "gradelib.gan",
                     "gradelib.wgan", "gradelib.mixture", "gradelib.digit_classifier")
WATCHED_MODULES = ("builtins", "math", "numpy", "torch", "torch.nn.functional", "torch.linalg",
                   "torch.testing")
# torch modules that patch torch's namespace when first imported (torch._dynamo wraps
# torch.manual_seed): imported before the snapshot, so that legitimate code importing them
# later (an optimizer does) is not mistaken for tampering.
LAZY_PATCHERS = ("torch._dynamo", "torch.optim")
MAX_RESULT_BYTES = 2_000_000


# ----------------------------------------------------------------------------- the plan

def check_calls(hidden: str) -> list[dict]:
    """The ``gradelib.checks`` calls of a hidden-test block.

    Returns:
        ``[{"module": "gradelib.checks.hw6_exercises", "function": "check_q1", "args":
        ["q1_answer", "q1_tanh_backward"], "kwargs": {}}]``; a call whose arguments are not
        plain names is skipped (it could not be re-run from the student's names alone).
    """
    try:
        tree = ast.parse(hidden)
    except SyntaxError:
        return []
    imported: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gradelib.checks"):
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module, alias.name)
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported:
            if all(isinstance(a, ast.Name) for a in node.args) and \
                    all(isinstance(k.value, ast.Name) and k.arg for k in node.keywords):
                module, function = imported[node.func.id]
                calls.append({"module": module, "function": function,
                              "args": [a.id for a in node.args],
                              "kwargs": {k.arg: k.value.id for k in node.keywords}})
    return calls


def _trains_model(call: dict) -> bool:
    """Whether a check call's function is marked ``@trains_model`` (read in the trusted parent)."""
    import importlib

    try:
        function = getattr(importlib.import_module(call["module"]), call["function"])
    except (ImportError, AttributeError):
        return False
    return bool(getattr(function, "trains_model", False))


def training_checks(plan: dict) -> set[str]:
    """Grade ids of the test cells whose hidden checks train a model (``@trains_model``)."""
    return {step["label"] for step in plan["steps"] if step["kind"] == "check" and step.get("trains_model")}


def _symbols(code: str) -> tuple[set[str], set[str]]:
    """(names defined at top level, global names used anywhere) of Python source."""
    try:
        table = symtable.symtable(code, "<cell>", "exec")
    except SyntaxError:
        return set(), set()
    defined = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    used: set[str] = set()

    def walk(t: symtable.SymbolTable, top: bool) -> None:
        for s in t.get_symbols():
            if s.is_referenced() and (top or s.is_global()):
                used.add(s.get_name())
        for child in t.get_children():
            walk(child, False)

    walk(table, True)
    return defined, used


def verification_plan(notebook, assignment: str, cell_timeout: float) -> dict:
    """The plan the child process executes, from the graded notebook (plain data).

    Args:
        notebook: the graded notebook (``cells.build_graded_notebook(...).notebook``): locked
            cells from the source, student code spliced in.
        assignment: the assignment's name (for messages).
        cell_timeout: seconds allowed per cell and per check call.
    """
    from gradelib.grading.tamper import python_source  # IPython: the parent only

    steps: list[dict] = []
    for cell in notebook["cells"]:
        if cell.get("cell_type") != "code":
            continue
        gid = grade_id(cell)
        text = cell_source(cell)
        if is_graded(cell):
            calls = check_calls(hidden_tests(text))
            steps.append({"kind": "check", "label": gid, "calls": calls,
                          "trains_model": any(_trains_model(call) for call in calls)})
        elif is_solution(cell) or not nbgrader_metadata(cell):
            steps.append({"kind": "student", "label": gid or "added cell", "code": python_source(text)})
        else:
            steps.append({"kind": "setup", "label": gid, "code": python_source(text)})
    # Keep only the setup cells that define a name needed later (walking backwards).
    needed: set[str] = set()
    kept: list[dict] = []
    for step in reversed(steps):
        if step["kind"] == "check":
            for call in step["calls"]:
                needed |= set(call["args"]) | set(call["kwargs"].values())
            kept.append(step)
            continue
        defined, used = _symbols(step["code"])
        if step["kind"] == "student" or defined & needed:
            needed |= used
            kept.append(step)
    return {"assignment": assignment, "cell_timeout": cell_timeout, "steps": kept[::-1],
            "nonce": uuid.uuid4().hex}


def graded_names(plan: dict) -> dict[str, str]:
    """``{name: grade_id}``: each check argument and the first test cell that passes it."""
    names: dict[str, str] = {}
    for step in plan["steps"]:
        if step["kind"] == "check":
            for call in step["calls"]:
                for name in [*call["args"], *call["kwargs"].values()]:
                    names.setdefault(name, step["label"])
    return names


def own_work_static(student_cells: list[tuple[str, str]], names: list[str]) -> dict[str, str]:
    """Graded names whose reference implementation the student's code imports.

    Args:
        student_cells: ``[(label, source)]`` of the student's cells.
        names: the graded names (arguments of the checks).

    Returns:
        ``{name: reason}`` for each name with a reference in ``REFERENCE_MODULES`` that the
        code imports by name, or reaches as an attribute or string while importing (in any
        way) the module that defines it.
    """
    from gradelib.grading.tamper import python_source  # IPython: the parent only

    import importlib

    references: dict[str, list[str]] = {}
    for module_name in REFERENCE_MODULES:
        module = importlib.import_module(module_name)
        for name in names:
            if hasattr(module, name):
                references.setdefault(name, []).append(module_name)
    found: dict[str, str] = {}
    for label, text in student_cells:
        try:
            tree = ast.parse(python_source(text))
        except SyntaxError:
            continue
        modules_touched: set[str] = set()
        attributes: set[str] = set()
        strings: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if node.module in REFERENCE_MODULES and alias.name in references:
                        found.setdefault(alias.name, f"{label}: imports {full}")
                    modules_touched.add(full if full in REFERENCE_MODULES else node.module)
            elif isinstance(node, ast.Import):
                modules_touched |= {a.name for a in node.names}
            elif isinstance(node, ast.Attribute):
                attributes.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
                modules_touched |= {m for m in REFERENCE_MODULES if m in node.value}
                if node.value.startswith("gradelib"):  # importlib.import_module("gradelib." + name)
                    modules_touched.add("gradelib")
        for name, modules in references.items():
            hit = [m for m in modules if m in modules_touched or
                   ("gradelib" in modules_touched and m.rsplit(".", 1)[1] in attributes | strings)]
            if hit and (name in attributes or name in strings):
                found.setdefault(name, f"{label}: reaches {hit[0]}.{name}")
    return found


# ----------------------------------------------------------------------------- the parent

class _Progress:
    """Lines read from the child so far, capped, and when the last one arrived."""

    def __init__(self, limit: int):
        self.limit, self.size, self.chunks = limit, 0, []
        self.last = time.monotonic()
        self.current: str | None = None

    def read(self, stream, nonce: str) -> None:
        for line in iter(lambda: stream.readline(1 << 16), b""):
            self.last = time.monotonic()
            if self.size < self.limit:
                self.chunks.append(line[: self.limit - self.size])
            self.size += len(line)
            if b'"begin"' in line and nonce.encode() in line:
                try:
                    self.current = json.loads(line)["label"]
                except (ValueError, KeyError, TypeError):
                    pass


def run_verification(plan: dict, sandbox: Sandbox) -> dict:
    """Run the plan in a fresh sandboxed process; parse its results.

    Returns:
        plain data ``{"checks": {grade_id: {"status": "pass"|"fail"|"error"|"tampered"|"not
        run"|"no check", "message": str}}, "own_work": {name: reason}, "steps":
        {label: status}, "flags": [...], "seconds": float}``.
    """
    env = dict(sandbox.env(), MPLBACKEND="Agg")
    cmd = sandbox.command([sys.executable, "-I", "-m", "gradelib.grading.verify"])
    start = time.monotonic()
    flags: list[str] = []
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, cwd=str(sandbox.workdir), preexec_fn=sandbox.preexec,
                            start_new_session=True)
    progress = _Progress(MAX_RESULT_BYTES)
    reader = threading.Thread(target=progress.read, args=(proc.stdout, plan["nonce"]), daemon=True)
    reader.start()
    try:
        proc.stdin.write(json.dumps(plan).encode())
        proc.stdin.close()
    except OSError:
        pass
    # Two clocks: the whole run, and each step (the child reports each step's start; a step
    # that ignores the child's own alarm is ended here, from outside).
    deadline = start + sandbox.limits.submission_timeout
    step_limit = float(plan["cell_timeout"]) + 10
    timed_out: str | None = None
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if now > deadline:
                flags.append(f"timeout: verification exceeded {sandbox.limits.submission_timeout:g} s")
                break
            if now - progress.last > step_limit:
                timed_out = progress.current
                flags.append(f"timeout: verification step {timed_out} ran past {step_limit:g} s; process killed")
                break
            time.sleep(0.2)
    finally:
        try:
            os.killpg(proc.pid, 9)
        except OSError:
            pass
        sandbox.kill_all()
        proc.wait()
        reader.join(timeout=10)
    checks: dict[str, dict] = {}
    steps: dict[str, str] = {}
    own_work: dict[str, str] = {}
    done = False
    if timed_out:
        steps[timed_out] = "timeout"
    for line in b"".join(progress.chunks).decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("nonce") != plan["nonce"]:
            continue
        if record.get("type") == "check":
            gid = record.get("grade_id")
            if gid in checks and checks[gid]["status"] != record.get("status"):
                flags.append(f"verification output conflicts for {gid}: forged lines?")
                checks[gid] = {"status": "error", "message": "conflicting results"}
            else:
                checks[gid] = {"status": record.get("status"), "message": str(record.get("message", ""))[:500]}
        elif record.get("type") == "step":
            steps[str(record.get("label"))] = str(record.get("status"))
        elif record.get("type") == "done":
            done = True
        elif record.get("type") == "own_work":
            own_work[str(record.get("name"))] = str(record.get("reason"))
    for step in plan["steps"]:
        if step["kind"] == "check":
            if not step["calls"]:
                checks.setdefault(step["label"], {"status": "no check", "message": "no gradelib check call"})
            checks.setdefault(step["label"], {"status": "not run",
                                              "message": "the verification process ended before this check"})
    if not done and not flags:
        flags.append(f"verification ended early (exit code {proc.returncode}) in step {progress.current}")
    return {"checks": checks, "own_work": own_work, "steps": steps, "flags": flags,
            "seconds": round(time.monotonic() - start, 2)}


# ----------------------------------------------------------------------------- the child

class _StepTimeout(BaseException):
    """Raised by the alarm when a cell or check runs past its time."""


class _NoIPython:
    """What ``get_ipython()`` returns here: magics do nothing, nothing else exists."""

    def run_line_magic(self, *args, **kwargs):
        return None

    def run_cell_magic(self, *args, **kwargs):
        return None

    def system(self, *args, **kwargs):
        return None

    getoutput = system


def _snapshot(modules: list[str]) -> dict[str, dict[str, int]]:
    snap = {}
    for name in modules:
        module = sys.modules.get(name)
        if module is not None:
            snap[name] = {"__module_id__": id(module), **{k: id(v) for k, v in vars(module).items()}}
    import torch

    snap["torch.Tensor"] = {k: id(v) for k, v in vars(torch.Tensor).items()}
    return snap


def _changed(before: dict[str, dict[str, int]], modules: list[str]) -> list[str]:
    now = _snapshot(modules)
    changed = []
    for name, attrs in before.items():
        current = now.get(name, {})
        if name != "torch.Tensor" and id(sys.modules.get(name)) != attrs["__module_id__"]:
            changed.append(f"sys.modules[{name!r}] replaced")
            continue
        for key, ident in attrs.items():
            if key != "__module_id__" and current.get(key) != ident:
                changed.append(f"{name}.{key}")
    return changed


def _code_names(code) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _code_names(const)
    return names


def _is_reference(obj, references: list, namespace: dict, depth: int = 0) -> str:
    """Why ``obj`` is (or calls) one of ``references``, or "" if it is the student's own."""
    import functools
    import inspect

    if depth > 3:
        return ""
    for ref in references:
        if obj is ref:
            return "is gradelib's reference"
    inner = getattr(obj, "__wrapped__", None) or (obj.func if isinstance(obj, functools.partial) else None)
    if inner is not None and _is_reference(inner, references, namespace, depth + 1):
        return "wraps gradelib's reference"
    if inspect.isclass(obj):
        if any(ref in obj.__mro__ for ref in references if inspect.isclass(ref)):
            return "subclasses gradelib's reference"
        members = [m for m in vars(obj).values() if callable(m) or isinstance(m, (staticmethod, classmethod))]
    else:
        members = [obj]
    if str(getattr(obj, "__module__", "") or "").startswith("gradelib"):
        return f"comes from {obj.__module__}"
    for member in members:
        member = getattr(member, "__func__", member)
        code = getattr(member, "__code__", None)
        if code is None:
            continue
        scope = getattr(member, "__globals__", namespace)
        for name in _code_names(code):
            value = scope.get(name)
            if any(value is ref for ref in references):
                return f"calls gradelib's reference through the global {name!r}"
            if value is not None and inspect.ismodule(value) and value.__name__ in REFERENCE_MODULES:
                for ref in references:
                    if getattr(value, getattr(ref, "__name__", ""), None) is ref and ref.__name__ in code.co_names | _code_names(code):
                        return f"calls {value.__name__}.{ref.__name__}"
        for cell in getattr(member, "__closure__", None) or ():
            try:
                if any(cell.cell_contents is ref for ref in references):
                    return "calls gradelib's reference through a closure"
            except ValueError:
                continue
        for default in (getattr(member, "__defaults__", None) or ()):
            if any(default is ref for ref in references):
                return "takes gradelib's reference as a default argument"
    return ""


def _child() -> None:
    """Entry point of the verification process (``python -m gradelib.grading.verify``)."""
    import importlib
    import importlib.util
    import signal

    plan = json.loads(sys.stdin.read())
    nonce = plan.pop("nonce")
    results = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.stdout = sys.stderr = open(os.devnull, "w")

    def emit(**record) -> None:
        results.write(json.dumps({**record, "nonce": nonce}) + "\n")

    functions = {}
    for step in plan["steps"]:
        for call in step.get("calls", []):
            module = importlib.import_module(call["module"])
            functions[(call["module"], call["function"])] = getattr(module, call["function"])
    for name in REFERENCE_MODULES:
        importlib.import_module(name)
    watched = [m for m in sys.modules if m == "gradelib" or m.startswith("gradelib.")] + \
              [m for m in WATCHED_MODULES if importlib.util.find_spec(m) is not None]
    for name in WATCHED_MODULES:
        importlib.import_module(name)
    for name in LAZY_PATCHERS:  # they rewrap torch functions on first import (torch.manual_seed)
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    before = _snapshot(watched)
    names = graded_names(plan)
    references = {name: [getattr(sys.modules[m], name) for m in REFERENCE_MODULES if hasattr(sys.modules[m], name)]
                  for name in names}

    def alarm(signum, frame):
        raise _StepTimeout()

    signal.signal(signal.SIGALRM, alarm)
    namespace: dict = {"__name__": "__main__", "get_ipython": _NoIPython}
    timeout = float(plan["cell_timeout"])
    for step in plan["steps"]:
        emit(type="begin", label=step["label"])
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            if step["kind"] != "check":
                try:
                    exec(compile(step["code"], f"<{step['label']}>", "exec"), namespace)
                    emit(type="step", label=step["label"], status="ok")
                except _StepTimeout:
                    emit(type="step", label=step["label"], status="timeout")
                except BaseException as error:  # student code: anything, SystemExit included
                    emit(type="step", label=step["label"], status=f"error: {type(error).__name__}")
                continue
            changed = _changed(before, watched)
            if changed:
                emit(type="check", grade_id=step["label"], status="tampered",
                     message="modules modified before this check: " + ", ".join(changed[:5]))
                continue
            status, message = "pass", ""
            for call in step["calls"]:
                for name in [*call["args"], *call["kwargs"].values()]:
                    if names.get(name) == step["label"] and name in namespace and references.get(name):
                        why = _is_reference(namespace[name], references[name], namespace)
                        if why:
                            emit(type="own_work", name=name, reason=why)
                try:
                    args = [namespace[a] for a in call["args"]]
                    kwargs = {k: namespace[v] for k, v in call["kwargs"].items()}
                except KeyError as missing:
                    status, message = "error", f"{missing.args[0]} is not defined"
                    break
                try:
                    functions[(call["module"], call["function"])](*args, **kwargs)
                except _StepTimeout:
                    status, message = "error", f"{call['function']} ran past {timeout:g} s"
                    break
                except AssertionError as error:
                    status, message = "fail", str(error)[:500]
                    break
                except BaseException as error:
                    status, message = "error", f"{type(error).__name__}: {str(error)[:400]}"
                    break
            changed = _changed(before, watched)
            if changed:
                status, message = "tampered", "modules modified during the check: " + ", ".join(changed[:5])
            emit(type="check", grade_id=step["label"], status=status, message=message)
        except _StepTimeout:
            emit(type="check", grade_id=step.get("label"), status="error", message="timeout")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    emit(type="done")
    results.flush()
    os._exit(0)  # skip interpreter teardown: student objects' __del__ must not run after this


if __name__ == "__main__":
    _child()
