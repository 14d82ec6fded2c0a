"""Hostile bytes, bounded: collect's refusals, output caps, sanitised notebooks and feedback
pages (in a browser), bounded tamper comparisons, file-size and disk limits, manual grading
of flagged submissions, copy detection. Issue 14; the pooled battery of forging submissions
is test_grading_battery.py."""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from gradelib.grading import similarity
from gradelib.grading.cells import grade_id, with_solutions
from gradelib.grading.cli import main as cli_main
from gradelib.grading.cli import refusal
from gradelib.grading.kernel import prepare_workdir, run_in_kernel
from gradelib.grading.pipeline import ResultWriter, run_jobs, submission_jobs
from gradelib.grading.sandbox import Limits, Sandbox, bwrap_status
from gradelib.grading.sanitize import (FEEDBACK_CSP, bound_outputs, clean_html, clean_markdown,
                                      sanitize_feedback_html, sanitize_notebook)
from gradelib.grading.tamper import compare_with_release

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "tests" / "data" / "similarity"
QUESTIONS = {"intro", "imports", "q1_md", "q1_solution", "test_q1", "q3_md", "q3_solution", "test_q3"}
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_bwrap() -> None:
    """Skip without bubblewrap, except under CI (``CI=true``), where that is a failure."""
    available, why = bwrap_status()
    if not available:
        if UNDER_CI:
            pytest.fail(f"CI: bubblewrap must run here, but {why}")
        pytest.skip(f"bubblewrap cannot run here ({why})")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course with a two-question hw6 released (no submissions)."""
    root = tmp_path_factory.mktemp("hardening") / "course"
    source = nbformat.read(REPO / "solutions/hw6_exercises/hw6_exercises.ipynb", as_version=4)
    source.cells = [c for c in source.cells if grade_id(c) in QUESTIONS]
    (root / "solutions/hw6_exercises").mkdir(parents=True)
    nbformat.write(source, root / "solutions/hw6_exercises/hw6_exercises.ipynb")
    assert cli_main(["release", "hw6_exercises", "--course", str(root)]) == 0
    return root


def _release(course: Path):
    return nbformat.read(course / "notebooks/hw6_exercises/hw6_exercises.ipynb", as_version=4)


def _source(course: Path):
    return nbformat.read(course / "solutions/hw6_exercises/hw6_exercises.ipynb", as_version=4)


# ----------------------------------------------------------------------------- collect

def test_collect_refuses_links_special_and_oversize_files(course, tmp_path, capsys):
    folder = tmp_path / "downloads"
    released = course / "notebooks/hw6_exercises/hw6_exercises.ipynb"
    (folder / "ann").mkdir(parents=True)
    shutil.copy(released, folder / "ann" / "hw6_exercises.ipynb")
    (folder / "ben").mkdir()
    os.symlink(folder / "ann" / "hw6_exercises.ipynb", folder / "ben" / "hw6_exercises.ipynb")  # ann's work
    (folder / "cy").mkdir()
    os.symlink(course / "solutions/hw6_exercises/hw6_exercises.ipynb", folder / "cy" / "hw6_exercises.ipynb")
    (folder / "dee").mkdir()
    os.mkfifo(folder / "dee" / "hw6_exercises.ipynb")
    (folder / "eve").mkdir()
    (folder / "eve" / "hw6_exercises.ipynb").write_bytes(b" " * 2_000_001)
    (folder / "fay").mkdir()
    os.link(folder / "ann" / "hw6_exercises.ipynb", folder / "fay" / "hw6_exercises.ipynb")
    os.symlink(folder / "ann", folder / "gus")  # a folder that is a link
    assert cli_main(["collect", "hw6_exercises", "--course", str(course), "--from", str(folder),
                     "--max-submission-bytes", "2000000"]) == 0
    out = capsys.readouterr().out
    assert "collected 0 submissions" in out  # ann's file is hard-linked from fay's: refused too
    for student, why in [("ben", "is a symbolic link"), ("cy", "is a symbolic link"), ("dee", "is a FIFO"),
                         ("eve", "has 2000001 bytes, more than the limit of 2000000"), ("fay", "is a hard link"),
                         ("gus", "folder is a symbolic link")]:
        assert any(line.startswith(f"REFUSED {student}") and why in line for line in out.splitlines()), (student, out)
    assert not list((course / "submitted").glob("*/hw6_exercises/*.ipynb"))
    refused = (course / "grading/hw6_exercises/refused.txt").read_text()
    assert "cy/hw6_exercises.ipynb: is a symbolic link (to " in refused
    (folder / "fay" / "hw6_exercises.ipynb").unlink()  # now ann's file is a file of its own
    assert cli_main(["collect", "hw6_exercises", "--course", str(course), "--from", str(folder)]) == 0
    assert "collected 2 submissions: ann, eve" in capsys.readouterr().out  # eve: under the default cap
    shutil.rmtree(course / "submitted")
    (course / "grading/hw6_exercises/refused.txt").unlink()


def test_collect_zip_refuses_symlinks_and_oversize_members(course, tmp_path, capsys):
    released = (course / "notebooks/hw6_exercises/hw6_exercises.ipynb").read_bytes()
    archive = tmp_path / "lms.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ann_1_hw6_exercises.ipynb", released)
        link = zipfile.ZipInfo("ben_1_hw6_exercises.ipynb")
        link.external_attr = (0o120777 << 16)  # a symbolic link member
        zf.writestr(link, "../../solutions/hw6_exercises/hw6_exercises.ipynb")
        zf.writestr("cy_1_hw6_exercises.ipynb", released + b" " * 3_000_000)
        zf.writestr("../dee_1_hw6_exercises.ipynb", released)
    assert cli_main(["collect", "hw6_exercises", "--course", str(course), "--zip", str(archive),
                     "--max-submission-bytes", "3000000"]) == 0
    out = capsys.readouterr().out
    assert "REFUSED lms.zip:ben_1_hw6_exercises.ipynb: is a symbolic link in the archive" in out
    assert "REFUSED lms.zip:cy_1_hw6_exercises.ipynb: has" in out
    assert "REFUSED lms.zip:../dee_1_hw6_exercises.ipynb: has a path outside the archive" in out
    collected = sorted(p.parent.parent.name for p in (course / "submitted").glob("*/hw6_exercises/*.ipynb"))
    assert collected == ["ann"]
    for path in ("submitted", "downloaded"):
        shutil.rmtree(course / path)
    (course / "grading/hw6_exercises/refused.txt").unlink()


def test_grading_refuses_a_link_placed_in_submitted(course, tmp_path):
    """A symlink put into submitted/ by other means is not read: zero, flagged, every cell
    marked for review, and nothing executed."""
    target = course / "submitted" / "hal" / "hw6_exercises"
    target.mkdir(parents=True)
    os.symlink(course / "solutions/hw6_exercises/hw6_exercises.ipynb", target / "hw6_exercises.ipynb")
    jobs = submission_jobs(course, "hw6_exercises", Limits(), tmp_path)
    assert [j["refused"] for j in jobs] == [f"hw6_exercises.ipynb is a symbolic link (to "
                                            f"{course / 'solutions/hw6_exercises/hw6_exercises.ipynb'}), not a file"]
    start = time.monotonic()
    [result] = run_jobs(jobs, workers=2)
    assert time.monotonic() - start < 5, "a refused submission must not be executed"
    assert result["score"] == 0 and result["max_score"] == 4 and result["review"]
    assert result["flags"][0].startswith("refused: hw6_exercises.ipynb is a symbolic link")
    shutil.rmtree(course / "submitted")


def test_refusal_accepts_an_ordinary_notebook(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text("{}")
    assert refusal(path, 10) is None
    assert refusal(path, 1) == "has 2 bytes, more than the limit of 1 (--max-submission-bytes)"
    assert refusal(tmp_path, 10) == "is a directory, not a regular file"


# ----------------------------------------------------------------------------- outputs

def test_output_caps_count_errors_and_the_whole_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"c{i}") for i in range(3)]
    huge_error = {"output_type": "error", "ename": "ValueError", "evalue": "x" * 25_000_000,
                  "traceback": ["y" * 1_000_000] * 5}
    nb.cells[0].outputs = [nbformat.from_dict(huge_error)]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="z" * 40_000)] * 3
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="small")]
    flags = bound_outputs(nb, cell_bytes=100_000, notebook_bytes=150_000)
    sizes = [len(json.dumps(c.outputs)) for c in nb.cells]
    assert sizes[0] < 100_500 and sum(sizes) < 151_000, sizes
    error = nb.cells[0].outputs[0]
    assert error.output_type == "error" and error.ename == "ValueError"
    assert "output truncated by the grader: the cell's output exceeded 100000 bytes" in error.evalue
    assert flags[0] == ("output truncated: cell cell 0 printed more than 100000 bytes "
                        "(the cell's output, errors included)")
    assert any("the notebook's output exceeded 150000" in o.get("text", "") for c in nb.cells for o in c.outputs)


def test_kernel_caps_a_25_mb_exception_and_limits_file_size(tmp_path):
    """In a sandboxed kernel: a 25 MB exception message is cut to the cell's cap (the cell
    still counts as an error, the next cells run), a display update cannot rewrite an
    output, a 1 GiB write fails at RLIMIT_FSIZE within seconds, and filling the work
    directory past its limit ends the run with a flag."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("raise ValueError('x' * 25_000_000)"),
        nbformat.v4.new_code_cell("from IPython.display import HTML, display\n"
                                  "h = display(HTML('<b>kept</b><script>window.__pwned = 1</script>'), display_id=True)\n"
                                  "h.update(HTML('z' * 5_000_000))"),
        nbformat.v4.new_code_cell("import time\nstart = time.monotonic()\ntry:\n"
                                  "    with open('big', 'wb') as f:\n"
                                  "        for _ in range(1024):\n            f.write(b'x' * 2**20)\n"
                                  "except OSError as error:\n"
                                  "    print('refused', error.errno, round(time.monotonic() - start, 1))"),
        nbformat.v4.new_code_cell("import os\nos.remove('big')\n"
                                  "for i in range(6):\n    with open(f'part{i}', 'wb') as f:\n"
                                  "        f.write(b'x' * 60 * 2**20)\ntime.sleep(30)"),
        nbformat.v4.new_code_cell("print('never')"),
    ]
    prepare_workdir(tmp_path)
    limits = Limits(cell_timeout=60, submission_timeout=200, output_bytes=100_000, file_bytes=64 * 2**20,
                    work_bytes=200 * 2**20)
    box = Sandbox.create(tmp_path, limits, "hardening-kernel")
    result = run_in_kernel(nb, box)
    assert result["cells"]["cell 0"] == "error: ValueError" and result["cells"]["cell 2"] == "ok"
    assert len(json.dumps(nb.cells[0].outputs)) < limits.output_bytes + 500
    assert "output truncated: cell cell 0 printed more than 100000 bytes (errors included)" in result["flags"]
    assert [o.data.get("text/html") for o in nb.cells[1].outputs] == ["<b>kept</b>"]  # no update, no script
    refused = nb.cells[2].outputs[0].text.split()
    assert refused[:2] == ["refused", "27"] and float(refused[2]) < 10, refused  # EFBIG, quickly
    assert result["cells"]["cell 3"] == "kernel died" and result["cells"]["cell 4"].startswith("not run")
    assert any(f.startswith("disk limit: the work directory held") for f in result["flags"]), result["flags"]


def test_bwrap_tmp_is_a_bounded_tmpfs_and_files_are_capped(tmp_path):
    require_bwrap()
    box = Sandbox.create(tmp_path, Limits(file_bytes=8 * 2**20, tmp_bytes=16 * 2**20), "hardening-tmpfs", True)
    code = ("import errno\nfor path, size in [('/tmp/a', 12), ('/tmp/b', 12), ('here', 12)]:\n"
            "    try:\n        with open(path, 'wb') as f:\n            f.write(b'x' * size * 2**20)\n"
            "        print(path, 'ok')\n"
            "    except OSError as e:\n        print(path, errno.errorcode[e.errno])\n")
    python = str(Path(sys.prefix).resolve() / "bin" / "python")  # inside the sandbox's mounts
    done = subprocess.run(box.command([python, "-c", code]), capture_output=True, text=True, env=box.env(),
                          preexec_fn=box.preexec, start_new_session=True, timeout=120)
    # 12 MiB > the 8 MiB file limit: EFBIG everywhere; the tmpfs also stops at 16 MiB.
    assert done.stdout.split() == ["/tmp/a", "EFBIG", "/tmp/b", "EFBIG", "here", "EFBIG"], done.stderr
    box = Sandbox.create(tmp_path, Limits(tmp_bytes=16 * 2**20), "hardening-tmpfs", True)
    done = subprocess.run(box.command([python, "-c", code]), capture_output=True, text=True, env=box.env(),
                          preexec_fn=box.preexec, start_new_session=True, timeout=120)
    assert done.stdout.split() == ["/tmp/a", "ok", "/tmp/b", "ENOSPC", "here", "ok"], done.stderr


# ----------------------------------------------------------------------------- sanitising

HOSTILE_HTML = ("<script>window.__pwned = 'script'; document.title = 'pwned'</script>"
                "<img src=x onerror=\"window.__pwned = 'onerror'; document.title = 'pwned'\">"
                "<a id=jslink href=\"javascript:void(window.__pwned = 'link')\">click</a>"
                "<iframe src=\"javascript:parent.__pwned = 'iframe'\"></iframe>"
                "<svg onload=\"window.__pwned = 'svg'\"></svg>"
                "<body onload=\"window.__pwned = 'body'\">"
                "<b>bold stays</b>")


def test_clean_html_and_markdown_remove_active_content():
    cleaned = clean_html(HOSTILE_HTML)
    for needle in ("<script", "onerror", "javascript:", "<iframe", "<svg", "onload", "__pwned"):
        assert needle not in cleaned, (needle, cleaned)
    assert "<b>bold stays</b>" in cleaned
    assert clean_html('<img src="data:image/png;base64,iVBORw0KGgo=">') == '<img src="data:image/png;base64,iVBORw0KGgo=">'
    assert "src" not in clean_html('<img src="data:image/svg+xml;base64,PHN2Zz4=">')
    md = clean_markdown("[a](javascript:alert(1)) [b](&#106;avascript:x) [c](https://ok.org) <img src=x onerror=f()>"
                        " `a<b` ![d](data:text/html,x)")
    assert "](#unsafe-javascript:" in md and "](#unsafe-&#106;avascript:" in md and "](https://ok.org)" in md
    assert "&lt;img" in md and "`a<b`" in md and "](#unsafe-data:" in md


def test_sanitize_notebook_keeps_only_safe_outputs():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": HOSTILE_HTML, "text/plain": "p"}),
        nbformat.v4.new_output("display_data", data={"application/javascript": "window.__pwned = 1"}),
        nbformat.v4.new_output("display_data", data={"image/svg+xml": "<svg onload='x()'/>", "text/plain": "svg"}),
        nbformat.v4.new_output("display_data", data={"image/png": 'AAAA" onerror="x()'},
                               metadata={"image/png": {"width": "1 onerror=x()"}}),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="},
                               metadata={"image/png": {"width": 10, "height": "x"}}),
    ]
    nb.cells = [cell]
    assert sanitize_notebook(nb) == 5
    outputs = nb.cells[0].outputs
    assert "<script" not in outputs[0].data["text/html"] and "<b>bold stays</b>" in outputs[0].data["text/html"]
    assert outputs[1].data == {"text/plain": "[output removed by the grader: no safe representation]"}
    assert outputs[2].data == {"text/plain": "svg"}
    assert "image/png" not in outputs[3].data and outputs[3].metadata == {}
    assert outputs[4].data["image/png"] == "iVBORw0KGgo=" and outputs[4].metadata == {"image/png": {"width": 10}}


def _hostile_feedback(course: Path, student: str, sanitize: bool) -> Path:
    """A feedback page built by nbgrader from an autograded notebook full of active content
    (as a hostile kernel can send it); the notebook is stored raw unless ``sanitize``."""
    nb = with_solutions(_release(course), _source(course))
    solution = next(c for c in nb.cells if grade_id(c) == "q1_solution")
    solution.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": HOSTILE_HTML, "text/plain": "html"}),
        nbformat.v4.new_output("display_data", data={"application/javascript": "window.__pwned = 'js'"}),
        nbformat.v4.new_output("display_data", data={"text/markdown": "[md](javascript:void(window.__pwned='md'))"}),
        nbformat.v4.new_output("display_data", data={"image/svg+xml": "<svg><script>window.__pwned='svg'</script></svg>"}),
    ]
    solution.execution_count = 1
    if sanitize:
        sanitize_notebook(nb)
    writer = ResultWriter(course, "hw6_exercises")
    result = {"student": student, "assignment": "hw6_exercises", "notebook": "hw6_exercises.ipynb", "score": 4.0,
              "max_score": 4.0, "cells": {"test_q1": {"max": 2.0, "final": 2.0}, "test_q3": {"max": 2.0, "final": 2.0}},
              "flags": [], "review": False, "sandbox": "", "notebook_json": None, "seconds": 0.0}
    writer.write(result)
    target = course / "autograded" / student / "hw6_exercises"
    target.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target / "hw6_exercises.ipynb")
    return course / "feedback" / student / "hw6_exercises" / "hw6_exercises.html"


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def _script_ran(browser, page_path: Path) -> tuple[object, str]:
    """Open a page, wait, click the links whose target is a script (the ones that stay on
    the page); return (window.__pwned, document.title)."""
    page = browser.new_page()
    try:
        page.goto(page_path.as_uri())
        page.wait_for_timeout(500)
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
        for index, href in enumerate(hrefs):
            if href.strip().lower().startswith("javascript:"):
                try:
                    page.locator("a[href]").nth(index).click(timeout=1000, no_wait_after=True)
                except Exception:  # a hidden link
                    pass
        page.wait_for_timeout(300)
        return page.evaluate("window.__pwned"), page.title()
    finally:
        page.close()


def test_feedback_pages_run_no_script_in_a_browser(course):
    """nbgrader's raw feedback page from a hostile notebook runs the student's script (the
    hole); the sanitised pages (the notebook defused, and the page itself) run none."""
    executable = _chromium()
    if executable is None:
        if UNDER_CI:
            pytest.fail("CI: Chromium must be installed for the feedback browser test")
        pytest.skip("no Chromium found (install Debian's `chromium` package, or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    from gradelib.grading.cli import nbgrader

    raw = _hostile_feedback(course, "raw", sanitize=False)
    defused = _hostile_feedback(course, "defused", sanitize=True)
    nbgrader(["generate_feedback", "hw6_exercises", "--force"], course)  # nbgrader's pages, as they come
    unsanitised = course / "unsanitised.html"
    shutil.copy(raw, unsanitised)  # the control case
    assert "<script>window.__pwned" in unsanitised.read_text()
    assert cli_main(["feedback", "hw6_exercises", "--course", str(course)]) == 0  # generates and sanitises
    for page in (raw, defused):
        text = page.read_text()
        assert FEEDBACK_CSP in text and "<script" not in text.lower()
        assert not re.search(r"""(href|src)\s*=\s*["']?\s*javascript:|\son\w+\s*=|<iframe""", text, re.I)
        assert sanitize_feedback_html(text) == text  # idempotent
        assert "bold stays" in text and "Score" in text
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--headless=new"])
        try:
            pwned, title = _script_ran(browser, unsanitised)
            assert pwned is not None or title == "pwned", "control: the unsanitised page should run the script"
            for page in (raw, defused):
                pwned, title = _script_ran(browser, page)
                assert pwned is None and title != "pwned", (page, pwned, title)
        finally:
            browser.close()
    for path in ("autograded", "feedback", "submitted"):
        shutil.rmtree(course / path, ignore_errors=True)


# ----------------------------------------------------------------------------- bounded comparisons

def test_tamper_comparison_of_7_5_mb_of_markdown_is_quick_and_flagged():
    release = nbformat.read(REPO / "notebooks/hw6_exercises/hw6_exercises.ipynb", as_version=4)
    submission = copy.deepcopy(release)
    submission.cells.append(nbformat.v4.new_markdown_cell("lorem ipsum " * 625_000))  # 7.5 MB
    for cell in submission.cells:  # stripped test cells: the similarity search runs
        if grade_id(cell) in ("test_q1", "test_q3"):
            del cell.metadata["nbgrader"]
    start = time.monotonic()
    flags = compare_with_release(submission, release)
    assert time.monotonic() - start < 5
    assert any(f.startswith("oversize cell: cell ") and "7500000 characters" in f for f in flags), flags
    assert any(f.startswith("metadata removed: test_q1") for f in flags), flags


def test_tamper_comparison_stops_at_its_clock():
    release = nbformat.read(REPO / "notebooks/hw6_exercises/hw6_exercises.ipynb", as_version=4)
    submission = copy.deepcopy(release)
    submission.cells = [c for c in submission.cells if grade_id(c) not in ("test_q1", "test_q3", "q1_md")]
    filler = "".join(c.source for c in release.cells)[:1500]
    submission.cells += [nbformat.v4.new_markdown_cell(filler[i % 500:] + str(i)) for i in range(7_500)]
    start = time.monotonic()
    flags = compare_with_release(submission, release, seconds=1.0)
    assert time.monotonic() - start < 4
    assert any(f.startswith("tamper comparison stopped: the search for stripped cells ran past 1 s") for f in flags)
    assert "missing test cell: test_q3" in flags


# ----------------------------------------------------------------------------- manual grading

def test_any_flag_marks_every_cell_for_manual_grading_and_the_review_column(course):
    from nbgrader.api import Gradebook

    writer = ResultWriter(course, "hw6_exercises", expected=["clean", "flagged", "late"])
    base = {"assignment": "hw6_exercises", "notebook": "hw6_exercises.ipynb", "score": 4.0, "max_score": 4.0,
            "sandbox": "sandbox: test", "notebook_json": None, "seconds": 1.0}
    writer.write({**base, "student": "clean", "flags": [], "review": False,
                  "cells": {"test_q1": {"max": 2.0, "final": 2.0}, "test_q3": {"max": 2.0, "final": 2.0}}})
    report = (course / "grading/hw6_exercises/report.txt").read_text()
    assert "1 submissions graded, 2 pending" in report and "flagged                  pending" in report
    writer.write({**base, "student": "flagged", "flags": ["redefined comparison: q3_solution: __eq__"],
                  "review": True,
                  "cells": {"test_q1": {"max": 2.0, "final": 2.0}, "test_q3": {"max": 2.0, "final": 2.0}}})
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student, expected in (("clean", False), ("flagged", True)):
            for gid in ("test_q1", "test_q3"):
                grade = gb.find_grade(gid, "hw6_exercises", "hw6_exercises", student)
                assert grade.needs_manual_grade is expected, (student, gid)
                assert grade.auto_score == 2.0
    assert cli_main(["export", "--course", str(course)]) == 0
    with open(course / "grades.csv") as handle:
        rows = {r["student_id"]: r for r in csv.DictReader(handle)}
    assert rows["clean"]["review"] == "False" and rows["flagged"]["review"] == "True"
    assert float(rows["flagged"]["score"]) == 4.0
    shutil.rmtree(course / "grading")


# ----------------------------------------------------------------------------- copy detection

def _code_notebook(release, source, code: str):
    """A submission whose solution cells hold ``code`` (in the first solution cell)."""
    nb = with_solutions(release, source)
    first = True
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = code if first else ""
            first = False
    return nb


def test_copydetect_flags_renamed_reference_copies_not_honest_solutions(course):
    release, source = _release(course), _source(course)
    students = {name: _code_notebook(release, source, (CASES / f"{name}.py").read_text())
                for name in ("honest_a", "honest_b", "honest_c", "copy_renamed", "copy_core")}
    report = similarity.analyse(students, source, release, "hw6_exercises", references=[CASES / "reference.py"])
    assert sorted(report.flags) == ["copy_core", "copy_renamed"], report.flags
    copied = {f.split(": ")[1] for f in report.flags["copy_renamed"]}
    assert copied == {"reference.py:power_iteration", "reference.py:sliced_wasserstein", "reference.py:train_critic"}
    # the bodies alone: the training loop (200 shared characters) is caught; the 5-line
    # sliced_wasserstein body (102) is too short to tell from an honest solution
    assert {f.split(": ")[1] for f in report.flags["copy_core"]} == {"reference.py:train_critic"}
    assert report.lines[0].startswith("copy detection (copydetect): 5 submissions, 3 reference definitions; 4 ")


def test_copydetect_reports_near_identical_pairs(course, tmp_path):
    release, source = _release(course), _source(course)
    students = {name: _code_notebook(release, source, (CASES / f"{name}.py").read_text())
                for name in ("honest_a", "honest_a_renamed", "honest_b", "honest_c")}
    report = similarity.analyse(students, source, release, "hw6_exercises", references=[CASES / "reference.py"])
    assert sorted(report.flags) == ["honest_a", "honest_a_renamed"], report.flags
    assert report.flags["honest_a"] == ["similar submission: honest_a_renamed (100% of this code, 100% of theirs; "
                                        "copydetect)"]
    report.write_csv(tmp_path / "similarity.csv")
    with open(tmp_path / "similarity.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["kind"], r["a"], r["b"], r["flagged"]) for r in rows] == [("pair", "honest_a", "honest_a_renamed",
                                                                          "True")]


def test_copydetect_default_references_are_the_assignments_and_the_family_modules(course):
    """Without reference files: every definition of the assignment's reference module
    (``gradelib/checks/references/<assignment>.py``, if there is one) and the family
    modules' definitions named like a graded name (the book's ``linear_ae_loss`` for hw1)."""
    source = nbformat.read(REPO / "solutions/hw1_autoencoders/hw1_autoencoders.ipynb", as_version=4)
    names = similarity.solution_names(source)
    assert "linear_ae_loss" in names
    units = similarity.reference_units("hw1_autoencoders", source)
    family = {label for label in units if label.startswith("gradelib.")}
    assert "gradelib.autoencoders.linear_ae_loss" in family
    assert all(label.rsplit(".", 1)[1] in names for label in family)
    own = REPO / "gradelib/checks/references/hw1_autoencoders.py"
    assert {label.split(":")[1] for label in units if ":" in label} == \
        (set(similarity.definitions(own.read_text())) if own.exists() else set())
