"""The instructor's command line: ``python -m gradelib.grading <step> --course DIR ...``.

Steps (each works on a course directory outside the repository, created if needed):

- ``release ASSIGNMENT``: copy ``solutions/<assignment>/`` and ``nbgrader_config.py`` from
  the repository into the course (if absent there) and run ``nbgrader generate_assignment``;
  the student version lands in ``<course>/notebooks/<assignment>/``.
- ``collect ASSIGNMENT --from DIR``: copy ``DIR/<student>/<assignment>.ipynb`` (or
  ``DIR/<student>/<assignment>/*.ipynb``) into ``submitted/<student>/<assignment>/``;
  ``collect ASSIGNMENT --zip FILE``: an LMS download, through ``nbgrader zip_collect``
  (file names ``<student>_<anything>_<notebook>.ipynb`` by default; ``--regexp`` changes it).
  Only regular files are collected: a symbolic link (to another student's notebook, to the
  solutions), a hard link, a FIFO or a device is refused, and so is a notebook larger than
  ``--max-submission-bytes`` (``Limits.submission_bytes``, 32 MiB); each refusal is printed
  and listed in ``grading/<assignment>/refused.txt``, which the grade report repeats.
- ``autograde ASSIGNMENT``: the sandboxed, verified, parallel grading of ``pipeline.py``;
  ``--workers N``, ``--dask-scheduler ADDRESS``, limits (``--cell-timeout`` ...). Prints
  the report and writes it to ``grading/<assignment>/report.txt``.
- ``feedback ASSIGNMENT``: ``nbgrader generate_feedback`` (HTML in ``feedback/``), then
  every page sanitised (``sanitize.sanitize_feedback_html``: no script runs in it).
- ``export``: ``nbgrader export`` to ``--to FILE`` (default ``<course>/grades.csv``), with a
  ``review`` column: ``True`` while any graded cell of the submission still needs a human
  (every cell of a flagged submission does, until the instructor grades it by hand).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
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


@dataclass
class Collected:
    """What a collect step did: the students collected, and the files it refused (reason each)."""

    students: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def refusal(path: Path, max_bytes: int) -> str | None:
    """Why the file at ``path`` must not be read as a submission, or None if it may.

    Refused: a symbolic link (whatever it points to), anything but a regular file (a
    directory, FIFO, socket, device), a file with other hard links, a file larger than
    ``max_bytes``. Nothing is followed: the answer is about ``path`` itself (``lstat``).
    """
    try:
        info = os.lstat(path)
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if stat.S_ISLNK(info.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"is a symbolic link (to {target[:200]}), not a file"
    if not stat.S_ISREG(info.st_mode):
        kind = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
                stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}.get(stat.S_IFMT(info.st_mode),
                                                                                        "not a regular file")
        return f"is {kind}, not a regular file"
    if info.st_nlink > 1:
        return f"is a hard link ({info.st_nlink} names for one file), not a file of its own"
    if info.st_size > max_bytes:
        return f"has {info.st_size} bytes, more than the limit of {max_bytes} (--max-submission-bytes)"
    return None


def _copy_regular(path: Path, target: Path, max_bytes: int) -> str | None:
    """Copy a regular file without following links, at most ``max_bytes``; the reason if refused."""
    why = refusal(path, max_bytes)
    if why:
        return why
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        return f"cannot be opened ({error.strerror})"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):  # replaced between lstat and open
            return "is not a regular file"
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        return f"has more than the limit of {max_bytes} bytes (--max-submission-bytes)"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return None


def _record_refusals(course: Path, assignment: str, refused: dict[str, str]) -> None:
    """Append refusals to ``grading/<assignment>/refused.txt`` (the report repeats them)."""
    if not refused:
        return
    out = course / "grading" / assignment
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "refused.txt", "a") as handle:
        for where, why in refused.items():
            handle.write(f"{where}: {why}\n")


def collect_folder(course: Path, assignment: str, folder: Path, max_bytes: int | None = None) -> Collected:
    """Copy ``folder/<student>/...`` submissions into ``submitted/``.

    Args:
        max_bytes: largest notebook accepted (default ``Limits.submission_bytes``).

    Returns:
        the students collected and the refused files (``refusal``); a refused notebook
        also removes an earlier copy of it from ``submitted/``.
    """
    max_bytes = max_bytes or Limits().submission_bytes
    names = {p.name for p in (course / "solutions" / assignment).glob("*.ipynb")}
    if not names:
        raise ValueError(f"assignment: expected a released assignment in {course}, got none (run release)")
    collected = Collected()
    for student_dir in sorted(Path(folder).iterdir()):
        if student_dir.is_symlink():
            if any((student_dir / n).exists() or (student_dir / assignment / n).exists() for n in names):
                collected.refused[student_dir.name] = "the student's folder is a symbolic link"
            continue
        if not student_dir.is_dir():
            continue
        found = [p for p in student_dir.glob("*.ipynb") if p.name in names]
        inner = student_dir / assignment
        if inner.is_symlink():
            collected.refused[f"{student_dir.name}/{assignment}"] = "is a symbolic link, not a folder"
        elif inner.is_dir():
            found += [p for p in inner.glob("*.ipynb") if p.name in names]
        target = course / "submitted" / student_dir.name / assignment
        copied = False
        for path in found:
            why = _copy_regular(path, target / path.name, max_bytes)
            if why:
                collected.refused[str(path.relative_to(folder))] = why
                (target / path.name).unlink(missing_ok=True)
            else:
                copied = True
        if copied:
            collected.students.append(student_dir.name)
    _record_refusals(course, assignment, collected.refused)
    return collected


def _zip_member_refusal(info: zipfile.ZipInfo, max_bytes: int) -> str | None:
    mode = info.external_attr >> 16
    name = info.filename
    if stat.S_ISLNK(mode):
        return "is a symbolic link in the archive"
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # no type bits: a file
        return "is not a regular file in the archive"
    if name.startswith("/") or ".." in Path(name).parts:
        return "has a path outside the archive"
    if info.file_size > max_bytes:
        return f"has {info.file_size} bytes, more than the limit of {max_bytes} (--max-submission-bytes)"
    return None


def collect_zip(course: Path, assignment: str, archive: Path, regexp: str | None = None,
                max_bytes: int | None = None) -> Collected:
    """Collect an LMS zip with ``nbgrader zip_collect`` (extract, then match file names).

    The archive is first copied member by member into a clean archive of regular files only:
    symbolic links, special files, paths leaving the archive and members larger than
    ``max_bytes`` (checked on the bytes read, not only the declared size) are refused.

    Args:
        regexp: nbgrader's ``named_regexp`` (default: ``default_zip_regexp``).
        max_bytes: largest notebook accepted (default ``Limits.submission_bytes``).

    Returns:
        the students whose submissions are now in ``submitted/``, and the refused members.
    """
    max_bytes = max_bytes or Limits().submission_bytes
    if not zipfile.is_zipfile(archive):
        raise ValueError(f"--zip: expected a zip archive, got {archive}")
    notebooks = [p.stem for p in (course / "solutions" / assignment).glob("*.ipynb")]
    if not notebooks:
        raise ValueError(f"assignment: expected a released assignment in {course}, got none (run release)")
    regexp = regexp or default_zip_regexp(notebooks)
    target = course / "downloaded" / assignment / "archive"
    target.mkdir(parents=True, exist_ok=True)
    refused: dict[str, str] = {}
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(target / Path(archive).name, "w",
                                                             zipfile.ZIP_DEFLATED) as clean:
        for info in source.infolist():
            if info.is_dir():
                continue
            why = _zip_member_refusal(info, max_bytes)
            if why is None:
                with source.open(info) as member:
                    data = member.read(max_bytes + 1)
                if len(data) > max_bytes:
                    why = f"has more than the limit of {max_bytes} bytes (--max-submission-bytes)"
                else:
                    clean.writestr(info.filename, data)
            if why:
                refused[f"{Path(archive).name}:{info.filename[:200]}"] = why
    nbgrader(["zip_collect", assignment, "--force", f"--FileNameCollectorPlugin.named_regexp={regexp}"], course)
    _record_refusals(course, assignment, refused)
    return Collected(sorted(p.parent.name for p in (course / "submitted").glob(f"*/{assignment}")), refused)


def add_review_column(csv_path: Path, course: Path) -> None:
    """Add ``review`` to nbgrader's grades CSV: True while any graded cell of the submission
    needs manual grading in the gradebook (every cell of a flagged submission does)."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
        fields = list(rows[0].keys()) if rows else []
    if not rows:
        return
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        warnings.simplefilter("ignore")
        for row in rows:
            try:
                submission = gb.find_submission(row["assignment"], row["student_id"])
                row["review"] = str(bool(submission.needs_manual_grade))
            except MissingEntry:
                row["review"] = "False"  # nothing submitted: nothing to review
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*fields, "review"])
        writer.writeheader()
        writer.writerows(rows)


def sanitize_feedback(course: Path, assignment: str) -> int:
    """Sanitise every feedback page of an assignment in place; returns how many."""
    from gradelib.grading.sanitize import sanitize_feedback_html

    pages = 0
    for page in sorted((course / "feedback").glob(f"*/{assignment}/*.html")):
        if page.is_symlink() or not page.is_file():
            page.unlink(missing_ok=True)
            continue
        page.write_text(sanitize_feedback_html(page.read_text(errors="replace")))
        pages += 1
    return pages


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
    parser.add_argument("--notebook-output-bytes", type=int, default=defaults.notebook_output_bytes)
    parser.add_argument("--file-bytes", type=int, default=defaults.file_bytes, help="RLIMIT_FSIZE per process")
    parser.add_argument("--work-bytes", type=int, default=defaults.work_bytes)
    parser.add_argument("--tmp-bytes", type=int, default=defaults.tmp_bytes)
    parser.add_argument("--max-submission-bytes", type=int, default=defaults.submission_bytes,
                        help="collect and autograde: largest notebook read (default 32 MiB)")
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
                collected = collect_folder(course, args.assignment, Path(args.folder), args.max_submission_bytes)
                print(f"collected {len(collected.students)} submissions: {', '.join(collected.students)}")
            else:
                collected = collect_zip(course, args.assignment, Path(args.zip), args.regexp,
                                        args.max_submission_bytes)
                print(f"submissions of {args.assignment} now in {course / 'submitted'}: "
                      f"{', '.join(collected.students)}")
            for where, why in collected.refused.items():
                print(f"REFUSED {where}: {why}")
        elif args.step == "autograde":
            from gradelib.grading.pipeline import grade_assignment

            limits = Limits(memory_bytes=int(args.memory_gib * GIB), nproc=args.nproc,
                            cpu_seconds=args.cpu_seconds, cell_timeout=args.cell_timeout,
                            submission_timeout=args.submission_timeout, output_bytes=args.output_bytes,
                            notebook_output_bytes=args.notebook_output_bytes, file_bytes=args.file_bytes,
                            work_bytes=args.work_bytes, tmp_bytes=args.tmp_bytes,
                            submission_bytes=args.max_submission_bytes)
            results = grade_assignment(course, args.assignment, limits=limits, students=args.student,
                                       workers=args.workers, dask_scheduler=args.dask_scheduler,
                                       use_bwrap=False if args.no_bwrap else None)
            if not results:
                print(f"no submissions of {args.assignment} in {course / 'submitted'}")
            else:
                print((course / "grading" / args.assignment / "report.txt").read_text(), end="")
        elif args.step == "feedback":
            nbgrader(["generate_feedback", args.assignment, "--force"], course)
            pages = sanitize_feedback(course, args.assignment)
            print(f"feedback in {course / 'feedback'} ({pages} pages, sanitised)")
        elif args.step == "export":
            target = Path(args.to).resolve() if args.to else course / "grades.csv"
            if _inside_repository(target):
                raise ValueError(f"--to: expected a path outside the repository, got {target}")
            nbgrader(["export", f"--to={target}"], course)
            add_review_column(target, course)
            print(f"grades in {target}")
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
