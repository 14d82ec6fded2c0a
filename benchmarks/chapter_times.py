"""Measure how long each book chapter takes to execute, and record it.

Each chapter (a MyST Markdown notebook) is converted with jupytext and executed in a fresh
kernel with nbclient, the way the book build executes it. Prints a table and writes
``benchmarks/results/chapter_times.json`` with the machine's core count and torch's
thread count, so figures from different machines are not confused.

Usage: ``uv run python benchmarks/chapter_times.py [chapter ...]`` (default: all).
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
    record = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    record["machine"] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                         "load_average_1min": round(os.getloadavg()[0], 2),
                         "python": platform.python_version(), "torch": torch.__version__}
    for chapter in chapters:
        seconds = execute(chapter)
        record.setdefault("chapters", {})[chapter] = round(seconds, 1)
        print(f"{chapter:>24}: {seconds:7.1f} s", flush=True)
    record["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main(sys.argv[1:])
