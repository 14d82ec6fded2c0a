"""A pytest plugin for nbval: what each cell of a released (stub) notebook may do.

``tests/test_student_kit.py`` runs every released notebook with ``pytest --nbval-lax``
in a kernel of the installed student kit, with this plugin (``-p kit_nbval``) and a file of
expectations, one per code cell, worked out from the notebook and its solution:

- ``"pass"``: imports, data, demos that do not use the student's work: the cell must run
  without error (nbval's own rule under ``--nbval-lax``);
- ``"stub"``: a solution cell, now a stub: it defines the stubs, or raises
  ``NotImplementedError`` (a top-level stub), and raises nothing else;
- ``"uses-stubs"``: a cell that uses a name a stub defines (a test cell, a training run):
  it must raise, and only ``NotImplementedError`` (a stub was reached), a ``NameError``
  for a name that a stub, or a cell that failed because of one, should have defined, or,
  in a cell that reads what an earlier cell of this run failed to finish (an empty
  ``models`` dict its training loop left), whatever that incomplete state raises;
- ``"uses-state"``: a cell that uses only what such cells define (a plot of the training
  run's results): if a cell it reads from failed in this run, it may raise anything or
  run (over an empty dict); otherwise it must run without error.

For ``stub`` and ``uses-stubs`` cells the plugin sets nbval's ``raises-exception``
option, then checks the error nbval recorded. Every cell's outcome goes to the report
file (``--kit-report``), which the calling test reads for the checks across cells.
"""

from __future__ import annotations

import json
import re

import pytest

_RECORDS: list[dict] = []
_FAILED_BINDS: dict[str, set[str]] = {}  # notebook -> names bound by its cells that raised


def pytest_addoption(parser):
    group = parser.getgroup("kit_nbval")
    group.addoption("--kit-expectations", help="JSON: {notebook file name: [cell expectation, ...]}")
    group.addoption("--kit-report", help="where to write each cell's outcome (JSON)")


def _expectation(item):
    path = item.config.getoption("--kit-expectations")
    if not path or not hasattr(item, "cell_num"):
        return None
    cache = item.config.__dict__.setdefault("_kit_expectations", {})
    if path not in cache:
        with open(path) as f:
            cache[path] = json.load(f)
    cells = cache[path].get(item.path.name)
    if cells is None:
        raise pytest.UsageError(f"no expectations for {item.path.name}")
    return cells[item.cell_num]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        expected = _expectation(item)
        if expected and expected["expect"] != "pass":
            item.options["check_exception"] = True


_UNDEFINED = re.compile(r"name '(\w+)' is not defined")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    expected = _expectation(item)
    if expected is None:
        return (yield)
    record = {"notebook": item.path.name, "cell": item.cell_num, "expect": expected["expect"],
              "grade_id": expected.get("grade_id"), "ename": None, "evalue": None,
              "failed": True}
    _RECORDS.append(record)
    try:
        result = yield
    except BaseException:  # nbval failed the cell: an error where none may be
        record["ename"] = "(nbval)"
        raise
    errors = [o for o in (item.test_outputs or []) if o.get("output_type") == "error"]
    failed_binds = _FAILED_BINDS.setdefault(item.path.name, set())
    unfinished = sorted(set(expected.get("loads", ())) & failed_binds)
    if errors:
        record["ename"], record["evalue"] = errors[0]["ename"], errors[0]["evalue"]
        failed_binds.update(expected.get("binds", ()))
    where = f"cell {item.cell_num} ({expected.get('grade_id') or 'no grade_id'})"
    ename, evalue = record["ename"], record["evalue"]
    if expected["expect"] == "stub" and ename not in (None, "NotImplementedError"):
        pytest.fail(f"{where}: a stub cell raised {ename}: {evalue} (a stub may only raise "
                    "NotImplementedError)", pytrace=False)
    if expected["expect"] == "uses-state":
        if ename is not None and not unfinished:
            pytest.fail(f"{where} raised {ename}: {evalue}, although every cell it reads "
                        "from ran", pytrace=False)
        record["unfinished"] = unfinished
    if expected["expect"] == "uses-stubs":
        names = sorted(expected["stub_names"])
        if ename is None:
            pytest.fail(f"{where} uses {expected['uses']}, which the stubs define, yet ran "
                        "without error: it does not exercise the student's work", pytrace=False)
        missing = _UNDEFINED.search(evalue or "")
        if ename == "NameError" and missing and missing.group(1) in names:
            record["failed"] = False
            return result
        if ename != "NotImplementedError" and not unfinished:
            pytest.fail(f"{where} raised {ename}: {evalue}; with the stubs in place it may "
                        f"only raise NotImplementedError, or NameError for one of {names}",
                        pytrace=False)
        record["unfinished"] = unfinished
    record["failed"] = False
    return result


def pytest_sessionfinish(session):
    path = session.config.getoption("--kit-report")
    if path:
        with open(path, "w") as f:
            json.dump(_RECORDS, f, indent=1)
