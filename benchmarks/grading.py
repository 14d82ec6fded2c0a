"""Grade N submissions of an assignment with plain ``nbgrader autograde`` and with the pipeline.

Both runs grade the same N correct submissions (the released notebook with the
instructor's solutions filled in), each in its own temporary course directory:

1. ``nbgrader autograde <assignment>``: nbgrader's own loop, one submission after the other,
   student code and hidden tests in one kernel, no sandbox;
2. ``gradelib.grading.pipeline.grade_assignment``: sandboxed kernels, the verification run
   outside the kernel and the tamper scan, in a process pool sized to the cores. The check
   that trains a model (``@trains_model``) runs once per submission, in the verification.

Both use one torch/OpenMP thread per kernel (``OMP_NUM_THREADS=1``: the pipeline sets it in
its sandboxes; nbgrader's kernels inherit it from here), so the difference is the pool, not
the thread count. Prints seconds per submission and the ratio, and writes
``benchmarks/results/grading.json`` with the machine's core count and load average (the
figures mean little on a machine busy with other work: the record says how busy it was).

Usage: ``uv run python benchmarks/grading.py [N] [assignment]`` (default 20, hw1_autoencoders).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

os.environ["OMP_NUM_THREADS"] = "1"  # both runs: one torch thread per kernel (inherited)
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "grading.json"
sys.path.insert(0, str(REPO))

from gradelib.grading.cells import with_solutions  # noqa: E402
from gradelib.grading.cli import nbgrader, release  # noqa: E402
from gradelib.grading.pipeline import grade_assignment  # noqa: E402
from gradelib.grading.sandbox import Limits, bwrap_status  # noqa: E402


def make_course(root: Path, assignment: str, n: int) -> Path:
    """A course with the release and ``n`` correct submissions ``student00``, ..."""
    course = root / "course"
    release(course, assignment)  # the instructor's release step: nbgrader generate_assignment
    student = with_solutions(nbformat.read(course / "notebooks" / assignment / f"{assignment}.ipynb", as_version=4),
                             nbformat.read(course / "solutions" / assignment / f"{assignment}.ipynb", as_version=4))
    for i in range(n):
        target = course / "submitted" / f"student{i:02d}" / assignment
        target.mkdir(parents=True)
        nbformat.write(student, target / f"{assignment}.ipynb")
    return course


def main(n: int, assignment: str) -> None:
    record: dict = {"assignment": assignment, "submissions": n, "cpus": os.cpu_count(),
                    "OMP_NUM_THREADS": "1", "bwrap": bwrap_status()[0],
                    "load_average_1min_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        course = make_course(Path(tmp) / "nbgrader", assignment, n)
        start = time.perf_counter()
        nbgrader(["autograde", assignment, "--force"], course)
        record["nbgrader_seconds"] = round(time.perf_counter() - start, 1)
        print(f"nbgrader autograde: {record['nbgrader_seconds'] / n:6.1f} s per submission", flush=True)

        course = make_course(Path(tmp) / "pipeline", assignment, n)
        start = time.perf_counter()
        results = grade_assignment(course, assignment, limits=Limits())
        record["pipeline_seconds"] = round(time.perf_counter() - start, 1)
        full = sum(r["score"] == r["max_score"] for r in results)
        record["pipeline_full_marks"] = f"{full}/{len(results)}"
        record["pipeline_flags"] = sorted({f for r in results for f in r["flags"]})
        for phase in ("kernel", "verification"):  # seconds per submission inside one worker
            record[f"pipeline_mean_{phase}_seconds"] = round(sum(r["timing"][phase] for r in results) / n, 1)
        record["pipeline_workers"] = os.cpu_count()
        print(f"pipeline (pool of {os.cpu_count()}): {record['pipeline_seconds'] / n:6.1f} s per submission "
              f"({full}/{len(results)} full marks)", flush=True)
    record["nbgrader_seconds_per_submission"] = round(record["nbgrader_seconds"] / n, 1)
    record["pipeline_seconds_per_submission"] = round(record["pipeline_seconds"] / n, 1)
    record["speedup"] = round(record["nbgrader_seconds"] / record["pipeline_seconds"], 2)
    record["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    record["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"speed-up of the pipeline: {record['speedup']:.2f}x")
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, sys.argv[2] if len(sys.argv) > 2 else "hw1_autoencoders")
