"""The adversarial battery: submissions that try to cheat or crash, graded in one run.

Every submission is built here from the assignment's own cells: the released student
notebook (nbgrader's output) with its stubs replaced by the instructor's solutions, then
edited into one adversarial case. The same sixteen cases are built for two assignments
(``SUBJECTS``: hw6_exercises and hw5_wgan) from a description of four of their cells, and
all cases of one assignment are graded together in one ``grade_assignment`` run (a pool of
two workers, bubblewrap when it runs here), so each case also checks that its neighbours in
the same run are unaffected.

To keep the battery's run time small, each course holds a shortened assignment: the real
notebook's cells for four or five graded questions (the hidden tests call the real
``gradelib.checks``), without the data and training cells. One case (own work) runs the
whole ``hw1_autoencoders`` with its training cell.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from gradelib.grading.cells import grade_id, with_solutions
from gradelib.grading.cli import main as cli_main
from gradelib.grading.pipeline import grade_assignment, run_jobs, submission_jobs
from gradelib.grading.sandbox import GIB, Limits, bwrap_status

REPO = Path(__file__).resolve().parent.parent
# Short clocks for the battery: the slowest legitimate cell (importing torch on a machine
# with a load average of 7 on 2 cores) takes ~10 s; the infinite loop costs one cell timeout
# in each of the two runs (the verification's watchdog allows the cell timeout + 10 s).
LIMITS = Limits(memory_bytes=int(5 * GIB), nproc=128, cpu_seconds=300, cell_timeout=30.0,
                submission_timeout=240.0, output_bytes=50_000)
BWRAP, WHY_NOT = bwrap_status()


@dataclass(frozen=True)
class Subject:
    """A shortened assignment and the cells the cases edit.

    Attributes:
        assignment: the assignment's name.
        keep: grade_ids of the cells kept in the shortened assignment.
        full: points of each kept test cell.
        first: (solution cell, the graded function it defines, its test cell): where hooks
            are installed, output floods and stderr noise happen.
        b, c: (solution cell, its test cell, code which, appended to the solution cell,
            makes that test fail): the answers the cheating cases get wrong.
        last: (solution cell, its test cell): the loops, exits and bombs.
        always_equal: code appended to ``b``'s solution cell that replaces its graded value
            by an object whose ``__eq__`` is always true.
    """

    assignment: str
    keep: frozenset
    full: dict
    first: tuple
    b: tuple
    c: tuple
    last: tuple
    always_equal: str


HW6 = Subject(
    "hw6_exercises",
    keep=frozenset({"intro", "imports", "partA", "q1_md", "q1_solution", "q1_demo", "test_q1", "q3_md",
                    "q3_solution", "q3_demo", "test_q3", "partB", "q4_md", "q4_solution", "test_q4", "partG",
                    "q18_md", "q18_solution", "q18_demo", "test_q18", "outro"}),
    full={"test_q1": 2.0, "test_q3": 2.0, "test_q4": 1.0, "test_q18": 2.0},
    first=("q1_solution", "q1_tanh_backward", "test_q1"),
    b=("q3_solution", "test_q3", 'q3_answer = "a"'),
    c=("q4_solution", "test_q4", 'q4_answer = "a"'),
    last=("q18_solution", "test_q18"),
    always_equal="""
        class Letter(str):
            def __eq__(self, other):
                return True
            __hash__ = str.__hash__
        q3_answer = Letter("b")
        """)

HW5 = Subject(
    "hw5_wgan",
    keep=frozenset({"intro", "imports", "part1", "wasserstein_1d", "test_wasserstein_1d", "part3", "losses",
                    "test_critic_loss", "test_generator_loss", "clip_md", "clip_weights_", "test_clip_weights_",
                    "gp_md", "gradient_penalty", "test_gradient_penalty", "outro"}),
    full={"test_wasserstein_1d": 2.0, "test_critic_loss": 1.0, "test_generator_loss": 1.0,
          "test_clip_weights_": 2.0, "test_gradient_penalty": 4.0},
    first=("wasserstein_1d", "wasserstein_1d", "test_wasserstein_1d"),
    b=("losses", "test_critic_loss", "def critic_loss(real_scores, fake_scores):\n"
                                     "    return real_scores.mean() - fake_scores.mean()  # wrong sign"),
    c=("clip_weights_", "test_clip_weights_", "def clip_weights_(critic, c):\n    return None  # clips nothing"),
    last=("gradient_penalty", "test_gradient_penalty"),
    always_equal="""
        class AlwaysEqual:
            shape = ()
            def __eq__(self, other):
                return True
            __hash__ = object.__hash__
            def __sub__(self, other):
                return self
            __rsub__ = __sub__
            def __abs__(self):
                return self
            def __lt__(self, other):
                return True
            def item(self):
                return self
        def critic_loss(real_scores, fake_scores):
            return AlwaysEqual()
        """)

SUBJECTS = {s.assignment: s for s in (HW6, HW5)}


def _tree_digest(*paths: Path) -> dict[str, str]:
    digest = {}
    for root in paths:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def _course(tmp: Path, assignment: str, keep: set[str] | None = None) -> Path:
    course = tmp / "course"
    (course / "solutions" / assignment).mkdir(parents=True)
    source = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    if keep is not None:
        source.cells = [c for c in source.cells if grade_id(c) in keep]
        assert {grade_id(c) for c in source.cells} == set(keep), "a kept cell is missing from the source"
    nbformat.write(source, course / "solutions" / assignment / f"{assignment}.ipynb")
    assert cli_main(["release", assignment, "--course", str(course)]) == 0
    return course


def _correct(course: Path, assignment: str) -> nbformat.NotebookNode:
    return with_solutions(nbformat.read(course / "notebooks" / assignment / f"{assignment}.ipynb", as_version=4),
                          nbformat.read(course / "solutions" / assignment / f"{assignment}.ipynb", as_version=4))


def _cell(nb, gid):
    return next(c for c in nb.cells if grade_id(c) == gid)


def _append(nb, gid, code):
    cell = _cell(nb, gid)
    cell.source = cell.source + "\n" + textwrap.dedent(code)


def _cases(subject: Subject, course: Path, outside: Path) -> dict[str, nbformat.NotebookNode]:
    """The sixteen submissions, by case name."""
    first, name, _ = subject.first
    b_cell, b_test, b_wrong = subject.b
    c_cell, c_test, c_wrong = subject.c
    last, _ = subject.last
    correct = lambda: _correct(course, subject.assignment)  # noqa: E731
    cases = {"correct": correct(),
             "blank": nbformat.read(course / "notebooks" / subject.assignment / f"{subject.assignment}.ipynb",
                                    as_version=4)}

    nb = correct()
    _append(nb, b_cell, b_wrong)
    cases["partial"] = nb

    nb = correct()
    _append(nb, first, f"""
        import sys, warnings
        _quiet_{name} = {name}
        def {name}(*args, **kwargs):
            warnings.warn("{name}: this is a noisy but correct implementation", UserWarning)
            print("debug: calling {name}", file=sys.stderr)
            return _quiet_{name}(*args, **kwargs)
        """)
    cases["noisy_stderr"] = nb

    nb = correct()
    _append(nb, b_cell, subject.always_equal)
    cases["always_true_eq"] = nb

    nb = correct()
    _append(nb, first, """
        import ast
        class SwallowFailures(ast.NodeTransformer):
            def visit_Assert(self, node):
                return None
            def visit_Module(self, node):
                self.generic_visit(node)
                handler = ast.ExceptHandler(type=None, name=None, body=[ast.Pass()])
                node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]
                return ast.fix_missing_locations(node)
        get_ipython().ast_transformers.append(SwallowFailures())
        """)
    _append(nb, b_cell, b_wrong)
    cases["ast_transformer"] = nb

    nb = correct()
    _append(nb, first, """
        def blank_the_tests(lines):
            text = "".join(lines)
            return [] if ("check_" in text or "assert" in text) else lines
        get_ipython().input_transformers_post.append(blank_the_tests)
        """)
    _append(nb, c_cell, c_wrong)
    cases["input_transformer"] = nb

    nb = correct()
    _append(nb, b_cell, b_wrong)
    test = _cell(nb, b_test)
    lines = test.source.splitlines()  # keep the docstring, comment out every test
    test.source = "\n".join(lines[:1] + ["# " + line for line in lines[1:]])
    del test.metadata["nbgrader"]
    cases["edited_locked_stripped"] = nb

    nb = correct()
    nb.cells = [c for c in nb.cells if grade_id(c) != c_test]
    cases["deleted_test"] = nb

    nb = correct()
    _append(nb, first, f"""
        import sqlite3
        for path in [{str(course / 'gradebook.db')!r}]:
            try:
                db = sqlite3.connect("file:" + path + "?mode=rw", uri=True)
                db.execute("UPDATE grade SET auto_score = 100")
                db.commit()
            except Exception as error:
                print("gradebook not reachable:", error)
        try:
            open({str(outside)!r}, "w").write("changed by a student")
        except Exception as error:
            print("outside file not reachable:", error)
        """)
    cases["gradebook_write"] = nb

    nb = correct()
    solutions = [course / "solutions" / subject.assignment / f"{subject.assignment}.ipynb",
                 REPO / "solutions" / subject.assignment / f"{subject.assignment}.ipynb"]
    _cell(nb, c_cell).source = textwrap.dedent(f"""
        import json
        {textwrap.indent(c_wrong, " " * 8).strip()}
        for path in {[str(p) for p in solutions]!r}:
            try:
                source = json.load(open(path))
                exec("".join(next(c["source"] for c in source["cells"]
                                  if c["metadata"].get("nbgrader", {{}}).get("grade_id") == {c_cell!r})))
                break
            except Exception as error:
                print("solutions not readable:", error)
        """)
    cases["reads_solutions"] = nb

    nb = correct()
    _append(nb, last, """
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        while True:
            pass
        """)
    cases["infinite_loop"] = nb

    nb = correct()
    _append(nb, last, "import os\nos._exit(0)")
    cases["os_exit"] = nb

    nb = correct()
    _cell(nb, last).source = textwrap.dedent("""
        blocks = []
        while True:
            blocks.append(b"x" * (256 * 2**20))
        """) + _cell(nb, last).source
    cases["memory_bomb"] = nb

    nb = correct()
    _append(nb, last, """
        import os, time
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                children += 1
        except OSError as error:
            print(f"fork refused after {children} children: {type(error).__name__}")
        """)
    cases["fork_bomb"] = nb

    nb = correct()
    _append(nb, first, """
        for i in range(40_000):
            print("flood " * 20)
        """)
    cases["output_flood"] = nb
    return cases


def expected(subject: Subject) -> dict[str, tuple[dict, list[str]]]:
    """``{case: (expected points per test cell, regular expressions every one of which must
    match a flag)}``; an empty list means the submission must not be flagged at all."""
    full = subject.full
    first, _, first_test = subject.first
    b_cell, b_test, _ = subject.b
    c_cell, c_test, _ = subject.c
    last, last_test = subject.last

    def zero(*ids):
        return {**full, **{g: 0.0 for g in ids}}

    cases = {
        "correct": (full, []),
        "blank": (zero(*full), []),
        "partial": (zero(b_test), []),
        "noisy_stderr": (full, []),
        "always_true_eq": (zero(b_test), [rf"redefined comparison: {b_cell}: __eq__"]),
        "ast_transformer": (zero(b_test), [rf"ipython hook: {first}: .*ast_transformers",
                                           rf"disagreement: {b_test}: in-kernel passed, verification fail"]),
        "input_transformer": (zero(c_test), [rf"ipython hook: {first}: .*input_transformers_post",
                                             rf"disagreement: {c_test}: in-kernel passed, verification fail"]),
        "edited_locked_stripped": (zero(b_test), [rf"metadata removed: {b_test}"]),
        "deleted_test": (full, [rf"missing test cell: {c_test}"]),
        "gradebook_write": (full, [rf"grading files: {first}: string mentions 'gradebook'"]),
        "reads_solutions": (zero(c_test), [rf"grading files: {c_cell}: string mentions 'solutions/'"]),
        "infinite_loop": (zero(last_test), [rf"timeout: cell {last}", rf"process control: {last}: signal",
                                            rf"timeout: verification step {last} ran past"]),
        "os_exit": (zero(last_test), [rf"kernel died: in cell {last}", rf"process control: {last}: os._exit",
                                      rf"verification ended early \(exit code 0\) in step {last}"]),
        "memory_bomb": (zero(last_test), []),
        "fork_bomb": (full, [rf"process control: {last}: os.fork"]),
        "output_flood": (full, [rf"output truncated: cell {first}"]),
    }
    # Where bubblewrap cannot run (not installed, or user namespaces disabled), grading runs
    # with the resource limits only, and the battery checks what that mode promises: the
    # student's code can then read the course's solutions (the case keeps its flag, not its
    # zero), and when grading as root the process-count limit does not bind, so the fork
    # bomb is not run.
    if not BWRAP:
        cases["reads_solutions"] = (full, cases["reads_solutions"][1])
        if os.geteuid() == 0:
            del cases["fork_bomb"]
    return cases


CASES = sorted(expected(HW6))


@pytest.fixture(scope="module", params=sorted(SUBJECTS))
def run(request, tmp_path_factory):
    """Grade every case of one subject in one run; record what the course looked like before."""
    subject = SUBJECTS[request.param]
    tmp = tmp_path_factory.mktemp(f"battery-{subject.assignment}")
    course = _course(tmp, subject.assignment, subject.keep)
    outside = tmp / "outside.txt"
    outside.write_text("instructor's file")
    cases = expected(subject)
    for student, nb in _cases(subject, course, outside).items():
        if student not in cases:
            continue
        target = course / "submitted" / student / subject.assignment
        target.mkdir(parents=True)
        nbformat.write(nb, target / f"{subject.assignment}.ipynb")
    protected = [course / "solutions", course / "notebooks", course / "submitted"]
    before = _tree_digest(*protected)
    solution = REPO / "solutions" / subject.assignment / f"{subject.assignment}.ipynb"
    repo_solution = hashlib.sha256(solution.read_bytes()).hexdigest()
    results = grade_assignment(course, subject.assignment, limits=LIMITS, workers=2)
    return {"subject": subject, "expected": cases, "course": course, "results": {r["student"]: r for r in results},
            "before": before, "after": _tree_digest(*protected), "outside": outside, "solution": solution,
            "repo_solution": repo_solution}


def test_every_case_was_graded(run):
    assert sorted(run["results"]) == sorted(run["expected"])


@pytest.mark.parametrize("case", CASES)
def test_case_grade_and_flags(run, case):
    result = run["results"][case]
    points, patterns = run["expected"][case]
    got = {g: c["final"] for g, c in result["cells"].items()}
    detail = json.dumps({k: result[k] for k in ("flags", "cells", "kernel_cells", "verification_steps")
                         if k in result}, indent=1)[:6000]
    assert got == points, f"{case}: expected {points}, got {got}\n{detail}"
    for pattern in patterns:
        assert any(re.search(pattern, flag) for flag in result["flags"]), \
            f"{case}: no flag matches {pattern!r}\n{detail}"
    if not patterns:
        assert result["flags"] == [], f"{case}: unexpected flags {result['flags']}"
    assert result["review"] == bool(result["flags"])


def test_report_states_the_sandbox(run):
    report = (run["course"] / "grading" / run["subject"].assignment / "report.txt").read_text()
    if BWRAP:
        assert "sandbox: bubblewrap (no network, private file system" in report
    else:
        assert f"sandbox: NONE, limits only ({WHY_NOT})" in report
    for case in run["expected"]:
        assert re.search(rf"^{case}\s", report, re.M), f"{case} missing from the report"


def test_faults_were_contained_by_the_limits(run):
    results, (first, _, _), (last, _) = run["results"], run["subject"].first, run["subject"].last
    assert results["memory_bomb"]["kernel_cells"][last] == "error: MemoryError"
    assert results["infinite_loop"]["kernel_cells"][last] == "timeout"
    assert results["infinite_loop"]["verification_steps"][last] == "timeout"
    flood = json.loads(results["output_flood"]["notebook_json"])
    kept = sum(len(json.dumps(o)) for c in flood["cells"] if grade_id(c) == first for o in c["outputs"])
    assert kept < 2 * LIMITS.output_bytes, f"{kept} bytes of output kept"
    if "fork_bomb" in results:  # not run with limits only, as root: see expected()
        executed = json.loads(results["fork_bomb"]["notebook_json"])
        text = "".join(o.get("text", "") for c in executed["cells"] if grade_id(c) == last
                       for o in c.get("outputs", []))
        refused = re.search(r"fork refused after (\d+) children", text)
        assert refused and int(refused.group(1)) < LIMITS.nproc, f"the fork bomb was not bounded: {text[:500]}"


def test_nothing_outside_the_sandbox_changed(run):
    assert run["after"] == run["before"], "solutions, release or submissions changed"
    if BWRAP:  # without the sandbox, the student's code can write what the grader's user can
        assert run["outside"].read_text() == "instructor's file"
    assert hashlib.sha256(run["solution"].read_bytes()).hexdigest() == run["repo_solution"]


def test_gradebook_and_export_hold_the_pipeline_grades(run):
    course = run["course"]
    assert cli_main(["export", "--course", str(course)]) == 0
    with open(course / "grades.csv") as handle:
        exported = {row["student_id"]: float(row["score"]) for row in csv.DictReader(handle)}
    assert exported == {case: sum(points.values()) for case, (points, _) in run["expected"].items()}


def test_feedback_is_generated_and_shows_the_verification(run):
    course, assignment = run["course"], run["subject"].assignment
    assert cli_main(["feedback", assignment, "--course", str(course)]) == 0
    assert (course / f"feedback/correct/{assignment}/{assignment}.html").exists()
    page = (course / f"feedback/ast_transformer/{assignment}/{assignment}.html").read_text()
    assert "grader (verification outside the kernel): fail" in page, \
        "the feedback of a cell the verification failed does not say so"


def test_limits_only_fallback_still_grades_and_says_so(run, tmp_path):
    """Where bubblewrap cannot run, the same submission is graded with the limits only,
    and the report line says so."""
    from gradelib.grading.pipeline import grade_submission

    [job] = submission_jobs(run["course"], run["subject"].assignment, LIMITS, tmp_path, students=["correct"],
                            use_bwrap=False)
    result = grade_submission(job)
    assert {g: c["final"] for g, c in result["cells"].items()} == run["subject"].full, result["flags"]
    assert result["flags"] == []
    assert result["sandbox"].startswith("sandbox: NONE, limits only")


def test_dask_cluster_runs_the_same_unit_of_work(run, tmp_path):
    """The same jobs on a dask.distributed LocalCluster give the same grades as the pool."""
    from distributed import Client, LocalCluster

    jobs = submission_jobs(run["course"], run["subject"].assignment, LIMITS, tmp_path, students=["partial"])
    assert len(jobs) == 1
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        results = run_jobs(jobs, dask_scheduler=client)
    for result in results:
        pool = run["results"][result["student"]]
        assert {g: c["final"] for g, c in result["cells"].items()} == \
               {g: c["final"] for g, c in pool["cells"].items()}
        assert result["flags"] == pool["flags"]


def test_hw1_own_work_through_alias_and_importlib(tmp_path):
    """hw1 in full (the training cell included): two functions delegate to gradelib's
    reference, one through an import alias, one through importlib; they get 0 and a flag,
    everything else (which may legitimately use gradelib) gets its points."""
    course = _course(tmp_path, "hw1_autoencoders")
    nb = _correct(course, "hw1_autoencoders")
    _cell(nb, "linear_ae_loss").source = textwrap.dedent("""
        from gradelib.autoencoders import linear_ae_loss as my_loss

        def linear_ae_loss(w1, w2, x):
            \"\"\"Mean squared reconstruction error of the linear autoencoder (a 0-d tensor).\"\"\"
            return my_loss(w1, w2, x)
        """)
    _cell(nb, "reconstruction_loss").source = textwrap.dedent("""
        import importlib
        _ref = importlib.import_module("gradelib." + "autoencoders")
        reconstruction_loss = getattr(_ref, "reconstruction_loss")
        """)
    target = course / "submitted" / "copycat" / "hw1_autoencoders"
    target.mkdir(parents=True)
    nbformat.write(nb, target / "hw1_autoencoders.ipynb")
    [result] = grade_assignment(course, "hw1_autoencoders", workers=1,
                                limits=Limits(cell_timeout=300, submission_timeout=900))
    got = {g: c["final"] for g, c in result["cells"].items()}
    maxima = {g: c["max"] for g, c in result["cells"].items()}
    assert got == {**maxima, "test_linear_ae_loss": 0.0, "test_reconstruction_loss": 0.0}, \
        json.dumps(result["flags"], indent=1)
    flags = "\n".join(result["flags"])
    assert re.search(r"own work: test_linear_ae_loss: linear_ae_loss .*gradelib", flags), flags
    assert re.search(r"own work: test_reconstruction_loss: reconstruction_loss", flags), flags
    assert result["kernel_cells"]["test_train_autoencoder"] == "ok"
    shutil.rmtree(course / "autograded")
