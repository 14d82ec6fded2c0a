"""The instructor's command line: ``python -m gradelib.grading <step> --course DIR ...``.

Steps (each works on a course directory outside the repository, created if needed):

- ``release ASSIGNMENT``: copy ``solutions/<assignment>/`` and ``nbgrader_config.py`` from
  the repository into the course (if absent there) and run ``nbgrader generate_assignment``;
  the student version lands in ``<course>/notebooks/<assignment>/``.
- ``collect ASSIGNMENT --from DIR``: copy ``DIR/<student>/<assignment>.ipynb`` (or
  ``DIR/<student>/<assignment>/*.ipynb``) into ``submitted/<student>/<assignment>/``;
  ``collect ASSIGNMENT --zip FILE``: an LMS download, through ``nbgrader zip_collect``
  (file names ``<student>_<anything>_<notebook>.ipynb`` by default; ``--regexp`` changes it).
- ``autograde ASSIGNMENT``: the sandboxed, verified, parallel grading of ``pipeline.py``;
  ``--workers N``, ``--dask-scheduler ADDRESS``, limits (``--cell-timeout`` ...). Prints
  the report and writes it to ``grading/<assignment>/report.txt``.
- ``feedback ASSIGNMENT``: ``nbgrader generate_feedback`` (HTML in ``feedback/``).
- ``export``: ``nbgrader export`` to ``--to FILE`` (default ``<course>/grades.csv``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from gradelib.grading.sandbox import GIB, Limits

REPO = Path(__file__).resolve().parents[2]


def default_zip_regexp(notebooks: list[str]) -> str:
    """nbgrader's ``FileNameCollectorPlugin.named_regexp`` for ``<student>_<anything>_<notebook>.ipynb``.

    nbgrader matches it against the extracted file's absolute path; ``file_id`` is the
    notebook's name, which may itself contain underscores, so the names are spelled out.
    """
    names = "|".join(re.escape(n) for n in sorted(notebooks))
    return rf".*/(?P<student_id>[^/_]+)_(?:[^/]*_)?(?P<file_id>(?:{names}))\.ipynb$"


def _inside_repository(path: Path) -> bool:
    return path == REPO or REPO in path.parents


def course_directory(value: str) -> Path:
    """The course directory from the command line, refusing the repository itself.

    Raises:
        ValueError: if the path is inside the repository (student data must stay out of it).
    """
    path = Path(value).expanduser().resolve()
    if _inside_repository(path):
        raise ValueError(f"--course: expected a directory outside the repository {REPO}, got {path}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def nbgrader(args: list[str], course: Path) -> None:
    """Run an nbgrader command in the course directory with this environment's tools.

    Raises:
        RuntimeError: if nbgrader fails (its output is included).
    """
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}"],
                          cwd=course, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-4000:]}")


def release(course: Path, assignment: str) -> Path:
    """Generate the student version of an assignment in the course; returns its folder."""
    source = REPO / "solutions" / assignment
    if not (course / "solutions" / assignment).exists():
        if not source.exists():
            raise ValueError(f"assignment: expected one of {sorted(p.name for p in (REPO / 'solutions').iterdir())}, "
                             f"got {assignment!r}")
        shutil.copytree(source, course / "solutions" / assignment)
    if not (course / "nbgrader_config.py").exists():
        shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    nbgrader(["generate_assignment", assignment, "--force"], course)
    return course / "notebooks" / assignment


def collect_folder(course: Path, assignment: str, folder: Path) -> list[str]:
    """Copy ``folder/<student>/...`` submissions into ``submitted/``; returns the students."""
    names = {p.name for p in (course / "solutions" / assignment).glob("*.ipynb")}
    if not names:
        raise ValueError(f"assignment: expected a released assignment in {course}, got none (run release)")
    students = []
    for student_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        found = [p for p in [*student_dir.glob("*.ipynb"), *(student_dir / assignment).glob("*.ipynb")]
                 if p.name in names]
        if not found:
            continue
        target = course / "submitted" / student_dir.name / assignment
        target.mkdir(parents=True, exist_ok=True)
        for path in found:
            shutil.copy(path, target / path.name)
        students.append(student_dir.name)
    return students


def collect_zip(course: Path, assignment: str, archive: Path, regexp: str | None = None) -> list[str]:
    """Collect an LMS zip with ``nbgrader zip_collect`` (extract, then match file names).

    Args:
        regexp: nbgrader's ``named_regexp`` (default: ``default_zip_regexp``).

    Returns:
        the students whose submissions are now in ``submitted/``.
    """
    if not zipfile.is_zipfile(archive):
        raise ValueError(f"--zip: expected a zip archive, got {archive}")
    notebooks = [p.stem for p in (course / "solutions" / assignment).glob("*.ipynb")]
    if not notebooks:
        raise ValueError(f"assignment: expected a released assignment in {course}, got none (run release)")
    regexp = regexp or default_zip_regexp(notebooks)
    target = course / "downloaded" / assignment / "archive"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(archive, target / Path(archive).name)
    nbgrader(["zip_collect", assignment, "--force", f"--FileNameCollectorPlugin.named_regexp={regexp}"], course)
    return sorted(p.parent.name for p in (course / "submitted").glob(f"*/{assignment}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradelib.grading", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["release", "collect", "autograde", "feedback", "export"])
    parser.add_argument("assignment", nargs="?", help="e.g. hw1_autoencoders (all steps but export)")
    parser.add_argument("--course", required=True, help="the course directory (outside the repository)")
    parser.add_argument("--from", dest="folder", help="collect: a folder of <student>/ folders")
    parser.add_argument("--zip", help="collect: an LMS zip of submissions")
    parser.add_argument("--regexp", default=None,
                        help="collect --zip: nbgrader's named_regexp (default: <student>_<anything>_<notebook>.ipynb)")
    parser.add_argument("--student", action="append", help="autograde: only these students")
    parser.add_argument("--workers", type=int, default=None, help="autograde: pool size (default: cores)")
    parser.add_argument("--dask-scheduler", default=None, help="autograde: a dask.distributed scheduler address")
    parser.add_argument("--no-bwrap", action="store_true", help="autograde: resource limits only")
    defaults = Limits()
    parser.add_argument("--cell-timeout", type=float, default=defaults.cell_timeout)
    parser.add_argument("--submission-timeout", type=float, default=defaults.submission_timeout)
    parser.add_argument("--memory-gib", type=float, default=defaults.memory_bytes / GIB)
    parser.add_argument("--nproc", type=int, default=defaults.nproc)
    parser.add_argument("--cpu-seconds", type=int, default=defaults.cpu_seconds)
    parser.add_argument("--output-bytes", type=int, default=defaults.output_bytes)
    parser.add_argument("--to", default=None, help="export: the CSV file (default <course>/grades.csv)")
    args = parser.parse_args(argv)
    try:
        course = course_directory(args.course)
        if args.step != "export" and not args.assignment:
            raise ValueError(f"assignment: expected an assignment name for {args.step}, got none")
        if args.step == "release":
            print(f"released into {release(course, args.assignment)}")
        elif args.step == "collect":
            if bool(args.folder) == bool(args.zip):
                raise ValueError("collect: expected exactly one of --from DIR and --zip FILE")
            if args.folder:
                students = collect_folder(course, args.assignment, Path(args.folder))
                print(f"collected {len(students)} submissions: {', '.join(students)}")
            else:
                students = collect_zip(course, args.assignment, Path(args.zip), args.regexp)
                print(f"submissions of {args.assignment} now in {course / 'submitted'}: {', '.join(students)}")
        elif args.step == "autograde":
            from gradelib.grading.pipeline import grade_assignment

            limits = Limits(memory_bytes=int(args.memory_gib * GIB), nproc=args.nproc,
                            cpu_seconds=args.cpu_seconds, cell_timeout=args.cell_timeout,
                            submission_timeout=args.submission_timeout, output_bytes=args.output_bytes)
            results = grade_assignment(course, args.assignment, limits=limits, students=args.student,
                                       workers=args.workers, dask_scheduler=args.dask_scheduler,
                                       use_bwrap=False if args.no_bwrap else None)
            if not results:
                print(f"no submissions of {args.assignment} in {course / 'submitted'}")
            else:
                print((course / "grading" / args.assignment / "report.txt").read_text(), end="")
        elif args.step == "feedback":
            nbgrader(["generate_feedback", args.assignment, "--force"], course)
            print(f"feedback in {course / 'feedback'}")
        elif args.step == "export":
            target = Path(args.to).resolve() if args.to else course / "grades.csv"
            if _inside_repository(target):
                raise ValueError(f"--to: expected a path outside the repository, got {target}")
            nbgrader(["export", f"--to={target}"], course)
            print(f"grades in {target}")
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
