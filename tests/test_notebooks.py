"""Every solution notebook and every book chapter executes top to bottom (nbval).

The chapters are MyST Markdown notebooks; jupytext converts each to .ipynb in a temporary
folder first. ``--nbval-lax`` checks that every cell runs without error (the committed
notebooks carry no outputs to compare with).
"""

from __future__ import annotations

import json
import sys

import jupytext
import pytest

from conftest import ASSIGNMENTS, CHAPTERS, REPO, run

NBVAL = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-cell-timeout=900",
         "-p", "no:cacheprovider", "-q"]


def _nbval(notebook, cwd):
    result = run([*NBVAL, str(notebook)], cwd=cwd, timeout=3600)
    assert result.returncode == 0, f"nbval failed for {notebook}:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_notebook_executes(assignment, tmp_path):
    notebook = tmp_path / f"{assignment}.ipynb"
    notebook.write_text((REPO / "solutions" / assignment / f"{assignment}.ipynb").read_text())
    _nbval(notebook, tmp_path)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_book_chapter_executes(chapter, tmp_path):
    notebook = tmp_path / f"{chapter}.ipynb"
    jupytext.write(jupytext.read(REPO / "book" / f"{chapter}.md"), notebook)
    _nbval(notebook, tmp_path)


@pytest.mark.parametrize(
    "notebook",
    sorted((REPO / "solutions").glob("*/*.ipynb")) + sorted((REPO / "notebooks").glob("*/*.ipynb")),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_committed_notebooks_carry_no_outputs(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    with_outputs = [i for i, c in enumerate(cells)
                    if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not with_outputs, f"{notebook.name}: cells {with_outputs} carry outputs; clear them"
