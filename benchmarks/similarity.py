"""Calibrate copy detection (``gradelib.grading.similarity``) on the cases in tests/data/similarity/.

The cases: ``reference.py`` (three graded functions written as the course's reference modules
are: argument checks, docstrings), three honest solutions written independently
(``honest_a/b/c.py``), a copy of the reference with every name renamed and the comments and
messages rewritten (``copy_renamed.py``), a copy of its function bodies only, renamed, with
one constant spelled differently (``copy_core.py``), and a renamed copy of an honest
solution (``honest_a_renamed.py``). Prints, per case and reference function, the similarity
the flag is decided on, and for each pair of cases their shared share; records the figures,
the thresholds in use and the margins in ``benchmarks/results/similarity.json``.

Usage: ``uv run python benchmarks/similarity.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CASES = REPO / "tests" / "data" / "similarity"
RESULTS = REPO / "benchmarks" / "results" / "similarity.json"

from gradelib.grading import similarity as S  # noqa: E402


def main() -> None:
    import torch

    loadavg = [round(x, 2) for x in os.getloadavg()]
    references = {name: S._fingerprint(code) for name, code in S.definitions((CASES / "reference.py").read_text()).items()}
    names = sorted(p.stem for p in CASES.glob("*.py") if p.stem != "reference")
    against_reference: dict[str, dict[str, float]] = {}
    for case in names:
        code = (CASES / f"{case}.py").read_text()
        whole = S._fingerprint(code)
        parts = {n: S._fingerprint(c) for n, c in S.definitions(code).items()}
        row = {}
        for name, unit in references.items():
            _, _, of_reference = S.compare(whole, unit)
            _, of_part, part_reference = S.compare(parts[name], unit) if name in parts else (0, 0.0, 0.0)
            row[name] = round(max(of_reference, of_part, part_reference), 3)
        against_reference[case] = row
        print(f"{case:<18} " + "  ".join(f"{k} {v:.2f}" for k, v in row.items()))
    pairs = {}
    prints = {case: S._fingerprint((CASES / f"{case}.py").read_text()) for case in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared, sim_a, sim_b = S.compare(prints[a], prints[b])
            pairs[f"{a} ~ {b}"] = round(min(sim_a, sim_b), 3)
    honest = [v for case, row in against_reference.items() if case.startswith("honest") for v in row.values()]
    copies = [v for case, row in against_reference.items() if case.startswith("copy") for v in row.values()]
    honest_pairs = [v for k, v in pairs.items() if "copy" not in k and k != "honest_a ~ honest_a_renamed"]
    record = {
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                 text=True).stdout.strip(),
        "config": {"cases": names, "reference": "tests/data/similarity/reference.py", "k": S.NOISE,
                   "window": S.WINDOW},
        "loadavg": loadavg, "threads": torch.get_num_threads(),
        "against_reference": against_reference, "pairs": pairs,
        "honest_max": max(honest), "copies_sorted": sorted(copies), "honest_pairs_max": max(honest_pairs),
        "renamed_pair": pairs["honest_a ~ honest_a_renamed"],
        "constants": {"gradelib.grading.similarity.REFERENCE_SIMILARITY": S.REFERENCE_SIMILARITY,
                      "gradelib.grading.similarity.PAIR_SIMILARITY": S.PAIR_SIMILARITY,
                      "gradelib.grading.similarity.MIN_SHARED": S.MIN_SHARED,
                      "gradelib.grading.similarity.MIN_UNIT_CHARS": S.MIN_UNIT_CHARS,
                      "gradelib.grading.similarity.NOISE": S.NOISE},
    }
    print(f"honest against the reference: at most {record['honest_max']:.2f}; copies: {record['copies_sorted']}; "
          f"honest pairs at most {record['honest_pairs_max']:.2f}, the renamed pair {record['renamed_pair']:.2f}")
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
