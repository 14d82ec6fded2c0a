"""Measure how long nbgrader takes to autograde one correct submission of each assignment.

For each assignment, a temporary course directory receives the generated release and one
submission (the solution notebook); ``nbgrader autograde`` is timed end to end (start-up,
kernel, every cell including hidden tests). Prints a table and writes
``benchmarks/results/autograde_times.json`` with the record keys of the benchmark convention
(CONTRIBUTING.md): the commit measured, the configuration (assignments, core count,
``OMP_NUM_THREADS``, which the kernels inherit), the load average before the run and the
torch thread count. On a busy 2-core machine, torch's default two threads per kernel
oversubscribe the CPU and grading slows several-fold. One run is one record: running a
subset replaces the record with that subset only.

Usage: ``OMP_NUM_THREADS=1 uv run python benchmarks/autograde_times.py [assignment ...]``
(default: all). Commit first: the record names ``git rev-parse --short HEAD``.
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


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def main(assignments: list[str]) -> None:
    import torch  # only for the thread count the kernels will use

    assignments = assignments or sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "solutions", "gradelib"))
    if dirty:
        print("warning: solutions/ or gradelib/ has uncommitted changes; the record's commit "
              "will not describe the code measured", file=sys.stderr)
    record = {
        "benchmark": "autograde_times",
        "commit": git("rev-parse", "--short", "HEAD"),
        "config": {"assignments": assignments, "submission": "the solution notebook, one per assignment",
                   "command": "nbgrader autograde, timed end to end",
                   "uncommitted_changes_in_solutions_or_gradelib": dirty,
                   "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
                   "cpus": os.cpu_count()},
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "threads": torch.get_num_threads(),
        "seconds_per_submission": {},
    }
    for assignment in assignments:
        seconds = autograde_seconds(assignment)
        record["seconds_per_submission"][assignment] = round(seconds, 1)
        print(f"{assignment:>20}: {seconds:6.1f} s per submission", flush=True)
    record["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    record["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main(sys.argv[1:])
