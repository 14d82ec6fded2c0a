"""The book builds with every chapter executed and no warning (``jb build -W -n``)."""

from __future__ import annotations

import pytest

from conftest import toc_pages

# The built book is a session fixture: keep every test that uses it on one worker.
pytestmark = pytest.mark.xdist_group("book")


def test_book_builds_executed_without_warnings(built_book):
    assert built_book["returncode"] == 0, f"jb build failed:\n{built_book['log'][-8000:]}"
    html = built_book["html"]
    pages = toc_pages()
    for page in pages:
        assert (html / f"{page}.html").exists(), f"{page}.html was not built"
    for page in pages[1:]:
        text = (html / f"{page}.html").read_text()
        # executed: every chapter shows cell outputs, and no cell raised
        assert 'class="cell_output' in text, f"{page}: no executed output in the HTML"
        assert "Traceback (most recent call last)" not in text, f"{page}: a cell raised"


def test_mathjax_is_served_from_the_book(built_book):
    html = built_book["html"]
    assert (html / "_static" / "mathjax" / "es5" / "tex-mml-chtml.js").exists()
    chapter = (html / f"{toc_pages()[1]}.html").read_text()
    assert "_static/mathjax/es5/tex-mml-chtml.js" in chapter and "cdn.jsdelivr" not in chapter
