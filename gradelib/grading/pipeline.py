"""One submission in, one plain-data result out; many of them in parallel; the gradebook.

``grade_submission(job)`` is the unit of work: a dict of paths and limits in, a dict of
JSON-compatible data out (points per test cell, flags, the executed notebook as a string).
It has no shared state, so it runs the same in a ``ProcessPoolExecutor`` (the default,
sized to the cores) or on a Dask cluster (``grade_assignment(..., dask_scheduler=ADDRESS)``),
provided the workers see the course directory at the same path.

Only the parent process writes into the course directory: the executed notebooks into
``autograded/<student>/<assignment>/``, the results into ``grading/<assignment>/`` (one
JSON per student and ``report.txt``), and the scores into nbgrader's gradebook
(``gradebook.db``), so that ``nbgrader generate_feedback``, ``nbgrader export`` and the
formgrader work as usual. Student code never sees any of them.

Each submission runs twice, in two sandboxes, and neither run computes a grade:

- the *kernel* run (``kernel.py``) executes the notebook as the student wrote it, with the
  visible tests only (the hidden blocks become a comment): its outputs are the student's
  feedback;
- the *trusted* run (``trusted.py``) starts the student's code in a plain sandboxed process
  (``harness.py``) and grades every test cell with its ``gradelib.checks`` calls, made in
  this worker process, which never runs student code: inputs go out and outputs come back as
  plain data (``wire.py``), and every comparison is made here.

The grade of a test cell is the trusted check's: its points if the check passed, else 0; 0
for a graded name that is one of gradelib's own implementations ("own work"). Failing the
visible tests in the kernel while passing the trusted check, a tamper finding, a fault of
the student process or of a check are flags; any flag marks the submission for review. The
trusted outcome is appended to each test cell's output in the executed notebook, so the
student's feedback shows what the grade rests on.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat

from gradelib.grading.cells import build_graded_notebook, grade_id, graded_points, read_notebook, without_hidden_tests
from gradelib.grading.kernel import prepare_workdir, run_in_kernel
from gradelib.grading.own_work import own_work_static
from gradelib.grading.remote import stage_harness
from gradelib.grading.sandbox import Limits, Sandbox, stage_student_library
from gradelib.grading.tamper import compare_with_release, scan_student_code
from gradelib.grading.trusted import graded_names, run_trusted_checks, trusted_plan


def _private_dir(scratch: str, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=scratch))  # 0700; bwrap mounts it


def _show_trusted(notebook, gid: str, check: dict, cell: dict) -> None:
    """Append the trusted check's outcome to test cell ``gid`` of the executed notebook, so
    the student's feedback says what the grade rests on (the check's own message)."""
    for nb_cell in notebook.cells:
        if grade_id(nb_cell) == gid:
            text = f"grader (trusted check, outside your code's process): {check['status']}"
            if cell["note"]:
                text += f": {cell['note']}"
            nb_cell.outputs.append(nbformat.v4.new_output(
                "stream", name="stdout" if cell["final"] == cell["max"] else "stderr",
                text=f"{text}; {cell['final']:g} of {cell['max']:g} points\n"))
            return


def grade_submission(job: dict) -> dict:
    """Grade one submitted notebook (the unit of work of the pool or the Dask cluster).

    Args:
        job: plain data: ``assignment``, ``student``, ``notebook`` (file name),
            ``submission`` (path of the submitted notebook), ``source`` (the instructor's
            notebook with hidden tests), ``release`` (the notebook the students received),
            ``scratch`` (a directory for the private copies, outside the course), ``limits``
            (``Limits`` as a dict) and ``use_bwrap`` (None: when it works).

    Returns:
        plain data: ``student``, ``assignment``, ``notebook``, ``score``, ``max_score``,
        ``cells`` (``{grade_id: {"max", "kernel", "trusted", "final", "note"}}``: ``kernel``
        the visible tests' points in the kernel, for information), ``flags``, ``review``
        (bool), ``sandbox`` (one line), ``notebook_json`` (the executed notebook),
        ``kernel_cells`` (status of every cell in the kernel), ``student_cells`` (status of
        every cell in the trusted run's student process), ``timing`` (seconds of each run),
        ``seconds``. Never raises: a failure of the grader itself becomes a flag and zero
        points, for this submission only.
    """
    start = time.monotonic()
    limits = Limits(**job["limits"])
    result = {"student": job["student"], "assignment": job["assignment"], "notebook": job["notebook"],
              "score": 0.0, "max_score": 0.0, "cells": {}, "flags": [], "review": True,
              "sandbox": "", "notebook_json": None, "seconds": 0.0}
    workdirs: list[Path] = []
    try:
        source = read_notebook(job["source"])
        release = read_notebook(job["release"])
        maxima = graded_points(source)
        result["max_score"] = sum(maxima.values())
        result["cells"] = {g: {"max": m, "kernel": 0.0, "trusted": "not run", "final": 0.0, "note": ""}
                           for g, m in maxima.items()}
        try:
            submission = read_notebook(job["submission"])
        except ValueError as error:
            result["flags"].append(f"unreadable submission: {error}")
            return result
        graded = build_graded_notebook(submission, source)
        flags = compare_with_release(submission, release)
        flags += [f"missing solution cell: {g}" for g in graded.missing_solutions
                  if not any(f.endswith(f": {g}") or f": {g} " in f for f in flags)]
        flags += scan_student_code(graded.student_cells)

        key = f"{job['assignment']}/{job['student']}/{job['notebook']}"
        private = _private_dir(job["scratch"], "grader")
        kernel_dir = _private_dir(job["scratch"], "kernel")
        student_dir = _private_dir(job["scratch"], "student")
        workdirs += [private, kernel_dir, student_dir]
        library = stage_student_library(private / "library")
        harness = stage_harness(private / "harness")
        prepare_workdir(kernel_dir)
        prepare_workdir(student_dir)
        kernel_box = Sandbox.create(kernel_dir, limits, key, job.get("use_bwrap"), library=library)
        student_box = Sandbox.create(student_dir, limits, key + "/trusted", job.get("use_bwrap"), library=library)
        result["sandbox"] = kernel_box.describe()

        plan = trusted_plan(graded.notebook)
        executed = without_hidden_tests(graded.notebook, set(maxima))
        kernel = run_in_kernel(executed, kernel_box)
        flags += kernel["flags"]
        trusted = run_trusted_checks(plan, student_box, harness)
        flags += trusted["flags"]
        result["timing"] = {"kernel": kernel["seconds"], "trusted": trusted["seconds"]}
        result["kernel_cells"] = kernel["cells"]
        result["student_cells"] = {c["label"]: c["status"] for c in trusted["cells"]}
        names = graded_names(plan)
        own_work = own_work_static(graded.student_cells, list(names))

        for gid, cell in result["cells"].items():
            cell["kernel"] = kernel["points"].get(gid, 0.0)
            check = trusted["checks"].get(gid, {"status": "not run", "message": "the trusted run ended first"})
            cell["trusted"] = check["status"]
            final = cell["max"] if check["status"] == "pass" else 0.0
            cell["note"] = check["message"][:300]
            if final > 0 and cell["kernel"] == 0:
                flags.append(f"disagreement: {gid}: the visible tests failed in the kernel "
                             f"({kernel['cells'].get(gid, '')}), the trusted check passed")
            for name, why in own_work.items():
                if names.get(name) == gid:
                    final = 0.0
                    cell["note"] = f"own work: {name} {why}"
                    flags.append(f"own work: {gid}: {name} {why}")
            cell["final"] = final
            _show_trusted(executed, gid, check, cell)
        result["score"] = sum(c["final"] for c in result["cells"].values())
        result["flags"] = list(dict.fromkeys(flags))
        result["review"] = bool(result["flags"])
        result["notebook_json"] = json.dumps(executed)
    except Exception as error:  # the grader's own failure costs this submission only
        result["flags"].append(f"grader error: {type(error).__name__}: {error}")
        result["flags"].append(traceback.format_exc(limit=3)[-500:])
    finally:
        for path in workdirs:
            shutil.rmtree(path, ignore_errors=True)
        result["seconds"] = round(time.monotonic() - start, 2)
    return result


# ----------------------------------------------------------------------------- a course

def submission_jobs(course: Path, assignment: str, limits: Limits, scratch: Path,
                    students: list[str] | None = None, use_bwrap: bool | None = None) -> list[dict]:
    """One job per (student, notebook) under ``course/submitted/<student>/<assignment>/``.

    Raises:
        ValueError: if the assignment has no source notebook or no release in the course.
    """
    source_dir = course / "solutions" / assignment
    release_dir = course / "notebooks" / assignment
    notebooks = sorted(p.name for p in source_dir.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"assignment: expected notebooks in {source_dir}, got none")
    if not all((release_dir / n).exists() for n in notebooks):
        raise ValueError(f"assignment: expected the release in {release_dir} (run the release step), got none")
    jobs = []
    for student_dir in sorted((course / "submitted").glob(f"*/{assignment}")):
        student = student_dir.parent.name
        if students and student not in students:
            continue
        for name in notebooks:
            if (student_dir / name).exists():
                jobs.append({"assignment": assignment, "student": student, "notebook": name,
                             "submission": str(student_dir / name), "source": str(source_dir / name),
                             "release": str(release_dir / name), "scratch": str(scratch),
                             "limits": limits.as_dict(), "use_bwrap": use_bwrap})
    return jobs


def run_jobs(jobs: list[dict], workers: int | None = None, dask_scheduler: str | None = None) -> list[dict]:
    """Run ``grade_submission`` over the jobs: a process pool, or a Dask cluster if named.

    Args:
        jobs: from ``submission_jobs``.
        workers: pool size (default: the number of cores).
        dask_scheduler: a ``dask.distributed`` scheduler address (``tcp://host:8786``), or
            a ``distributed.Client``; None for the local pool.
    """
    if not jobs:
        return []
    if dask_scheduler is not None:
        from distributed import Client

        client = dask_scheduler if isinstance(dask_scheduler, Client) else Client(dask_scheduler)
        try:
            futures = client.map(grade_submission, jobs, pure=False, retries=0)
            return client.gather(futures)
        finally:
            if client is not dask_scheduler:
                client.close()
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        return [grade_submission(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        return list(pool.map(grade_submission, jobs))


def write_results(course: Path, results: list[dict]) -> Path:
    """Write executed notebooks, per-student JSON, the report, and the gradebook scores.

    Returns:
        the path of the report (``grading/<assignment>/report.txt``).
    """
    from nbgrader.api import Gradebook

    if not results:
        raise ValueError("results: expected at least one graded submission, got none")
    assignment = results[0]["assignment"]
    out = course / "grading" / assignment
    out.mkdir(parents=True, exist_ok=True)
    for r in results:
        if r["notebook_json"]:
            target = course / "autograded" / r["student"] / assignment
            target.mkdir(parents=True, exist_ok=True)
            (target / r["notebook"]).write_text(r["notebook_json"])
            stamp = course / "submitted" / r["student"] / assignment / "timestamp.txt"
            if stamp.exists():
                shutil.copy(stamp, target / "timestamp.txt")
        record = {k: v for k, v in r.items() if k != "notebook_json"}
        (out / f"{r['student']}.json").write_text(json.dumps(record, indent=1) + "\n")
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy warnings
        for r in results:
            gb.update_or_create_student(r["student"])
            gb.update_or_create_submission(assignment, r["student"])
            for gid, cell in r["cells"].items():
                grade = gb.find_grade(gid, Path(r["notebook"]).stem, assignment, r["student"])
                grade.auto_score = cell["final"]
                grade.needs_manual_grade = bool(r["review"] and cell["final"] < cell["max"])
            gb.db.commit()
    lines = [f"{assignment}: {len(results)} submissions",
             f"{results[0]['sandbox'] or 'sandbox: not started (see flags)'}"]
    for r in sorted(results, key=lambda r: r["student"]):
        mark = "REVIEW" if r["review"] else "ok"
        lines.append(f"{r['student']:<24} {r['score']:6.1f} / {r['max_score']:<6.1f} {mark:<6} {r['seconds']:7.1f} s")
        lines += [f"    {flag}" for flag in r["flags"]]
    report = out / "report.txt"
    report.write_text("\n".join(lines) + "\n")
    return report


def grade_assignment(course: Path, assignment: str, *, limits: Limits | None = None,
                     students: list[str] | None = None, workers: int | None = None,
                     dask_scheduler=None, use_bwrap: bool | None = None) -> list[dict]:
    """Grade every submission of an assignment in a course directory; write the results.

    Private copies go to a temporary directory outside the course (and the repository),
    removed afterwards.

    Returns:
        the results (``grade_submission``'s dicts), sorted by student.
    """
    course = Path(course).resolve()
    limits = limits or Limits()
    scratch = Path(tempfile.mkdtemp(prefix="gradelib-grading-"))  # 0700: other users see nothing
    try:
        jobs = submission_jobs(course, assignment, limits, scratch, students, use_bwrap)
        results = sorted(run_jobs(jobs, workers, dask_scheduler), key=lambda r: r["student"])
        if results:
            write_results(course, results)
        return results
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
