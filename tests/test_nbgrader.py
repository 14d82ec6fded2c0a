"""The nbgrader round trip for every assignment, in a temporary course directory.

generate_assignment from solutions/ reproduces the committed student version exactly;
autograding a correct and a blank submission gives full and zero marks, and the correct
one's executed notebook has no error in any cell; export writes those grades to a CSV.

What ``nbgrader validate`` says of the solution (every test cell passes, no cell raises) is
checked on the autograded copy of the correct submission: full marks is every test cell
passing, and the autograded notebook keeps every cell's outputs, so a cell that raised shows
there. Running ``validate`` as well would execute each solution notebook a second time
(about 290 s of the suite over the seven assignments, measured). That every test cell fails on the
stubs (``validate --invert``) is shown, cell by cell, by running the same student version
under nbval in the installed student kit (tests/test_student_kit.py), which saves one
execution of each notebook here.
"""

from __future__ import annotations

import csv
import json
import shutil
import time

import pytest

from conftest import ASSIGNMENTS, REPO, run
from gradelib.grading.sandbox import Limits


def _nbgrader(args, course):
    result = run(["nbgrader", *args, f"--CourseDirectory.root={course}"], cwd=course, timeout=1800)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def course(request, tmp_path_factory):
    """A course directory with the assignment generated from solutions/."""
    assignment = request.param
    course = tmp_path_factory.mktemp(f"course_{assignment}")
    shutil.copy(REPO / "nbgrader_config.py", course)
    shutil.copytree(REPO / "solutions" / assignment, course / "solutions" / assignment)
    _nbgrader(["generate_assignment", assignment, "--force"], course)
    return course, assignment


def _cells(path):
    return json.loads(path.read_text())


def test_release_matches_committed_student_notebook(course):
    course, assignment = course
    generated = course / "notebooks" / assignment / f"{assignment}.ipynb"
    committed = REPO / "notebooks" / assignment / f"{assignment}.ipynb"
    assert committed.exists(), f"{committed} is missing: run `make release`"
    assert _cells(generated) == _cells(committed), (
        f"{committed.relative_to(REPO)} differs from what nbgrader generates from "
        "solutions/: run `make release` and commit the result")
    released = sorted(p.name for p in (course / "notebooks" / assignment).iterdir())
    assert released == sorted(p.name for p in (REPO / "notebooks" / assignment).iterdir())


def test_student_version_has_stubs_and_no_solutions(course):
    course, assignment = course
    text = (course / "notebooks" / assignment / f"{assignment}.ipynb").read_text()
    assert "# YOUR CODE HERE" in text and "raise NotImplementedError()" in text
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS"):
        assert marker not in text


def test_autograde_full_and_zero_marks_and_export(course):
    course, assignment = course
    submitted = course / "submitted"
    for student, source in (("correct", course / "solutions"), ("blank", course / "notebooks")):
        target = submitted / student / assignment
        target.mkdir(parents=True)
        shutil.copy(source / assignment / f"{assignment}.ipynb", target)
    start = time.perf_counter()
    _nbgrader(["autograde", assignment, "--force"], course)
    seconds = time.perf_counter() - start
    print(f"autograded 2 submissions of {assignment} in {seconds:.1f} s")
    grades_csv = course / "grades.csv"
    _nbgrader(["export", f"--to={grades_csv}"], course)
    rows = {row["student_id"]: row for row in csv.DictReader(grades_csv.open())}
    correct, blank = rows["correct"], rows["blank"]
    assert float(correct["max_score"]) > 0
    assert float(correct["score"]) == float(correct["max_score"]), correct
    assert float(blank["score"]) == 0.0, blank
    autograded = _cells(course / "autograded" / "correct" / assignment / f"{assignment}.ipynb")["cells"]
    errors = [(index, output.get("ename"), output.get("evalue"))
              for index, cell in enumerate(autograded) if cell["cell_type"] == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors, f"cells of the solution raised under nbgrader (what validate reports): {errors}"
    # The grading pipeline caps each cell's output and the notebook's (Limits): an honest
    # submission's figures must be far from either cap, or every honest student is flagged.
    limits = Limits()
    sizes = {cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", f"cell {index}"):
             sum(len(json.dumps(output)) for output in cell.get("outputs", []))
             for index, cell in enumerate(autograded) if cell["cell_type"] == "code"}
    large = {gid: size for gid, size in sizes.items() if size > limits.output_bytes / 2}
    assert not large, f"cells whose output is over half the grader's cap of {limits.output_bytes} bytes: {large}"
    assert sum(sizes.values()) < limits.notebook_output_bytes / 2, sum(sizes.values())
