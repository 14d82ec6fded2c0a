"""Every benchmark record says what it measured, where, and agrees with the code it calibrates.

The convention (CONTRIBUTING.md, "Benchmarks"): each JSON in ``benchmarks/results/`` has the
top-level keys

- ``commit``: ``git rev-parse --short HEAD`` when the figures were measured (a commit of
  this repository's history);
- ``config``: a non-empty dict of what was measured (steps, seeds, model sizes, ...);
- ``loadavg``: ``os.getloadavg()`` before the run, three non-negative numbers;
- ``threads``: the torch thread count the measurement ran with, a positive int;

and, when the benchmark calibrates constants in the code, ``constants``: a dict from the
dotted path of each constant (``"gradelib.checks.hw4_gan.MIN_CONFIDENT_SHARE"``) to the
value the benchmark justified. Each is imported and must equal the value in the code, so a
constant changed without re-running its benchmark fails here.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import subprocess

import pytest

from conftest import REPO

RESULTS = REPO / "benchmarks" / "results"
REQUIRED = ("commit", "config", "loadavg", "threads")


def resolve(dotted: str):
    """The object at ``dotted``: the longest importable module prefix, then attributes.

    Raises ``LookupError`` naming the path when no prefix imports or an attribute is missing.
    """
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for index, name in enumerate(parts[split:], start=split):
            if not hasattr(obj, name):
                raise LookupError(f"{'.'.join(parts[:index])} has no attribute {name!r}")
            obj = getattr(obj, name)
        return obj
    raise LookupError(f"no importable module in {dotted!r}")


def _as_json(value):
    """``value`` as JSON would give it back (tuples become lists), for comparison."""
    return json.loads(json.dumps(value))


def record_problems(record: dict) -> list[str]:
    """What is wrong with one benchmark record, as readable sentences (empty when nothing)."""
    problems = [f"no {key!r}" for key in REQUIRED if key not in record]
    commit = record.get("commit")
    if "commit" in record and not (isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{7,40}", commit)):
        problems.append(f"'commit' must be a git commit hash (git rev-parse --short HEAD), got {commit!r}")
    config = record.get("config")
    if "config" in record and not (isinstance(config, dict) and config):
        problems.append(f"'config' must be a non-empty dict of what was measured, got {config!r}")
    loadavg = record.get("loadavg")
    noted = isinstance(record.get("note"), str) and len(record["note"]) > 20
    # A record measured before the convention may lack what was not written down then: its
    # 'loadavg'/'threads' is None, and its 'note' says so (never a made-up number).
    if "loadavg" in record and not (loadavg is None and noted) and not (
            isinstance(loadavg, list) and len(loadavg) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in loadavg)):
        problems.append(f"'loadavg' must be os.getloadavg(), three numbers >= 0 (or null with a "
                        f"'note' saying why), got {loadavg!r}")
    threads = record.get("threads")
    if "threads" in record and not (threads is None and noted) and not (
            isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        problems.append(f"'threads' must be the torch thread count, an int >= 1, got {threads!r}")
    constants = record.get("constants", {})
    if not isinstance(constants, dict):
        return problems + [f"'constants' must be a dict of dotted path -> value, got {constants!r}"]
    for path, recorded in constants.items():
        try:
            in_code = resolve(path)
        except LookupError as error:
            problems.append(f"constant {path}: {error}")
            continue
        same = (math.isclose(in_code, recorded, rel_tol=0, abs_tol=0)
                if all(isinstance(v, (int, float)) for v in (in_code, recorded))
                else _as_json(in_code) == recorded)
        if not same:
            problems.append(f"constant {path}: recorded {recorded!r}, the code says {in_code!r}")
    return problems


def _in_history(commit: str) -> bool | None:
    """Whether ``commit`` is a commit of this repository (None when git cannot tell)."""
    try:
        shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=REPO,
                                 capture_output=True, text=True, timeout=30)
        if shallow.returncode != 0 or shallow.stdout.strip() != "false":
            return None
        kind = subprocess.run(["git", "cat-file", "-t", commit], cwd=REPO,
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return kind.returncode == 0 and kind.stdout.strip() == "commit"


RECORDS = sorted(RESULTS.glob("*.json"))


def test_there_are_records():
    assert RECORDS, f"no benchmark records in {RESULTS}"


@pytest.mark.parametrize("path", RECORDS, ids=[p.name for p in RECORDS])
def test_record_follows_the_convention(path):
    record = json.loads(path.read_text())
    assert isinstance(record, dict), f"{path.name}: a record is a JSON object"
    problems = record_problems(record)
    if isinstance(record.get("commit"), str) and not problems:
        if _in_history(record["commit"]) is False:
            problems.append(f"commit {record['commit']} is not in this repository's history")
    assert not problems, f"{path.name}: " + "; ".join(problems)


# The checker itself: it must accept a record that follows the convention and name every
# way a record can break it.

GOOD = {"commit": "ab88fc1", "config": {"steps": 10}, "loadavg": [0.5, 0.4, 0.3], "threads": 1,
        "constants": {"math.pi": math.pi, "math.inf": math.inf}}


def test_checker_accepts_a_good_record():
    assert record_problems(GOOD) == []
    older = GOOD | {"loadavg": None, "threads": None,
                    "note": "measured before the record convention; the load was not written down"}
    assert record_problems(older) == []


@pytest.mark.parametrize("broken, message", [
    ({k: v for k, v in GOOD.items() if k != "commit"}, "no 'commit'"),
    ({k: v for k, v in GOOD.items() if k != "config"}, "no 'config'"),
    ({k: v for k, v in GOOD.items() if k != "loadavg"}, "no 'loadavg'"),
    ({k: v for k, v in GOOD.items() if k != "threads"}, "no 'threads'"),
    (GOOD | {"commit": "2026-11-21"}, "'commit' must be a git commit hash"),
    (GOOD | {"config": {}}, "'config' must be a non-empty dict"),
    (GOOD | {"loadavg": 0.9}, "'loadavg' must be os.getloadavg()"),
    (GOOD | {"threads": "1"}, "'threads' must be the torch thread count"),
    (GOOD | {"loadavg": None}, "'loadavg' must be os.getloadavg()"),
    (GOOD | {"threads": None, "note": "short"}, "'threads' must be the torch thread count"),
    (GOOD | {"constants": {"math.pi": 3.14}}, r"constant math.pi: recorded 3.14, the code says 3.14159"),
    (GOOD | {"constants": {"math.tau_": 6.28}}, "constant math.tau_: math has no attribute 'tau_'"),
    (GOOD | {"constants": {"gradelib.no_such_module.X": 1}}, "gradelib has no attribute 'no_such_module'"),
])
def test_checker_names_what_is_wrong(broken, message):
    problems = record_problems(broken)
    assert any(re.search(message, p) or message in p for p in problems), problems


def test_resolve_reads_module_and_class_attributes():
    from gradelib import data

    assert resolve("gradelib.data") is data
    assert resolve("math.pi") == math.pi
    assert resolve("collections.OrderedDict.fromkeys") is not None
    with pytest.raises(LookupError, match="no importable module"):
        resolve("no_such_top_level_package.X")
