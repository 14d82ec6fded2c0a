"""The sandbox every piece of student code runs in: bubblewrap when it works, limits always.

``Sandbox.command(argv)`` wraps a command so that it runs

- under bubblewrap (``bwrap``) when it is usable here: new network namespace (no network:
  only a loopback), new PID/IPC/UTS namespaces, the whole file system replaced by read-only
  binds of the system directories, the Python installation, the virtual environment and
  the *student-facing* ``gradelib`` (a copy without ``gradelib.checks`` and
  ``gradelib.grading``, made by ``stage_student_library`` and mounted where the package
  is: the checks, their references and answer keys do not exist inside), a private ``/tmp``,
  and one writable directory: the private copy of this one submission. The course directory, the gradebook, the solutions and the
  other submissions are not mounted, so they do not exist for the student's code. When the
  grader runs as root, the code inside runs as an unprivileged user id of its own
  (``setpriv``), so the process-count limit applies (the kernel exempts root from it);
- else as a plain subprocess with the same limits (``mode == "limits-only"``); every grade
  report then says so (``Sandbox.describe``).

``Sandbox.preexec`` (for ``subprocess.Popen(preexec_fn=...)``) sets the resource limits
with ``resource.setrlimit``: address space (memory), number of processes (a fork bomb
stops there), CPU seconds, and the size of any one file written (``RLIMIT_FSIZE``: a write
past it fails with ``EFBIG``, "File too large").
Disk: under bubblewrap the sandbox's ``/tmp`` is a tmpfs of ``Limits.tmp_bytes``; the
writable work directory lives on the grader's disk (the grader reads the kernel's sockets
there), so ``Sandbox.watch_disk`` measures it while the submission runs and ends the run
when it holds more than ``Limits.work_bytes``.
Wall-clock limits (per cell, per submission) and the output cap are enforced by the caller
(``kernel.py``, ``remote.py``), which own the clocks and read the outputs.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import gradelib

GIB = 1024**3
#: Subpackages of ``gradelib`` that students never receive (the student kit leaves them out,
#: and the sandbox does not mount them).
INSTRUCTOR_ONLY = ("checks", "grading")


def stage_student_library(directory: Path) -> Path:
    """A copy of the ``gradelib`` package without ``INSTRUCTOR_ONLY`` in ``directory/gradelib``.

    Returns:
        the copy's path (mounted read-only over the package in the sandbox).
    """
    source = Path(gradelib.__file__).resolve().parent
    target = Path(directory) / "gradelib"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=lambda folder, names: [
        n for n in names if n == "__pycache__" or (Path(folder) == source and n in INSTRUCTOR_ONLY)])
    return target


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission (all of its processes).

    Attributes:
        memory_bytes: address-space limit per process (``RLIMIT_AS``). Importing torch takes
            about 3.2 GB of address space (measured: VmPeak 3,167,128 kB on this machine's
            torch 2.5 CPU build), so 6 GiB leaves ~3 GB for data and models; hw1 needs < 1 GB.
        nproc: processes and threads of the submission's user (``RLIMIT_NPROC``). An
            ipykernel with torch uses about 20 threads; 256 leaves room and stops a fork bomb.
        cpu_seconds: CPU time per process (``RLIMIT_CPU``), a backstop behind the wall
            clocks: the kernel gets SIGXCPU, then SIGKILL.
        cell_timeout: wall-clock seconds per cell (nbgrader_config.py's 300 s: hw1's
            training cell plus its hidden check take ~60 s on a busy 2-core machine).
        submission_timeout: wall-clock seconds for the whole in-kernel run of a submission,
            and again for its verification run.
        output_bytes: text and data kept per cell, error outputs (tracebacks) included; the
            rest is dropped, the cell's outputs end with a note saying so, and the
            submission is flagged. 1 MB: the largest cell of an honest submission is hw4's
            grid of samples, ~360 kB (tests/test_nbgrader.py keeps every honest cell under
            half the cap).
        notebook_output_bytes: the same cap for the whole executed notebook (what the
            formgrader and the feedback page render): 5 MB holds this course's figures
            (~30-360 kB each; an honest hw4 notebook ~650 kB) many times over.
        file_bytes: largest file a submission's process may write (``RLIMIT_FSIZE``); a
            larger write fails with ``OSError`` (EFBIG). The course's homework writes no
            file; a saved model of the course's sizes is < 20 MB.
        work_bytes: the most the writable work directory may hold (measured by
            ``watch_disk`` every ``DISK_POLL_SECONDS``; over it, the run is ended and flagged).
        tmp_bytes: size of the sandbox's ``/tmp`` (a tmpfs, under bubblewrap; memory the
            kernel can fill, so it is small).
        submission_bytes: largest submitted notebook the grader reads (collect refuses
            larger files, the grading step too): a hw notebook with every figure and log
            is < 5 MB.
    """

    memory_bytes: int = 6 * GIB
    nproc: int = 256
    cpu_seconds: int = 1800
    cell_timeout: float = 300.0
    submission_timeout: float = 1200.0
    output_bytes: int = 1_000_000
    notebook_output_bytes: int = 5_000_000
    file_bytes: int = 256 * 2**20
    work_bytes: int = 512 * 2**20
    tmp_bytes: int = 256 * 2**20
    submission_bytes: int = 32 * 2**20

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "nproc", "cpu_seconds", "cell_timeout",
                     "submission_timeout", "output_bytes", "notebook_output_bytes", "file_bytes",
                     "work_bytes", "tmp_bytes", "submission_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
            if value <= 0:
                raise ValueError(f"{name}: expected a positive number, got {value!r}")

    def as_dict(self) -> dict:
        """The limits as plain data (for a job sent to another process or machine)."""
        return asdict(self)


@functools.lru_cache(maxsize=1)
def bwrap_status() -> tuple[bool, str]:
    """Whether bubblewrap can run here, and why not if it cannot.

    Runs ``bwrap --ro-bind / / --unshare-net --dev /dev --proc /proc true`` once (it fails
    where unprivileged user namespaces are disabled, e.g. in many containers). The
    environment variable ``GRADELIB_NO_BWRAP=1`` makes it report bwrap unusable, to
    exercise the limits-only fallback on a machine that has bwrap.
    """
    if os.environ.get("GRADELIB_NO_BWRAP", "") not in ("", "0"):
        return False, "bubblewrap disabled by GRADELIB_NO_BWRAP"
    exe = shutil.which("bwrap")
    if exe is None:
        return False, "bubblewrap (bwrap) is not installed"
    try:
        done = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-net", "--dev", "/dev",
                               "--proc", "/proc", "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"bwrap does not run here ({error})"
    if done.returncode != 0:
        return False, f"bwrap does not run here: {done.stderr.strip()[:200]}"
    return True, "bwrap works"


def sandbox_uid(key: str) -> int:
    """An unprivileged user id for one submission when grading as root (100000-164999).

    Distinct submissions get distinct ids (with high probability), so the per-user process
    limit of one does not count the processes of another graded at the same time.
    """
    import zlib

    return 100_000 + zlib.crc32(key.encode()) % 65_000


def _readonly_paths() -> list[Path]:
    """Directories the sandbox needs to run the course's Python: the interpreter's prefix,
    the virtual environment, and the ``gradelib`` package (not the rest of the repository)."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(),
             Path(gradelib.__file__).resolve().parent}  # replaced by the student copy when staged
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        value = sysconfig.get_paths().get(key)
        if value:
            paths.add(Path(value).resolve())
    # keep the outermost of nested paths
    ordered = sorted(paths, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in ordered:
        if not any(path == k or k in path.parents for k in kept):
            kept.append(path)
    return kept


@dataclass(frozen=True)
class Sandbox:
    """How to run one submission's processes.

    Attributes:
        workdir: the private directory of this submission (its copy of the notebook; the
            only writable place besides a private /tmp).
        limits: the resource limits.
        mode: ``"bwrap"`` or ``"limits-only"``.
        uid: the user id the code runs as when grading as root, else None.
    """

    workdir: Path
    limits: Limits
    mode: str
    uid: int | None
    library: Path | None = None

    @classmethod
    def create(cls, workdir: Path, limits: Limits, key: str, use_bwrap: bool | None = None,
               library: Path | None = None) -> "Sandbox":
        """A sandbox for ``workdir`` (which must exist); bwrap if usable unless told not to.

        ``library`` is the student-facing copy of ``gradelib`` (``stage_student_library``),
        mounted over the package under bwrap; None mounts the package itself.

        Raises:
            ValueError: if ``use_bwrap`` is True but bwrap cannot run here.
        """
        available, why = bwrap_status()
        if use_bwrap and not available:
            raise ValueError(f"use_bwrap: expected a machine where bwrap runs, got: {why}")
        mode = "bwrap" if (available if use_bwrap is None else use_bwrap) else "limits-only"
        uid = None
        if os.geteuid() == 0 and mode == "bwrap":
            uid = sandbox_uid(key)
            for path in [workdir, *workdir.rglob("*")]:
                os.chown(path, uid, uid)
        return cls(Path(workdir), limits, mode, uid, Path(library) if library else None)

    def describe(self) -> str:
        """One line for the grade report: how this submission was isolated."""
        lim = self.limits
        limits = (f"memory {lim.memory_bytes / GIB:.1f} GiB, {lim.nproc} processes, "
                  f"CPU {lim.cpu_seconds} s, {lim.cell_timeout:g} s per cell, "
                  f"{lim.submission_timeout:g} s per submission, {lim.output_bytes} output bytes per cell, "
                  f"{lim.notebook_output_bytes} per notebook, files up to {lim.file_bytes // 2**20} MiB, "
                  f"work directory {lim.work_bytes // 2**20} MiB")
        if self.mode == "bwrap":
            user = f", as uid {self.uid}" if self.uid is not None else ""
            return (f"sandbox: bubblewrap (no network, private file system{user}, "
                    f"/tmp {self.limits.tmp_bytes // 2**20} MiB); limits: {limits}")
        _, why = bwrap_status()
        root = " (grading as root: the process-count limit does not bind root)" if os.geteuid() == 0 else ""
        return (f"sandbox: NONE, limits only ({why}): student code could read files this user "
                f"can read; limits: {limits}{root}")

    def env(self) -> dict[str, str]:
        """A minimal environment: no inherited secrets, one thread per library."""
        home = str(self.workdir)
        return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": home,
                "TMPDIR": "/tmp" if self.mode == "bwrap" else home,
                "MPLCONFIGDIR": f"{home}/.matplotlib", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8", "JUPYTER_PLATFORM_DIRS": "1",
                "JUPYTER_RUNTIME_DIR": f"{home}/.jupyter-runtime", "IPYTHONDIR": f"{home}/.ipython"}

    def command(self, argv: list[str], extra_ro: list[tuple[Path, Path]] = ()) -> list[str]:
        """``argv`` wrapped for this sandbox (unchanged in limits-only mode).

        ``extra_ro``: more ``(source, mount point)`` pairs to mount read-only (the harness).
        """
        if self.mode != "bwrap":
            return list(argv)
        cmd = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
               "--unshare-cgroup-try", "--die-with-parent", "--new-session",
               "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
        for name in ("lib", "lib64", "bin", "sbin", "lib32"):
            path = Path("/") / name
            if path.is_symlink():
                cmd += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                cmd += ["--ro-bind", str(path), str(path)]
        cmd += ["--proc", "/proc", "--dev", "/dev", *self.tmpfs("/tmp")]
        made: set[Path] = {Path("/"), Path("/tmp")}
        package = Path(gradelib.__file__).resolve().parent
        mounts = [(p, p, "--ro-bind") for p in _readonly_paths()]
        if self.library is not None:  # the student-facing copy, over the package
            mounts.append((self.library.resolve(), package, "--ro-bind"))
        mounts += [(Path(src).resolve(), Path(dst), "--ro-bind") for src, dst in extra_ro]
        mounts.append((self.workdir.resolve(), self.workdir.resolve(), "--bind"))
        for source, path, how in mounts:
            for parent in reversed(path.parents):
                if parent not in made and not str(parent).startswith(("/usr", "/etc")):
                    cmd += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            cmd += [how, str(source), str(path)]
        cmd += ["--chdir", str(self.workdir.resolve())]
        if self.uid is not None:
            cmd += ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        return cmd + list(argv)

    def tmpfs(self, path: str) -> list[str]:
        """bwrap arguments for a world-writable (sticky, 1777) tmpfs at ``path`` of at most
        ``Limits.tmp_bytes`` (``--perms``/``--size``: bubblewrap >= 0.5; an older bwrap
        gets bwrap's default tmpfs, unbounded and writable by root only)."""
        if _bwrap_has_size():
            return ["--perms", "01777", "--size", str(self.limits.tmp_bytes), "--tmpfs", path]
        return ["--tmpfs", path]

    def disk_usage(self, limit_entries: int = 100_000) -> int:
        """Bytes allocated under the work directory (symlinks not followed); a directory
        tree of more than ``limit_entries`` entries counts as over any limit."""
        total, entries, stack = 0, 0, [str(self.workdir)]
        while stack:
            try:
                with os.scandir(stack.pop()) as scan:
                    for entry in scan:
                        entries += 1
                        if entries > limit_entries:
                            return 1 << 62
                        try:
                            info = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        total += info.st_blocks * 512
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
            except OSError:
                continue
        return total

    def watch_disk(self, on_exceed) -> "DiskWatch":
        """A running watchdog of the work directory (``Limits.work_bytes``); use as a
        context manager. ``on_exceed(usage)`` is called once, from the watchdog's thread."""
        return DiskWatch(self, on_exceed)

    def preexec(self) -> None:
        """Set the resource limits in the child before exec (``Popen(preexec_fn=...)``).

        Callers also pass ``start_new_session=True``, so the group can be killed at once.
        """
        lim = self.limits
        resource.setrlimit(resource.RLIMIT_AS, (lim.memory_bytes, lim.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_seconds, lim.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim.file_bytes, lim.file_bytes))
        nproc = lim.nproc
        if self.uid is None and os.geteuid() != 0:
            # The limit counts every process of this user: allow what already runs, plus ours.
            nproc += _processes_of(os.getuid())
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    def kill_all(self) -> None:
        """Kill every process left over by this submission (a forked child, a fork bomb).

        With bwrap, its PID namespace dies with it; as root, every process of the
        submission's uid is killed too; in limits-only mode, the process group is killed by
        the caller. Best effort, never raises.
        """
        if self.uid is None:
            return
        try:
            pid = os.fork()
        except OSError:
            return
        if pid == 0:  # the child becomes the submission's user and kills all its processes
            try:
                os.setgid(self.uid)
                os.setuid(self.uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)


DISK_POLL_SECONDS = 0.25


class DiskWatch:
    """Polls ``sandbox.disk_usage()`` from a thread; calls ``on_exceed`` once when over
    ``Limits.work_bytes``. With ``RLIMIT_FSIZE`` bounding each file, what a submission can
    write between two polls is bounded by its disk speed times the poll interval."""

    def __init__(self, sandbox: Sandbox, on_exceed):
        self.sandbox, self.on_exceed = sandbox, on_exceed
        self.exceeded: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(DISK_POLL_SECONDS):
            usage = self.sandbox.disk_usage()
            if usage > self.sandbox.limits.work_bytes:
                self.exceeded = usage
                try:
                    self.on_exceed(usage)
                finally:
                    return

    def __enter__(self) -> "DiskWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> bool:
        self._stop.set()
        self._thread.join(timeout=5)
        return False


@functools.lru_cache(maxsize=1)
def _bwrap_has_size() -> bool:
    """Whether the installed bwrap has ``--size`` (bubblewrap 0.5, 2021)."""
    try:
        done = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--size" in done.stdout + done.stderr


def _processes_of(uid: int) -> int:
    """How many tasks (processes and threads) belong to ``uid`` now (Linux /proc)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(list((entry / "task").iterdir()))
            except OSError:
                continue
    return count
