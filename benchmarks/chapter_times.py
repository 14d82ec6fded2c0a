"""Measure how long each book chapter takes to execute, and record it.

Each chapter (a MyST Markdown notebook) is converted with jupytext and executed in a fresh
kernel with nbclient, the way the book build executes it. Prints a table and writes
``benchmarks/results/chapter_times.json`` with the record keys of the benchmark convention
(CONTRIBUTING.md): the commit measured, the configuration (chapters, machine), the load
average before the run and the torch thread count the kernels inherit. One run is one
record: running a subset of the chapters replaces the record with that subset only, so no
figure is ever labelled with a commit it was not measured at.

Usage: ``OMP_NUM_THREADS=1 uv run python benchmarks/chapter_times.py [chapter ...]``
(default: all). Commit first: the record names ``git rev-parse --short HEAD``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import jupytext
import nbclient
import torch

import provenance  # benchmarks/provenance.py: the record's first keys

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "chapter_times.json"


def execute(chapter: str) -> float:
    notebook = jupytext.read(REPO / "book" / f"{chapter}.md")
    start = time.perf_counter()
    nbclient.NotebookClient(notebook, timeout=1800, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO / "book")}}).execute()
    return time.perf_counter() - start


def main(chapters: list[str]) -> None:
    chapters = chapters or sorted(p.stem for p in (REPO / "book").glob("*.md") if p.stem != "intro")
    dirty = provenance.uncommitted("book", "gradelib")
    if dirty:
        print("warning: book/ or gradelib/ has uncommitted changes; the record's commit will "
              "not describe the code measured", file=sys.stderr)
    record = {
        "benchmark": "chapter_times",
        "commit": provenance.commit(),
        "config": {"chapters": chapters, "executor": "nbclient, one fresh python3 kernel per chapter",
                   "uncommitted_changes_in_book_or_gradelib": dirty,
                   "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
                   "cpus": os.cpu_count(), "python": platform.python_version(),
                   "torch": torch.__version__},
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "threads": torch.get_num_threads(),
        "seconds": {},
    }
    for chapter in chapters:
        seconds = execute(chapter)
        record["seconds"][chapter] = round(seconds, 1)
        print(f"{chapter:>24}: {seconds:7.1f} s", flush=True)
    record["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    record["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main(sys.argv[1:])
