"""The nbgrader round trip for every assignment, in a temporary course directory.

generate_assignment from solutions/ reproduces the committed student version exactly;
``validate`` passes on the solution; autograding a correct and a blank submission gives
full and zero marks; export writes those grades to a CSV. That every test cell fails on the
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


def test_validate_passes_on_solution(course):
    course, assignment = course
    solution = course / "solutions" / assignment / f"{assignment}.ipynb"
    output = _nbgrader(["validate", str(solution)], course)
    assert "Success! Your notebook passes all the tests." in output, output[-3000:]


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
