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
    (nbgrader calls ``alembic`` by name), and no inherited ``PYTHONPATH`` surprises."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run(args: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a command with the venv's tools, capturing output; never raises on failure."""
    return subprocess.run(
        args, cwd=cwd, env=venv_env(), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
