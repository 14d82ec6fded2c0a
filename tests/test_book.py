"""The book: it builds, executed and warning-free, and renders for a reader in a browser.

``jb build -W -n`` builds every page with every chapter executed; the build must succeed,
every chapter page must show executed output and figures, and MathJax must be served from
the book itself.

The built HTML is then served on localhost and every page of the table of contents is
opened in Debian's ``chromium`` driven by Playwright's Python API (no browser download). On
every page: no console errors, no request leaving localhost (the book must work offline),
MathJax rendered every equation (no raw ``$$``, no MathJax error node), every image loaded
and has alt text (not its file name), every internal link resolves (page and anchor),
every dropdown opens, and no display equation is wider than the text column (MathJax does
not break lines: it would be cut off). Once MathJax has run and every dropdown is open,
no ``$`` and no TeX command (``\\frac``, ``\\mathbb``, ``\\begin``...) may be left in the
page's text outside code and rendered math: that is TeX that Markdown did not hand to
MathJax (a display ``$$`` inside a paragraph, a line of inline math starting with ``-``
that became a list item). Nor may a Markdown table's ``| --- |`` row (a cell's Markdown
output is CommonMark, which has no tables). The search page finds a term. A full-page
screenshot of each page is kept in ``_build/screenshots/``.

Where no Chromium can be found, the browser tests are skipped with the reason, except under
CI (``CI`` set to anything but ``""``/``0``/``false``, as CI services and ``.ci/run`` do),
where a missing browser is a failure: CI must not pass without having looked at the book.

All of this lives in one file because the built book is a session fixture and
``make test`` distributes tests to workers by file (``--dist loadfile``).
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

from conftest import REPO, toc_pages

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = REPO / "_build" / "screenshots"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


@pytest.fixture(scope="module")
def site(built_book):
    if built_book["returncode"] != 0:
        pytest.skip("the book did not build (see test_book.py)")
    handler = functools.partial(_QuietHandler, directory=str(built_book["html"]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output readable
        pass


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        reason = "no Chromium found (install Debian's `chromium` package, or set CHROMIUM)"
        if IN_CI:
            pytest.fail(f"CI={os.environ['CI']!r}: {reason}; the browser test may not be skipped in CI")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def _open(browser, url: str):
    """Open ``url`` in a fresh page; record console errors and requests leaving localhost."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            r.continue_()
        else:
            problems.append(f"external request: {r.request.url}")
            r.abort()

    page.route("**/*", route)
    page.goto(url, wait_until="load")
    return page, problems


# Elements whose text is not prose: code (inline and blocks, cell inputs and outputs),
# scripts and styles, and MathJax's rendered output (which keeps the formula's MathML for
# screen readers inside the container).
NOT_PROSE = {"pre", "code", "kbd", "samp", "script", "style", "textarea", "noscript", "template",
             "svg", "math", "mjx-container"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr"}
# A dollar sign, a TeX command (a backslash and letters), or MathJax's own delimiters
# \( \) \[ \] around math it did not render.
RAW_TEX = re.compile(r"\$|\\[a-zA-Z]+|\\[()\[\]]")
# The delimiter row of a Markdown table that was shown as text (CommonMark outputs have no
# tables): | --- | ---: |, whose dashes typography may have turned into an em or en dash.
RAW_TABLE = re.compile(r"\|\s*:?(?:-{3,}|[\u2014\u2013]-?):?\s*\|")
# A draft marker left in a page: SECTION_PLACEHOLDER, TODO, FIXME, TBD.
DRAFT_MARKER = re.compile(r"\b[A-Z][A-Z0-9_]*PLACEHOLDER\b|\b(?:TODO|FIXME|TBD)\b")


class _ProseText(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.skipping = 0  # how many of the open elements are NOT_PROSE
        self.chunks: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        self.open.append(tag)
        self.skipping += tag in NOT_PROSE

    def handle_startendtag(self, tag, attrs):
        pass  # <x/>: nothing inside it

    def handle_endtag(self, tag):
        if tag not in self.open:
            return  # a stray end tag
        while self.open:
            closed = self.open.pop()
            self.skipping -= closed in NOT_PROSE
            if closed == tag:
                break

    def handle_data(self, data):
        if not self.skipping and "body" in self.open:
            self.chunks.append(data)


def prose_text(page_html: str) -> str:
    """The text of a page's ``<body>`` outside code and rendered math, from its HTML.

    Hidden elements count (a closed dropdown's text is prose too); attributes do not.
    Meant for the DOM as the browser serialises it (``page.content()``), where every
    non-void element has its end tag.
    """
    parser = _ProseText()
    parser.feed(page_html)
    parser.close()
    return " ".join(" ".join(parser.chunks).split())


def raw_tex(text: str, context: int = 30) -> list[str]:
    """Each ``$``, TeX command, Markdown table row or draft marker in ``text``, with
    ``context`` characters around it, in the order they occur."""
    found = sorted([*RAW_TEX.finditer(text), *RAW_TABLE.finditer(text),
                    *DRAFT_MARKER.finditer(text)], key=lambda m: m.start())
    return [text[max(0, m.start() - context):m.end() + context] for m in found]


# Display equations whose rendered formula is wider than the column: MathJax does not break
# lines, so the end of the formula (and its number) is cut off.
WIDE_DISPLAYS = """() => [...document.querySelectorAll('main mjx-container[display="true"]')]
  .filter(m => { const f = m.querySelector('mjx-math');
                 return f && f.getBoundingClientRect().width > m.getBoundingClientRect().width + 1; })
  .map(m => (m.querySelector('mjx-assistive-mml') || m).textContent.slice(0, 50))"""

MATH_STATE = """() => {
  const maths = [...document.querySelectorAll('main .math')];
  return {
    total: maths.length,
    unrendered: maths.filter(m => !m.querySelector('mjx-container')).length,
    errors: document.querySelectorAll('mjx-merror').length,
    rawDollars: (document.querySelector('main')?.innerText || '').includes('$$'),
  };
}"""


@pytest.mark.parametrize("page_name", toc_pages())
def test_page_renders_for_a_reader(browser, site, page_name):
    page, problems = _open(browser, f"{site}/{page_name}.html")
    try:
        has_math = page.evaluate("() => document.querySelectorAll('main .math').length > 0")
        if has_math:
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                   timeout=30_000)
            page.evaluate("() => MathJax.startup.promise")
        math = page.evaluate(MATH_STATE)
        assert math["unrendered"] == 0 and math["errors"] == 0 and not math["rawDollars"], (
            f"{page_name}: MathJax left {math['unrendered']} of {math['total']} equations "
            f"unrendered, {math['errors']} error nodes, raw $$: {math['rawDollars']}")

        broken_images = page.evaluate(
            "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.getAttribute('src'))")
        assert not broken_images, f"{page_name}: images that did not load: {broken_images}"
        no_alt = page.evaluate(
            "() => [...document.querySelectorAll('main img')]"
            ".filter(i => !(i.alt || '').trim() || /\\.(png|jpe?g|svg|gif)$/i.test(i.alt.trim()))"
            ".map(i => i.getAttribute('src'))")
        assert not no_alt, f"{page_name}: images without a real alt text: {no_alt}"

        hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        _check_internal_links(page, site, hrefs, page_name)

        # exercise solutions are sphinx-togglebutton dropdowns: open each, then every
        # <details> (hidden code cells), some of which sit inside those dropdowns
        for index in range(page.locator("main .dropdown.admonition").count()):
            dropdown = page.locator("main .dropdown.admonition").nth(index)
            dropdown.locator("button.toggle-button").first.click()
            page.wait_for_function("d => !d.classList.contains('toggle-hidden')",
                                   arg=dropdown.element_handle(), timeout=5_000)
        for index in range(page.locator("main details").count()):
            details = page.locator("main details").nth(index)
            details.locator("summary").first.click()
            assert details.evaluate("d => d.open"), f"{page_name}: dropdown {index} did not open"

        leftovers = raw_tex(prose_text(page.content()))
        assert not leftovers, (f"{page_name}: TeX or Markdown left unrendered in the text a "
                               f"reader sees: {leftovers[:8]}")
        too_wide = page.evaluate(WIDE_DISPLAYS)
        assert not too_wide, (f"{page_name}: display equations wider than the text column at "
                              f"1280 px, cut off for a reader (split them with aligned): {too_wide}")

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{Path(page_name).name}.png"), full_page=True)
        assert not problems, f"{page_name}: " + "; ".join(problems[:10])
    finally:
        page.close()


def _check_internal_links(page, site: str, hrefs: list[str], page_name: str) -> None:
    broken = []
    for href in sorted(set(hrefs)):
        if not href.startswith(site):
            continue
        target, fragment = urldefrag(href)
        response = page.request.get(target)
        if response.status != 200:
            broken.append(f"{href} ({response.status})")
        elif fragment and target.endswith(".html") and f'id="{fragment}"' not in response.text():
            broken.append(f"{href} (no anchor #{fragment})")
    assert not broken, f"{page_name}: broken internal links: {broken}"


PLANTED = """<!DOCTYPE html><html><head><title>$title$ \\frac</title>
<script>window.MathJax = {tex: {inlineMath: [["\\\\(", "\\\\)"]]}}; var cost = "$5";</script>
<style>.x::before { content: "\\a"; }</style></head>
<body><main>
<p>Rendered: <span class="math notranslate nohighlight"><mjx-container class="MathJax">
<mjx-math><mjx-mi>x</mjx-mi></mjx-math><mjx-assistive-mml><math><mi>\\frac</mi></math>
</mjx-assistive-mml></mjx-container></span>, code <code class="literal"><span class="pre">$HOME\\n</span></code>.</p>
<div class="highlight"><pre><span>print</span>(<span>"$x$ \\alpha"</span>)</pre></div>
<img alt="$alt$ \\mathbb" src="x.png"><br>
<p>Planted: the value $x$ is</p>
<ul><li><p>\\frac{a}{b} left raw</p></li></ul>
<details><summary>closed</summary><p>hidden \\mathbb{E} too</p></details>
<p>and an unrendered <span class="math">\\(y\\)</span>.</p>
<div class="cell_output"><p>| model | nats | | --- | ---: | | PixelCNN | 77.5 |</p>
<p>| model | nats | | \u2014 | \u2014: | | VAE | 95.3 |</p></div>
<p>CLAIMS_PLACEHOLDER</p><p>TODO: write this. A TODOS list and MY_PLACEHOLDERS stay.</p>
</main></body></html>"""


def test_raw_tex_check_finds_planted_tex_and_ignores_code_and_math():
    """The check of the browser test, on a page with TeX planted in its prose."""
    text = prose_text(PLANTED)
    found = raw_tex(text, context=0)
    assert found == ["$", "$", "\\frac", "\\mathbb", "\\(", "\\)", "| --- |", "| \u2014 |",
                     "CLAIMS_PLACEHOLDER", "TODO"], (found, text)
    assert "Rendered:" in text and "hidden" in text and "$HOME" not in text and "alpha" not in text
    assert raw_tex(prose_text(PLANTED.split("<p>Planted")[0] + "</main></body></html>")) == []


def test_raw_tex_check_in_the_browser(browser):
    """The same check on the planted page as Chromium serialises it."""
    page = browser.new_page()
    try:
        page.set_content(PLANTED)
        found = raw_tex(prose_text(page.content()), context=0)
        assert found == ["$", "$", "\\frac", "\\mathbb", "\\(", "\\)", "| --- |", "| \u2014 |",
                         "CLAIMS_PLACEHOLDER", "TODO"], found
    finally:
        page.close()


def test_search_finds_a_term(browser, site):
    page, problems = _open(browser, f"{site}/search.html?q=autoencoder")
    try:
        page.wait_for_function(
            "() => document.querySelectorAll('#search-results li').length > 0", timeout=30_000)
        titles = page.locator("#search-results li a").all_inner_texts()
        assert any("Autoencoder" in t for t in titles), titles
        assert not problems, "; ".join(problems[:10])
    finally:
        page.close()


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
        # no stderr noise (warnings are silenced at their source, not hidden)
        assert 'class="output stderr' not in text, f"{page}: a cell wrote to stderr"
        # every chapter shows figures from its executed cells (a wrong matplotlib backend
        # in the kernel would drop them silently)
        assert '<img alt=' in text or "<img src=" in text, f"{page}: no figure in the HTML"
        assert any((html / "_images").glob("*.png")), "the build produced no images"


def test_first_page_shows_a_sample_figure_of_each_chapter(built_book):
    """The intro's ``chapter-sample`` figures resolved to images, copied for ``make samples``."""
    from test_project import SAMPLES

    html = built_book["html"]
    intro = (html / f"{toc_pages()[0]}.html").read_text()
    for name in SAMPLES:
        start = intro.index(f'id="intro-sample-{name}"')
        assert "<img " in intro[start:intro.index("</figure>", start)], f"sample {name} has no image"
        assert (html / "_samples" / f"{name}.png").is_file(), f"_samples/{name}.png was not written"


def test_mathjax_is_served_from_the_book(built_book):
    html = built_book["html"]
    assert (html / "_static" / "mathjax" / "es5" / "tex-mml-chtml.js").exists()
    chapter = (html / f"{toc_pages()[1]}.html").read_text()
    assert "_static/mathjax/es5/tex-mml-chtml.js" in chapter and "cdn.jsdelivr" not in chapter


# Homework integrity (SYLLABUS): the built book shows no graded function, or an equivalent
# of it. Here, not in tests/test_student_kit.py, because the built book is this file's
# session fixture (one build per worker under --dist loadfile). The scanner, the secrets and
# the list of known exposures are in tests/homework_integrity.py.
import homework_integrity  # noqa: E402


@pytest.fixture(scope="module")
def book_documents(built_book):
    if built_book["returncode"] != 0:
        pytest.skip("the book did not build (see test_book_builds_executed_without_warnings)")
    # every page and file a reader can open or download; not the theme's and MathJax's files
    return homework_integrity.tree_documents(
        built_book["html"], exclude=("_static", "_images", "searchindex.js", "objects.inv"))


@pytest.mark.parametrize("assignment",
                         homework_integrity.exposure_params(homework_integrity.assignments(), "book"))
def test_book_shows_no_graded_function(book_documents, assignment):
    """No solution cell of the assignment, nor a reference of its graded functions, is in
    the rendered HTML (code blocks included), the page sources or the downloads, as
    normalised tokens: renamed or reformatted, it is still found."""
    secrets = homework_integrity.book_secrets(assignment)
    assert secrets, f"{assignment}: no solution to look for"
    homework_integrity.assert_not_exposed(homework_integrity.scan(secrets, book_documents),
                                          f"{assignment}: the book")
