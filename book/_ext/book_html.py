"""HTML adjustments that make the book work for a reader offline, with a clean console.

- **MathJax from the book itself.** Sphinx loads MathJax from a CDN by default, which a
  reader offline (or this course's CI) cannot reach. The ``django-static-mathjax`` wheel
  ships MathJax 3.2.2's files (it needs no Django to install); they are added to the
  build's ``_static`` folder and ``mathjax_path`` points at the local copy.
- **Each script once.** Jupyter Book 1 registers sphinx-thebe's inline configuration script
  twice, which makes the browser report "Identifier 'THEBE_JS_URL' has already been
  declared" on every page; duplicates are dropped when each page is rendered.
- **A defined colour mode.** The book theme leaves the page template's ``default_mode``
  empty, so the browser logs "Got invalid theme mode" on a reader's first visit; pages
  start in light mode instead (readers can still switch).
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config


def _configure(app: Sphinx, config: Config) -> None:
    import mathjax  # the django-static-mathjax distribution's top-level package

    static = Path(mathjax.__file__).resolve().parent / "static"
    if not (static / "mathjax" / "es5" / "tex-mml-chtml.js").exists():
        raise RuntimeError(f"MathJax's es5 bundle is missing under {static}")
    config.html_static_path.append(str(static))
    config.mathjax_path = "mathjax/es5/tex-mml-chtml.js"


def _adjust_page(app, pagename, templatename, context, doctree) -> None:
    if not context.get("default_mode"):
        context["default_mode"] = "light"
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = dict(getattr(script, "attributes", {}) or {})
        key = (getattr(script, "filename", str(script)) or "", attributes.get("body"),
               attributes.get("src"))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _configure)
    app.connect("html-page-context", _adjust_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
