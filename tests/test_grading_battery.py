"""The adversarial battery: submissions that try to forge a grade, crash or flood the grader.

Two shortened assignments (``SUBJECTS``: hw6_exercises and hw5_wgan) are described here in
full, cell by cell: the instructor's source notebook of each (solutions, visible tests,
hidden tests calling the real ``gradelib.checks``) is written by this file, released with
nbgrader, and never read from ``solutions/``. Every case is a student notebook built from
that release with the instructor's solutions filled in, then edited into one attack (or
one honest oddity). All cases of one assignment are graded together in one
``grade_assignment`` run (a pool of two workers, bubblewrap when it runs here), so each case
also checks that its neighbours in the same run are unaffected; ``correct`` and the honest
cases must get every point.

The cases cover every class of forgery that succeeded against the verification design of
issue 14 (patched checks and answer keys, shadowed builtins and tensor methods, patched
stdlib modules, patch-and-undo, frame walking, forged result frames, encoded payloads,
assembled import names, copying the reference, symlinked notebooks, 25 MB exceptions,
script injection, 7.5 MB of markdown, 1 GiB writes) and the faults of the first battery.
``expected`` gives each case's points per test cell and the flags it must raise.

Under CI (``CI=true``, ``.ci/run``) bubblewrap is required: its absence fails the battery,
and the expectations are never the weaker ones of the limits-only fallback.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import re
import shutil
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from gradelib.grading.cells import grade_id, with_solutions
from gradelib.grading.cli import main as cli_main
from gradelib.grading.pipeline import grade_assignment, run_jobs, submission_jobs
from gradelib.grading.sandbox import GIB, Limits, bwrap_status

REPO = Path(__file__).resolve().parent.parent
MIB = 2**20
# Short clocks for the battery: the slowest legitimate cell (importing torch on a machine
# with a load average of 20 on 2 cores) takes ~15 s. The disk limits are small so that the
# 1 GiB write and the disk filler stop within seconds.
LIMITS = Limits(memory_bytes=int(5 * GIB), nproc=128, cpu_seconds=300, cell_timeout=30.0,
                submission_timeout=150.0, output_bytes=50_000, notebook_output_bytes=1_000_000,
                file_bytes=64 * MIB, work_bytes=160 * MIB, tmp_bytes=64 * MIB)
BWRAP, WHY_NOT = bwrap_status()
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# ----------------------------------------------------------------------------- the subjects

@dataclass(frozen=True)
class Subject:
    """A shortened assignment, described in full, and the cells the cases edit.

    Attributes:
        assignment: the assignment's name (its checks module is ``gradelib.checks.<name>``).
        setup: the code of the locked setup cell ``imports``.
        questions: ``(solution grade_id, solution source, ((test grade_id, points, test
            source), ...))`` in notebook order; sources use nbgrader's markers.
        first: (solution cell, the graded function it defines, its test cell): where hooks
            are installed, output floods and stderr noise happen.
        b, c: (solution cell, its test cell, code which, appended to the solution cell,
            makes that test fail): the answers the cheating cases get wrong.
        b_function: the graded function (or answer) of ``b``, for the patch-and-undo case.
        last: (solution cell, the test cells of the functions it defines): where the loops,
            exits, bombs and big writes go.
        always_equal: code appended to ``b``'s solution cell that replaces its graded value
            by an object whose ``__eq__`` is always true.
        answer_key: an instructor-side name the forgers look for (answer keys or a reference).
        c_copy: code that, run after the checks module's source, sets ``c``'s graded value
            from what that source defines (its answer key, its reference).
    """

    assignment: str
    setup: str
    questions: tuple
    first: tuple
    b: tuple
    b_function: str
    c: tuple
    last: tuple
    always_equal: str
    answer_key: str
    c_copy: str

    @property
    def full(self) -> dict[str, float]:
        return {gid: float(points) for _, _, tests in self.questions for gid, points, _ in tests}


HW6 = Subject(
    "hw6_exercises",
    setup="import math\n\nimport torch\nimport torch.nn.functional as F\n\nfrom gradelib.device import make_generator",
    questions=(
        ("q1_solution", '''def q1_tanh_backward(x, upstream):
    """dL/dx = dL/dz * dz/dx for z = tanh(x), elementwise."""
    ### BEGIN SOLUTION
    return upstream * (1 - torch.tanh(x) ** 2)
    ### END SOLUTION


### BEGIN SOLUTION
q1_answer = True
### END SOLUTION''', (("test_q1", 2, '''"""Check q1: the answer is a bool, and q1_tanh_backward on two hand-computed values."""
assert isinstance(q1_answer, bool), f"q1_answer must be True or False, got {q1_answer!r}"
got = q1_tanh_backward(torch.tensor([0.0, 30.0]), torch.tensor([3.0, 3.0]))
assert torch.allclose(got, torch.tensor([3.0, 0.0]), atol=1e-6), f"expected [3, 0], got {got.tolist()}"
### BEGIN HIDDEN TESTS
from gradelib.checks.hw6_exercises import check_q1
check_q1(q1_answer, q1_tanh_backward)
### END HIDDEN TESTS'''),)),
        ("q3_solution", '''def q3_head(h):
    """The classifier's output: a ReLU, then a sigmoid, elementwise."""
    ### BEGIN SOLUTION
    return torch.sigmoid(torch.relu(h))
    ### END SOLUTION


### BEGIN SOLUTION
q3_answer = "d"
### END SOLUTION''', (("test_q3", 2, '''"""Check q3: the answer is one of the letters a-e, and q3_head at three points."""
assert isinstance(q3_answer, str) and q3_answer.strip().strip("().").lower() in list("abcde"), \\
    f'q3_answer must be one of "a", "b", "c", "d", "e", got {q3_answer!r}'
got = q3_head(torch.tensor([-2.0, 0.0, 2.0]))
expected = torch.sigmoid(torch.tensor([0.0, 0.0, 2.0]))
assert torch.allclose(got, expected), f"expected {expected.tolist()}, got {got.tolist()}"
### BEGIN HIDDEN TESTS
from gradelib.checks.hw6_exercises import check_q3
check_q3(q3_answer, q3_head)
### END HIDDEN TESTS'''),)),
        ("q4_solution", '''### BEGIN SOLUTION
q4_answer = "e"
### END SOLUTION''', (("test_q4", 1, '''"""Check q4: the answer is one of the letters a-e."""
assert isinstance(q4_answer, str) and q4_answer.strip().strip("().").lower() in list("abcde"), \\
    f'q4_answer must be one of "a", "b", "c", "d", "e", got {q4_answer!r}'
### BEGIN HIDDEN TESTS
from gradelib.checks.hw6_exercises import check_q4
check_q4(q4_answer)
### END HIDDEN TESTS'''),)),
        ("q18_solution", '''def q18_lipschitz_constant(w):
    """Lipschitz constant of x -> w . x for the Euclidean distance."""
    ### BEGIN SOLUTION
    return torch.linalg.vector_norm(w)
    ### END SOLUTION


### BEGIN SOLUTION
q18_answer = False
### END SOLUTION''', (("test_q18", 2, '''"""Check q18: the answer is a bool, and q18_lipschitz_constant for w = (3, 4)."""
assert isinstance(q18_answer, bool), f"q18_answer must be True or False, got {q18_answer!r}"
got = float(q18_lipschitz_constant(torch.tensor([3.0, -4.0])))
assert abs(got - 5.0) < 1e-6, f"for w = (3, -4): K = 5, got {got}"
### BEGIN HIDDEN TESTS
from gradelib.checks.hw6_exercises import check_q18
check_q18(q18_answer, q18_lipschitz_constant)
### END HIDDEN TESTS'''),)),
    ),
    first=("q1_solution", "q1_tanh_backward", "test_q1"),
    b=("q3_solution", "test_q3", 'q3_answer = "a"'),
    b_function="q3_head",
    c=("q4_solution", "test_q4", 'q4_answer = "a"'),
    last=("q18_solution", ("test_q18",)),
    always_equal="""
        class Letter(str):
            def __eq__(self, other):
                return True
            __hash__ = str.__hash__
        q3_answer = Letter("b")
        """,
    answer_key="ANSWER_KEYS",
    c_copy='q4_answer = ANSWER_KEYS["q4"].answer')

HW5 = Subject(
    "hw5_wgan",
    setup="import math\n\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n"
          "from gradelib.device import make_generator\nfrom gradelib.wgan import wasserstein_1d",
    questions=(
        ("power_iteration", '''def power_iteration(weight, u, num_iters):
    """Estimate the largest singular value of weight (out, in), starting from u (out,)."""
    ### BEGIN SOLUTION
    for _ in range(num_iters):
        v = weight.T @ u
        v = v / v.norm()
        u = weight @ v
        u = u / u.norm()
    sigma = u @ (weight @ v)
    return sigma, u
    ### END SOLUTION''', (("test_power_iteration", 3, '''"""Check power_iteration on a diagonal matrix by hand."""
W = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
sigma, u = power_iteration(W, torch.tensor([1.0, 1.0]) / math.sqrt(2), 1)
assert sigma.shape == () and abs(sigma.item() - math.sqrt(8.2)) < 1e-5, f"expected sqrt(8.2), got {sigma}"
assert torch.allclose(u, torch.tensor([9.0, 1.0]) / math.sqrt(82)), f"u: expected (9, 1)/sqrt(82), got {u.tolist()}"
### BEGIN HIDDEN TESTS
from gradelib.checks.hw5_wgan import check_power_iteration
check_power_iteration(power_iteration)
### END HIDDEN TESTS'''),)),
        ("sliced_wasserstein", '''def sliced_wasserstein(x, y, num_projections, generator):
    """Mean over random unit directions of the 1-D W1 between the projected samples."""
    ### BEGIN SOLUTION
    theta = torch.randn(num_projections, x.shape[1], generator=generator, dtype=x.dtype)
    theta = theta / theta.norm(dim=1, keepdim=True)  # (K, d) unit directions
    px = torch.sort(x @ theta.T, dim=0).values  # (N, K)
    py = torch.sort(y @ theta.T, dim=0).values
    return (px - py).abs().mean()
    ### END SOLUTION''', (("test_sliced_wasserstein", 3, '''"""Check sliced_wasserstein in one dimension, where it is W1."""
g = make_generator(1)
a, b = torch.randn(200, 1, generator=g), 1 + 2 * torch.rand(200, 1, generator=g)
sw = sliced_wasserstein(a, b, 10, make_generator(2))
w1 = wasserstein_1d(a[:, 0], b[:, 0])
assert sw.shape == () and abs(sw.item() - w1.item()) < 1e-5, f"in one dimension SW1 = W1 = {w1.item():.5f}, got {sw}"
### BEGIN HIDDEN TESTS
from gradelib.checks.hw5_wgan import check_sliced_wasserstein
check_sliced_wasserstein(sliced_wasserstein)
### END HIDDEN TESTS'''),)),
        ("gradient_norm_bound", '''def gradient_norm_bound(critic, x):
    """max_n ||grad_x critic(x_n)||_2, a lower bound on the critic's Lipschitz constant."""
    ### BEGIN SOLUTION
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    return grad.reshape(len(grad), -1).norm(dim=1).max()
    ### END SOLUTION''', (("test_gradient_norm_bound", 2, '''"""Check gradient_norm_bound on a linear critic, whose gradient is its weight."""
linear = nn.Linear(2, 1)
with torch.no_grad():
    linear.weight.copy_(torch.tensor([[3.0, 4.0]]))
bound = gradient_norm_bound(linear, torch.randn(16, 2, generator=make_generator(6)))
assert bound.shape == () and abs(bound.item() - 5.0) < 1e-5, f"expected 5, got {bound}"
### BEGIN HIDDEN TESTS
from gradelib.checks.hw5_wgan import check_gradient_norm_bound
check_gradient_norm_bound(gradient_norm_bound)
### END HIDDEN TESTS'''),)),
    ),
    first=("power_iteration", "power_iteration", "test_power_iteration"),
    b=("sliced_wasserstein", "test_sliced_wasserstein",
       "def sliced_wasserstein(x, y, num_projections, generator):\n"
       "    return (x.mean(0) - y.mean(0)).norm()  # the distance between the means: wrong"),
    b_function="sliced_wasserstein",
    c=("gradient_norm_bound", "test_gradient_norm_bound",
       "def gradient_norm_bound(critic, x):\n    return torch.ones(())  # wrong"),
    last=("gradient_norm_bound", ("test_gradient_norm_bound",)),
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
        def sliced_wasserstein(x, y, num_projections, generator):
            return AlwaysEqual()
        """,
    answer_key="reference",
    c_copy="gradient_norm_bound = reference.gradient_norm_bound")

SUBJECTS = {s.assignment: s for s in (HW6, HW5)}


def _meta(gid: str, kind: str, points: int = 0) -> dict:
    meta = {"grade": kind == "test", "grade_id": gid, "locked": kind != "solution", "schema_version": 3,
            "solution": kind == "solution", "task": False}
    if kind == "test":
        meta["points"] = points
    return {"nbgrader": meta}


def source_notebook(subject: Subject) -> nbformat.NotebookNode:
    """The instructor's notebook of a subject (nbgrader metadata, hidden tests)."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"display_name": "Python 3 (ipykernel)",
                                                           "language": "python", "name": "python3"},
                                            "language_info": {"name": "python"}})
    cells = [nbformat.v4.new_markdown_cell(f"# {subject.assignment} (shortened, for the battery)",
                                           metadata=_meta("intro", "markdown")),
             nbformat.v4.new_code_cell(subject.setup, metadata=_meta("imports", "setup"))]
    for solution, code, tests in subject.questions:
        cells.append(nbformat.v4.new_markdown_cell(f"Write `{solution}`.", metadata=_meta(f"{solution}_md", "md")))
        cells.append(nbformat.v4.new_code_cell(code, metadata=_meta(solution, "solution")))
        for gid, points, test in tests:
            cells.append(nbformat.v4.new_code_cell(test, metadata=_meta(gid, "test", points)))
    cells.append(nbformat.v4.new_markdown_cell("The end.", metadata=_meta("outro", "markdown")))
    nb.cells = cells
    return nb


# ----------------------------------------------------------------------------- building cases

def _tree_digest(*paths: Path) -> dict[str, str]:
    digest = {}
    for root in paths:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def _course(tmp: Path, assignment: str, source: nbformat.NotebookNode | None = None) -> Path:
    """A course with ``source`` (default: the repository's solution notebook) released."""
    course = tmp / "course"
    (course / "solutions" / assignment).mkdir(parents=True)
    if source is None:
        source = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
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


def _after(nb, gid, code):
    """Add a code cell of the student's own (no nbgrader metadata) after cell ``gid``."""
    at = next(i for i, c in enumerate(nb.cells) if grade_id(c) == gid)
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(textwrap.dedent(code)))


#: A helper two students share (renamed and reformatted by the second): non-trivial code,
#: so copy detection compares it (``similarity.MIN_UNIT_CHARS``).
TWIN_HELPER = '''
def summarise_batches(batches, threshold):
    """Mean, spread and share above a threshold of each batch, with a running total."""
    rows, total = [], 0.0
    for index, batch in enumerate(batches):
        values = torch.as_tensor(batch, dtype=torch.float64)
        mean = values.mean()
        spread = (values - mean).abs().max()
        above = (values > threshold).double().mean()
        total = total + float(mean)
        rows.append({"index": index, "mean": float(mean), "spread": float(spread),
                     "above": float(above), "running": total})
    if not rows:
        raise ValueError("batches: expected at least one batch, got none")
    return rows
'''
TWIN_RENAMED = '''
def summarise_batches(groups, cut):
    # my own summary
    out, acc = [], 0.0
    for k, group in enumerate(groups):
        v = torch.as_tensor(group, dtype=torch.float64)
        m = v.mean()
        s = (v - m).abs().max()
        a = (v > cut).double().mean()
        acc = acc + float(m)
        out.append({"index": k, "mean": float(m), "spread": float(s), "above": float(a), "running": acc})
    if not out:
        raise ValueError("no batches")
    return out
'''


def _cases(subject: Subject, course: Path, outside: Path) -> dict[str, object]:
    """The submissions, by case name: a notebook, or ``("symlink", target)``."""
    first, name, _ = subject.first
    b_cell, b_test, b_wrong = subject.b
    c_cell, c_test, c_wrong = subject.c
    last, _ = subject.last
    assignment = subject.assignment
    correct = lambda: _correct(course, assignment)  # noqa: E731
    cases: dict[str, object] = {
        "correct": correct(),
        "blank": nbformat.read(course / "notebooks" / assignment / f"{assignment}.ipynb", as_version=4)}

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
            def visit_Module(self, node):
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
    solutions = [course / "solutions" / assignment / f"{assignment}.ipynb",
                 REPO / "solutions" / assignment / f"{assignment}.ipynb"]
    _cell(nb, c_cell).source = textwrap.dedent(f"""
        import json, math
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

    # --- issue 14: every class of forgery that fooled the verification design
    check_module = f"gradelib.checks.{assignment}"
    nb = correct()
    _append(nb, b_cell, b_wrong)
    _append(nb, b_cell, f"""
        import importlib
        try:  # replace the behaviour of every check, keeping the objects (their __code__)
            _checks = importlib.import_module("gradelib." + "che" + "cks." + {assignment!r})
            for _name in dir(_checks):
                if _name.startswith("check_"):
                    getattr(_checks, _name).__code__ = (lambda *args, **kwargs: None).__code__
        except Exception as error:
            print("no checks here:", type(error).__name__)
        """)
    cases["patch_check_code"] = nb

    nb = correct()
    _append(nb, b_cell, b_wrong)
    _append(nb, b_cell, f"""
        import importlib
        try:  # edit the entries of the answer-key container (or the reference module)
            _keys = getattr(importlib.import_module({check_module!r}), {subject.answer_key!r})
            for _key in list(getattr(_keys, "keys", lambda: [])()):
                _keys[_key] = None
        except Exception as error:
            print("no answer keys here:", type(error).__name__)
        """)
    cases["edit_answer_keys"] = nb

    nb = correct()
    _append(nb, b_cell, b_wrong)
    _append(nb, b_cell, """
        import builtins, torch
        builtins.AssertionError = type("NeverRaised", (Exception,), {})
        torch.allclose = lambda *args, **kwargs: True
        torch.Tensor.allclose = lambda self, *args, **kwargs: True
        torch.Tensor.equal = lambda self, other: True
        torch.testing.assert_close = lambda *args, **kwargs: None
        """)
    cases["shadow_builtins"] = nb

    nb = correct()
    _append(nb, b_cell, b_wrong)
    _append(nb, b_cell, """
        import hashlib
        class _AlwaysTheSame:
            def __init__(self, *args, **kwargs):
                pass
            def update(self, data):
                pass
            def hexdigest(self):
                return "0" * 64
        hashlib.sha256 = _AlwaysTheSame
        hashlib.new = lambda *args, **kwargs: _AlwaysTheSame()
        """)
    cases["patch_hashlib"] = nb

    nb = correct()
    fn = subject.b_function
    _append(nb, b_cell, f"""
        _real_{fn} = {fn}
        def {fn}(*args, **kwargs):
            import torch
            saved = (torch.allclose, torch.Tensor.__eq__)
            torch.allclose = lambda *a, **k: True  # patched while the check runs...
            torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
            try:
                return _real_{fn}(*args, **kwargs) * 0 + 0.123  # ...and a wrong value returned
            finally:
                torch.allclose, torch.Tensor.__eq__ = saved  # undone before the check compares
        """)
    cases["patch_and_undo"] = nb

    nb = correct()
    _append(nb, b_cell, b_wrong)
    _append(nb, b_cell, """
        import sys
        def _walk_and_replace():
            frame, replaced = sys._getframe(), []
            while frame is not None:
                for scope in (frame.f_locals, frame.f_globals):
                    for key in list(scope):
                        if key in ("checks", "functions", "ANSWER_KEYS", "results", "emit"):
                            scope[key] = {}
                            replaced.append(key)
                frame = frame.f_back
            return replaced
        print("replaced:", _walk_and_replace())
        """)
    cases["frame_walk"] = nb

    nb = correct()
    _append(nb, last, """
        import os
        try:
            import wire  # the harness's own framing, beside it in the sandbox
            forged = [wire.encode({"id": i, "ok": True}, 1 << 20) for i in range(1, 60)]
        except ImportError:
            forged = [b"\\x00" * 8 + b'{"id": 1, "ok": true}']
        for fd in range(3, 40):  # the result channel is one of these
            for frame in forged:
                try:
                    os.write(fd, frame)
                except OSError:
                    break
        os._exit(0)
        """)
    cases["forged_frames_and_exit"] = nb

    nb = correct()
    _append(nb, b_cell, f"""
        _real_{fn} = {fn}
        def {fn}(*args, **kwargs):
            import os
            try:
                import wire
                for fd in range(3, 40):
                    try:
                        os.write(fd, b"".join(wire.encode({{"id": i, "ok": True}}, 1 << 20) for i in range(1, 80)))
                    except OSError:
                        pass
            except ImportError:
                pass
            return _real_{fn}(*args, **kwargs) * 0 + 0.123
        """)
    cases["forged_reply"] = nb

    payload = base64.b64encode((textwrap.dedent(b_wrong) + "\n" + textwrap.dedent("""
        import builtins, importlib
        builtins.AssertionError = type("NeverRaised", (Exception,), {})
        try:
            importlib.import_module("gradelib.checks")
        except Exception:
            pass
        """)).encode()).decode()
    nb = correct()
    _append(nb, b_cell, f"""
        import base64
        exec(base64.b64decode({payload!r}).decode())
        """)
    cases["exec_payload"] = nb

    nb = correct()
    _append(nb, c_cell, c_wrong)
    _append(nb, c_cell, f"""
        import importlib, inspect
        try:  # copy the reference: its source, by a module name assembled at run time
            _where = ".".join(["gradelib", "checks", "refer" + "ences", {assignment!r}])
            exec(inspect.getsource(importlib.import_module(_where)))
        except Exception as error:
            print("no reference here:", type(error).__name__)
        try:
            exec(inspect.getsource(importlib.import_module("gradelib." + "checks." + {assignment!r})))
            {subject.c_copy}
        except Exception as error:
            print("no checks here:", type(error).__name__)
        """)
    cases["exec_getsource"] = nb

    nb = correct()
    _append(nb, last, f"""
        try:  # the hidden test's import alias, as the verification design left it in the namespace
            _alias = globals()["check_" + "q1"] if "check_q1" in globals() else None
            _scope = _alias.__globals__ if _alias is not None else {{}}
            _scope.get({subject.answer_key!r}, {{}}).clear()
        except Exception as error:
            print("no alias here:", type(error).__name__)
        """)
    _append(nb, b_cell, b_wrong)
    cases["alias_call"] = nb

    nb = correct()
    for _ in range(3):
        _after(nb, first, "raise ValueError('x' * 25_000_000)")
    cases["huge_exception"] = nb

    nb = correct()
    _append(nb, first, """
        from IPython.display import HTML, Javascript, display
        display(HTML("<script>document.title = 'pwned'; window.__pwned = 1</script>"
                     "<img src=x onerror=\\"window.__pwned = 2\\"><a href='javascript:window.__pwned=3'>link</a>"
                     "<iframe src='javascript:parent.__pwned=4'></iframe><b>injected</b>"))
        display(Javascript("window.__pwned = 5"))
        """)
    cases["script_injection"] = nb

    nb = correct()
    nb.cells += [nbformat.v4.new_markdown_cell("lorem ipsum " * 208_334) for _ in range(3)]  # 7.5 MB
    cases["markdown_flood"] = nb

    nb = correct()
    _append(nb, last, """
        import errno, time
        _start = time.monotonic()
        try:
            with open("big.bin", "wb") as handle:
                for _ in range(1024):
                    handle.write(b"x" * 2**20)  # 1 GiB
            print("wrote 1 GiB")
        except OSError as error:
            print("write refused:", errno.errorcode[error.errno], f"after {time.monotonic() - _start:.1f} s")
        """)
    cases["big_file"] = nb

    nb = correct()
    _append(nb, last, """
        import time
        for i in range(4):
            try:
                with open(f"fill{i}.bin", "wb") as handle:
                    handle.write(b"x" * 60 * 2**20)
            except OSError:
                break
        time.sleep(3)
        """)
    cases["disk_fill"] = nb

    nb = correct()
    _append(nb, first, f"""
        import importlib
        exec("import math as _math")  # an import only through exec...
        _tensors = importlib.import_module("tor" + "ch")  # ...and a name built from pieces
        _honest_{name} = {name}
        def {name}(*args, **kwargs):
            scale = getattr(_tensors, "on" + "es")(()) * _math.floor(1.5)  # 1
            result = _honest_{name}(*args, **kwargs)
            return tuple(r * scale for r in result) if isinstance(result, tuple) else result * scale
        """)
    cases["honest_dynamic_import"] = nb

    for twin, helper in (("twin_a", TWIN_HELPER), ("twin_b", TWIN_RENAMED)):
        nb = correct()
        _after(nb, last, helper)
        cases[twin] = nb

    cases["symlink_to_neighbour"] = ("symlink", "correct")
    cases["symlink_to_solutions"] = ("symlink", course / "solutions" / assignment / f"{assignment}.ipynb")
    return cases


def expected(subject: Subject) -> dict[str, tuple[dict, list[str]]]:
    """``{case: (expected points per test cell, regular expressions every one of which must
    match a flag)}``; an empty list means the submission must not be flagged at all."""
    full = subject.full
    first, _, first_test = subject.first
    b_cell, b_test, _ = subject.b
    c_cell, c_test, _ = subject.c
    last, last_tests = subject.last

    def zero(*ids):
        return {**full, **{g: 0.0 for g in ids}}

    nothing = zero(*full)
    setup_fault = r"student process: the notebook's cells did not finish"
    cases = {
        "correct": (full, []),
        "blank": (nothing, []),
        "partial": (zero(b_test), []),
        "noisy_stderr": (full, []),
        "always_true_eq": (zero(b_test), [rf"redefined comparison: {b_cell}: __eq__"]),
        "ast_transformer": (zero(b_test), [rf"ipython hook: {first}: .*ast_transformers"]),
        "input_transformer": (zero(c_test), [rf"ipython hook: {first}: .*input_transformers_post"]),
        "edited_locked_stripped": (zero(b_test), [rf"metadata removed: {b_test}"]),
        "deleted_test": (full, [rf"missing test cell: {c_test}"]),
        "gradebook_write": (full, [rf"grading files: {first}: string mentions 'gradebook'"]),
        "reads_solutions": (zero(c_test), [rf"grading files: {c_cell}: string mentions 'solutions/'"]),
        # The student process runs every cell before the first check: a cell that never
        # ends, or ends the process, leaves no process to ask, so every check fails.
        "infinite_loop": (nothing, [rf"timeout: cell {last}", rf"process control: {last}: signal", setup_fault]),
        "os_exit": (nothing, [rf"kernel died: in cell {last}", rf"process control: {last}: os._exit", setup_fault]),
        "memory_bomb": (zero(*last_tests), []),
        "fork_bomb": (full, [rf"process control: {last}: os.fork"]),
        "output_flood": (full, [rf"output truncated: cell {first}"]),
        # issue 14
        "patch_check_code": (zero(b_test), []),
        "edit_answer_keys": (zero(b_test), []),
        "shadow_builtins": (zero(b_test), [rf"grading machinery: {b_cell}: imports builtins",
                                           rf"grading machinery: {b_cell}: patches torch.allclose"]),
        "patch_hashlib": (zero(b_test), [rf"grading machinery: {b_cell}: patches hashlib.sha256"]),
        "patch_and_undo": (zero(b_test), [rf"grading machinery: {b_cell}: patches torch.allclose"]),
        "frame_walk": (zero(b_test), [rf"introspection: {b_cell}: sys._getframe"]),
        "forged_frames_and_exit": (nothing, [rf"process control: {last}: os._exit", setup_fault]),
        "forged_reply": (zero(b_test), [rf"student process: {b_test}: .*(forged or out of order|malformed)"]),
        "exec_payload": (zero(b_test), [rf"dynamic code: {b_cell}: exec"]),
        "exec_getsource": (zero(c_test), [rf"introspection: {c_cell}: inspect.getsource",
                                          rf"dynamic code: {c_cell}: exec"]),
        "alias_call": (zero(b_test), []),
        "huge_exception": (full, [r"output truncated: cell cell \d+ printed more than 50000 bytes"]),
        "script_injection": (full, []),
        "markdown_flood": (full, [r"oversize cell: cell \d+ \(markdown, 2500008 characters"]),
        "big_file": (full, []),
        "disk_fill": (full, [r"disk limit: the work directory held \d+ bytes, more than 167772160"]),
        "honest_dynamic_import": (full, []),  # exec of a literal is read by the scan: no flag
        "twin_a": (full, [r"similar submission: twin_b \(\d+% of this code"]),
        "twin_b": (full, [r"similar submission: twin_a \(\d+% of this code"]),
        "symlink_to_neighbour": (nothing, [r"refused: .* is a symbolic link \(to .*/correct/"]),
        "symlink_to_solutions": (nothing, [r"refused: .* is a symbolic link \(to .*/solutions/"]),
    }
    # Outside CI, where bubblewrap cannot run (not installed, or user namespaces disabled),
    # grading runs with the resource limits only, and the battery checks what that mode
    # promises: the student's code can then read the course's solutions and the checks'
    # modules (the case keeps its flags, not its zero), and when grading as root the
    # process-count limit does not bind, so the fork bomb is not run. Under CI, never.
    if not BWRAP and not UNDER_CI:
        cases["reads_solutions"] = (full, cases["reads_solutions"][1])
        cases["exec_getsource"] = (full, cases["exec_getsource"][1])
        if os.geteuid() == 0:
            del cases["fork_bomb"]
    return cases


CASES = sorted(expected(HW6))


@pytest.fixture(scope="module", params=sorted(SUBJECTS))
def run(request, tmp_path_factory):
    """Grade every case of one subject in one run; record what the course looked like before."""
    if not BWRAP and UNDER_CI:
        pytest.fail(f"CI: bubblewrap must run here, but {WHY_NOT}")
    subject = SUBJECTS[request.param]
    tmp = tmp_path_factory.mktemp(f"battery-{subject.assignment}")
    course = _course(tmp, subject.assignment, source_notebook(subject))
    outside = tmp / "outside.txt"
    outside.write_text("instructor's file")
    cases = expected(subject)
    built = _cases(subject, course, outside)
    assert set(cases) <= set(built), sorted(set(cases) - set(built))
    name = f"{subject.assignment}.ipynb"
    for student, nb in built.items():
        if student not in cases:
            continue
        target = course / "submitted" / student / subject.assignment
        target.mkdir(parents=True)
        if isinstance(nb, tuple):
            link = nb[1] if isinstance(nb[1], Path) else course / "submitted" / nb[1] / subject.assignment / name
            os.symlink(link, target / name)
        else:
            nbformat.write(nb, target / name)
    protected = [course / "solutions", course / "notebooks", course / "submitted"]
    before = _tree_digest(*protected)
    start = time.monotonic()
    results = grade_assignment(course, subject.assignment, limits=LIMITS, workers=2)
    written = {p.stem: p.stat().st_mtime for p in (course / "grading" / subject.assignment).glob("*.json")}
    dump = os.environ.get("GRADELIB_BATTERY_DUMP")
    if dump:
        Path(dump).with_suffix(f".{subject.assignment}.json").write_text(json.dumps(
            {r["student"]: {k: v for k, v in r.items() if k != "notebook_json"} for r in results}, indent=1))
    return {"subject": subject, "expected": cases, "course": course, "results": {r["student"]: r for r in results},
            "before": before, "after": _tree_digest(*protected), "outside": outside,
            "seconds": time.monotonic() - start, "written": written}


def test_every_case_was_graded(run):
    assert sorted(run["results"]) == sorted(run["expected"])


@pytest.mark.parametrize("case", CASES)
def test_case_grade_and_flags(run, case):
    if case not in run["expected"]:
        pytest.skip(f"{case} is not run in this mode (see expected())")
    result = run["results"][case]
    points, patterns = run["expected"][case]
    got = {g: c["final"] for g, c in result["cells"].items()}
    detail = json.dumps({k: result[k] for k in ("flags", "cells", "kernel_cells", "student_cells")
                         if k in result}, indent=1)[:6000]
    assert got == points, f"{case}: expected {points}, got {got}\n{detail}"
    for pattern in patterns:
        assert any(re.search(pattern, flag) for flag in result["flags"]), \
            f"{case}: no flag matches {pattern!r}\n{detail}"
    if not patterns:
        assert result["flags"] == [], f"{case}: unexpected flags {result['flags']}"
    assert result["review"] == bool(result["flags"])


def test_report_states_the_sandbox_and_lists_every_case(run):
    report = (run["course"] / "grading" / run["subject"].assignment / "report.txt").read_text()
    if BWRAP:
        assert "sandbox: bubblewrap (no network, private file system" in report
    else:
        assert f"sandbox: NONE, limits only ({WHY_NOT})" in report
    for case in run["expected"]:
        assert re.search(rf"^{case}\s", report, re.M), f"{case} missing from the report"
    assert "pending" not in report
    assert "copy detection (copydetect):" in report
    with open(run["course"] / "grading" / run["subject"].assignment / "similarity.csv") as handle:
        flagged = [(r["kind"], r["a"], r["b"]) for r in csv.DictReader(handle) if r["flagged"] == "True"]
    assert flagged == [("pair", "twin_a", "twin_b")], flagged


def test_results_were_written_as_each_submission_finished(run):
    """Per-student JSON files are written when each job returns, not all at the end: the
    looping submission (which holds its worker for the whole submission clock) is written
    long after most of the class."""
    import statistics

    written = run["written"]
    others = statistics.median(t for case, t in written.items() if case != "infinite_loop")
    assert written["infinite_loop"] - others > 30, \
        f"infinite_loop written {written['infinite_loop'] - others:.1f} s after the median submission"


def test_faults_were_contained_by_the_limits(run):
    results, (first, _, _), (last, _) = run["results"], run["subject"].first, run["subject"].last
    assert results["memory_bomb"]["kernel_cells"][last] == "error: MemoryError"
    assert results["infinite_loop"]["kernel_cells"][last] == "timeout"
    flood = json.loads(results["output_flood"]["notebook_json"])
    kept = sum(len(json.dumps(o)) for c in flood["cells"] if grade_id(c) == first for o in c["outputs"])
    assert kept < 2 * LIMITS.output_bytes, f"{kept} bytes of output kept"
    huge = json.loads(results["huge_exception"]["notebook_json"])
    assert len(json.dumps(huge)) < LIMITS.notebook_output_bytes + 200_000
    big = json.loads(results["big_file"]["notebook_json"])
    text = "".join(o.get("text", "") for c in big["cells"] if grade_id(c) == last for o in c.get("outputs", []))
    refused = re.search(r"write refused: EFBIG after ([\d.]+) s", text)
    assert refused and float(refused.group(1)) < 10, f"the 1 GiB write was not stopped quickly: {text[:300]}"
    assert results["markdown_flood"]["seconds"] < 200
    if "fork_bomb" in results:  # not run with limits only, as root: see expected()
        executed = json.loads(results["fork_bomb"]["notebook_json"])
        text = "".join(o.get("text", "") for c in executed["cells"] if grade_id(c) == last
                       for o in c.get("outputs", []))
        found = re.search(r"fork refused after (\d+) children", text)
        assert found and int(found.group(1)) < LIMITS.nproc, f"the fork bomb was not bounded: {text[:500]}"


def test_nothing_outside_the_sandbox_changed(run):
    assert run["after"] == run["before"], "solutions, release or submissions changed"
    if BWRAP:  # without the sandbox, the student's code can write what the grader's user can
        assert run["outside"].read_text() == "instructor's file"


def test_every_flagged_submission_needs_manual_grading_and_is_exported_for_review(run):
    from nbgrader.api import Gradebook

    course, assignment = run["course"], run["subject"].assignment
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for case, result in run["results"].items():
            for gid in result["cells"]:
                grade = gb.find_grade(gid, assignment, assignment, case)
                assert grade.needs_manual_grade is bool(result["flags"]), (case, gid, result["flags"])
    assert run["results"]["gradebook_write"]["score"] == sum(run["subject"].full.values())  # flagged, full marks
    assert cli_main(["export", "--course", str(course)]) == 0
    with open(course / "grades.csv") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert {case: float(row["score"]) for case, row in rows.items()} == \
        {case: sum(points.values()) for case, (points, _) in run["expected"].items()}
    assert {case: row["review"] for case, row in rows.items()} == \
        {case: str(bool(result["flags"])) for case, result in run["results"].items()}


def test_feedback_is_sanitised_and_shows_the_trusted_outcome(run):
    course, assignment = run["course"], run["subject"].assignment
    assert cli_main(["feedback", assignment, "--course", str(course)]) == 0
    assert (course / f"feedback/correct/{assignment}/{assignment}.html").exists()
    page = (course / f"feedback/partial/{assignment}/{assignment}.html").read_text()
    assert "grader (trusted check, outside your code&#x27;s process): fail" in page or \
        "grader (trusted check, outside your code's process): fail" in page
    hostile = (course / f"feedback/script_injection/{assignment}/{assignment}.html").read_text()
    assert "<b>injected</b>" in hostile
    assert active_content(hostile) == [], active_content(hostile)
    stored = nbformat.read(course / f"autograded/script_injection/{assignment}/{assignment}.ipynb", as_version=4)
    outputs = [o for c in stored.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not any("application/javascript" in o.get("data", {}) for o in outputs)
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert html and all(active_content(h) == [] for h in html) and any("<b>injected</b>" in h for h in html)


def active_content(page: str) -> list[str]:
    """Elements and attributes of an HTML page that can run code: scripts, frames, objects,
    event handlers, ``javascript:`` URLs (the page's text, escaped code included, is not)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ("script", "iframe", "object", "embed", "frame", "base"):
                found.append(f"<{tag}>")
            for name, value in attrs:
                if name.startswith("on"):
                    found.append(f"<{tag} {name}>")
                if name in ("href", "src", "action", "formaction") and \
                        re.sub(r"[\x00-\x20]", "", value or "").lower().startswith(("javascript:", "data:text")):
                    found.append(f"<{tag} {name}={value[:40]}>")

    Finder().feed(page)
    return found


def test_limits_only_fallback_still_grades_and_says_so(run, tmp_path):
    """The same submission graded with the limits only (what a machine without bubblewrap
    gets, outside CI): same grade, and the report line says so."""
    from gradelib.grading.pipeline import grade_submission

    [job] = submission_jobs(run["course"], run["subject"].assignment, LIMITS, tmp_path, students=["correct"],
                            use_bwrap=False)
    result = grade_submission(job)
    assert {g: c["final"] for g, c in result["cells"].items()} == run["subject"].full, result["flags"]
    assert result["flags"] == []
    assert result["sandbox"].startswith("sandbox: NONE, limits only")


def test_dask_cluster_runs_the_same_unit_of_work(run, tmp_path):
    """The same jobs on a dask.distributed LocalCluster give the same grades as the pool,
    each written as it finishes."""
    from distributed import Client, LocalCluster

    jobs = submission_jobs(run["course"], run["subject"].assignment, LIMITS, tmp_path,
                           students=["partial", "symlink_to_neighbour"])
    assert len(jobs) == 2
    seen = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        results = run_jobs(jobs, dask_scheduler=client, on_result=lambda r: seen.append(r["student"]))
    assert sorted(seen) == ["partial", "symlink_to_neighbour"] and seen[0] == "symlink_to_neighbour"
    for result in results:
        pool = run["results"][result["student"]]
        assert {g: c["final"] for g, c in result["cells"].items()} == \
               {g: c["final"] for g, c in pool["cells"].items()}
        assert result["flags"] == [f for f in pool["flags"] if not f.startswith("similar submission")]


def test_hw1_own_work_through_an_assembled_importlib_name(tmp_path):
    """hw1 in full (the training checks included): the graded linear_ae_loss delegates to the
    book's function of the same name in gradelib.autoencoders, reached through importlib with
    the module name assembled at run time; that cell gets 0 and a flag, every other cell (whose
    code may legitimately use gradelib for data and plots) gets its points. (The import-alias
    route is covered by tests/test_grading.py::test_own_work_static_finds_the_reference.)"""
    course = _course(tmp_path, "hw1_autoencoders")
    nb = _correct(course, "hw1_autoencoders")
    _cell(nb, "linear_ae_loss").source = textwrap.dedent("""
        import importlib
        _book = importlib.import_module("gradelib." + "autoencoders")
        linear_ae_loss = getattr(_book, "linear_ae_loss")
        """)
    target = course / "submitted" / "copycat" / "hw1_autoencoders"
    target.mkdir(parents=True)
    nbformat.write(nb, target / "hw1_autoencoders.ipynb")
    [result] = grade_assignment(course, "hw1_autoencoders", workers=1,
                                limits=Limits(cell_timeout=300, submission_timeout=900))
    got = {g: c["final"] for g, c in result["cells"].items()}
    maxima = {g: c["max"] for g, c in result["cells"].items()}
    # The book's linear_ae_loss is the scalar autoencoder's (0-d weights): the student's own
    # train_linear_ae, which calls the borrowed function on (k, d) matrices, fails too.
    assert got == {**maxima, "test_linear_ae_loss": 0.0, "test_train_linear_ae": 0.0}, \
        json.dumps(result["flags"], indent=1)
    flags = "\n".join(result["flags"])
    assert re.search(r"own work: test_linear_ae_loss: linear_ae_loss .*gradelib", flags), flags
    assert result["student_cells"]["train_denoising_autoencoder"] == "ok"
    shutil.rmtree(course / "autograded")
