"""HTML adjustments that make the book work for a reader offline, with a clean console.

- **MathJax from the book itself.** Sphinx loads MathJax from a CDN by default, which a
  reader offline (or this course's CI) cannot reach. The ``django-static-mathjax`` wheel
  ships MathJax 3.2.2's files (it needs no Django to install); they are added to the
  build's ``_static`` folder and ``mathjax_path`` points at the local copy.
- **Each script once.** Jupyter Book 1 registers sphinx-thebe's inline configuration script
  twice, which makes the browser report "Identifier 'THEBE_JS_URL' has already been
  declared" on every page; duplicates are dropped when each page is rendered.
- **Alt text for every figure.** An image produced by a code cell has no alt text of its
  own, and the HTML writer would fall back to its file name. Images inside a figure get the
  figure's caption as their alt text; an image with neither alt text nor a caption is a
  build warning (so ``-W`` fails), which keeps every figure captioned.
- **Sample figures from the chapters.** The ``chapter-sample`` directive shows, as a
  numbered figure with the directive's content as caption, the output a chapter glued as
  ``sample-figure`` (myst-nb's ``glue:figure`` cannot paste from another page)::

      ```{chapter-sample} autoencoders.md
      :name: intro-sample-ae

      Test digits reconstructed from a 32-number code.
      ```

  The first page shows one per chapter; after the build the images of the figures named
  ``intro-sample-<name>`` are copied to ``_build/html/_samples/<name>.png``, from where
  ``make samples`` refreshes the copies the README shows.
- **A defined colour mode.** The book theme leaves the page template's ``default_mode``
  empty, so the browser logs "Got invalid theme mode" on a reader's first visit; pages
  start in light mode instead (readers can still switch).
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


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


def _alt_text(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for image in doctree.findall(nodes.image):
        if image.get("alt"):
            continue
        figure = image.parent
        while figure is not None and not isinstance(figure, nodes.figure):
            figure = figure.parent
        caption = next(iter(figure.findall(nodes.caption)), None) if figure is not None else None
        if caption is not None and caption.astext().strip():
            image["alt"] = " ".join(caption.astext().split())
        else:
            logger.warning("image %s has no alt text and no caption: give the cell a "
                           "mystnb figure caption or an image alt", image.get("uri"),
                           location=image)


class ChapterSample(SphinxDirective):
    """``{chapter-sample} <chapter.md>``: the chapter's glued ``sample-figure``, captioned."""

    required_arguments = 1
    has_content = True
    option_spec = {"name": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        from myst_nb.ext.glue.utils import create_pending_glue_ref

        source, line = self.get_source_info()
        figure = nodes.figure()
        figure += create_pending_glue_ref(self.state.document, source, line, self.arguments[0],
                                          "sample-figure")
        parsed = nodes.Element()
        self.state.nested_parse(self.content, self.content_offset, parsed)
        if not parsed.children or not isinstance(parsed[0], nodes.paragraph):
            raise self.error("chapter-sample needs a one-paragraph caption as its content")
        caption = nodes.caption(parsed[0].rawsource, "", *parsed[0].children)
        caption.source, caption.line = source, line
        figure += caption
        self.add_name(figure)
        return [figure]


def _record_samples(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for figure in doctree.findall(nodes.figure):
        names = [n for n in figure.get("names", []) if n.startswith("intro-sample-")]
        image = next(iter(figure.findall(nodes.image)), None)
        if names and image is not None:
            samples = app.env.__dict__.setdefault("book_html_samples", {})
            samples[names[0].removeprefix("intro-sample-")] = image["uri"]


def _copy_samples(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    import shutil

    target = Path(app.outdir) / "_samples"
    for name, uri in getattr(app.env, "book_html_samples", {}).items():
        # by now the writer has pointed the image at its copy under _images/
        built = Path(app.outdir) / app.builder.imagedir / Path(uri).name
        if built.is_file():
            target.mkdir(exist_ok=True)
            shutil.copyfile(built, target / f"{name}.png")
        else:
            logger.warning("sample figure %s: %s was not built", name, built)


def setup(app: Sphinx) -> dict:
    app.add_directive("chapter-sample", ChapterSample)
    app.connect("doctree-resolved", _record_samples)
    app.connect("build-finished", _copy_samples)
    app.connect("config-inited", _configure)
    app.connect("doctree-resolved", _alt_text)
    app.connect("html-page-context", _adjust_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
