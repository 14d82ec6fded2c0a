"""The keys every benchmark record starts with: what was measured, at which commit, how.

The convention (CONTRIBUTING.md, "Benchmarks"; tested by tests/test_benchmark_records.py):
``commit`` (``git rev-parse --short HEAD``), ``config`` (a non-empty dict of what was
measured), ``loadavg`` (``os.getloadavg()`` before the run) and ``threads`` (the torch
thread count the measurement ran with). The benchmarks run as scripts from the repository
root (``uv run python benchmarks/<name>.py``), so they import this module by its file name.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    """The output of ``git <args>`` in the repository (raises if git fails)."""
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def commit() -> str:
    """The short hash of the commit being measured."""
    return git("rev-parse", "--short", "HEAD")


def uncommitted(*paths: str) -> bool:
    """True when tracked files under ``paths`` differ from the commit (a figure of dirty code)."""
    return bool(git("status", "--porcelain", "--untracked-files=no", "--", *paths))


def loadavg() -> list[float]:
    """``os.getloadavg()``, rounded to two decimals."""
    return [round(v, 2) for v in os.getloadavg()]


def record_header(config: dict, threads: int | None = None) -> dict:
    """``{"commit", "config", "loadavg", "threads"}`` for a record about to be measured.

    Args:
        config: what is measured (steps, seeds, model sizes, ...); must be non-empty.
        threads: the torch thread count; default ``torch.get_num_threads()``.

    Raises:
        ValueError: ``config`` is empty or not a dict.
    """
    if not isinstance(config, dict) or not config:
        raise ValueError(f"config: expected a non-empty dict of what is measured, got {config!r}")
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return {"commit": commit(), "config": config, "loadavg": loadavg(), "threads": int(threads)}
