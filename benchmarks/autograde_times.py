"""Measure, for each assignment, how long the solution notebook runs and how long grading
one correct submission takes.

For each assignment a temporary course directory receives the release (the instructor's
``make grade-release`` step, :func:`gradelib.grading.cli.release`) and one submission (the
released notebook with the solutions filled in). Three figures, each timed end to end:

- ``validate``: ``nbgrader validate`` of the solution notebook, i.e. the notebook executed top
  to bottom with its hidden tests (the homework issues' "solution notebook" budget);
- ``nbgrader_autograde``: plain ``nbgrader autograde`` of the submission (student code and
  hidden tests in one kernel);
- ``pipeline``: :func:`gradelib.grading.pipeline.grade_assignment` with one worker: the
  sandboxed kernel (the student's feedback) and the trusted checker (the grade), the
  course's grading path (the "autograding one submission" budget), with its two phases.

Prints a table and writes ``benchmarks/results/autograde_times.json`` with the record keys of
the benchmark convention (CONTRIBUTING.md): the commit measured, the configuration
(assignments, core count, ``OMP_NUM_THREADS``, which the kernels inherit), the load average
before the run and the torch thread count. One run is one record: running a subset
replaces the record with that subset only.

Usage: ``OMP_NUM_THREADS=1 uv run python benchmarks/autograde_times.py [assignment ...]``
(default: all). Commit first: the record names ``git rev-parse --short HEAD``.
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
RESULTS = REPO / "benchmarks" / "results" / "autograde_times.json"
sys.path.insert(0, str(REPO))

import provenance  # noqa: E402 - benchmarks/provenance.py: the record's first keys
from gradelib.grading.cells import with_solutions  # noqa: E402
from gradelib.grading.cli import nbgrader, release  # noqa: E402
from gradelib.grading.pipeline import grade_assignment  # noqa: E402
from gradelib.grading.sandbox import Limits  # noqa: E402


def course_with_one_submission(root: Path, assignment: str) -> Path:
    """A course with the release and one correct submission, ``student``."""
    course = root / "course"
    release(course, assignment)
    name = f"{assignment}.ipynb"
    submission = with_solutions(nbformat.read(course / "notebooks" / assignment / name, as_version=4),
                                nbformat.read(course / "solutions" / assignment / name, as_version=4))
    target = course / "submitted" / "student" / assignment
    target.mkdir(parents=True)
    nbformat.write(submission, target / name)
    return course


def measure(assignment: str) -> dict:
    """Seconds of validate, nbgrader autograde and the pipeline for one assignment."""
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        course = course_with_one_submission(Path(tmp) / "plain", assignment)
        start = time.perf_counter()
        nbgrader(["validate", str(course / "solutions" / assignment / f"{assignment}.ipynb")], course)
        figures["validate"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        nbgrader(["autograde", assignment], course)
        figures["nbgrader_autograde"] = round(time.perf_counter() - start, 1)

        course = course_with_one_submission(Path(tmp) / "pipeline", assignment)
        start = time.perf_counter()
        (result,) = grade_assignment(course, assignment, limits=Limits(), workers=1)
        figures["pipeline"] = round(time.perf_counter() - start, 1)
        figures["pipeline_phases"] = {phase: round(result.get("timing", {}).get(phase, 0.0), 1)
                                      for phase in ("kernel", "trusted")}
        figures["pipeline_score"] = f"{result['score']:g}/{result['max_score']:g}"
    return figures


def main(assignments: list[str]) -> None:
    import torch  # only for the thread count the kernels will use

    assignments = assignments or sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
    dirty = provenance.uncommitted("solutions", "gradelib")
    if dirty:
        print("warning: solutions/ or gradelib/ has uncommitted changes; the record's commit "
              "will not describe the code measured", file=sys.stderr)
    record = {
        "benchmark": "autograde_times",
        "commit": provenance.commit(),
        "config": {"assignments": assignments,
                   "submission": "the released notebook with the solutions filled in, one per assignment",
                   "figures": {"validate": "nbgrader validate of the solution notebook",
                               "nbgrader_autograde": "plain nbgrader autograde",
                               "pipeline": "gradelib.grading.pipeline.grade_assignment, one worker"},
                   "uncommitted_changes_in_solutions_or_gradelib": dirty,
                   "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
                   "cpus": os.cpu_count()},
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "threads": torch.get_num_threads(),
        "seconds": {},
    }
    print(f"{'':>20}  {'validate':>9}  {'autograde':>9}  {'pipeline':>9}  (kernel + trusted)")
    for assignment in assignments:
        figures = measure(assignment)
        figures["loadavg_after"] = round(os.getloadavg()[0], 2)
        record["seconds"][assignment] = figures
        phases = figures["pipeline_phases"]
        print(f"{assignment:>20}  {figures['validate']:9.1f}  {figures['nbgrader_autograde']:9.1f}  "
              f"{figures['pipeline']:9.1f}  ({phases['kernel']} + {phases['trusted']}; "
              f"{figures['pipeline_score']})", flush=True)
    record["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    record["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main(sys.argv[1:])
