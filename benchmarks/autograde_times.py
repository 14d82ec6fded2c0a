"""Measure how long nbgrader takes to autograde one correct submission of each assignment.

For each assignment, a temporary course directory receives the generated release and one
submission (the solution notebook); ``nbgrader autograde`` is timed end to end (start-up,
kernel, every cell including hidden tests). Prints a table and writes
``benchmarks/results/autograde_times.json`` with the core count, ``OMP_NUM_THREADS`` (the
kernels inherit it) and the load average when measuring: on a busy 2-core machine, torch's
default two threads per kernel oversubscribe the CPU and grading slows several-fold.

Usage: ``uv run python benchmarks/autograde_times.py [assignment ...]`` (default: all).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "autograde_times.json"


def nbgrader(args: list[str], course: Path) -> None:
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    subprocess.run(["nbgrader", *args, f"--CourseDirectory.root={course}"], cwd=course, env=env,
                   check=True, capture_output=True)


def autograde_seconds(assignment: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        shutil.copy(REPO / "nbgrader_config.py", course)
        shutil.copytree(REPO / "solutions" / assignment, course / "solutions" / assignment)
        nbgrader(["generate_assignment", assignment], course)
        target = course / "submitted" / "student" / assignment
        target.mkdir(parents=True)
        shutil.copy(course / "solutions" / assignment / f"{assignment}.ipynb", target)
        start = time.perf_counter()
        nbgrader(["autograde", assignment], course)
        return time.perf_counter() - start


def main(assignments: list[str]) -> None:
    assignments = assignments or sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
    record = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    record["machine"] = {"cpus": os.cpu_count(),
                         "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
                         "load_average_1min": round(os.getloadavg()[0], 2)}
    for assignment in assignments:
        seconds = autograde_seconds(assignment)
        record.setdefault("seconds_per_submission", {})[assignment] = round(seconds, 1)
        print(f"{assignment:>20}: {seconds:6.1f} s per submission", flush=True)
    record["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main(sys.argv[1:])
