"""Copy detection: submissions that copy the reference, and pairs of near-identical submissions.

Evidence for the instructor, never a grade (what MOSS gives instructors): a flag here marks
the submission for review (every graded cell ``needs_manual_grade``) and leaves its points
alone. Code is compared by normalised-token similarity with ``copydetect`` (Pygments
tokens; names, strings and comments normalised away, so renaming variables, reformatting or
rewriting comments does not hide a copy; k-gram fingerprints, winnowed):

- **reference copies**: the student's code (solution cells and added code cells of the
  submitted notebook) against each top-level definition of the reference sources: by
  default the assignment's ``gradelib/checks/references/<assignment>.py`` (the graded
  functions' reference implementations, instructor side) and the family modules'
  definitions whose names the assignment grades (``gradelib/<family>.py``: the book's own
  code). A definition of the student's made mostly of a reference's fingerprints, or code
  holding most of a reference definition's fingerprints, is flagged, if the shared code is
  long enough to mean something (``MIN_SHARED``: a one-line formula is the same in every
  honest solution);
- **pairs**: every pair of submissions, with the released notebook's own text (stubs,
  signatures, docstrings) removed as boilerplate; a pair whose code is near-identical in
  both directions is flagged on both students.

Only definitions of some length are compared (``MIN_UNIT_CHARS``): a one-line formula is the
same in every honest solution, so an assignment made of one-liners (hw6) gets no flags here.

Bounded: each submission's code is cut at ``MAX_CODE_CHARS`` and the whole analysis stops
at its clock (the report says what was not compared).
"""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from gradelib.grading.cells import cell_source, grade_id, is_solution, nbgrader_metadata, read_notebook

REPO = Path(__file__).resolve().parents[2]
#: k-gram length and winnowing window of copydetect (characters of normalised code, where a
#: name is one character: 25 is copydetect's default noise threshold, ~10 tokens).
NOISE = 25
WINDOW = 1
# Calibration (benchmarks/similarity.py on tests/data/similarity/, recorded in
# benchmarks/results/similarity.json): three honest solutions of three graded functions
# (power iteration, sliced Wasserstein, a WGAN-GP critic loop) score at most 0.38 against
# the reference; copies with every name renamed, comments and messages rewritten score
# 0.84-0.93 per function (0.40 for a 6-line function whose constant was also changed: too
# short to tell). Honest pairs share at most 0.16 of their code (the smaller side), a renamed
# copy 1.0.
#: Flag a reference copy from this share of shared fingerprints (either side).
REFERENCE_SIMILARITY = 0.7
#: Flag a pair when both submissions share at least this share of their code.
PAIR_SIMILARITY = 0.8
#: Least shared normalised code (characters, ~6 lines) for any flag. Short functions are
#: written the same way by everyone: the instructor's own 4-line hw5 ``sliced_wasserstein``
#: shares 99 characters (87% of itself) with the reference module's, the honest calibration
#: solutions at most 82; the renamed copies share 200-317 per function (a 5-line body copied
#: alone, 102, is not told apart).
MIN_SHARED = 150
#: Only definitions of at least this much normalised code (characters; ~5 lines, docstring
#: included) are compared, on either side: one-line formulas and short answers are the same
#: in every honest solution (hw6's eighteen functions are 20-90 characters each, hw1's
#: Autoencoder 322), so they are evidence of nothing.
MIN_UNIT_CHARS = 100
#: Pairs at or above this (either side) are listed in similarity.csv, flagged or not.
REPORT_SIMILARITY = 0.5
MAX_CODE_CHARS = 200_000
SECONDS = 120.0


@dataclass
class SimilarityReport:
    """What ``analyse`` found: flags per student, CSV rows, report lines."""

    flags: dict[str, list[str]] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def write_csv(self, path: Path) -> None:
        """``similarity.csv``: kind, a, b, similarity of a, of b, shared characters, flagged."""
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["kind", "a", "b", "similarity_a", "similarity_b",
                                                        "shared", "flagged"])
            writer.writeheader()
            writer.writerows(sorted(self.rows, key=lambda r: (r["kind"], -max(r["similarity_a"],
                                                                                 r["similarity_b"]))))


@contextlib.contextmanager
def _quiet():
    """copydetect logs a warning on the root logger for code too short to fingerprint."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _fingerprint(code: str, boilerplate=None):
    from copydetect import CodeFingerprint

    with _quiet():
        return CodeFingerprint("code.py", NOISE, WINDOW, boilerplate=boilerplate, fp=io.StringIO(code))


def compare(a, b) -> tuple[int, float, float]:
    """(shared normalised characters, share of ``a``, share of ``b``) of two fingerprints."""
    from copydetect import compare_files

    if not a.hashes or not b.hashes:
        return 0, 0.0, 0.0
    shared, (sim_a, sim_b), _ = compare_files(a, b)
    return int(shared), float(sim_a), float(sim_b)


def definitions(code: str) -> dict[str, str]:
    """Top-level functions and classes of Python source, by name (empty if it does not parse)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            segment = ast.get_source_segment(code, node)
            if segment:
                found[node.name] = segment
    return found


def solution_names(source) -> set[str]:
    """Names the instructor's solution cells define at top level (the graded names)."""
    names: set[str] = set()
    for cell in source["cells"]:
        if is_solution(cell) and cell.get("cell_type") == "code":
            text = "\n".join(line for line in cell_source(cell).splitlines() if not line.lstrip().startswith("%"))
            names |= set(definitions(text))
    return names


def reference_units(assignment: str, source, references: list[Path] | None = None) -> dict[str, str]:
    """``{label: code}``: the reference definitions a submission must not copy.

    Args:
        references: files whose every top-level definition is a reference; default: the
            assignment's ``gradelib/checks/references/<assignment>.py`` (if it exists), and
            in any case the family modules' (``gradelib/*.py``) definitions named like a
            graded name of the assignment.
    """
    units: dict[str, str] = {}
    if references is None:
        own = REPO / "gradelib" / "checks" / "references" / f"{assignment}.py"
        files = [own] if own.exists() else []
        names = solution_names(source)
        for module in sorted((REPO / "gradelib").glob("*.py")):
            if module.name == "__init__.py":
                continue
            for name, code in definitions(module.read_text()).items():
                if name in names:
                    units[f"gradelib.{module.stem}.{name}"] = code
    else:
        files = [Path(p) for p in references]
    for path in files:
        for name, code in definitions(Path(path).read_text()).items():
            units[f"{Path(path).name}:{name}"] = code
    return units


def _normalised_length(code: str) -> int:
    return len(_fingerprint(code).filtered_code)


def substantial(code: str) -> dict[str, str]:
    """The top-level definitions of ``code`` long enough to compare (``MIN_UNIT_CHARS``)."""
    return {name: text for name, text in definitions(code).items() if _normalised_length(text) >= MIN_UNIT_CHARS}


def student_code(notebook, source) -> str:
    """The code a student wrote: their solution cells and added code cells, in order."""
    solution_ids = {grade_id(c) for c in source["cells"] if is_solution(c)}
    parts = []
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        if grade_id(cell) in solution_ids or not nbgrader_metadata(cell):
            parts.append("\n".join(line for line in cell_source(cell).splitlines()
                                   if not line.lstrip().startswith(("%", "!"))))
    return "\n\n".join(parts)[:MAX_CODE_CHARS]


def analyse(submissions: dict[str, object], source, release, assignment: str,
            references: list[Path] | None = None, seconds: float = SECONDS) -> SimilarityReport:
    """Reference copies and near-identical pairs among the submissions of one assignment.

    Args:
        submissions: ``{student: notebook}`` (nbformat v4, as submitted).
        source: the instructor's notebook; release: the students' notebook (boilerplate).
        references: reference files (``reference_units``); None for the default.
        seconds: the clock; past it the remaining comparisons are skipped and reported.

    Returns:
        a ``SimilarityReport``; ``flags[student]`` are ``"copy of the reference: ..."`` and
        ``"similar submission: ..."`` lines.
    """
    deadline = time.monotonic() + seconds
    report = SimilarityReport()
    boilerplate = sorted(_fingerprint(student_code(release, source)).hashes)
    units = {label: _fingerprint(code) for label, code in reference_units(assignment, source, references).items()
             if _normalised_length(code) >= MIN_UNIT_CHARS}
    codes = {}
    for student, nb in sorted(submissions.items()):
        kept = substantial(student_code(nb, source))
        codes[student] = (kept, "\n\n".join(kept.values()))
    prints = {s: _fingerprint(code, boilerplate) for s, (_, code) in codes.items()}
    parts = {s: {name: _fingerprint(text, boilerplate) for name, text in kept.items()}
             for s, (kept, _) in codes.items()}
    skipped = 0

    def flag(student: str, text: str) -> None:
        report.flags.setdefault(student, [])
        if text not in report.flags[student]:
            report.flags[student].append(text)

    for student in codes:
        for label, unit in units.items():
            if time.monotonic() > deadline:
                skipped += 1
                continue
            shared, _, of_reference = compare(prints[student], unit)
            best = (of_reference, shared, "of the reference is in the code")
            for name, part in parts[student].items():
                part_shared, of_part, part_reference = compare(part, unit)
                if part_shared >= MIN_SHARED and max(of_part, part_reference) > best[0]:
                    best = (max(of_part, part_reference), part_shared, f"shared with the student's {name}")
            similarity, shared, how = best
            if similarity >= REPORT_SIMILARITY and shared >= MIN_SHARED:
                flagged = similarity >= REFERENCE_SIMILARITY
                report.rows.append({"kind": "reference", "a": student, "b": label, "similarity_a": round(similarity, 3),
                                    "similarity_b": round(of_reference, 3), "shared": shared, "flagged": flagged})
                if flagged:
                    flag(student, f"copy of the reference: {label}: {similarity:.0%} {how} ({shared} normalised "
                                  f"characters; copydetect)")
    students = list(codes)
    for i, a in enumerate(students):
        for b in students[i + 1:]:
            if time.monotonic() > deadline:
                skipped += 1
                continue
            shared, sim_a, sim_b = compare(prints[a], prints[b])
            if shared < MIN_SHARED or max(sim_a, sim_b) < REPORT_SIMILARITY:
                continue
            flagged = min(sim_a, sim_b) >= PAIR_SIMILARITY
            report.rows.append({"kind": "pair", "a": a, "b": b, "similarity_a": round(sim_a, 3),
                                "similarity_b": round(sim_b, 3), "shared": shared, "flagged": flagged})
            if flagged:
                flag(a, f"similar submission: {b} ({sim_a:.0%} of this code, {sim_b:.0%} of theirs; copydetect)")
                flag(b, f"similar submission: {a} ({sim_b:.0%} of this code, {sim_a:.0%} of theirs; copydetect)")
    flagged_rows = [r for r in report.rows if r["flagged"]]
    report.lines.append(f"copy detection (copydetect): {len(codes)} submissions, {len(units)} reference definitions; "
                        f"{sum(r['kind'] == 'reference' for r in flagged_rows)} reference copies, "
                        f"{sum(r['kind'] == 'pair' for r in flagged_rows)} near-identical pairs flagged "
                        f"(thresholds {REFERENCE_SIMILARITY:.0%} / {PAIR_SIMILARITY:.0%}; similarity.csv lists "
                        f"everything from {REPORT_SIMILARITY:.0%})")
    for row in flagged_rows:
        report.lines.append(f"    {row['kind']}: {row['a']} ~ {row['b']}: {row['similarity_a']:.0%} / "
                            f"{row['similarity_b']:.0%} ({row['shared']} characters)")
    if skipped:
        report.lines.append(f"    stopped at its clock ({seconds:g} s): {skipped} comparisons not made")
    return report


def analyse_course(course: Path, assignment: str, students: list[str] | None = None,
                   references: list[Path] | None = None, max_bytes: int | None = None,
                   seconds: float = SECONDS) -> SimilarityReport:
    """``analyse`` on ``course/submitted/*/<assignment>/`` (refused files are skipped).

    Writes ``grading/<assignment>/similarity.csv``.
    """
    from gradelib.grading.cli import refusal
    from gradelib.grading.sandbox import Limits

    max_bytes = max_bytes or Limits().submission_bytes
    source_dir, release_dir = course / "solutions" / assignment, course / "notebooks" / assignment
    report = SimilarityReport()
    for source_path in sorted(source_dir.glob("*.ipynb")):
        source = read_notebook(source_path)
        release = read_notebook(release_dir / source_path.name)
        submissions = {}
        for folder in sorted((course / "submitted").glob(f"*/{assignment}")):
            path = folder / source_path.name
            if (students and folder.parent.name not in students) or not path.exists() or refusal(path, max_bytes):
                continue
            try:
                submissions[folder.parent.name] = read_notebook(path)
            except ValueError:
                continue
        part = analyse(submissions, source, release, assignment, references, seconds)
        for student, flags in part.flags.items():
            report.flags.setdefault(student, []).extend(flags)
        report.rows += part.rows
        report.lines += part.lines
    out = course / "grading" / assignment
    out.mkdir(parents=True, exist_ok=True)
    report.write_csv(out / "similarity.csv")
    return report
