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

Output: every message the kernel sends is the student's (their code holds the kernel's
session key), so each cell's outputs and the notebook's are capped as they arrive, error
outputs and tracebacks included (``Limits.output_bytes``, ``Limits.notebook_output_bytes``;
the output that crosses a cap is cut with a note, later ones dropped), a message larger than
``MAX_MESSAGE_BYTES`` is refused by ZeroMQ before it is read, display updates and widget
messages are ignored (they could rewrite earlier outputs), and after the run the notebook
is bounded and sanitised again (``sanitize.py``) before anyone stores or renders it.
Disk: the work directory is watched (``Sandbox.watch_disk``); over ``Limits.work_bytes``
the kernel is killed, as for a dead kernel, with a flag.

Faults: a cell that runs past its timeout (an infinite loop, even one that ignores SIGINT)
or a kernel that dies (``os._exit``, a crash, SIGKILL from a limit) ends the in-kernel run:
the kernel is killed with its whole sandbox, the remaining cells are marked not run, and
the submission keeps the points of the test cells that already passed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import nbformat
import zmq
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from gradelib.grading.cells import grade_id, is_graded
from gradelib.grading.sandbox import Sandbox
from gradelib.grading.sanitize import _truncate_output, bound_outputs, sanitize_notebook

#: Largest kernel message the grader reads (ZMQ_MAXMSGSIZE on the client's sockets; a peer
#: sending more is disconnected and the message lost). A figure is < 1 MB; the per-cell cap
#: cuts everything to ``Limits.output_bytes`` after reading, this bounds the reading itself.
MAX_MESSAGE_BYTES = 64 * 2**20


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel inside a ``Sandbox``, with its limits."""

    sandbox: Sandbox | None = None
    client_context: zmq.asyncio.Context | None = None

    def client(self, **kwargs):
        """The kernel client, on a ZeroMQ context whose sockets refuse oversized messages."""
        if self.client_context is not None:
            kwargs.setdefault("context", self.client_context)
        return super().client(**kwargs)

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
    """An nbclient that records each reply's status and caps each cell's and the notebook's
    output (every output type, errors included), ignoring display updates and widgets."""

    def __init__(self, *args, output_bytes: int, notebook_output_bytes: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.output_bytes = output_bytes
        self.notebook_output_bytes = notebook_output_bytes or output_bytes * 50
        self.status: dict[int, str] = {}
        self.output_sizes: dict[int, int] = {}
        self.total_bytes = 0
        self.truncated: dict[int, int] = {}  # cell index -> the cap it crossed

    async def _check_raise_for_error(self, cell, cell_index, exec_reply):
        status = "no reply" if exec_reply is None else exec_reply.get("content", {}).get("status")
        self.status[cell_index] = status if status in ("ok", "error", "aborted") else "no reply"
        if status == "error":  # nbclient keeps nothing of the reply; never let it copy a 25 MB message
            exec_reply = {"content": {"status": "error", "ename": "", "evalue": "", "traceback": []}}
        return await super()._check_raise_for_error(cell, cell_index, exec_reply)

    def output(self, outs, msg, display_id, cell_index):
        if cell_index in self.truncated:
            return None
        size = len(json.dumps(msg.get("content", {}), default=str))
        used = self.output_sizes.get(cell_index, 0)
        cell_room = self.output_bytes - used
        notebook_room = self.notebook_output_bytes - self.total_bytes
        if size > min(cell_room, notebook_room):
            limit = self.output_bytes if cell_room <= notebook_room else self.notebook_output_bytes
            what = "the cell's output" if cell_room <= notebook_room else "the notebook's output"
            self.truncated[cell_index] = limit
            try:
                cut = _truncate_output(nbformat.v4.output_from_msg(msg), min(cell_room, notebook_room) - 200,
                                       what, limit)
            except (KeyError, TypeError, ValueError):
                cut = _truncate_output({"output_type": "stream", "name": "stdout", "text": ""}, 0, what, limit)
            outs.append(nbformat.from_dict(cut))
            added = len(json.dumps(cut))
            self.output_sizes[cell_index] = used + added
            self.total_bytes += added
            return None
        self.output_sizes[cell_index] = used + size
        self.total_bytes += size
        return super().output(outs, msg, display_id, cell_index)

    def _update_display_id(self, display_id, msg):
        """Display updates are not applied: they would rewrite outputs already counted."""
        return None

    def handle_comm_msg(self, outs, msg, cell_index):
        """Widget messages are ignored (their state is not stored in the notebook)."""
        return None


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
    context = zmq.asyncio.Context()
    context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    km.client_context = context
    client = LimitedClient(notebook, km=km, output_bytes=limits.output_bytes,
                           notebook_output_bytes=limits.notebook_output_bytes, timeout=int(limits.cell_timeout),
                           interrupt_on_timeout=False, allow_errors=True, record_timing=False,
                           store_widget_state=False, shutdown_kernel="immediate", startup_timeout=180,
                           iopub_timeout=10, resources={"metadata": {"path": str(sandbox.workdir)}})

    def disk_full(usage: int) -> None:  # from the watchdog's thread: end the run as a dead kernel
        sandbox.kill_all()
        provisioner = getattr(km, "provisioner", None)
        pid = getattr(getattr(provisioner, "process", None), "pid", None)
        if pid:
            for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                except OSError:
                    pass

    start = time.monotonic()
    deadline = start + limits.submission_timeout
    cells: dict[str, str] = {}
    errors: list[str] = []
    flags: list[str] = []
    stopped: str | None = None
    watch = sandbox.watch_disk(disk_full)
    try:
        with watch, client.setup_kernel(cleanup_kc=True):
            for index, cell in enumerate(notebook.cells):
                if cell.cell_type != "code":
                    continue
                gid = grade_id(cell) or f"cell {index}"
                if stopped is None and watch.exceeded is not None:
                    stopped = "the work directory filled up"
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
                if watch.exceeded is not None:  # killed between two messages: the cell did not finish
                    cells[gid] = "kernel died"
                    stopped = f"the work directory filled up in {gid}"
                    continue
                status = client.status.get(index, "no reply")
                if status == "error":
                    ename = next((o.get("ename") for o in cell.outputs if o.get("output_type") == "error"), "")
                    cells[gid] = f"error: {str(ename)[:100]}"
                    if is_graded(cell):
                        errors.append(f"{gid}: {ename}")
                else:
                    cells[gid] = status
                if index in client.truncated:
                    flags.append(f"output truncated: cell {gid} printed more than {client.truncated[index]} bytes"
                                 " (errors included)")
    except Exception as error:  # the kernel could not start or the channels broke
        flags.append(f"kernel failure: {type(error).__name__}: {str(error)[:300]}")
        stopped = stopped or "kernel failure"
    finally:
        sandbox.kill_all()
        context.destroy(linger=0)
    if watch.exceeded is not None:
        flags.append(f"disk limit: the work directory held {watch.exceeded} bytes, more than "
                     f"{limits.work_bytes}; the kernel was killed")
    already = tuple(f"output truncated: cell {grade_id(notebook.cells[i]) or f'cell {i}'} " for i in client.truncated)
    flags += [f for f in bound_outputs(notebook, limits.output_bytes, limits.notebook_output_bytes)
              if not f.startswith(already)]
    sanitize_notebook(notebook)
    points = {}
    for cell in notebook.cells:
        if is_graded(cell) and grade_id(cell):
            gid = grade_id(cell)
            cells.setdefault(gid, f"not run: {stopped or 'unknown'}")
            earned = float(cell.metadata["nbgrader"].get("points", 0)) if cells[gid] == "ok" else 0.0
            points[gid] = earned
    return {"points": points, "cells": cells, "errors": errors, "flags": flags,
            "seconds": round(time.monotonic() - start, 2)}
