"""The committed notebooks are clean sources: no outputs, valid nbformat.

Executing them is tested elsewhere, once each, to keep ``make test`` within CI's time
limit: every book chapter is executed by the book build (tests/test_book.py, where a cell
error fails the build and its traceback is in the log), and every solution notebook by
``nbgrader validate`` and by autograding a correct submission (tests/test_nbgrader.py).
"""

from __future__ import annotations

import json

import nbformat
import pytest

from conftest import REPO

NOTEBOOKS = sorted((REPO / "solutions").glob("*/*.ipynb")) + sorted((REPO / "notebooks").glob("*/*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_committed_notebooks_carry_no_outputs(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    with_outputs = [i for i, c in enumerate(cells)
                    if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not with_outputs, f"{notebook.name}: cells {with_outputs} carry outputs; clear them"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_committed_notebooks_are_valid(notebook):
    nbformat.validate(nbformat.read(notebook, as_version=4))
