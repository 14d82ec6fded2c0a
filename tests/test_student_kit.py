"""The student kit (``make student-kit``, ``student_kit/build.py``) and homework integrity.

The kit is built into a temporary folder, then installed into a fresh virtual environment
with ``uv sync --locked --offline``: from uv's cache alone, which ``make test`` filled
(``make install`` the wheels, ``make kit-cache`` the index pages the kit's lock reads),
since every package of the kit's lock is a package of the main lock at the same version
(tested below; JupyterLab is one of them). Every released notebook then runs in a kernel
of that environment under nbval (``tests/kit_nbval.py`` says what each cell may do):
imports and data work, every graded stub raises ``NotImplementedError``, and nothing else
fails. ``gradelib.checks`` and ``gradelib.grading`` do not import there.

No file of the kit holds a solution, a hidden test, a check (with its answer keys) or a
reference of a graded function, compared as normalised tokens (``tests/homework_integrity.py``),
so that a rename or a reformatting does not hide a copy; the scanner itself is tested on
such copies and on unrelated code. The same scan of the built book is in
``tests/test_book.py``, which owns the book build. Assignments still in their first edition
are :data:`homework_integrity.KNOWN_EXPOSURES`, marked ``xfail(strict=True)``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

import homework_integrity as hi
from conftest import ASSIGNMENTS, REPO, venv_env

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

_spec = importlib.util.spec_from_file_location("student_kit_build", REPO / "student_kit" / "build.py")
kit_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kit_build)

KERNEL = "dgm-student-kit"
TESTS = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------- building


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    start = time.perf_counter()
    out = kit_build.build(tmp_path_factory.mktemp("kit") / "student-kit", offline=True)
    print(f"built the kit in {time.perf_counter() - start:.1f} s (load {os.getloadavg()[0]:.2f})")
    return out


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_kit_holds_the_notebooks_the_wheel_and_the_environment(kit):
    released = {f"notebooks/{p.relative_to(REPO / 'notebooks').as_posix()}"
                for a in ASSIGNMENTS for p in (REPO / "notebooks" / a).rglob("*") if p.is_file()}
    wheel = f"wheels/{_wheel(kit).name}"
    assert _files(kit) == released | {wheel, "pyproject.toml", "uv.lock", "README.md"}
    for name in released:
        assert (kit / name).read_bytes() == (REPO / name).read_bytes(), name
    with zipfile.ZipFile(kit.with_suffix(".zip")) as zf:
        assert {n.split("/", 1)[1] for n in zf.namelist()} == _files(kit)
        assert all(n.startswith("student-kit/") for n in zf.namelist())
    readme = (kit / "README.md").read_text()
    assert "uv sync --locked" in readme and "uv run jupyter lab" in readme
    assert "solutions" not in readme and "git clone" not in readme


def _wheel(kit: Path) -> Path:
    (wheel,) = (kit / "wheels").glob("gradelib-*.whl")
    return wheel


def test_wheel_is_gradelib_without_checks_and_grading(kit):
    names = set(zipfile.ZipFile(_wheel(kit)).namelist())
    student_facing = {p.relative_to(REPO).as_posix() for p in (REPO / "gradelib").rglob("*.py")
                      if p.relative_to(REPO / "gradelib").parts[0] not in kit_build.INSTRUCTOR_ONLY}
    modules = {n for n in names if n.startswith("gradelib/")}
    assert modules == student_facing, (f"missing {sorted(student_facing - modules)}, "
                                       f"extra {sorted(modules - student_facing)}")
    metadata = next(zipfile.ZipFile(_wheel(kit)).read(n).decode() for n in names
                    if n.endswith(".dist-info/METADATA"))
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
                if line.startswith("Requires-Dist:")]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert sorted(r.replace(" ", "") for r in requires) == \
        sorted(r.replace(" ", "") for r in kit_build.wheel_requirements(project))
    assert "jupyter-book" not in metadata and "nbgrader" not in metadata


def _locked(path: Path) -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for package in tomllib.loads(path.read_text())["package"]:
        if "registry" in package.get("source", {}):
            versions.setdefault(package["name"], set()).add(package["version"])
    return versions


def test_kit_lock_pins_the_main_locks_versions(kit):
    """Every third-party package of the kit is locked at the main lock's version (so
    ``make install`` has it in uv's cache), and the build moved none of the committed
    ``student_kit/uv.lock``."""
    kit_lock, main_lock = _locked(kit / "uv.lock"), _locked(REPO / "uv.lock")
    differ = {name: (sorted(v), sorted(main_lock.get(name, ()))) for name, v in kit_lock.items()
              if not v <= main_lock.get(name, set())}
    assert not differ, (f"kit lock versions not in the main lock (kit, main): {differ}; run "
                        "`make student-kit-lock` and commit student_kit/uv.lock")
    assert kit_lock == _locked(REPO / "student_kit" / "uv.lock"), (
        "building the kit re-resolved student_kit/uv.lock: run `make student-kit-lock` and commit it")
    assert "jupyterlab" in kit_lock and "nbgrader" not in kit_lock and "jupyter-book" not in kit_lock
    (gradelib,) = [p for p in tomllib.loads((kit / "uv.lock").read_text())["package"]
                   if p["name"] == "gradelib"]
    assert gradelib["source"] == {"path": f"wheels/{_wheel(kit).name}"}


# -------------------------------------------------------------------------- installing


def _uv_env(venv: Path) -> dict[str, str]:
    env = kit_build.uv_env()
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    return env


@pytest.fixture(scope="module")
def kit_python(kit, tmp_path_factory) -> Path:
    """The kit installed, as its README says (``uv sync --locked``), offline, in a fresh
    environment outside the kit folder; the interpreter of that environment."""
    venv = tmp_path_factory.mktemp("kit-env") / "venv"
    before = _files(kit)
    start = time.perf_counter()
    result = subprocess.run([*kit_build.uv_command(), "sync", "--locked", "--offline",
                             "--python", sys.executable], cwd=kit, env=_uv_env(venv),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"uv sync --offline failed:\n{result.stdout}{result.stderr}"
    print(f"installed the kit offline in {time.perf_counter() - start:.1f} s")
    assert _files(kit) == before, "installing wrote into the kit"
    return venv / "bin" / "python"


def _in_kit(python: Path, code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(python), "-c", code], env=env, cwd=python.parent,
                          capture_output=True, text=True, timeout=300)


def test_kit_environment_has_no_checks_and_imports_every_student_module(kit_python):
    result = _in_kit(kit_python, textwrap.dedent("""
        import importlib, json, pkgutil
        import gradelib
        hidden = {}
        for name in ("gradelib.checks", "gradelib.grading"):
            try:
                importlib.import_module(name)
                hidden[name] = "imported"
            except ModuleNotFoundError as error:
                hidden[name] = f"ModuleNotFoundError: {error}"
        names = [m.name for m in pkgutil.walk_packages(gradelib.__path__, "gradelib.")]
        for name in names:
            importlib.import_module(name)
        print(json.dumps({"file": gradelib.__file__, "hidden": hidden, "modules": names}))
    """))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    for name, outcome in found["hidden"].items():
        assert outcome.startswith("ModuleNotFoundError"), f"`import {name}` works in the kit"
    assert Path(found["file"]).is_relative_to(kit_python.parent.parent), found["file"]
    assert not any(".checks" in n or ".grading" in n for n in found["modules"])
    lab = subprocess.run([str(kit_python.parent / "jupyter-lab"), "--version"],
                         capture_output=True, text=True, timeout=300)
    assert lab.returncode == 0 and re.match(r"\d+\.\d+", lab.stdout.strip()), lab.stderr


# ------------------------------------------------------------- running the notebooks


def _code(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


class _Names(ast.NodeVisitor):
    """Names a cell binds at its top level, and names it loads: when it runs (``run``)
    and anywhere, function bodies included (``anywhere``)."""

    def __init__(self):
        self.bound, self.run, self.anywhere = set(), set(), set()
        self.inside: dict[str, set[str]] = {}  # top-level def/class name -> names it loads
        self._deferred = 0
        self._collecting: list[set[str]] = []

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self.anywhere.add(node.id)
            for names in self._collecting:
                names.add(node.id)
            if not self._deferred:
                self.run.add(node.id)
        elif not self._deferred:
            self.bound.add(node.id)

    def _collect(self, node, visit):
        """Run ``visit``; for a top-level definition, note the names loaded inside it."""
        top = not self._deferred and not self._collecting and hasattr(node, "name")
        if top:
            self.inside[node.name] = set()
            self._collecting.append(self.inside[node.name])
        visit()
        if top:
            self._collecting.pop()

    def _function(self, node, body):
        if not self._deferred and hasattr(node, "name"):
            self.bound.add(node.name)

        def visit():
            for item in getattr(node, "decorator_list", []) + node.args.defaults + node.args.kw_defaults:
                if item is not None:
                    self.visit(item)
            self._deferred += 1
            for item in body:
                self.visit(item)
            self._deferred -= 1

        self._collect(node, visit)

    def visit_FunctionDef(self, node):
        self._function(node, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self._function(node, [node.body])

    def visit_ClassDef(self, node):
        if not self._deferred:
            self.bound.add(node.name)
        self._collect(node, lambda: self.generic_visit(node))

    def visit_alias(self, node):
        if not self._deferred:
            self.bound.add((node.asname or node.name).split(".")[0])

    def visit_ExceptHandler(self, node):
        if node.name and not self._deferred:
            self.bound.add(node.name)
        self.generic_visit(node)

    def _comprehension(self, node):  # its targets are local to it
        bound = set(self.bound)
        self.generic_visit(node)
        self.bound = bound

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension


def names(source: str) -> _Names:
    visitor = _Names()
    visitor.visit(ast.parse(_code(source)))
    return visitor


def cell_expectations(notebook: Path, solution: Path) -> list[dict]:
    """What each code cell of a released notebook may do (see ``tests/kit_nbval.py``)."""
    solved = {c["metadata"].get("nbgrader", {}).get("grade_id"): "".join(c["source"])
              for c in json.loads(solution.read_text())["cells"]}
    stub_defined: set[str] = set()  # what the stub cells define (as released and as solved)
    stub_names: set[str] = set()    # that, and what cells using them define
    expectations = []
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        meta = cell["metadata"].get("nbgrader", {})
        source = "".join(cell["source"])
        found = names(source)
        entry = {"grade_id": meta.get("grade_id"), "graded": bool(meta.get("grade")),
                 "loads": sorted(found.anywhere), "binds": sorted(found.bound)}

        def reaching(targets: set[str]) -> set[str]:
            """The functions and classes this cell defines that reach ``targets`` when called."""
            reached: set[str] = set()
            while True:
                more = {n for n, inside in found.inside.items() if inside & (targets | reached)}
                if more <= reached:
                    return reached
                reached |= more

        # what the cell reads without assigning it itself, and its own code that reaches it
        direct = ((found.run - found.bound) & stub_defined) | (found.run & reaching(stub_defined))
        uses = ((found.run - found.bound) & stub_names) | (found.run & reaching(stub_names))
        if meta.get("solution"):
            entry["expect"] = "stub"
            solved_names = names(solved.get(meta.get("grade_id"), "")).bound
            stub_defined |= found.bound | solved_names
            stub_names |= found.bound | solved_names
        elif direct:
            entry["expect"] = "uses-stubs"
            entry["uses"] = sorted(direct)
            stub_names |= found.bound
        elif uses:
            entry["expect"] = "uses-state"
            entry["uses"] = sorted(uses)
            stub_names |= found.bound
        else:
            entry["expect"] = "pass"
        entry["stub_names"] = sorted(stub_names)
        expectations.append(entry)
    return expectations


@pytest.fixture(scope="module")
def kit_kernel(kit_python, tmp_path_factory) -> dict[str, str]:
    """A Jupyter kernel spec for the kit's interpreter; the environment that finds it."""
    jupyter = tmp_path_factory.mktemp("kit-jupyter")
    spec = jupyter / "data" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(kit_python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (student kit)", "language": "python",
        # PYTHONPATH empty: a developer's PYTHONPATH=<worktree> must not reach the kit
        "env": {"PYTHONPATH": "", "IPYTHONDIR": str(jupyter / "ipython"), "OMP_NUM_THREADS": "1"},
    }))
    env = venv_env()
    env.update(JUPYTER_PATH=str(jupyter / "data"), JUPYTER_DATA_DIR=str(jupyter / "data"),
               JUPYTER_CONFIG_DIR=str(jupyter / "config"), PYTHONPATH=str(TESTS),
               OMP_NUM_THREADS="1")
    return env


def run_nbval(notebooks: list[Path], solutions: Path, env: dict[str, str], tmp_path: Path):
    """Run ``notebooks`` with nbval in the kit's kernel; their expectations, the result
    and each cell's record (``tests/kit_nbval.py``)."""
    expectations = {nb.name: cell_expectations(nb, solutions / nb.name) for nb in notebooks}
    (tmp_path / "expect.json").write_text(json.dumps(expectations))
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "kit_nbval", "-p", "no:cacheprovider",
         "-c", os.devnull, "--rootdir", str(tmp_path), "-q", "--nbval-lax",
         f"--nbval-kernel-name={KERNEL}", "--nbval-cell-timeout=600",
         f"--kit-expectations={tmp_path / 'expect.json'}", f"--kit-report={report}",
         *map(str, notebooks)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    records = json.loads(report.read_text()) if report.exists() else []
    return expectations, result, records


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_released_notebook_runs_in_the_kit(kit, kit_kernel, assignment, tmp_path):
    notebooks = sorted((kit / "notebooks" / assignment).glob("*.ipynb"))
    assert notebooks, f"the kit has no notebook for {assignment}"
    start = time.perf_counter()
    expectations, result, records = run_nbval(notebooks, REPO / "solutions" / assignment,
                                              kit_kernel, tmp_path)
    print(f"{assignment}: nbval in the kit in {time.perf_counter() - start:.1f} s "
          f"(load {os.getloadavg()[0]:.2f})")
    for name, cells in expectations.items():
        unused = [c["grade_id"] for c in cells if c["graded"] and c["expect"] == "pass"]
        assert not unused, f"{name}: test cells {unused} use no stub: they pass without any work"
    assert result.returncode == 0, f"nbval failed on {assignment}:\n{result.stdout[-8000:]}{result.stderr[-2000:]}"
    for name, cells in expectations.items():
        ran = {r["cell"]: r for r in records if r["notebook"] == name}
        assert sorted(ran) == list(range(len(cells))), f"{name}: cells run {sorted(ran)}"
        assert not [r for r in ran.values() if r["failed"]]
        # Every stub raised NotImplementedError: a cell that uses it raised that, unless
        # every cell that uses it stopped earlier, at what an earlier stub left undone
        # (first edition: hw2's `sample` needs the model the `PixelCNN` stub cannot build).
        for i, cell in enumerate(cells):
            if cell["expect"] != "stub" or ran[i]["ename"] == "NotImplementedError":
                continue
            users = [j for j, c in enumerate(cells) if j > i and set(cell["binds"]) & set(c["loads"])]
            outcomes = {ran[j]["ename"] for j in users}
            blocked = all(ran[j]["ename"] == "NameError" or ran[j].get("unfinished") for j in users)
            assert users and ("NotImplementedError" in outcomes or blocked), (
                f"{name}: the stub {cell['grade_id']} ({cell['binds']}) was never reached: "
                f"the cells using it ({users}) raised {sorted(map(str, outcomes))}")
        passed = [i for i, c in enumerate(cells) if c["expect"] == "pass"]
        assert passed and all(ran[i]["ename"] is None for i in passed)


def _notebook(cells: list[tuple[str, dict, str]]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3"}},
            "cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "outputs": [],
                       "metadata": {"nbgrader": {"grade_id": gid, "locked": True, "solution": False,
                                                 "grade": False, **meta}}, "source": src}
                      for i, (gid, meta, src) in enumerate(cells)]}


def test_notebook_run_catches_cells_that_fail_for_another_reason(kit_kernel, tmp_path):
    """The check above fails a notebook where a cell that does not use the stubs fails
    (here: it imports ``gradelib.checks``, absent from the kit), where a test cell fails
    for a reason other than a stub, and where a test cell passes with the stubs."""
    stub = "def double(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    solved = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
    graded = {"grade": True, "points": 1}
    cells = [("imports", {}, "import math\nfrom gradelib.data import ring_mixture"),
             ("double", {"solution": True, "locked": False}, stub),
             ("test_double", graded, "assert double(2) == 4"),
             ("uses_checks", {}, "from gradelib.checks import assertions"),
             ("test_wrong", graded, "assert math.pi == 3, 'pi is not 3'\ndouble(1)"),
             ("test_passes", graded, "f = double if math.pi > 3 else None")]
    for folder, double_source in (("released", stub), ("solutions", solved)):
        (tmp_path / folder).mkdir()
        notebook = _notebook([(g, m, double_source if g == "double" else src) for g, m, src in cells])
        (tmp_path / folder / "toy.ipynb").write_text(json.dumps(notebook))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _, result, records = run_nbval([tmp_path / "released" / "toy.ipynb"], tmp_path / "solutions",
                                   kit_kernel, run_dir)
    assert result.returncode != 0, result.stdout[-3000:]
    failed = {r["grade_id"] for r in records if r["failed"]}
    assert failed == {"uses_checks", "test_wrong", "test_passes"}, (failed, result.stdout[-3000:])
    assert "No module named 'gradelib.checks'" in result.stdout
    assert "raised AssertionError: pi is not 3" in result.stdout
    assert "ran without error" in result.stdout


# ------------------------------------------------------------------ the scanner itself


def _rename_and_reformat(source: str) -> str:
    """``source`` with every name it defines renamed, its layout and comments changed."""
    tree = ast.parse(source)
    defined = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    defined |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
                for a in n.posonlyargs + n.args + n.kwonlyargs + [n.vararg, n.kwarg] if a}
    defined |= {n.name for n in ast.walk(tree)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    own = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)}
    own |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    new = {name: f"renamed_{i}" for i, name in enumerate(sorted(defined | own))}

    class Rename(ast.NodeTransformer):
        def visit_Name(self, node):
            node.id = new.get(node.id, node.id)
            return node

        def visit_arg(self, node):
            node.arg = new.get(node.arg, node.arg)
            return node

        def visit_Attribute(self, node):  # attributes the code defines, not the library's
            self.generic_visit(node)
            node.attr = new[node.attr] if node.attr in own else node.attr
            return node

        def visit_FunctionDef(self, node):
            self.generic_visit(node)
            node.name = new.get(node.name, node.name)
            node.body.insert(0, ast.Expr(ast.Constant("A docstring the copy added.")))
            return node

        visit_ClassDef = visit_FunctionDef

    code = ast.unparse(ast.fix_missing_locations(Rename().visit(tree)))
    # two-space indentation, a comment and a blank line after every line, wider spacing
    lines = [re.sub(r"^((?:    )+)", lambda m: "  " * (len(m.group(1)) // 4), line)
             for line in code.splitlines()]
    return "\n".join(f"{line.replace(', ', ' ,  ')}  # changed\n" for line in lines)


def _solution_cells():
    for assignment in ASSIGNMENTS:
        for notebook in sorted((REPO / "solutions" / assignment).glob("*.ipynb")):
            for cell in json.loads(notebook.read_text())["cells"]:
                if cell["metadata"].get("nbgrader", {}).get("solution") and cell["cell_type"] == "code":
                    yield assignment, cell["metadata"]["nbgrader"]["grade_id"], "".join(cell["source"])


def test_scanner_finds_renamed_and_reformatted_copies_of_every_solution(tmp_path):
    """Each solution cell, renamed and reformatted, inside a notebook and inside an HTML
    page of highlighted code (as the book renders it) among other code, is found."""
    import html

    secrets = {(s.assignment, s.origin.rsplit(" ", 1)[1]): s
               for a in ASSIGNMENTS for s in hi.solution_secrets(a)}
    assert secrets, "no solution to test the scanner on"
    filler = (REPO / "gradelib" / "device.py").read_text()
    scores = {}
    for assignment, grade_id, source in _solution_cells():
        secret = secrets.get((assignment, grade_id))
        if secret is None or not secret.specific:  # too short, or all idiom: nothing to find
            continue
        copy = _rename_and_reformat(hi.canonical_source(source))
        assert "renamed_0" in copy
        notebook = tmp_path / f"{grade_id}.ipynb"
        notebook.write_text(json.dumps({"cells": [
            {"cell_type": "code", "source": filler, "metadata": {}},
            {"cell_type": "code", "source": copy, "metadata": {}}]}))
        spans = "".join(f'<span class="n">{html.escape(t)}</span>' for t in re.split(r"(\W)", copy))
        page = tmp_path / f"{grade_id}.html"
        page.write_text(f"<html><body><p>Some prose.</p><div class='highlight'><pre>{spans}"
                        f"</pre></div><script>var x = 1;</script></body></html>")
        for path in (notebook, page):
            (document,) = hi.file_documents(path, path.name)
            scores[f"{assignment}/{grade_id} in {path.suffix}"] = hi.containment(secret, document)
    missed = {k: round(v, 2) for k, v in scores.items() if v < hi.THRESHOLD}
    assert not missed, f"renamed copies the scanner misses: {missed}"
    print(f"renamed and reformatted copies: lowest score {min(scores.values()):.2f} of {len(scores)}")


UNRELATED = """
import argparse, collections

def word_counts(paths):
    counts = collections.Counter()
    for path in paths:
        with open(path) as handle:
            for line in handle:
                counts.update(word.lower() for word in line.split() if word.isalpha())
    return counts

def main():
    parser = argparse.ArgumentParser(description="count words")
    parser.add_argument("paths", nargs="+")
    for word, n in word_counts(parser.parse_args().paths).most_common(10):
        print(f"{word:>20} {n}")
"""


def test_scanner_finds_nothing_in_unrelated_code(tmp_path):
    """No solution, hidden test, check or reference is found in code that has nothing to
    do with the course: the standard library's ``argparse``, ``json`` and ``textwrap``,
    the repository's kit builder, and a small program."""
    import argparse as argparse_module
    import json as json_module

    (tmp_path / "words.py").write_text(UNRELATED)
    documents = hi.file_documents(tmp_path / "words.py", "words.py")
    for path in (Path(argparse_module.__file__), Path(json_module.__file__).parent / "decoder.py",
                 Path(textwrap.__file__), REPO / "student_kit" / "build.py"):
        documents += hi.file_documents(path, path.name)
    secrets = [s for a in ASSIGNMENTS for s in hi.kit_secrets(a)] + hi.shared_check_secrets()
    findings = hi.scan(secrets, documents)
    assert not findings, "unrelated code flagged: " + "; ".join(map(str, findings[:10]))
    best = max(hi.containment(s, d) for s in secrets for d in documents)
    print(f"unrelated code: highest score {best:.2f} over {len(secrets)} secrets")


def test_normalisation_ignores_names_layout_comments_and_docstrings():
    a = 'def f(x, y: int = 2) -> float:\n    """Doc."""\n    # note\n    return (x.mean() + y) * 1e-3\n'
    b = "def g(a,\n      b=2):\n  return ((a.mean()+b)*0.001)  # other\n"
    assert hi.normalise(a) == hi.normalise(b)
    assert hi.normalise("x.sum()") != hi.normalise("x.mean()")  # library names are kept
    assert hi.normalise('d = "9f86d081884c7d659a2feaa0c55ad015"') != hi.normalise('d = "0" * 32')


def test_known_exposures_name_real_assignments():
    for assignment, where in hi.KNOWN_EXPOSURES.items():
        assert assignment in ASSIGNMENTS, f"KNOWN_EXPOSURES lists {assignment}, which does not exist"
        assert where and where <= {"kit", "book"}, f"{assignment}: {where}"


# -------------------------------------------------------------- scanning the kit


@pytest.fixture(scope="module")
def kit_documents(kit, tmp_path_factory):
    """Every file of the kit, the wheel's files unpacked."""
    unpacked = tmp_path_factory.mktemp("kit-unpacked")
    with zipfile.ZipFile(_wheel(kit)) as zf:
        zf.extractall(unpacked / "wheel")
    documents = hi.tree_documents(kit, exclude=("wheels",))
    documents += [hi.Document(f"wheels/{d.name}", list(d.tokens))
                  for d in hi.tree_documents(unpacked / "wheel")]
    return documents


@pytest.mark.parametrize("assignment", hi.exposure_params(ASSIGNMENTS, "kit"))
def test_kit_contains_no_solution_hidden_test_check_or_reference(kit_documents, assignment):
    secrets = hi.kit_secrets(assignment)
    assert secrets, f"{assignment}: nothing to look for"
    hi.assert_not_exposed(hi.scan(secrets, kit_documents), f"{assignment}: the kit")


def test_kit_contains_no_shared_check_code(kit_documents):
    hi.assert_not_exposed(hi.scan(hi.shared_check_secrets(), kit_documents), "the kit")


def test_students_are_sent_to_the_kit_not_the_repository():
    """README "For students" and the book's first page send students to the kit; the
    grading chapter says what an instructor publishes and what stays private."""
    readme = (REPO / "README.md").read_text()
    students = readme.split("## For students", 1)[1].split("\n## ", 1)[0]
    intro = (REPO / "book" / "intro.md").read_text()
    studying = intro.split("**Studying.**", 1)[1].split("\n\n", 1)[0]
    for text in (students, studying):
        assert "student kit" in text and "uv sync --locked" in text and "uv run jupyter lab" in text
        assert not re.search(r"make |git clone|solutions/|from the course environment", text), text
    grading = (REPO / "book" / "grading.md").read_text()
    assert "make student-kit" in grading and "stays private" in grading and "solutions/" in grading


def test_kit_leaves_out_what_the_grading_sandbox_leaves_out():
    """The kit's wheel and the grading sandbox's copy of gradelib agree on what is
    instructor-only."""
    from gradelib.grading import sandbox

    assert set(kit_build.INSTRUCTOR_ONLY) == set(sandbox.INSTRUCTOR_ONLY)
