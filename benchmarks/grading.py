"""Grade N submissions of an assignment with plain ``nbgrader autograde`` and with the pipeline.

Three runs grade the same N correct submissions (the released notebook with the instructor's
solutions filled in), each in its own temporary course directory, one after the other on
the same machine:

1. ``nbgrader autograde <assignment>`` with nbgrader's and torch's default thread settings
   (no ``OMP_NUM_THREADS``: each kernel uses every core): what an instructor gets out of the
   box, one submission after the other, student code and hidden tests in one kernel, no
   sandbox. This is the baseline of the speed goal (the pipeline >= 1.6x faster);
2. the same with one thread per kernel (``OMP_NUM_THREADS=1``), for comparison;
3. ``gradelib.grading.pipeline.grade_assignment``: per submission a sandboxed kernel (the
   student's feedback) and the trusted checker (a sandboxed student process answering the
   checks' requests), in a process pool sized to the cores, one torch thread per process.

Prints seconds per submission and the two ratios, and writes
``benchmarks/results/grading.json`` (``commit``, ``config``, ``loadavg`` before the runs,
``threads``, the figures, and the load average after each run: on a shared machine the
figures mean little without it).

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

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "grading.json"
sys.path.insert(0, str(REPO))
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

import provenance  # noqa: E402 - benchmarks/provenance.py: the record's first keys
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


def nbgrader_run(root: Path, assignment: str, n: int, threads: str | None) -> float:
    """Seconds of ``nbgrader autograde`` on ``n`` submissions; ``threads`` None for the defaults."""
    course = make_course(root, assignment, n)
    saved = {k: os.environ.pop(k, None) for k in THREAD_VARIABLES}
    if threads is not None:
        os.environ.update({k: threads for k in THREAD_VARIABLES})
    try:
        start = time.perf_counter()
        nbgrader(["autograde", assignment, "--force"], course)
        return time.perf_counter() - start
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value


def main(n: int, assignment: str) -> None:
    commit = provenance.commit()
    dirty = provenance.git("status", "--porcelain", "--", "gradelib", "benchmarks/grading.py")  # untracked too
    record: dict = {"commit": commit + ("-dirty" if dirty else ""), "assignment": assignment, "submissions": n,
                    "cpus": os.cpu_count(), "bwrap": bwrap_status()[0],
                    "loadavg": [round(x, 2) for x in os.getloadavg()],
                    "threads": 1,  # the pipeline's, per process; the baselines' are in config
                    "config": {"assignment": assignment, "submissions": n, "pipeline_workers": os.cpu_count(),
                               "threads": {"nbgrader_default": f"torch default ({os.cpu_count()} here, "
                                                               "no OMP_NUM_THREADS)",
                                           "nbgrader_one_thread": 1, "pipeline": 1},
                               "limits": Limits().as_dict(), "order": ["nbgrader default threads",
                                                                       "nbgrader one thread", "pipeline"]}}
    with tempfile.TemporaryDirectory() as tmp:
        seconds = nbgrader_run(Path(tmp) / "default", assignment, n, None)
        record["nbgrader_seconds"] = round(seconds, 1)
        record["loadavg_after_nbgrader"] = [round(x, 2) for x in os.getloadavg()]
        print(f"nbgrader autograde, default threads: {seconds / n:6.1f} s per submission", flush=True)

        seconds = nbgrader_run(Path(tmp) / "one", assignment, n, "1")
        record["nbgrader_one_thread_seconds"] = round(seconds, 1)
        record["loadavg_after_nbgrader_one_thread"] = [round(x, 2) for x in os.getloadavg()]
        print(f"nbgrader autograde, one thread:      {seconds / n:6.1f} s per submission", flush=True)

        course = make_course(Path(tmp) / "pipeline", assignment, n)
        os.environ.update({k: "1" for k in THREAD_VARIABLES})
        start = time.perf_counter()
        results = grade_assignment(course, assignment, limits=Limits())
        record["pipeline_seconds"] = round(time.perf_counter() - start, 1)
        record["loadavg_after_pipeline"] = [round(x, 2) for x in os.getloadavg()]
        full = sum(r["score"] == r["max_score"] for r in results)
        record["pipeline_full_marks"] = f"{full}/{len(results)}"
        record["pipeline_flags"] = sorted({f for r in results for f in r["flags"]})
        for phase in ("kernel", "trusted"):  # seconds per submission inside one worker
            record[f"pipeline_mean_{phase}_seconds"] = round(
                sum(r.get("timing", {}).get(phase, 0.0) for r in results) / n, 1)
        record["pipeline_workers"] = os.cpu_count()
        print(f"pipeline (pool of {os.cpu_count()}):            {record['pipeline_seconds'] / n:6.1f} s per "
              f"submission ({full}/{len(results)} full marks)", flush=True)
    record["nbgrader_seconds_per_submission"] = round(record["nbgrader_seconds"] / n, 1)
    record["nbgrader_one_thread_seconds_per_submission"] = round(record["nbgrader_one_thread_seconds"] / n, 1)
    record["pipeline_seconds_per_submission"] = round(record["pipeline_seconds"] / n, 1)
    record["speedup"] = round(record["nbgrader_seconds"] / record["pipeline_seconds"], 2)
    record["speedup_one_thread"] = round(record["nbgrader_one_thread_seconds"] / record["pipeline_seconds"], 2)
    record["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"speed-up of the pipeline: {record['speedup']:.2f}x over default threads, "
          f"{record['speedup_one_thread']:.2f}x over one thread (load {record['loadavg']} before)")
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, sys.argv[2] if len(sys.argv) > 2 else "hw1_autoencoders")
