"""The trusted checker: every grade comes from here, in a process that never runs student code.

The invariant: **no grade, comparison, answer-key lookup or metric is computed in a process
that has executed student code.** This module runs in the grading worker (a process of the
instructor's that only ever reads plain data from student processes):

1. ``trusted_plan`` reads the graded notebook (locked cells from the instructor's source,
   the student's cells from the submission, ``cells.build_graded_notebook``): the code cells
   to run in the student process, in notebook order (every setup and student cell, except
   test cells and cells the instructor tagged ``grader-skip``: demonstrations that define
   nothing the graded code needs), and, per test cell, the ``gradelib.checks`` calls of its
   hidden tests with the student's names as arguments;
2. ``run_trusted_checks`` starts the harness in the sandbox (``remote.StudentProcess``),
   which runs those cells, then calls each check *here*, with each student name resolved to
   plain data or to a ``RemoteObject`` proxy. The check builds its seeded inputs, asks the
   student process for outputs, and compares them with references computed here;
3. a check passes (full points) or fails (0) with its message; a student process that dies,
   hangs or replies out of protocol fails the check being run, is flagged, and is started
   afresh (at most ``MAX_RESTARTS`` times) for the checks that follow.

The checks and their references live in ``gradelib.checks``, which the sandbox does not
mount: student code cannot read them, import them or patch them.
"""

from __future__ import annotations

import ast
import importlib
import time
from pathlib import Path

from gradelib.checks import assertions
from gradelib.grading.cells import cell_source, grade_id, hidden_tests, is_graded, is_solution, nbgrader_metadata
from gradelib.grading.remote import NotPortable, RemoteObject, StudentError, StudentProcess, StudentProcessFault
from gradelib.grading.sandbox import Sandbox

SKIP_TAG = "grader-skip"
MAX_RESTARTS = 2
CHECK_MODULE_PREFIX = "gradelib.checks."


def check_calls(hidden: str) -> list[dict]:
    """The ``gradelib.checks`` calls of a hidden-test block.

    Returns:
        ``[{"module": "gradelib.checks.hw6_exercises", "function": "check_q1", "args":
        ["q1_answer", "q1_tanh_backward"], "kwargs": {}}]``; a call whose arguments are not
        plain names is skipped (it could not be made from the student's names alone).
    """
    try:
        tree = ast.parse(hidden)
    except SyntaxError:
        return []
    imported: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(CHECK_MODULE_PREFIX):
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


def is_skipped(cell: dict) -> bool:
    """True for a locked cell the instructor tagged ``grader-skip`` (a demonstration)."""
    tags = cell.get("metadata", {}).get("tags", []) or []
    return SKIP_TAG in tags and not is_solution(cell) and bool(nbgrader_metadata(cell))


def trusted_plan(notebook) -> dict:
    """What the trusted checker does for one graded notebook, as plain data.

    Returns:
        ``{"cells": [{"label", "code"}], "checks": [{"label": grade_id, "calls": [...]}]}``:
        the Python source of every code cell to run in the student process (IPython syntax
        translated), and the hidden checks of every test cell in notebook order.
    """
    from gradelib.grading.tamper import python_source  # IPython: this (trusted) process only

    cells, checks = [], []
    for index, cell in enumerate(notebook["cells"]):
        if cell.get("cell_type") != "code":
            continue
        text = cell_source(cell)
        if is_graded(cell):
            checks.append({"label": grade_id(cell), "calls": check_calls(hidden_tests(text))})
        elif not is_skipped(cell):
            label = grade_id(cell) or (f"added cell {index}" if not nbgrader_metadata(cell) else f"cell {index}")
            cells.append({"label": label, "code": python_source(text)})
    return {"cells": cells, "checks": checks}


def graded_names(plan: dict) -> dict[str, str]:
    """``{name: grade_id}``: each check argument and the first test cell that passes it."""
    names: dict[str, str] = {}
    for check in plan["checks"]:
        for call in check["calls"]:
            for name in [*call["args"], *call["kwargs"].values()]:
                names.setdefault(name, check["label"])
    return names


def _check_function(call: dict):
    if not call["module"].startswith(CHECK_MODULE_PREFIX):
        raise ValueError(f"not a check module: {call['module']}")
    return getattr(importlib.import_module(call["module"]), call["function"])


def _resolve(process: StudentProcess, name: str):
    try:
        return process.get(name)
    except NameError:
        return _Missing(name)


class _Missing:
    """A name the student's notebook does not define (the check reports it)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise NameError(f"name {self.name!r} is not defined in the notebook")

    def __getattr__(self, attribute):
        raise NameError(f"name {self.name!r} is not defined in the notebook")

    def __repr__(self) -> str:
        return f"<undefined {self.name}>"


def run_trusted_checks(plan: dict, sandbox: Sandbox, harness_dir: Path) -> dict:
    """Grade every test cell of ``plan`` with its checks, against a sandboxed student process.

    Returns:
        plain data ``{"checks": {grade_id: {"status": "pass"|"fail"|"error"|"no check",
        "message": str, "seconds": float}}, "cells": [{"label", "status", "seconds"}],
        "flags": [...], "requests": int, "seconds": float}``.
    """
    limits = sandbox.limits
    start = time.monotonic()
    deadline = start + limits.submission_timeout
    flags: list[str] = []
    checks: dict[str, dict] = {}
    cells: list[dict] = []
    restarts = 0
    process: StudentProcess | None = None
    requests = 0

    def fresh_process() -> StudentProcess | None:
        nonlocal cells, requests
        if process is not None:
            requests += process.requests
            process.close()
        candidate = StudentProcess(sandbox, harness_dir)
        try:
            statuses = candidate.start(plan["cells"], max(1.0, deadline - time.monotonic()))
        except StudentProcessFault as fault:
            flags.append(f"student process: the notebook's cells did not finish: {fault}")
            candidate.close()
            return None
        if not cells:
            cells = statuses
        return candidate

    try:
        process = fresh_process()
        for check in plan["checks"]:
            gid = check["label"]
            began = time.monotonic()
            if not check["calls"]:
                checks[gid] = {"status": "no check", "message": "this test cell has no gradelib check",
                               "seconds": 0.0}
                flags.append(f"no trusted check: {gid} (graded by hand)")
                continue
            if process is None or process.dead:
                if process is not None and restarts < MAX_RESTARTS and time.monotonic() < deadline:
                    restarts += 1
                    process = fresh_process()
                if process is None or process.dead:
                    checks[gid] = {"status": "error", "message": "the student process could not be run",
                                   "seconds": 0.0}
                    continue
            status, message = "pass", ""
            token = assertions._SEED_HOOK.set(process.seed)
            options = assertions.CALL_OPTIONS.set(
                {"deadline_s": max(1.0, min(limits.cell_timeout, deadline - time.monotonic()))})
            try:
                for call in check["calls"]:
                    function = _check_function(call)
                    args = [_resolve(process, name) for name in call["args"]]
                    kwargs = {key: _resolve(process, name) for key, name in call["kwargs"].items()}
                    function(*args, **kwargs)
            except AssertionError as failure:
                status, message = "fail", str(failure)[:1500]
            except StudentProcessFault as fault:
                status, message = "error", f"the student process failed during this check: {fault}"
                flags.append(f"student process: {gid}: {fault}")
            except NotPortable as error:
                status, message = "error", f"grader error: the check could not send its input: {error}"
                flags.append(f"check error: {gid}: {error}")
            except (NameError, StudentError) as error:  # an undefined name, outside call_student
                status, message = "fail", f"{type(error).__name__}: {str(error)[:500]}"
            except Exception as error:  # noqa: BLE001 - a reply the check could not use
                status, message = "error", f"the check could not use the student's reply: {type(error).__name__}: {str(error)[:300]}"
                flags.append(f"check error: {gid}: {type(error).__name__}: {str(error)[:200]}")
            finally:
                assertions.CALL_OPTIONS.reset(options)
                assertions._SEED_HOOK.reset(token)
            checks[gid] = {"status": status, "message": message, "seconds": round(time.monotonic() - began, 2)}
    finally:
        if process is not None:
            requests += process.requests
            process.close()
    if time.monotonic() > deadline:
        flags.append(f"timeout: the trusted checks exceeded {limits.submission_timeout:g} s")
    return {"checks": checks, "cells": cells, "flags": flags, "requests": requests,
            "seconds": round(time.monotonic() - start, 2)}


__all__ = ["RemoteObject", "check_calls", "graded_names", "is_skipped", "run_trusted_checks", "trusted_plan"]
