"""Unit tests of gradelib.grading that run no kernel: notebook splicing, tamper evidence,
the trusted checker's plan, own-work detection, limits, the sandbox command and the CLI's
refusal to write into the repository. The adversarial battery is in test_grading_battery.py."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from gradelib.grading import own_work, trusted
from gradelib.grading.cells import (HIDDEN_BEGIN, HIDDEN_ELSEWHERE, build_graded_notebook, cell_source, grade_id,
                                   graded_points, without_hidden_tests)
from gradelib.grading.cli import main as cli_main
from gradelib.grading.sandbox import Limits, Sandbox, bwrap_status
from gradelib.grading.tamper import compare_with_release, scan_student_code

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def hw6():
    source = nbformat.read(REPO / "solutions/hw6_exercises/hw6_exercises.ipynb", as_version=4)
    release = nbformat.read(REPO / "notebooks/hw6_exercises/hw6_exercises.ipynb", as_version=4)
    return source, release


def _cell(nb, gid):
    return next(c for c in nb.cells if grade_id(c) == gid)


def test_graded_notebook_restores_hidden_tests_and_keeps_student_code(hw6):
    source, release = hw6
    student = copy.deepcopy(release)
    _cell(student, "q1_solution").source = "def q1_tanh_backward(x, u):\n    return u\nq1_answer = False"
    _cell(student, "test_q1").source = "pass  # the student emptied the test"
    student.cells.insert(3, nbformat.v4.new_code_cell("scratch = 1"))
    graded = build_graded_notebook(student, source)
    test = _cell(graded.notebook, "test_q1")
    assert "check_q1(q1_answer, q1_tanh_backward)" in cell_source(test)
    assert cell_source(_cell(graded.notebook, "q1_solution")).startswith("def q1_tanh_backward(x, u)")
    labels = [label for label, _ in graded.student_cells]
    assert labels[0] == "added@data" and "q1_solution" in labels
    assert len(graded.notebook.cells) == len(source.cells) + 1
    assert graded.missing_solutions == []
    assert graded_points(source)["test_q1"] == 2.0


def test_deleted_solution_cell_runs_empty_and_is_reported(hw6):
    source, release = hw6
    student = copy.deepcopy(release)
    student.cells = [c for c in student.cells if grade_id(c) != "q4_solution"]
    graded = build_graded_notebook(student, source)
    assert graded.missing_solutions == ["q4_solution"]
    assert cell_source(_cell(graded.notebook, "q4_solution")) == ""


def test_untouched_release_has_no_tamper_flags(hw6):
    _, release = hw6
    assert compare_with_release(copy.deepcopy(release), release) == []


def test_tamper_flags_edited_missing_added_and_stripped_cells(hw6):
    _, release = hw6
    student = copy.deepcopy(release)
    _cell(student, "imports").source += "\nimport os"
    _cell(student, "test_q2").metadata["nbgrader"]["points"] = 20
    student.cells = [c for c in student.cells if grade_id(c) != "test_q4"]
    stripped = _cell(student, "test_q5")
    del stripped.metadata["nbgrader"]
    fake = nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {"grade": True, "grade_id": "bonus",
                                                                     "points": 10, "locked": True}})
    student.cells.append(fake)
    flags = compare_with_release(student, release)
    assert "edited locked cell: imports" in flags
    assert any(f.startswith("edited nbgrader metadata: test_q2 (points") for f in flags)
    assert "missing test cell: test_q4" in flags
    assert any(f.startswith("metadata removed: test_q5") for f in flags)
    assert "added test cell: bonus" in flags


@pytest.mark.parametrize("code, expected", [
    ("get_ipython().input_transformers_post.append(f)", "ipython hook: c: get_ipython().input_transformers_post"),
    ("ip = get_ipython()\nip.ast_transformers.append(t)", "ipython hook: c: ip.ast_transformers"),
    ("get_ipython().events.register('post_run_cell', f)", "ipython hook: c: get_ipython().events"),
    ("import sys\nsys.modules['gradelib.checks'] = None", "grading machinery: c: sys.modules"),
    ("import builtins\nbuiltins.AssertionError = Exception", "grading machinery: c: imports builtins"),
    ("import os\nos._exit(0)", "process control: c: os._exit"),
    ("import torch\ntorch.allclose = lambda *a, **k: True", "grading machinery: c: patches torch.allclose"),
    ("open('/course/gradebook.db')", "grading files: c: string mentions 'gradebook'"),
    ("class A:\n    def __eq__(self, o):\n        return True", "redefined comparison: c: __eq__"),
    ("%time x = 1\nfrom gradelib.checks.hw6_exercises import check_q1", "grading machinery: c: imports gradelib.checks"),
])
def test_scan_flags_code_touching_the_grading_machinery(code, expected):
    flags = scan_student_code([("c", code)])
    assert any(f.startswith(expected) for f in flags), flags


ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_scan_leaves_the_instructors_solutions_alone(assignment):
    source = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    cells = [(grade_id(c), cell_source(c)) for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert cells and scan_student_code(cells) == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_test_cell_of_every_assignment_has_a_trusted_check(assignment):
    """Each test cell's hidden tests call gradelib checks with plain names: the grade of every
    graded cell of the course comes from the trusted checker, never from the kernel."""
    source = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    plan = trusted.trusted_plan(build_graded_notebook(source, source).notebook)
    checks = {c["label"]: c["calls"] for c in plan["checks"]}
    assert set(checks) == set(graded_points(source))
    assert all(checks.values()), [label for label, calls in checks.items() if not calls]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_kernel_copy_has_no_hidden_tests(assignment):
    """The kernel (the student's feedback) runs the visible tests only: each test cell keeps
    its visible part and loses its hidden block; every other cell is unchanged."""
    source = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    graded = build_graded_notebook(source, source).notebook
    kernel = without_hidden_tests(graded, set(graded_points(source)))
    for before, after in zip(graded.cells, kernel.cells):
        if HIDDEN_BEGIN in cell_source(before):
            visible, hidden = cell_source(before).split(HIDDEN_BEGIN)
            assert cell_source(after).startswith(visible) and HIDDEN_ELSEWHERE in cell_source(after)
            assert "check_" in hidden and "gradelib.checks" not in cell_source(after)
        else:
            assert after == before


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_cells_skipped_by_the_grader_define_nothing_graded_code_needs(assignment):
    """A cell tagged grader-skip (a demonstration) is not run in the trusted checker's
    student process: it must not define a name that a later kept cell or a check uses."""
    import symtable

    source = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    graded = build_graded_notebook(source, source).notebook
    plan = trusted.trusted_plan(graded)
    needed = set(trusted.graded_names(plan))
    def free_names(table) -> set[str]:
        """Names a cell reads without assigning them itself (at top level or as globals of
        the functions it defines): what it needs from earlier cells."""
        names = {s.get_name() for s in table.get_symbols()
                 if s.is_referenced() and not (s.is_assigned() or s.is_imported())}
        for child in table.get_children():
            names |= {s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced()}
            names |= free_names(child) & {s.get_name() for s in child.get_symbols() if s.is_global()}
        return names

    for cell in plan["cells"]:
        try:
            table = symtable.symtable(cell["code"], "<cell>", "exec")
        except SyntaxError:
            continue
        needed |= free_names(table)
    for cell in graded.cells:
        if trusted.is_skipped(cell):
            from gradelib.grading.tamper import python_source

            table = symtable.symtable(python_source(cell_source(cell)), "<cell>", "exec")
            defined = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
            assert not defined & needed, (grade_id(cell), defined & needed)


def test_plan_has_the_check_calls_and_every_setup_cell(hw6):
    """Every setup cell runs in the student process (an import used only through exec or
    getattr must still be there), except cells tagged grader-skip; test cells never do."""
    source, _ = hw6
    plan = trusted.trusted_plan(build_graded_notebook(source, source).notebook)
    checks = {c["label"]: c["calls"] for c in plan["checks"]}
    assert checks["test_q1"] == [{"module": "gradelib.checks.hw6_exercises", "function": "check_q1",
                                  "args": ["q1_answer", "q1_tanh_backward"], "kwargs": {}}]
    labels = [c["label"] for c in plan["cells"]]
    assert "imports" in labels and "q1_solution" in labels
    assert not set(labels) & set(checks)
    assert trusted.graded_names(plan)["q1_tanh_backward"] == "test_q1"


@pytest.mark.parametrize("code, name", [
    ("from gradelib.autoencoders import reconstruction_loss as r\ndef reconstruction_loss(a, b):\n    return r(a, b)",
     "reconstruction_loss"),
    ("import gradelib.autoencoders as g\nlinear_ae_loss = g.linear_ae_loss", "linear_ae_loss"),
    ("import importlib\nm = importlib.import_module('gradelib.autoencoders')\nAutoencoder = getattr(m, 'Autoencoder')",
     "Autoencoder"),
    ("from gradelib import autoencoders\ndef train_autoencoder(*a):\n    return autoencoders.train_autoencoder(*a)",
     "train_autoencoder"),
    ("import importlib\nm = importlib.import_module('gradelib.' + 'autoencoders')\n"
     "reconstruction_loss = getattr(m, 'reconstruction_loss')", "reconstruction_loss"),
])
def test_own_work_static_finds_the_reference(code, name):
    names = ["linear_ae_loss", "reconstruction_loss", "Autoencoder", "train_autoencoder"]
    found = own_work.own_work_static([("cell", code)], names)
    assert list(found) == [name], found


def test_own_work_static_allows_other_gradelib_use():
    code = ("from gradelib.data import load_mnist\nfrom gradelib.autoencoders import Autoencoder\n"
            "def reconstruction_loss(x_hat, x):\n    return ((x_hat - x) ** 2).sum(dim=(1, 2, 3))")
    assert own_work.own_work_static([("cell", code)], ["reconstruction_loss"]) == {}


@pytest.mark.parametrize("field, value, error", [
    ("memory_bytes", 0, ValueError), ("nproc", -1, ValueError), ("cell_timeout", "10", TypeError),
    ("output_bytes", True, TypeError),
])
def test_limits_validate(field, value, error):
    with pytest.raises(error, match=field):
        Limits(**{field: value})


def test_sandbox_command_hides_the_course_and_the_repository(tmp_path):
    available, why = bwrap_status()
    if not available:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):  # .ci/run: bubblewrap is required
            pytest.fail(f"CI: bubblewrap must run here, but {why}")
        pytest.skip(f"bubblewrap cannot run here ({why}); the battery runs limits-only")
    box = Sandbox.create(tmp_path, Limits(), "unit", use_bwrap=True)
    secret = REPO / "solutions"
    cmd = box.command([sys.executable, "-c",
                       f"import os, socket\nprint(os.path.exists({str(secret)!r}), "
                       f"os.path.exists({str(REPO / 'gradelib')!r}))\n"
                       "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    print('net')\n"
                       "except OSError:\n    print('no net')"])
    done = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=box.preexec, env=box.env(),
                          start_new_session=True, timeout=120)
    assert done.stdout.split() == ["False", "True", "no", "net"], done.stderr


def test_cli_refuses_a_course_inside_the_repository(capsys):
    assert cli_main(["export", "--course", str(REPO / "course")]) == 2
    assert "outside the repository" in capsys.readouterr().err
    assert not (REPO / "course").exists()


def test_release_and_collect_from_a_folder_and_an_lms_zip(tmp_path):
    import zipfile

    course = tmp_path / "course"
    assert cli_main(["release", "hw6_exercises", "--course", str(course)]) == 0
    released = course / "notebooks/hw6_exercises/hw6_exercises.ipynb"
    assert released.exists()
    folder = tmp_path / "folder"
    (folder / "ann").mkdir(parents=True)
    (folder / "ann" / "hw6_exercises.ipynb").write_bytes(released.read_bytes())
    (folder / "ben" / "hw6_exercises").mkdir(parents=True)
    (folder / "ben" / "hw6_exercises" / "hw6_exercises.ipynb").write_bytes(released.read_bytes())
    (folder / "cy").mkdir()
    (folder / "cy" / "notes.ipynb").write_bytes(released.read_bytes())  # not the assignment
    assert cli_main(["collect", "hw6_exercises", "--course", str(course), "--from", str(folder)]) == 0
    archive = tmp_path / "lms.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(released, "dee_12345_hw6_exercises.ipynb")
        zf.write(released, "eve_attempt_2026-11-20-10-00-00_hw6_exercises.ipynb")
    assert cli_main(["collect", "hw6_exercises", "--course", str(course), "--zip", str(archive)]) == 0
    collected = sorted(p.parent.parent.name for p in (course / "submitted").glob("*/hw6_exercises/hw6_exercises.ipynb"))
    assert collected == ["ann", "ben", "dee", "eve"]
