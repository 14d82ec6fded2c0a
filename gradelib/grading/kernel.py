"""Execute one graded notebook in a sandboxed kernel and score its test cells.

The grader (this module, ``nbclient``) stays outside the sandbox; only the IPython kernel
runs inside it, and the two talk over ZeroMQ ``ipc`` sockets in the submission's private
directory (the sandbox has no network, not even the grader's loopback). So student code can
neither see the grader's files nor forge the grader's bookkeeping: it can only make its own
cells fail or pass.

Scoring: a test cell earns its points when its ``execute_reply`` status is ``"ok"``, and 0
on ``"error"``, on a timeout, or when it was not run because the kernel died or the
submission ran out of time. Output on stderr (a warning from torch, a print to
``sys.stderr``) does not change the status, so it never zeroes a cell (nbgrader 0.9 counts
any stderr output in a test cell as a failure).

Faults: a cell that runs past its timeout (an infinite loop, even one that ignores SIGINT)
or a kernel that dies (``os._exit``, a crash, SIGKILL from a limit) ends the in-kernel run:
the kernel is killed with its whole sandbox, the remaining cells are marked not run, and
the submission keeps the points of the test cells that already passed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from gradelib.grading.cells import grade_id, is_graded
from gradelib.grading.sandbox import Sandbox


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel inside a ``Sandbox``, with its limits."""

    sandbox: Sandbox | None = None

    def format_kernel_cmd(self, extra_arguments=None):
        """The kernelspec's command wrapped by the sandbox (bwrap or unchanged)."""
        cmd = super().format_kernel_cmd(extra_arguments)
        if self.sandbox.mode == "bwrap":
            wrapped = self.sandbox.command(cmd)
            # ipykernel exits when its parent is not JPY_PARENT_PID; in a PID namespace the
            # parent is the namespace's init, so do not pass it (bwrap dies with us anyway).
            at = wrapped.index("--chdir")
            return wrapped[:at] + ["--unsetenv", "JPY_PARENT_PID"] + wrapped[at:]
        return cmd

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        kw["env"] = self.sandbox.env()
        kw["cwd"] = str(self.sandbox.workdir)
        kw["preexec_fn"] = self.sandbox.preexec
        if self.sandbox.uid is not None:  # the connection file is written 0600 by the grader
            os.chown(self.connection_file, self.sandbox.uid, self.sandbox.uid)
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL  # fd-level writes reach iopub via ipykernel
        return await super()._async_launch_kernel(kernel_cmd, **kw)


class LimitedClient(NotebookClient):
    """An nbclient that records each reply's status and caps each cell's output."""

    def __init__(self, *args, output_bytes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.output_bytes = output_bytes
        self.status: dict[int, str] = {}
        self.output_sizes: dict[int, int] = {}
        self.truncated: set[int] = set()

    async def _check_raise_for_error(self, cell, cell_index, exec_reply):
        self.status[cell_index] = "no reply" if exec_reply is None else exec_reply["content"]["status"]
        return await super()._check_raise_for_error(cell, cell_index, exec_reply)

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] != "error":
            size = len(json.dumps(msg.get("content", {})))
            used = self.output_sizes.get(cell_index, 0)
            if used + size > self.output_bytes:
                if cell_index not in self.truncated:
                    self.truncated.add(cell_index)
                    outs.append(nbformat.v4.new_output(
                        "stream", name="stdout",
                        text=f"\n[output truncated by the grader after {self.output_bytes} bytes]\n"))
                return None
            self.output_sizes[cell_index] = used + size
        return super().output(outs, msg, display_id, cell_index)


def _copy_font_cache(workdir: Path) -> None:
    """Give the sandbox matplotlib's font cache, so each kernel does not rebuild it (~5 s)."""
    try:
        import matplotlib

        cache = Path(matplotlib.get_cachedir())
        target = workdir / ".matplotlib"
        target.mkdir(exist_ok=True)
        for font_list in cache.glob("fontlist-*.json"):
            (target / font_list.name).write_bytes(font_list.read_bytes())
    except Exception:  # only an optimisation
        pass


def prepare_workdir(workdir: Path) -> None:
    """Create the private directories a kernel needs inside ``workdir``."""
    for name in (".ipython", ".jupyter-runtime", ".matplotlib"):
        (workdir / name).mkdir(parents=True, exist_ok=True)
    _copy_font_cache(workdir)


def run_in_kernel(notebook: nbformat.NotebookNode, sandbox: Sandbox) -> dict:
    """Execute ``notebook`` cell by cell in a sandboxed kernel and score its test cells.

    Args:
        notebook: the graded notebook (``cells.build_graded_notebook``); executed in place.
        sandbox: where and with which limits to run (its workdir must exist and be prepared).

    Returns:
        plain data: ``{"points": {grade_id: earned}, "cells": {grade_id: status}, "errors":
        [...], "flags": [...], "seconds": float}``; status is ``"ok"``, ``"error: <ename>"``,
        ``"timeout"``, ``"kernel died"`` or ``"not run: <why>"``.
    """
    limits = sandbox.limits
    km = SandboxedKernelManager(kernel_name="python3", transport="ipc",
                                ip=str(sandbox.workdir / "kernel-ipc"),
                                connection_file=str(sandbox.workdir / ".jupyter-runtime" / "kernel.json"))
    km.sandbox = sandbox
    client = LimitedClient(notebook, km=km, output_bytes=limits.output_bytes, timeout=int(limits.cell_timeout),
                           interrupt_on_timeout=False, allow_errors=True, record_timing=False,
                           shutdown_kernel="immediate", startup_timeout=180, iopub_timeout=10,
                           resources={"metadata": {"path": str(sandbox.workdir)}})
    start = time.monotonic()
    deadline = start + limits.submission_timeout
    cells: dict[str, str] = {}
    errors: list[str] = []
    flags: list[str] = []
    stopped: str | None = None
    try:
        with client.setup_kernel(cleanup_kc=True):
            for index, cell in enumerate(notebook.cells):
                if cell.cell_type != "code":
                    continue
                gid = grade_id(cell) or f"cell {index}"
                if stopped is None and time.monotonic() >= deadline:
                    stopped = "submission time limit"
                    flags.append(f"timeout: the submission exceeded {limits.submission_timeout:g} s")
                if stopped is not None:
                    cells[gid] = f"not run: {stopped}"
                    continue
                client.timeout = max(1, int(min(limits.cell_timeout, deadline - time.monotonic())))
                try:
                    client.execute_cell(cell, index, store_history=True)
                except CellTimeoutError:
                    cells[gid] = "timeout"
                    stopped = f"cell {gid} timed out"
                    flags.append(f"timeout: cell {gid} ran past {client.timeout} s; the kernel was killed")
                    continue
                except DeadKernelError:
                    cells[gid] = "kernel died"
                    stopped = f"the kernel died in {gid}"
                    flags.append(f"kernel died: in cell {gid} (os._exit, a crash or a resource limit)")
                    continue
                status = client.status.get(index, "no reply")
                if status == "error":
                    ename = next((o.get("ename") for o in cell.outputs if o.get("output_type") == "error"), "")
                    cells[gid] = f"error: {ename}"
                    if is_graded(cell):
                        errors.append(f"{gid}: {ename}")
                else:
                    cells[gid] = status
                if index in client.truncated:
                    flags.append(f"output truncated: cell {gid} printed more than {limits.output_bytes} bytes")
    except Exception as error:  # the kernel could not start or the channels broke
        flags.append(f"kernel failure: {type(error).__name__}: {str(error)[:300]}")
        stopped = stopped or "kernel failure"
    finally:
        sandbox.kill_all()
    points = {}
    for cell in notebook.cells:
        if is_graded(cell) and grade_id(cell):
            gid = grade_id(cell)
            cells.setdefault(gid, f"not run: {stopped or 'unknown'}")
            earned = float(cell.metadata["nbgrader"].get("points", 0)) if cells[gid] == "ok" else 0.0
            points[gid] = earned
    return {"points": points, "cells": cells, "errors": errors, "flags": flags,
            "seconds": round(time.monotonic() - start, 2)}
