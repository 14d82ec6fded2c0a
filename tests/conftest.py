"""Shared fixtures and helpers of the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
CHAPTERS = sorted(p.stem for p in (REPO / "book").glob("*.md") if p.stem != "intro")


def venv_env() -> dict[str, str]:
    """The environment for subprocesses: the interpreter's bin directory first on PATH
    (nbgrader calls ``alembic`` by name). ``MPLBACKEND`` is removed: set, it would override
    the notebook kernels' inline backend and every figure would silently vanish."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("MPLBACKEND", None)
    return env


def run(args: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a command with the venv's tools, capturing output; never raises on failure."""
    return subprocess.run(
        args, cwd=cwd, env=venv_env(), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def toc_pages() -> list[str]:
    """The book's pages in _toc.yml order, e.g. ``["book/intro", "book/autoencoders"]``."""
    import yaml

    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """Build the book once per session, executed, warnings as errors; yield the HTML folder.

    The result (return code and log) is checked by tests/test_book.py; other tests that
    need the HTML (the browser test) use the folder and skip if the build failed. Setting
    ``BOOK_PATH_OUTPUT`` to the ``--path-output`` of an existing build reuses it (for
    iterating locally; CI never sets it).
    """
    prebuilt = os.environ.get("BOOK_PATH_OUTPUT")
    if prebuilt:  # for iterating on the browser test: `jb build . --path-output $BOOK_PATH_OUTPUT` first
        html = Path(prebuilt) / "_build" / "html"
        return {"html": html, "returncode": 0 if (html / "index.html").exists() else 1,
                "log": f"BOOK_PATH_OUTPUT={prebuilt} has no built book"}
    out = tmp_path_factory.mktemp("book")
    result = run(["jb", "build", str(REPO), "--path-output", str(out), "-W", "-n",
                  "--keep-going"], cwd=REPO, timeout=3600)
    return {"html": out / "_build" / "html", "returncode": result.returncode,
            "log": result.stdout + result.stderr}


# ----------------------------------------------------------------------------- the order of the files
# `make test` hands whole files to its two workers (`--dist loadfile --no-loadscope-reorder`)
# in collection order, each worker taking the next file when it is nearly done. The heaviest
# files go first, by the seconds recorded in benchmarks/results/test_times.json (files it does
# not know go before them), so that no 10-minute file starts last.
TEST_TIMES = REPO / "benchmarks" / "results" / "test_times.json"


def recorded_seconds_per_file() -> dict[str, float]:
    """``{"tests/test_book.py": 788.9, ...}`` from the last record; empty if there is none."""
    import json

    try:
        seconds = json.loads(TEST_TIMES.read_text())["seconds_per_file"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {str(k): float(v) for k, v in seconds.items() if isinstance(v, (int, float))}


def pytest_collection_modifyitems(session, config, items):
    seconds = recorded_seconds_per_file()
    if seconds:  # a stable sort: each file's tests keep their order
        items.sort(key=lambda item: -seconds.get(item.nodeid.split("::")[0], float("inf")))


# ----------------------------------------------------------------------------- where the time goes
# `GRADELIB_TEST_TIMES=benchmarks/results/test_times.json make test` records, per test file,
# the seconds its tests took (setup, call and teardown, summed over both workers), the
# session's wall time and the machine's load: the figures behind the suite's time budget.
_TIMES: dict[str, float] = {}
_SESSION_START: list[float] = []
_LOAD_START: list[list[float]] = []


def pytest_sessionstart(session):
    import time

    _SESSION_START.append(time.monotonic())
    _LOAD_START.append(list(os.getloadavg()))


def pytest_runtest_logreport(report):
    if os.environ.get("GRADELIB_TEST_TIMES"):
        path = report.nodeid.split("::")[0]
        _TIMES[path] = _TIMES.get(path, 0.0) + float(report.duration)


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("GRADELIB_TEST_TIMES")
    if not target or hasattr(session.config, "workerinput"):  # the controller writes, once
        return
    import json
    import time

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    omp = os.environ.get("OMP_NUM_THREADS", "")
    threads = int(omp) if omp.isdigit() else None
    record = {"commit": commit,
              "config": {"workers": getattr(session.config.option, "numprocesses", None),
                         "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "CI": bool(os.environ.get("CI"))},
              "loadavg": _LOAD_START[0] if _LOAD_START else list(os.getloadavg()),
              "loadavg_at_end": list(os.getloadavg()), "threads": threads,
              "exit_status": int(exitstatus),
              "wall_seconds": round(time.monotonic() - _SESSION_START[0], 1) if _SESSION_START else None,
              **({} if threads else {"note": "OMP_NUM_THREADS was not set: each process used torch's default"}),
              "seconds_per_file": {k: round(v, 1) for k, v in sorted(_TIMES.items(), key=lambda kv: -kv[1])}}
    Path(target).write_text(json.dumps(record, indent=1) + "\n")
