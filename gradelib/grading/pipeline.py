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

The grade of a test cell is the minimum of the in-kernel result (``kernel.py``) and the
result of the verification outside the kernel (``verify.py``), where the cell has a
``gradelib`` check; 0 for a graded name that is gradelib's reference ("own work"). Every
disagreement, tamper finding or fault is a flag; a flagged submission is marked for review.

A check that trains a model itself (``@trains_model`` in ``gradelib.checks``: hw1's
``check_train_autoencoder``, hw3's ``check_train_vae``, hw4's ``check_train_gan``) runs once,
in the verification: the kernel runs that test cell's visible tests only. Training twice
per submission would make the pipeline slower than plain nbgrader, which trains once
(``benchmarks/grading.py``). For such a cell, failing the visible tests in the kernel while
passing the hidden check is flagged; the reverse is an ordinary wrong answer. The
verification's outcome is appended to the cell's output in the executed notebook, so the
student's feedback shows it.
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
from gradelib.grading.sandbox import Limits, Sandbox
from gradelib.grading.tamper import compare_with_release, scan_student_code
from gradelib.grading.verify import (graded_names, own_work_static, run_verification, training_checks,
                                    verification_plan)


def _private_dir(scratch: str, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=scratch))  # 0700; bwrap mounts it


def _show_verification(notebook, gid: str, check: dict, cell: dict) -> None:
    """Append the verification's outcome to test cell ``gid`` of the executed notebook, so
    the student's feedback says what the grade rests on (the check's own message)."""
    for nb_cell in notebook.cells:
        if grade_id(nb_cell) == gid:
            text = f"grader (verification outside the kernel): {check['status']}"
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
        ``cells`` (``{grade_id: {"max", "kernel", "verification", "final", "note"}}``),
        ``flags``, ``review`` (bool), ``sandbox`` (one line), ``notebook_json`` (the executed
        notebook), ``kernel_cells`` and ``verification_steps`` (status of every cell in each
        run), ``timing`` (seconds of each run), ``seconds``. Never raises: a failure of the grader itself becomes a flag
        and zero points, for this submission only.
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
        result["cells"] = {g: {"max": m, "kernel": 0.0, "verification": "not run", "final": 0.0, "note": ""}
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
        kernel_dir = _private_dir(job["scratch"], "kernel")
        verify_dir = _private_dir(job["scratch"], "verify")
        workdirs += [kernel_dir, verify_dir]
        shutil.copy(job["submission"], kernel_dir / job["notebook"])
        prepare_workdir(kernel_dir)
        prepare_workdir(verify_dir)
        kernel_box = Sandbox.create(kernel_dir, limits, key, job.get("use_bwrap"))
        verify_box = Sandbox.create(verify_dir, limits, key + "/verify", job.get("use_bwrap"))
        result["sandbox"] = kernel_box.describe()

        plan = verification_plan(graded.notebook, job["assignment"], limits.cell_timeout)
        training = training_checks(plan)
        executed = without_hidden_tests(graded.notebook, training)
        kernel = run_in_kernel(executed, kernel_box)
        flags += kernel["flags"]
        verification = run_verification(plan, verify_box)
        flags += verification["flags"]
        result["timing"] = {"kernel": kernel["seconds"], "verification": verification["seconds"]}
        result["kernel_cells"] = kernel["cells"]
        result["verification_steps"] = verification["steps"]
        names = graded_names(plan)
        own_work = dict(own_work_static(graded.student_cells, list(names)))
        for name, why in verification["own_work"].items():
            own_work.setdefault(name, why)

        for gid, cell in result["cells"].items():
            cell["kernel"] = kernel["points"].get(gid, 0.0)
            check = verification["checks"].get(gid, {"status": "not run", "message": ""})
            cell["verification"] = check["status"]
            final = cell["kernel"]
            if check["status"] != "no check":
                verified = cell["max"] if check["status"] == "pass" else 0.0
                kernel_side = "passed" if cell["kernel"] > 0 else f"failed ({kernel['cells'].get(gid, '')})"
                if gid in training:
                    # The kernel ran the visible tests only: passing them and failing the
                    # hidden check is an ordinary wrong answer, not a disagreement.
                    if cell["kernel"] == 0 and verified > 0:
                        flags.append(f"disagreement: {gid}: in-kernel visible tests {kernel_side}, "
                                     f"verification {check['status']}")
                elif (cell["kernel"] > 0) != (verified > 0):
                    flags.append(f"disagreement: {gid}: in-kernel {kernel_side}, verification {check['status']}"
                                 + (f" ({check['message'][:200]})" if check["message"] else ""))
                final = min(final, verified)
                cell["note"] = check["message"][:300]
            for name, why in own_work.items():
                if names.get(name) == gid:
                    final = 0.0
                    cell["note"] = f"own work: {name} {why}"
                    flags.append(f"own work: {gid}: {name} {why}")
            cell["final"] = final
            if gid in training or final < cell["kernel"]:
                _show_verification(executed, gid, check, cell)
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
