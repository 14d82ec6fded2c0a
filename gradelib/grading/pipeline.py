"""One submission in, one plain-data result out; many of them in parallel; the gradebook.

``grade_submission(job)`` is the unit of work: a dict of paths and limits in, a dict of
JSON-compatible data out (points per test cell, flags, the executed notebook as a string).
It has no shared state, so it runs the same in a ``ProcessPoolExecutor`` (the default,
sized to the cores) or on a Dask cluster (``grade_assignment(..., dask_scheduler=ADDRESS)``),
provided the workers see the course directory at the same path.

Only the parent process writes into the course directory, one submission at a time as each
job returns (a slow submission holds up no other): the executed notebook, bounded and
sanitised again (``sanitize.py``), into ``autograded/<student>/<assignment>/``, the result
into ``grading/<assignment>/`` (one JSON per student, and ``report.txt`` rewritten with
every result so far), and the scores into nbgrader's gradebook (``gradebook.db``), so that
``nbgrader generate_feedback``, ``nbgrader export`` and the formgrader work as usual. Student
code never sees any of them. Any flag marks every graded cell of the submission
``needs_manual_grade`` (formgrader lists it, ``grades.csv`` has ``review`` True), whatever
its score. A submitted file that is not a regular file of at most ``Limits.submission_bytes``
is not read: it gets zero points and a ``refused`` flag. Before grading, the submissions are
compared with the reference sources and with each other (``similarity.py``); those flags
join each submission's.

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
from concurrent.futures import ProcessPoolExecutor, as_completed
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

        # The sandbox's uid comes from this key, and kill_all kills every process of that uid:
        # the run's own scratch directory keeps two grading runs on one machine (two courses,
        # or the test suite's workers) from sharing a uid and ending each other's processes.
        key = f"{job['scratch']}/{job['assignment']}/{job['student']}/{job['notebook']}"
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

    A job whose file is a symbolic link (or sits in a linked folder), not a regular file,
    hard-linked or larger than ``limits.submission_bytes`` carries ``refused`` (the reason,
    ``cli.refusal``) and is never read.

    Raises:
        ValueError: if the assignment has no source notebook or no release in the course.
    """
    from gradelib.grading.cli import refusal

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
            path = student_dir / name
            if path.exists() or path.is_symlink():
                job = {"assignment": assignment, "student": student, "notebook": name,
                       "submission": str(path), "source": str(source_dir / name),
                       "release": str(release_dir / name), "scratch": str(scratch),
                       "limits": limits.as_dict(), "use_bwrap": use_bwrap}
                if student_dir.parent.is_symlink() or student_dir.is_symlink():
                    job["refused"] = "the submission's folder is a symbolic link"
                else:
                    why = refusal(path, limits.submission_bytes)
                    if why:
                        job["refused"] = f"{name} {why}"
                jobs.append(job)
    return jobs


def _empty_result(job: dict, flags: list[str]) -> dict:
    """Zero points on every graded cell, the flags, marked for review; nothing executed."""
    try:
        maxima = graded_points(read_notebook(job["source"]))
    except ValueError:
        maxima = {}
    return {"student": job["student"], "assignment": job["assignment"], "notebook": job["notebook"],
            "score": 0.0, "max_score": sum(maxima.values()),
            "cells": {g: {"max": m, "kernel": 0.0, "verification": "not run", "final": 0.0, "note": flags[0]}
                      for g, m in maxima.items()},
            "flags": flags, "review": True, "sandbox": "", "notebook_json": None, "seconds": 0.0}


def refused_result(job: dict) -> dict:
    """The result of a job whose file was refused (``submission_jobs``): not read, zero."""
    return _empty_result(job, [f"refused: {job['refused']}; not graded (collect only regular files)"])


def crashed_result(job: dict, error: BaseException) -> dict:
    """The result of a job whose worker died or raised (the pool's, not the student's, fault)."""
    return _empty_result(job, [f"grader error: the worker failed: {type(error).__name__}: {str(error)[:300]}"])


def run_jobs(jobs: list[dict], workers: int | None = None, dask_scheduler: str | None = None,
             on_result=None) -> list[dict]:
    """Run ``grade_submission`` over the jobs: a process pool, or a Dask cluster if named.

    Args:
        jobs: from ``submission_jobs`` (refused jobs are answered here, never sent out).
        workers: pool size (default: the number of cores).
        dask_scheduler: a ``dask.distributed`` scheduler address (``tcp://host:8786``), or
            a ``distributed.Client``; None for the local pool.
        on_result: called with each result as soon as its job returns (in completion order).

    Returns:
        the results, in completion order.
    """
    results: list[dict] = []

    def finished(result: dict) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    for job in jobs:
        if job.get("refused"):
            finished(refused_result(job))
    todo = [job for job in jobs if not job.get("refused")]
    if not todo:
        return results
    if dask_scheduler is not None:
        from distributed import Client
        from distributed import as_completed as dask_completed

        client = dask_scheduler if isinstance(dask_scheduler, Client) else Client(dask_scheduler)
        try:
            futures = client.map(grade_submission, todo, pure=False, retries=0)
            owner = {future.key: job for future, job in zip(futures, todo)}
            for future in dask_completed(futures):
                try:
                    finished(future.result())
                except Exception as error:  # noqa: BLE001 - a worker lost, a pickling failure
                    finished(crashed_result(owner[future.key], error))
        finally:
            if client is not dask_scheduler:
                client.close()
        return results
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        for job in todo:
            finished(grade_submission(job))
        return results
    with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
        futures = {pool.submit(grade_submission, job): job for job in todo}
        for future in as_completed(futures):
            try:
                finished(future.result())
            except Exception as error:  # noqa: BLE001 - BrokenProcessPool: a worker was killed
                finished(crashed_result(futures[future], error))
    return results


MAX_FLAG_CHARS = 500


class ResultWriter:
    """Writes each result into the course as it arrives, and the report after each one.

    Args:
        course: the course directory; assignment: its name.
        expected: the students still to come (listed as pending in the report).
        extra_flags: ``{student: [flag]}`` found before grading (copy detection), added to
            that student's result.
        preamble: lines for the report after its header (refusals at collect, copy detection).
        limits: the run's limits (the notebook's output cap is applied again before storing).
    """

    def __init__(self, course: Path, assignment: str, expected: list[str] | None = None,
                 extra_flags: dict[str, list[str]] | None = None, preamble: list[str] | None = None,
                 limits: Limits | None = None):
        self.course, self.assignment = Path(course), assignment
        self.limits = limits or Limits()
        self.out = self.course / "grading" / assignment
        self.out.mkdir(parents=True, exist_ok=True)
        self.pending = list(expected or [])
        self.extra_flags = extra_flags or {}
        self.preamble = list(preamble or [])
        self.results: list[dict] = []

    def write(self, result: dict) -> None:
        """Store one result: notebook, JSON, gradebook, report."""
        from gradelib.grading.sanitize import bound_outputs, sanitize_notebook

        flags = [str(f)[:MAX_FLAG_CHARS] for f in result.get("flags", [])]
        flags += [f for f in self.extra_flags.get(result["student"], []) if f not in flags]
        result["flags"] = list(dict.fromkeys(flags))
        result["review"] = bool(result.get("review")) or bool(result["flags"])
        if result.get("notebook_json"):
            notebook = nbformat.reads(result["notebook_json"], as_version=4)
            sanitize_notebook(notebook)
            bound_outputs(notebook, self.limits.notebook_output_bytes, self.limits.notebook_output_bytes)
            target = self.course / "autograded" / result["student"] / self.assignment
            target.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, target / result["notebook"])
            stamp = self.course / "submitted" / result["student"] / self.assignment / "timestamp.txt"
            if stamp.is_file() and not stamp.is_symlink() and stamp.stat().st_size < 1000:
                shutil.copy(stamp, target / "timestamp.txt")
        record = {k: v for k, v in result.items() if k != "notebook_json"}
        (self.out / f"{result['student']}.json").write_text(json.dumps(record, indent=1) + "\n")
        self._gradebook(result)
        self.results.append(result)
        if result["student"] in self.pending:
            self.pending.remove(result["student"])
        self.report()

    def _gradebook(self, result: dict) -> None:
        from nbgrader.api import Gradebook

        with warnings.catch_warnings(), Gradebook(f"sqlite:///{self.course / 'gradebook.db'}") as gb:
            warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy warnings
            gb.update_or_create_student(result["student"])
            gb.update_or_create_submission(self.assignment, result["student"])
            for gid, cell in result["cells"].items():
                grade = gb.find_grade(gid, Path(result["notebook"]).stem, self.assignment, result["student"])
                grade.auto_score = cell["final"]
                # Any flag: a human looks at every graded cell, full marks or not.
                grade.needs_manual_grade = bool(result["review"])
            gb.db.commit()

    def report(self) -> Path:
        """Rewrite ``grading/<assignment>/report.txt`` with the results so far."""
        results = sorted(self.results, key=lambda r: r["student"])
        sandbox = next((r["sandbox"] for r in results if r.get("sandbox")), "sandbox: not started (see flags)")
        lines = [f"{self.assignment}: {len(results)} submissions" +
                 (f" graded, {len(self.pending)} pending" if self.pending else ""), sandbox]
        refused_file = self.out / "refused.txt"
        if refused_file.is_file():
            refused = refused_file.read_text().splitlines()
            lines.append(f"refused at collect ({len(refused)}):")
            lines += [f"    {line}" for line in refused]
        lines += self.preamble
        for r in results:
            mark = "REVIEW" if r["review"] else "ok"
            lines.append(f"{r['student']:<24} {r['score']:6.1f} / {r['max_score']:<6.1f} {mark:<6} "
                         f"{r['seconds']:7.1f} s")
            lines += [f"    {flag}" for flag in r["flags"]]
        lines += [f"{student:<24} pending" for student in self.pending]
        report = self.out / "report.txt"
        report.write_text("\n".join(lines) + "\n")
        return report


def write_results(course: Path, results: list[dict]) -> Path:
    """Write executed notebooks, per-student JSON, the report, and the gradebook scores.

    Returns:
        the path of the report (``grading/<assignment>/report.txt``).
    """
    if not results:
        raise ValueError("results: expected at least one graded submission, got none")
    writer = ResultWriter(course, results[0]["assignment"])
    for result in results:
        writer.write(result)
    return writer.report()


def grade_assignment(course: Path, assignment: str, *, limits: Limits | None = None,
                     students: list[str] | None = None, workers: int | None = None,
                     dask_scheduler=None, use_bwrap: bool | None = None,
                     references: list[Path] | None = None) -> list[dict]:
    """Grade every submission of an assignment in a course directory; write the results.

    Private copies go to a temporary directory outside the course (and the repository),
    removed afterwards. Each result is written when its job returns (``ResultWriter``).

    Args:
        references: the reference sources for copy detection (``similarity.reference_units``;
            default: the assignment's ``gradelib/checks/references`` module and the family
            modules' graded names).

    Returns:
        the results (``grade_submission``'s dicts), sorted by student.
    """
    from gradelib.grading.similarity import analyse_course

    course = Path(course).resolve()
    limits = limits or Limits()
    scratch = Path(tempfile.mkdtemp(prefix="gradelib-grading-"))  # 0700: other users see nothing
    try:
        jobs = submission_jobs(course, assignment, limits, scratch, students, use_bwrap)
        if not jobs:
            return []
        similarity = analyse_course(course, assignment, students, references, limits.submission_bytes)
        writer = ResultWriter(course, assignment, sorted({job["student"] for job in jobs}),
                              similarity.flags, similarity.lines, limits)
        run_jobs(jobs, workers, dask_scheduler, on_result=writer.write)
        return sorted(writer.results, key=lambda r: r["student"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
