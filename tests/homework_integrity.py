"""What must never reach students, and a scanner that finds it even renamed or reformatted.

SYLLABUS, "Homework integrity": no graded function, or an equivalent implementation, may
appear in the rendered book or in what students receive (the student kit), and solutions,
hidden tests, checks and answer keys stay on the instructor's side. This module collects
those *secrets* from the repository and compares them with a kit or a built book:

- **Normalised tokens.** Code that parses is first printed back by :mod:`ast` without its
  docstrings and type annotations (so layout, comments and redundant parentheses are gone),
  then split with Python's :mod:`tokenize`; text that does not parse (a fragment, HTML
  prose, Markdown) is split with :mod:`tokenize` or an equivalent regular expression.
  Every name becomes ``V`` (so renaming variables, arguments, functions, classes or the
  attributes the code defines changes nothing), except the attribute names the code only
  uses, which are the library's (``x.mean()`` keeps ``mean``); string literals become ``S``
  (a reworded message changes nothing) except long space-free ones such as digests, which
  are kept; numbers are kept by value (``1e-3`` and ``0.001`` agree); keywords and
  operators are kept; a statement boundary (a newline or ``;``) is ``;``.
- **Fingerprints.** A secret is one solution cell (its regions between the nbgrader
  markers: the signature around them is in the student's stub too), one cell's hidden
  tests, or one top-level definition of a check or reference module (its bodies). Its
  fingerprint is the set of its runs of :data:`K` consecutive tokens (a part shorter
  than that, down to :data:`MIN_TOKENS`, is one run of its whole length). A secret is
  *found* in a document when more than :data:`THRESHOLD` of its runs occur in it, leaving
  out the course's idioms (:data:`BOILERPLATE_DEFINITIONS`). Every run
  of the document is kept, not a winnowed sample: the corpora are small, and exact
  containment cannot miss a copy that winnowing would.

The constants were chosen from measurements on this repository (:data:`K`); the scanner's
own tests (``tests/test_student_kit.py``, ``test_scanner_*``) show that a copy of a
solution with every name changed and the code reformatted scores 1.0, and that unrelated
code (the standard library's argparse, json and textwrap) scores at most 0.2.

:data:`KNOWN_EXPOSURES` is the one list of assignments that still expose their graded
functions (their first edition): the tests that scan the kit and the book mark exactly
these ``xfail(strict=True)``, so the list can only shrink.
"""

from __future__ import annotations

import ast
import functools
import html.parser
import io
import json
import keyword
import re
import textwrap
import tokenize
import warnings
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Length of a fingerprint run, in normalised tokens (``return ((x - w2 * w1 * x) ** 2).mean()``
#: is 17). Measured on the first-edition homework (commit ba69f7d) against the library and
#: the book built without execution: with runs of 16, verbatim copies score 1.0 (every
#: assignment had one); partial copies (the chapters' Autoencoder, causal_mask, PixelCNN,
#: gradient penalty, IWAE bound, hw6's q10) 0.53 to 0.8; code that only looks alike less
#: (a check's Gaussian log-density against gradelib.mixture: 0.35). With runs of 12, hw1's
#: training loop reached 0.57 against the PixelCNN chapter's; with runs of 20 the book's
#: Autoencoder fell to 0.55 and hw6's q9 (17 tokens, one run) was not found.
K = 16
#: Parts shorter than this (``return x.sum()``) say nothing about where they came from.
MIN_TOKENS = 10
#: A secret is found in a document when more than this share of its runs occur there.
THRESHOLD = 0.5

#: Assignments whose graded functions are still exposed, and where: "kit" (the student kit
#: contains a solution, hidden test, check or reference) and/or "book" (the built book
#: shows a solution or reference). The scans of these are xfail(strict=True), so an entry
#: must go as soon as its exposure does; the list must end empty, and it is: no assignment
#: is exposed any more. What the last ones were, and their highest scores now, measured with
#: this scanner against the kit and the book built without execution (executing adds
#: outputs, never removes code):
#: - hw3_vae: its CVAE was the chapter's one-hot ConditionalVAE (0.58); it now takes the label
#:   through FiLM embeddings: the CVAE scores 0.11 (reference) and 0.10 (solution); hw3's
#:   highest is 0.48, the ConditionalPrior solution (an embedding split with chunk, as the
#:   chapter's encoders split their output) in vae.html and the kit's gradelib/vae.py.
#: - hw6_exercises: q6 was gradelib.autoencoders.linear_ae_loss (1.0, kit) and q10 the
#:   exercises chapter's worked solution (0.59, book); q6/q7 now ask about the tied
#:   autoencoder, q10 about any kernel size, q17 about samples of different sizes (its old
#:   solution was gradelib.wgan.wasserstein_1d, 0.48). hw6's highest: book 0.50 (q9's in
#:   exercises.html, one of its two runs, not more than THRESHOLD); q6, q7 and q10 at most
#:   0.27 (check_q10's _dependency_by_autograd in gradelib/pixelcnn.py).
#: Clean before: hw1 (highest: 0.50, the check's SPECTRUM, also in the notebook's visible
#: test; 0.46, the denoising trainer), hw2 (0.42), hw4 (0.11), hw5 (0.43), hw7 (0.48).
KNOWN_EXPOSURES: dict[str, frozenset[str]] = {}


def exposure_params(names: list[str], surface: str) -> list:
    """``names`` as pytest parameters, those exposed on ``surface`` ("kit" or "book")
    marked ``xfail(strict=True)``: their scan must fail until their rewrite lands."""
    import pytest

    return [pytest.param(name, marks=pytest.mark.xfail(
                strict=True, raises=Exposure,  # only a finding, not a broken build, is expected
                reason=f"known exposure ({surface}) of {name}: see homework_integrity.KNOWN_EXPOSURES"))
            if surface in KNOWN_EXPOSURES.get(name, ()) else name for name in names]


class Exposure(AssertionError):
    """A secret was found where students can see it."""


def assert_not_exposed(findings: list, where: str) -> None:
    if findings:
        raise Exposure(f"{where} contains " + "; ".join(map(str, findings)))


_PLACEHOLDER_NAME = "V"
_PLACEHOLDER_STRING = "S"
_KEYWORDS = frozenset(keyword.kwlist)
_KEPT_STRING = re.compile(r"^[^\s]{16,}$")  # digests, salts, keys: kept verbatim


# --------------------------------------------------------------------------- tokens


def _number(text: str) -> str:
    try:
        value = ast.literal_eval(text.replace("_", ""))
    except (ValueError, SyntaxError):
        return text
    if isinstance(value, complex):
        return repr(value)
    value = float(value)
    return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _string(text: str) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return _PLACEHOLDER_STRING
    if isinstance(value, str) and _KEPT_STRING.match(value):
        return f"S:{value}"
    return _PLACEHOLDER_STRING


_ASSIGN_OPS = frozenset("= += -= *= /= //= %= **= @= &= |= ^= >>= <<=".split())


def defined_attributes(raw: list[tuple[str, str]]) -> set[str]:
    """Names the text defines as attributes or methods (``self.encoder = ...``, ``def encode``)."""
    own = {raw[i + 1][1] for i in range(len(raw) - 1)
           if raw[i] == ("name", "def") and raw[i + 1][0] == "name"}
    own |= {raw[i][1] for i in range(1, len(raw) - 1)
            if raw[i][0] == "name" and raw[i - 1] == ("op", ".") and raw[i + 1][1] in _ASSIGN_OPS}
    return own


def _finish(raw: list[tuple[str, str]], own: set[str]) -> list[str]:
    """Drop bare string statements (docstrings), map names, merge ``;``.

    A name becomes ``V``, except an attribute name (after ``.``) that the code does not
    define itself (``own``): ``x.mean()`` keeps ``mean``, the library's name, which no
    rename can change, while ``self.encoder = ...`` / ``self.encoder(x)`` and methods
    defined with ``def`` become ``V`` like any other name the author chose."""
    out: list[str] = []
    for i, (kind, value) in enumerate(raw):
        if kind == "name":
            attribute = i > 0 and raw[i - 1] == ("op", ".")
            if value not in _KEYWORDS and not (attribute and value not in own):
                value = _PLACEHOLDER_NAME
        if kind == "string":
            at_start = i == 0 or raw[i - 1][0] == "newline"
            at_end = i + 1 == len(raw) or raw[i + 1][0] == "newline"
            if at_start and at_end:
                continue
        if kind == "newline":
            if out and out[-1] != ";":
                out.append(";")
            continue
        out.append(value)
    while out and out[-1] == ";":
        out.pop()
    return out


def _python_tokens(source: str) -> list[tuple[str, str]]:
    raw: list[tuple[str, str]] = []
    fstring_depth = 0
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        name = tokenize.tok_name[tok.type]
        if name == "FSTRING_START":  # Python >= 3.12: an f-string is one string token
            if fstring_depth == 0:
                raw.append(("string", _PLACEHOLDER_STRING))
            fstring_depth += 1
            continue
        if name == "FSTRING_END":
            fstring_depth -= 1
            continue
        if fstring_depth:
            continue
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT,
                        tokenize.ENCODING, tokenize.ENDMARKER):
            continue
        if tok.type == tokenize.NEWLINE or (tok.type == tokenize.OP and tok.string == ";"):
            raw.append(("newline", ";"))
        elif tok.type == tokenize.NAME:
            raw.append(("name", tok.string))
        elif tok.type == tokenize.NUMBER:
            raw.append(("number", _number(tok.string)))
        elif tok.type == tokenize.STRING:
            raw.append(("string", _string(tok.string)))
        elif tok.string.strip():
            raw.append(("op", tok.string))
    return raw


_OPERATORS = sorted(
    "**= //= >>= <<= -> := ... ** // == != <= >= << >> += -= *= /= %= &= |= ^= @= "
    "( ) [ ] { } : , ; . + - * / % & | ^ ~ < > = @ !".split(), key=len, reverse=True)
_REGEX = re.compile(
    r"(?P<comment>\#[^\n]*)"
    r"|(?P<string>(?:[rRbBuUfF]{0,2})(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''"
    r"|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'))"
    r"|(?P<number>(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?[jJ]?)"
    r"|(?P<name>[^\W\d]\w*)"
    r"|(?P<newline>\n)"
    r"|(?P<op>" + "|".join(re.escape(op) for op in _OPERATORS) + r")"
    r"|(?P<other>\S)"
)


def _regex_tokens(text: str) -> list[tuple[str, str]]:
    """The same tokens from text that :mod:`tokenize` refuses (prose, fragments)."""
    raw: list[tuple[str, str]] = []
    depth = 0
    for match in _REGEX.finditer(text):
        kind, value = match.lastgroup, match.group()
        if kind == "comment":
            continue
        if kind == "newline":
            if depth == 0:
                raw.append(("newline", ";"))
        elif kind == "string":
            prefix = re.match(r"^[rRbBuUfF]{0,2}", value).group()
            raw.append(("string", _PLACEHOLDER_STRING if "f" in prefix.lower() else _string(value)))
        elif kind == "number":
            raw.append(("number", _number(value)))
        elif kind == "name":
            raw.append(("name", value))
        elif kind == "op":
            if value in "([{":
                depth += 1
            elif value in ")]}":
                depth = max(depth - 1, 0)
            raw.append(("newline", ";") if value == ";" else ("op", value))
        else:
            raw.append(("op", value))
    return raw


_MAGIC = re.compile(r"^\s*[%!].*$", flags=re.MULTILINE)


def _is_validation_call(node) -> bool:
    func = getattr(node, "func", None)
    name = getattr(func, "id", None) or getattr(func, "attr", None) or ""
    return isinstance(node, ast.Call) and name.lstrip("_").startswith("require")


def _is_validation(stmt) -> bool:
    """Argument validation: ``require_tensor(...)`` (``gradelib.validation``, or a module's
    own ``_require_...``), ``x = _require_x(x)``, ``if ...: raise TypeError/ValueError(...)``."""
    if isinstance(stmt, (ast.Expr, ast.Assign, ast.Return)) and _is_validation_call(stmt.value):
        return True
    if isinstance(stmt, ast.If) and not stmt.orelse and all(
            isinstance(s, ast.Raise) and isinstance(s.exc, ast.Call)
            and getattr(s.exc.func, "id", None) in ("TypeError", "ValueError") for s in stmt.body):
        return True
    return False


class _Canonical(ast.NodeTransformer):
    """Removes what carries no behaviour, and what every function of the course shares:
    docstrings, type annotations, argument validation (:func:`_is_validation`: the
    library's functions and the references check their arguments alike, so it would make
    any two of them look related)."""

    def generic_visit(self, node):
        super().generic_visit(node)
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if isinstance(statements, list) and statements and isinstance(statements[0], ast.stmt):
                kept = [s for s in statements if not _is_validation(s)]
                setattr(node, field, kept or ([ast.Pass()] if field == "body" else []))
        return node

    def _body(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    def visit_FunctionDef(self, node):
        node.returns = None
        return self._body(node)

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_ClassDef = _body
    visit_Module = _body

    def visit_arg(self, node):
        node.annotation = None
        return node

    def visit_AnnAssign(self, node):
        if node.value is None:
            return None
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)


def canonical_source(source: str) -> str | None:
    """``source`` parsed and printed back without docstrings and annotations (formatting,
    comments and redundant parentheses gone), or None where it does not parse."""
    try:
        with warnings.catch_warnings():  # text that is not code: "\(" is no escape
            warnings.simplefilter("ignore")
            tree = ast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError):
        return None
    return ast.unparse(ast.fix_missing_locations(_Canonical().visit(tree)))


def raw_tokens(source: str) -> list[tuple[str, str]]:
    """``(kind, text)`` tokens of ``source``: of its canonical form where it parses, else
    of the text through Python's tokenizer, else through the regular expression."""
    source = _MAGIC.sub("", source)  # IPython magics (``%matplotlib inline``)
    canonical = canonical_source(source)
    try:
        return _python_tokens(canonical if canonical is not None else textwrap.dedent(source))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return _regex_tokens(source)


def normalise(source: str, own: set[str] | None = None) -> list[str]:
    """The normalised tokens of ``source`` (Python, or any text containing code).

    ``own``: the attribute names the surrounding code defines (default: those ``source``
    defines), for a fragment such as one method's body."""
    raw = raw_tokens(source)
    return _finish(raw, defined_attributes(raw) if own is None else own)


# --------------------------------------------------------------------- fingerprints


#: Subpackages of gradelib that students never receive (as in ``student_kit/build.py``).
INSTRUCTOR_ONLY = ("checks", "grading")
#: A run that occurs in this many definitions of the student-facing library or more is an
#: idiom of the course (a training loop's ``zero_grad``/``backward``/``step``, a shuffled
#: minibatch loop), not evidence of a copy: it is left out of every fingerprint, as MOSS
#: and copydetect leave out boilerplate. With 3, hw1's denoising trainer (the chapter's
#: training loop plus masking noise) scores 0.46 against the library instead of 0.74,
#: while every first-edition copy keeps its score (a copy occurs in one definition).
BOILERPLATE_DEFINITIONS = 3


@functools.lru_cache(maxsize=None)
def library_boilerplate() -> frozenset[tuple[str, ...]]:
    """Runs of :data:`K` tokens found in at least :data:`BOILERPLATE_DEFINITIONS` top-level
    definitions (their bodies, see :func:`_bodies`) of the student-facing gradelib."""
    from collections import Counter

    count: Counter = Counter()
    for path in sorted((REPO / "gradelib").rglob("*.py")):
        if path.relative_to(REPO / "gradelib").parts[0] in INSTRUCTOR_ONLY:
            continue
        source = path.read_text()
        own = defined_attributes(raw_tokens(source))
        for node in ast.parse(source).body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            runs = set()
            for body in _bodies(node):
                t = tuple(normalise("\n".join(ast.unparse(stmt) for stmt in body), own))
                runs |= {t[i:i + K] for i in range(len(t) - K + 1)}
            count.update(runs)
    return frozenset(run for run, n in count.items() if n >= BOILERPLATE_DEFINITIONS)


@dataclass(frozen=True)
class Secret:
    """Something students must not receive: where it comes from, and its code as one or
    more parts (the solution regions of a cell, the bodies of a module's functions), each
    a tuple of normalised tokens. Runs never span two parts."""

    assignment: str
    origin: str          # e.g. "solutions/hw1_autoencoders/...: solution of cell linear_ae_loss"
    kind: str            # "solution", "hidden test", "check", "reference"
    parts: tuple[tuple[str, ...], ...]

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.parts)

    def runs(self) -> dict[int, frozenset[tuple[str, ...]]]:
        """The runs of each part, by length (``K``, or a shorter part's whole length),
        without the course's idioms (:func:`library_boilerplate`)."""
        boilerplate = library_boilerplate()
        by_length: dict[int, set[tuple[str, ...]]] = {}
        for part in self.parts:
            n = min(K, len(part))
            by_length.setdefault(n, set()).update(part[i:i + n] for i in range(len(part) - n + 1))
        return {n: frozenset(r - boilerplate if n == K else r) for n, r in by_length.items()}

    @property
    def specific(self) -> bool:
        """Whether anything of the secret is left to look for once idioms are set aside."""
        return any(self.runs().values())


def make_secret(assignment: str, origin: str, kind: str, parts) -> Secret | None:
    """A secret from token parts; parts under :data:`MIN_TOKENS` are dropped (too generic
    to say where they came from), and so is a secret with no part left."""
    kept = tuple(tuple(p) for p in parts if len(p) >= MIN_TOKENS)
    return Secret(assignment, origin, kind, kept) if kept else None


class Document:
    """A text to scan (a kit file, a book page): its runs of every length a secret uses."""

    def __init__(self, name: str, tokens: list[str]):
        self.name = name
        self.tokens = tuple(tokens)
        self._runs: dict[int, frozenset[tuple[str, ...]]] = {}

    def runs(self, n: int) -> frozenset[tuple[str, ...]]:
        if n not in self._runs:
            t = self.tokens
            self._runs[n] = frozenset(t[i:i + n] for i in range(len(t) - n + 1))
        return self._runs[n]


def containment(secret: Secret, document: Document) -> float:
    """Share of the secret's runs that occur in the document (0 to 1); 0 for a secret that
    is all idiom (see :attr:`Secret.specific`)."""
    runs = secret.runs()
    total = sum(len(r) for r in runs.values())
    if not total:
        return 0.0
    return sum(len(r & document.runs(n)) for n, r in runs.items()) / total


@dataclass(frozen=True)
class Finding:
    secret: Secret
    document: str
    score: float

    def __str__(self) -> str:
        return f"{self.secret.origin} ({self.secret.kind}) in {self.document}: {self.score:.0%} of its runs"


def scan(secrets: list[Secret], documents: list[Document],
         threshold: float = THRESHOLD) -> list[Finding]:
    """Every (secret, document) pair where more than ``threshold`` of the secret's runs
    occur in the document, best score first."""
    findings = []
    for secret in secrets:
        for document in documents:
            score = containment(secret, document)
            if score > threshold:
                findings.append(Finding(secret, document.name, score))
    return sorted(findings, key=lambda f: -f.score)


# -------------------------------------------------------------------------- secrets

_MARKERS = {
    "solution": (re.compile(r"^\s*#+\s*BEGIN SOLUTION\s*$"), re.compile(r"^\s*#+\s*END SOLUTION\s*$")),
    "hidden test": (re.compile(r"^\s*#+\s*BEGIN HIDDEN TESTS\s*$"),
                    re.compile(r"^\s*#+\s*END HIDDEN TESTS\s*$")),
}


def regions(source: str, kind: str) -> list[str]:
    """The text between the nbgrader markers of ``kind`` ("solution" or "hidden test")."""
    begin, end = _MARKERS[kind]
    found, current = [], None
    for line in source.splitlines():
        if begin.match(line):
            current = []
        elif end.match(line) and current is not None:
            found.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return found


def assignments() -> list[str]:
    return sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())


def _cells(assignment: str):
    for notebook in sorted((REPO / "solutions" / assignment).glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            yield notebook.relative_to(REPO), cell, "".join(cell["source"])


def solution_secrets(assignment: str) -> list[Secret]:
    """One secret per solution cell of the assignment's instructor notebooks: the code
    between its markers, one part per region (a cell without markers is a solution as a
    whole, as nbgrader treats it). The code around the markers (signature, docstring) is
    also in the student's stub, so it is no secret."""
    secrets = []
    for notebook, cell, source in _cells(assignment):
        meta = cell["metadata"].get("nbgrader", {})
        if not meta.get("solution"):
            continue
        own = defined_attributes(raw_tokens(source))
        parts = [normalise(part, own) for part in regions(source, "solution") or [source]]
        secret = make_secret(assignment, f"{notebook}: solution of cell {meta.get('grade_id')}",
                             "solution", parts)
        if secret:
            secrets.append(secret)
    return secrets


def hidden_test_secrets(assignment: str) -> list[Secret]:
    """One secret per graded cell: its hidden tests."""
    secrets = []
    for notebook, cell, source in _cells(assignment):
        parts = [normalise(part) for part in regions(source, "hidden test")]
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        secret = make_secret(assignment, f"{notebook}: hidden tests of cell {grade_id}",
                             "hidden test", parts)
        if secret:
            secrets.append(secret)
    return secrets


def _bodies(node: ast.AST) -> list[list[ast.stmt]]:
    """The statements of a definition that are not its interface: a function's body, each
    method's body and the class-level statements of a class, an assignment whole."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [node.body]
    if isinstance(node, ast.ClassDef):
        found, rest = [], []
        for item in node.body:
            (found.extend(_bodies(item)) if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
             else rest.append(item))
        return found + ([rest] if rest else [])
    return [[node]]


def module_secrets(assignment: str, path: Path, kind: str,
                   only: set[str] | None = None) -> list[Secret]:
    """One secret per top-level definition or assignment of a module (of those named in
    ``only``, if given), its parts the bodies (:func:`_bodies`): a signature is shared with
    the stub that asks for the function. Imports and the module docstring are not secrets."""
    source = path.read_text()
    own = defined_attributes(raw_tokens(source))
    secrets = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            continue
        if only is not None and getattr(node, "name", None) not in only:
            continue
        parts = [normalise("\n".join(ast.unparse(stmt) for stmt in body), own)
                 for body in _bodies(node)]
        label = getattr(node, "name", None) or ast.unparse(node).split("=")[0].strip()[:40]
        secret = make_secret(assignment, f"{path.relative_to(REPO)}: {label}", kind, parts)
        if secret:
            secrets.append(secret)
    return secrets


def check_secrets(assignment: str) -> list[Secret]:
    """The assignment's checks (with the answer keys they hold) and the references of its
    graded functions (:func:`reference_secrets`)."""
    path = REPO / "gradelib" / "checks" / f"{assignment}.py"
    checks = module_secrets(assignment, path, "check") if path.is_file() else []
    return checks + reference_secrets(assignment)


def graded_names(assignment: str) -> set[str]:
    """The functions, classes and variables the assignment's solution cells define."""
    names = set()
    for _, cell, source in _cells(assignment):
        if not cell["metadata"].get("nbgrader", {}).get("solution") or cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse(_MAGIC.sub("", source))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def reference_secrets(assignment: str) -> list[Secret]:
    """The references of the assignment's graded functions and classes (the definitions of
    ``gradelib/checks/references/<assignment>.py`` that its solution cells also define).
    Not the module's helpers: they may be the library's own functions (hw1's
    ``sum_squared_error`` is the chapter's reconstruction loss), which the kit holds."""
    path = REPO / "gradelib" / "checks" / "references" / f"{assignment}.py"
    if not path.is_file():
        return []
    return module_secrets(assignment, path, "reference", only=graded_names(assignment))


def kit_secrets(assignment: str) -> list[Secret]:
    """What the student kit must not contain for this assignment."""
    return solution_secrets(assignment) + hidden_test_secrets(assignment) + check_secrets(assignment)


def book_secrets(assignment: str) -> list[Secret]:
    """What the built book must not show: the graded functions, as solved in the solution
    cells and as implemented by the references the checks compare with."""
    return solution_secrets(assignment) + reference_secrets(assignment)


def shared_check_secrets() -> list[Secret]:
    """Modules of ``gradelib/checks`` that belong to no single assignment (the shared check
    machinery): the kit must not contain them either."""
    checks = REPO / "gradelib" / "checks"
    named = set(assignments())
    secrets = []
    for path in sorted(checks.rglob("*.py")):
        if path.stem in named or path.name == "__init__.py":
            continue
        secrets += module_secrets("(shared)", path, "check")
    return secrets


# ------------------------------------------------------------------------ documents


def notebook_text(path: Path) -> list[str]:
    """The sources of a notebook's cells, code and Markdown."""
    return ["".join(c.get("source", "")) for c in json.loads(path.read_text()).get("cells", [])]


class _HTMLText(html.parser.HTMLParser):
    """The text of an HTML page: each ``<pre>`` block (highlighted code, cell outputs) on
    its own, and the rest of the page's text (prose, inline code); no script or style."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.prose: list[str] = []
        self._pre = 0
        self._skip = 0
        self._current: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "pre":
            self._pre += 1
        elif tag in ("p", "div", "li", "br", "tr", "h1", "h2", "h3", "h4", "section"):
            (self._current if self._pre else self.prose).append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(self._skip - 1, 0)
        elif tag == "pre" and self._pre:
            self._pre -= 1
            if not self._pre:
                self.blocks.append("".join(self._current))
                self._current = []

    def handle_data(self, data):
        if self._skip:
            return
        (self._current if self._pre else self.prose).append(data)


def html_text(text: str) -> list[str]:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    return parser.blocks + ["".join(parser.prose)]


_TEXT_SUFFIXES = {".py", ".md", ".txt", ".toml", ".cfg", ".ini", ".yml", ".yaml", ".json",
                  ".lock", ".rst", ".tex", ".csv", ".sh", ""}


def file_documents(path: Path, name: str) -> list[Document]:
    """The documents of one file: a notebook's cells, an HTML page's code blocks and text,
    a Python module, any other text file whole. Binary files give none."""
    suffix = path.suffix.lower()
    if suffix == ".ipynb":
        texts = notebook_text(path)
    elif suffix in (".html", ".htm"):
        texts = html_text(path.read_text(errors="replace"))
    elif suffix in _TEXT_SUFFIXES:
        try:
            texts = [path.read_text()]
        except UnicodeDecodeError:
            return []
    else:
        return []
    raws = [raw_tokens(text) for text in texts]  # each cell or code block on its own
    own = set().union(*(defined_attributes(raw) for raw in raws))
    tokens: list[str] = []
    for raw in raws:
        tokens += _finish(raw, own) + [";"]
    return [Document(name, tokens[:-1])] if tokens else []


def tree_documents(root: Path, exclude: tuple[str, ...] = ()) -> list[Document]:
    documents = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or any(rel == e or rel.startswith(e.rstrip("/") + "/") for e in exclude):
            continue
        documents += file_documents(path, rel)
    return documents
