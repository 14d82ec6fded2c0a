"""nbgrader cell metadata, and the notebook that is actually graded.

A submission is never trusted for anything but the code its student wrote. The notebook the
grader executes is rebuilt from the instructor's *source* notebook (``solutions/``, with the
hidden tests): every locked cell (instructions, setup, tests) comes from the source, by
nbgrader ``grade_id``; only the student's solution cells (``nbgrader.solution: true``) and
the code cells the student added without nbgrader metadata are taken from the submission.
A deleted, edited or forged test cell therefore cannot change a grade; ``tamper.py``
reports it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # nbformat is imported where used (it costs ~2 s to import)
    import nbformat  # (importing it costs ~2 s, mostly jsonschema's format checkers)


def nbgrader_metadata(cell: dict) -> dict:
    """The cell's ``metadata.nbgrader`` block, or ``{}`` if it has none."""
    meta = cell.get("metadata", {}).get("nbgrader")
    return dict(meta) if isinstance(meta, dict) else {}


def grade_id(cell: dict) -> str | None:
    """The nbgrader ``grade_id`` of a cell, or None for a cell without nbgrader metadata."""
    value = nbgrader_metadata(cell).get("grade_id")
    return value if isinstance(value, str) else None


def is_solution(cell: dict) -> bool:
    """True for a cell the student is meant to write (``nbgrader.solution: true``)."""
    return bool(nbgrader_metadata(cell).get("solution", False))


def is_graded(cell: dict) -> bool:
    """True for an autograded test cell (``nbgrader.grade: true`` on a code cell)."""
    return cell.get("cell_type") == "code" and bool(nbgrader_metadata(cell).get("grade", False))


def cell_source(cell: dict) -> str:
    """The source of a cell as one string (nbformat allows a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_ELSEWHERE = ("# (hidden tests: run by the grader's trusted checker, outside this kernel;\n"
                    "#  their result is this cell's grade, shown in the output below)")


def hidden_tests(test_cell_source: str) -> str:
    """The code between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` (or "")."""
    if HIDDEN_BEGIN not in test_cell_source:
        return ""
    return test_cell_source.split(HIDDEN_BEGIN, 1)[1].split(HIDDEN_END, 1)[0]


def without_hidden_tests(notebook: dict, grade_ids: set[str]) -> nbformat.NotebookNode:
    """A copy of ``notebook`` whose test cells in ``grade_ids`` keep only their visible tests.

    The hidden block (markers included) becomes the comment ``HIDDEN_ELSEWHERE``; the
    other cells are unchanged. The in-kernel run (the student's feedback) gets this copy
    with every test cell: the hidden checks run only in the trusted checker.
    """
    import nbformat

    copied = copy.deepcopy(notebook)
    for cell in copied["cells"]:
        text = cell_source(cell)
        if is_graded(cell) and grade_id(cell) in grade_ids and HIDDEN_BEGIN in text:
            before, rest = text.split(HIDDEN_BEGIN, 1)
            after = rest.split(HIDDEN_END, 1)[1] if HIDDEN_END in rest else ""
            cell["source"] = before + HIDDEN_ELSEWHERE + after
    return nbformat.from_dict(copied)


def with_solutions(release: dict, source: dict) -> nbformat.NotebookNode:
    """What a student who got everything right hands in: the released notebook with each
    solution cell replaced by the instructor's (nbgrader's ``### BEGIN/END SOLUTION``
    marker lines removed). For the tests, the benchmarks and the instructor chapter.

    Args:
        release: the student version (nbgrader's output), nbformat v4.
        source: the instructor version it was generated from.

    Returns:
        a new notebook; the inputs are not modified.
    """
    import nbformat

    solutions = {grade_id(c): "\n".join(line for line in cell_source(c).splitlines()
                                        if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
                 for c in source["cells"] if is_solution(c)}
    notebook = nbformat.from_dict(copy.deepcopy(release))
    for cell in notebook.cells:
        if grade_id(cell) in solutions:
            cell.source = solutions[grade_id(cell)]
    return notebook


def read_notebook(path) -> nbformat.NotebookNode:
    """Read a notebook as nbformat v4 without validating it (student files may be odd).

    Raises:
        ValueError: if the file is not a JSON notebook (the message names the path).
    """
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as error:  # nbformat raises several unrelated types for broken files
        raise ValueError(f"path: expected a Jupyter notebook, got an unreadable file {path} "
                         f"({type(error).__name__}: {error})") from error


def graded_points(source: dict) -> dict[str, float]:
    """``{grade_id: points}`` of the autograded test cells of the source notebook, in order."""
    return {grade_id(c): float(nbgrader_metadata(c).get("points", 0))
            for c in source["cells"] if is_graded(c) and grade_id(c)}


@dataclass(frozen=True)
class GradedNotebook:
    """The notebook to execute and what its construction found.

    Attributes:
        notebook: the source notebook with the student's solution cells and added cells
            spliced in (a new object; the inputs are not modified).
        student_cells: ``[(label, source)]`` of the student's code in execution order: the
            solution cells (label = grade_id) and added cells (label ``added@<grade_id>``).
        missing_solutions: grade_ids of solution cells absent from the submission (run as
            empty cells).
    """

    notebook: nbformat.NotebookNode
    student_cells: list[tuple[str, str]]
    missing_solutions: list[str]


def build_graded_notebook(submission: dict, source: dict) -> GradedNotebook:
    """Splice the student's code into the instructor's source notebook.

    Every cell of ``source`` is kept in order; a solution cell's source is replaced by the
    submission's cell of the same grade_id (an absent one becomes empty). Code cells of the
    submission that carry no nbgrader metadata (scratch cells, or cells whose metadata was
    stripped) are inserted after the source cell that preceded them in the submission.
    Submission cells with a grade_id the source does not have, and submission copies of
    locked cells, are dropped: they are the student's edits of instructor cells.

    Args:
        submission: the student's notebook (nbformat v4 dict).
        source: the instructor's notebook with hidden tests (nbformat v4 dict).

    Returns:
        a GradedNotebook; outputs of the result are cleared.
    """
    import nbformat

    source_ids = {grade_id(c) for c in source["cells"] if grade_id(c)}
    solution_ids = {grade_id(c) for c in source["cells"] if is_solution(c) and grade_id(c)}
    student_solutions: dict[str, str] = {}
    added_after: dict[str | None, list[str]] = {}
    anchor: str | None = None
    for cell in submission.get("cells", []):
        gid = grade_id(cell)
        if gid in source_ids:
            anchor = gid
            if gid in solution_ids and gid not in student_solutions:
                student_solutions[gid] = cell_source(cell)
        elif not nbgrader_metadata(cell) and cell.get("cell_type") == "code":
            added_after.setdefault(anchor, []).append(cell_source(cell))

    notebook = copy.deepcopy(source)
    cells, student_cells, missing = [], [], []

    def add_extra(after: str | None) -> None:
        for text in added_after.get(after, []):
            cells.append(nbformat.v4.new_code_cell(text))
            student_cells.append((f"added@{after or 'start'}", text))

    add_extra(None)
    for cell in notebook["cells"]:
        gid = grade_id(cell)
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        if gid in solution_ids:
            if gid in student_solutions:
                cell["source"] = student_solutions[gid]
            else:
                cell["source"] = ""
                missing.append(gid)
            if cell.get("cell_type") == "code":
                student_cells.append((gid, cell_source(cell)))
        cells.append(cell)
        if gid:
            add_extra(gid)
    notebook["cells"] = cells
    return GradedNotebook(nbformat.from_dict(notebook), student_cells, missing)
