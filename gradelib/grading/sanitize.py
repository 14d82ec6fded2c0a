"""Hostile bytes, bounded and defused: what a graded notebook may keep, what a page may run.

Everything an executed notebook holds came from the student's kernel, which can send any
message it likes (the student's code has the kernel's session key). So before the grader
stores the notebook (``autograded/``, which the formgrader renders for the instructor) and
after nbgrader renders the feedback pages (which the student opens), this module

- ``bound_outputs``: caps each cell's and the whole notebook's outputs, error outputs and
  tracebacks included (a 25 MB exception message is cut to the cap, with a note saying so);
- ``sanitize_notebook``: keeps only the output types and MIME types nbconvert renders
  (``text/plain``, PNG/JPEG/GIF images whose data is base64 and nothing else, HTML and
  Markdown through ``nh3``), drops JavaScript, SVG (it can carry scripts) and widget state,
  reduces output metadata to numeric image sizes, and sanitises the student's Markdown
  answer cells (raw HTML through ``nh3``, link targets with a scheme other than http(s),
  mailto or an anchor disarmed);
- ``sanitize_feedback_html``: rewrites a feedback page so it runs no script at all: the
  template's head keeps its styles and loses its scripts and external links, the body is
  sanitised by ``nh3`` (the Rust ``ammonia`` sanitiser), and a Content-Security-Policy
  ``<meta>`` forbids scripts, frames, objects and any network load. Math in feedback pages
  therefore stays as TeX source: MathJax is a script.

Each function is bounded in time by the size caps of its input (linear passes only).
"""

from __future__ import annotations

import html
import json
import re

import nh3

from gradelib.grading.cells import cell_source, is_solution

#: The Content-Security-Policy of every feedback page: no script of any origin (inline
#: included), no frame, no object, no network load; inline styles and data: images only.
FEEDBACK_CSP = ("default-src 'none'; script-src 'none'; object-src 'none'; frame-src 'none'; "
                "base-uri 'none'; form-action 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:")
TRUNCATED = "[output truncated by the grader: {what} exceeded {limit} bytes]"

_TAGS = set(nh3.ALLOWED_TAGS) | {"main", "section", "span", "div", "pre", "code", "table", "thead", "tbody",
                                 "tfoot", "tr", "td", "th", "caption", "h1", "h2", "h3", "h4", "h5", "h6"}
_ATTRIBUTES = {"*": {"class", "id", "title", "align"}, "a": {"href", "name"}, "img": {"src", "alt", "width", "height"},
               "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan", "scope"}, "ol": {"start"},
               "span": {"style"}, "div": {"style"}}
_STYLE_PROPERTIES = {"color", "background-color", "font-weight", "font-style", "text-decoration", "text-align"}
_URL_SCHEMES = {"http", "https", "mailto"}  # and data: for base64 images (``_attribute_filter``)
_IMAGE_DATA = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
_IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif")
_HTML_MIMES = ("text/html", "text/markdown", "text/latex")
_OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error"}


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """nh3's hook: data: URLs only for images (base64 PNG/JPEG/GIF), sizes only as numbers."""
    if tag == "img" and attribute == "src":
        return value if _IMAGE_DATA.fullmatch(value) else None
    if re.sub(r"[\x00-\x20]", "", value).lower().startswith("data:"):
        return None
    if attribute in ("width", "height"):
        return value if re.fullmatch(r"\d{1,5}(px|%)?", value.strip()) else None
    return value


def clean_html(html: str) -> str:
    """A fragment of HTML with every active element and attribute removed (``nh3``).

    Scripts, styles and their content, ``<iframe>``/``<object>``/``<embed>``/forms,
    event-handler attributes (``onerror``...), ``javascript:``/``data:`` links (except
    base64 images in ``<img src>``) and ``style`` properties other than colours and fonts
    do not survive. Quadratic nowhere: ammonia parses with html5ever in linear time.
    """
    return nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes=_URL_SCHEMES | {"data"},
                     clean_content_tags={"script", "style", "iframe", "object", "embed", "template",
                                         "noscript", "svg", "math", "textarea", "select"},
                     strip_comments=True, link_rel="noopener noreferrer",
                     filter_style_properties=_STYLE_PROPERTIES, attribute_filter=_attribute_filter)


_CODE = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`)", re.S)
_MD_DESTINATION = re.compile(r"(\]\(\s*|^[ ]{0,3}\[[^\]\n]+\]:[ \t]*)(<[^>\n]*>|[^\s)]+)", re.M)


def _safe_url(destination: str) -> bool:
    """Whether a Markdown link target is http(s), mailto, an anchor or a relative path, as
    a renderer would read it (entities decoded, backslash escapes and controls removed)."""
    url = re.sub(r"[\x00-\x20\\]", "", html.unescape(destination)).strip("<>").lower()
    if url.startswith(("http://", "https://", "mailto:", "#")):
        return True
    return re.match(r"[a-z][a-z0-9+.\-]*:", url) is None and "&" not in url


def clean_markdown(text: str) -> str:
    """Student Markdown without raw HTML and without active link targets.

    Outside code spans and fences, ``<`` becomes ``&lt;`` (raw HTML shows as text, an
    autolink ``<javascript:...>`` is no link), and a link or image target whose scheme is
    not http(s) or mailto (``javascript:``, ``data:``, ``vbscript:``, entity-encoded or
    backslash-escaped forms included) becomes the anchor ``#unsafe-...``. Code is kept as
    written: renderers escape it.
    """
    def disarm(match: re.Match) -> str:
        if _safe_url(match.group(2)):
            return match.group(0)
        return f"{match.group(1)}#unsafe-{match.group(2).strip('<>')}"

    parts = _CODE.split(text)
    for i in range(0, len(parts), 2):  # even parts are outside code
        parts[i] = _MD_DESTINATION.sub(disarm, parts[i].replace("<", "&lt;"))
    return "".join(parts)


def _text(value) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else str(value)


def _sanitize_output(output: dict) -> dict | None:
    """One output reduced to what nbconvert renders safely, or None to drop it."""
    kind = output.get("output_type")
    if kind not in _OUTPUT_TYPES:
        return None
    if kind == "stream":
        name = output.get("name")
        return {"output_type": "stream", "name": name if name in ("stdout", "stderr") else "stdout",
                "text": _text(output.get("text", ""))}
    if kind == "error":
        trace = output.get("traceback", [])
        return {"output_type": "error", "ename": _text(output.get("ename", ""))[:200],
                "evalue": _text(output.get("evalue", "")),
                "traceback": [_text(t) for t in trace] if isinstance(trace, list) else [_text(trace)]}
    data = output.get("data", {}) if isinstance(output.get("data"), dict) else {}
    kept: dict = {}
    if "text/plain" in data:
        kept["text/plain"] = _text(data["text/plain"])
    for mime in _IMAGE_MIMES:
        value = _text(data.get(mime, ""))
        if value and _BASE64.fullmatch(value):
            kept[mime] = value
    for mime in _HTML_MIMES:
        if mime in data:
            kept[mime] = clean_markdown(_text(data[mime])) if mime == "text/markdown" else clean_html(_text(data[mime]))
    if not kept:
        kept["text/plain"] = "[output removed by the grader: no safe representation]"
    metadata: dict = {}
    raw_meta = output.get("metadata", {}) if isinstance(output.get("metadata"), dict) else {}
    for mime in _IMAGE_MIMES:
        sizes = raw_meta.get(mime)
        if mime in kept and isinstance(sizes, dict):
            numeric = {k: int(v) for k, v in sizes.items()
                       if k in ("width", "height") and type(v) in (int, float) and 0 < v < 100_000}
            if numeric:
                metadata[mime] = numeric
    result = {"output_type": kind, "data": kept, "metadata": metadata}
    if kind == "execute_result":
        count = output.get("execution_count")
        result["execution_count"] = count if type(count) is int else None
    return result


def sanitize_notebook(notebook) -> int:
    """Defuse an executed notebook in place, before the grader stores or renders it.

    Args:
        notebook: an nbformat v4 notebook (``NotebookNode`` or dict) executed by the grader.

    Returns:
        the number of outputs changed or dropped (for the report; 0 for ordinary work).
    """
    import nbformat

    changed = 0
    for cell in notebook["cells"]:
        if cell.get("cell_type") == "markdown" and is_solution(cell):  # the others are the instructor's
            text = cell_source(cell)
            cleaned = clean_markdown(text)
            if cleaned != text:
                cell["source"] = cleaned
                changed += 1
            cell.pop("attachments", None)
        if cell.get("cell_type") != "code":
            continue
        count = cell.get("execution_count")
        cell["execution_count"] = count if type(count) is int else None
        outputs = []
        for output in cell.get("outputs", []):
            safe = _sanitize_output(output)
            if safe is None:
                changed += 1
                continue
            if json.dumps(safe, sort_keys=True) != json.dumps(output, sort_keys=True, default=str):
                changed += 1
            outputs.append(nbformat.from_dict(safe))
        cell["outputs"] = outputs
    notebook.get("metadata", {}).pop("widgets", None)
    return changed


def _size(output) -> int:
    return len(json.dumps(output, default=str))


def _fit(text: str, budget: int) -> str:
    """The longest prefix of ``text`` whose JSON encoding has at most ``budget`` bytes."""
    budget = max(budget, 0)
    cut = text[:budget]
    while cut and len(json.dumps(cut)) > budget:
        cut = cut[: len(cut) * budget // len(json.dumps(cut))]
    return cut


def _truncate_output(output: dict, budget: int, what: str, limit: int) -> dict:
    """A copy of ``output`` whose JSON has about ``budget`` bytes (plus a note of < 200):
    text kept up to there, rich data dropped, the note saying which cap was crossed."""
    note = TRUNCATED.format(what=what, limit=limit)
    budget = max(budget, 0)
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name")
        return {"output_type": "stream", "name": name if name in ("stdout", "stderr") else "stdout",
                "text": _fit(_text(output.get("text", "")), budget) + "\n" + note + "\n"}
    if kind == "error":
        evalue = _fit(_text(output.get("evalue", "")), budget // 2)
        trace, room = [], budget - len(json.dumps(evalue))
        lines = output.get("traceback", [])
        for line in lines if isinstance(lines, list) else [lines]:
            line = _fit(_text(line), room)
            if not line:
                break
            trace.append(line)
            room -= len(json.dumps(line)) + 2
        return {"output_type": "error", "ename": _fit(_text(output.get("ename", "")), 100),
                "evalue": evalue + " " + note, "traceback": trace + [note]}
    data = output.get("data", {}) if isinstance(output.get("data"), dict) else {}
    result = {"output_type": kind if kind in ("display_data", "execute_result") else "display_data",
              "data": {"text/plain": _fit(_text(data.get("text/plain", "")), budget) + "\n" + note},
              "metadata": {}}
    if result["output_type"] == "execute_result":
        count = output.get("execution_count")
        result["execution_count"] = count if type(count) is int else None
    return result


def bound_outputs(notebook, cell_bytes: int, notebook_bytes: int) -> list[str]:
    """Cap each code cell's outputs at ``cell_bytes`` and the notebook's at ``notebook_bytes``.

    Sizes are of the outputs' JSON, every output type counted (streams, rich data, errors:
    ename, evalue and traceback). The output that crosses a cap is cut (its text kept up to
    the cap, rich data dropped) and ends with a note; the outputs after it are dropped.

    Args:
        notebook: an nbformat v4 notebook, changed in place.
        cell_bytes: the per-cell cap (``Limits.output_bytes``).
        notebook_bytes: the whole notebook's cap (``Limits.notebook_output_bytes``).

    Returns:
        ``["output truncated: cell <label> ..."]``, one per cell cut.
    """
    import nbformat

    from gradelib.grading.cells import grade_id

    flags: list[str] = []
    total = 0
    for index, cell in enumerate(notebook["cells"]):
        if cell.get("cell_type") != "code":
            continue
        label = grade_id(cell) or f"cell {index}"
        kept, used, cut = [], 0, None
        for output in cell.get("outputs", []):
            size = _size(output)
            room = min(cell_bytes - used, notebook_bytes - total - used)
            if size <= room:
                kept.append(output)
                used += size
                continue
            what = "the cell's output" if cell_bytes - used <= notebook_bytes - total - used else \
                "the notebook's output"
            limit = cell_bytes if what == "the cell's output" else notebook_bytes
            kept.append(nbformat.from_dict(_truncate_output(output, room - 300, what, limit)))
            cut = f"output truncated: cell {label} printed more than {limit} bytes ({what}, errors included)"
            break
        if cut:
            flags.append(cut)
            used = sum(_size(o) for o in kept)
        cell["outputs"] = kept
        total += used
    return flags


_SCRIPT = re.compile(r"<script\b.*?</script\s*>|<script\b[^>]*/?>", re.I | re.S)
_ACTIVE_HEAD = re.compile(r"<(link|base|meta\s+http-equiv|object|embed|iframe)\b[^>]*>\n?", re.I | re.S)


def sanitize_feedback_html(page: str) -> str:
    """A feedback page (nbgrader's HTML) that runs no script and loads nothing.

    The part before the first ``<body`` is the template's (nbgrader's ``feedback``
    template: title, inlined CSS, MathJax); it keeps its ``<style>`` blocks and loses every
    ``<script>``, ``<link>``, ``<base>`` and ``http-equiv`` meta. The rest, which holds
    the student's code, outputs and Markdown, goes through ``clean_html``. A
    Content-Security-Policy meta (``FEEDBACK_CSP``) is the head's first element, so a
    browser refuses any script that slipped through.

    Returns:
        the page; idempotent (sanitising twice gives the same page).
    """
    at = page.lower().find("<body")
    head, body = (page[:at], page[at:]) if at >= 0 else ("", page)
    head = _ACTIVE_HEAD.sub("", _SCRIPT.sub("", head))
    csp = f'<meta http-equiv="Content-Security-Policy" content="{FEEDBACK_CSP}">'
    if re.search(r"<head\b[^>]*>", head, re.I):
        head = re.sub(r"(<head\b[^>]*>)", lambda m: m.group(1) + "\n" + csp, head, count=1, flags=re.I)
    else:
        head = f"<!DOCTYPE html>\n<html>\n<head>\n{csp}\n</head>\n"
    body = re.sub(r"^<body\b[^>]*>", "", body, flags=re.I)
    body = re.sub(r"(</body\s*>\s*)?(</html\s*>\s*)?$", "", body, flags=re.I)
    return f"{head}<body>\n{clean_html(body).strip()}\n</body>\n</html>\n"
