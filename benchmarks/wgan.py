"""Benchmark of issue 18: GAN, WGAN (clipping), WGAN-GP and an MMD generator on the 2-D toys,
each with the same CPU budget, tuned on seeds 0-2 and reported on five held-out seeds.

For each toy (the ring of 8 and the grid of 25 Gaussians) every method of
:data:`gradelib.wgan.TOY_COMPARISON` trains with :func:`gradelib.wgan.train_toy` (the same
3x128 MLPs and 2-D noise, one torch thread) for the steps that fill the toy's budget
:data:`gradelib.wgan.TOY_BUDGET_SECONDS`. Every ``--every`` generator steps it draws 2,500
samples (the same noise for every method of a seed) and records the modes captured and the
high-quality share (3 std, VEEGAN's protocol) against training time. It prints a table (mean
± std over seeds) and writes ``benchmarks/results/wgan.json``: per run the final coverage,
the wall and CPU seconds, the curve, and for the first seed 500 samples of each method on
the grid (the chapter draws them). The chapter loads this record, shows the table and
asserts its claims against it.

Goals (issue 18): WGAN-GP on the grid >= 24/25 modes with a high-quality share above the
GAN's, each run <= 90 s; on the ring 8/8 modes with >= 70 % high quality. The record says
which are met (``"goals"``).

``--tune`` instead trains the candidate configurations of :data:`CANDIDATES` on the tuning
seeds 0-2 and writes ``benchmarks/results/wgan_tuning.json``; the configurations of
:data:`gradelib.wgan.TOY_COMPARISON` were chosen from it (the best mean high-quality share
with all modes, per method and toy).

    uv run python benchmarks/wgan.py [--seeds 3 4 5 6 7] [--every 100]
    uv run python benchmarks/wgan.py --tune [--only grid/wgan_gp]

On two cores, split the runs over two processes, each with one thread and its own output, then
merge (each part's settings must be the code's; the merged record keeps each part's commit
and load, recomputes the goals and the table, and trains nothing):

    uv run python benchmarks/wgan.py --only ring/gan ring/mmd ... --output /tmp/a.json
    uv run python benchmarks/wgan.py --only grid/gan ... --output /tmp/b.json
    uv run python benchmarks/wgan.py --merge /tmp/a.json /tmp/b.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import provenance  # benchmarks/provenance.py: the record's first keys
from gradelib import gan, wgan
from gradelib.data import grid_mixture, ring_mixture
from gradelib.device import make_generator

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "wgan.json"
TUNING_RESULTS = RESULTS.with_name("wgan_tuning.json")
SAMPLES = 2500
SHOWN_SAMPLES = 500
TOYS = {"ring": ring_mixture(), "grid": grid_mixture()}


def _config_record(method: wgan.ToyMethod) -> dict:
    return {"label": method.label, "trainer": method.trainer, "steps": method.steps,
            "config": dataclasses.asdict(method.config)}


def train_one(toy, method: wgan.ToyMethod, seed: int, every: int, keep: int = 0) -> dict:
    """Train one model; return its final coverage, times, the coverage curve and (if
    ``keep``) ``keep`` of its final samples."""
    eval_noise = torch.randn(SAMPLES, 2, generator=make_generator(10_000 + seed))

    def monitor(step, seconds, generator, critic) -> dict:
        modes, share = gan.mode_coverage(generator(eval_noise), toy.centers, toy.std)
        return {"step": step, "seconds": round(seconds, 2), "modes": modes,
                "high_quality": round(share, 4)}

    cpu = time.process_time()
    generator, _, history = wgan.train_toy(toy, method, seed, monitor=monitor,
                                           monitor_every=every)
    cpu = time.process_time() - cpu
    final = history["monitor"][-1]
    run = {"seed": seed, "steps": method.steps, "modes": final["modes"],
           "high_quality": final["high_quality"], "wall_seconds": round(history["seconds"], 1),
           "cpu_seconds": round(cpu, 1), "loadavg_at_end": round(os.getloadavg()[0], 2),
           "curve": history["monitor"]}
    if keep:
        with torch.no_grad():
            run["samples"] = [[round(v, 3) for v in point]
                              for point in generator(eval_noise[:keep]).tolist()]
    return run


def summarise(runs: list[dict]) -> dict:
    modes = np.array([r["modes"] for r in runs], dtype=float)
    share = 100 * np.array([r["high_quality"] for r in runs])
    return {"modes_mean": round(float(modes.mean()), 2), "modes_std": round(float(modes.std()), 2),
            "modes_min": int(modes.min()),
            "high_quality_pct_mean": round(float(share.mean()), 2),
            "high_quality_pct_std": round(float(share.std()), 2),
            "max_wall_seconds": max(r["wall_seconds"] for r in runs),
            "max_cpu_seconds": max(r["cpu_seconds"] for r in runs)}


#: Candidate configurations tried on the tuning seeds (``--tune``), per toy and method. The
#: steps of each candidate fill the toy's budget at that configuration's cost per step.
CANDIDATES: dict[str, dict[str, list[wgan.ToyMethod]]] = wgan.TOY_CANDIDATES


def tune(seeds: list[int], every: int, only: list[str] | None, output: Path) -> None:
    record = json.loads(output.read_text()) if output.exists() else {}
    record.update({"commit": provenance.commit(), "loadavg": list(os.getloadavg()),
                   "threads": torch.get_num_threads(), "cpus": os.cpu_count()})
    record.setdefault("config", {})["seeds"] = seeds
    record["config"]["budget_seconds"] = wgan.TOY_BUDGET_SECONDS
    record.setdefault("candidates", {})
    for toy_name, methods in CANDIDATES.items():
        for key, candidates in methods.items():
            if only and f"{toy_name}/{key}" not in only:
                continue
            for index, method in enumerate(candidates):
                runs = [train_one(TOYS[toy_name], method, seed, every) for seed in seeds]
                for run in runs:
                    run.pop("curve")
                entry = {**_config_record(method), **summarise(runs), "runs": runs,
                         "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
                record["candidates"][f"{toy_name}/{key}/{index}"] = entry
                print(f"{toy_name:>4} {key:>9} candidate {index}: {entry['modes_mean']:.1f} modes, "
                      f"{entry['high_quality_pct_mean']:.1f}% HQ, max {entry['max_cpu_seconds']} s CPU",
                      flush=True)
                output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--only", nargs="+", default=None, help="toy/method keys, e.g. grid/mmd")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="records of split runs (--only ... --output) to merge, untrained")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.tune:
        tune(args.seeds or list(wgan.TOY_TUNING_SEEDS), args.every, args.only,
             args.output or TUNING_RESULTS)
        return
    seeds = args.seeds or list(wgan.TOY_HELD_OUT_SEEDS)
    output = args.output or RESULTS
    record = json.loads(output.read_text()) if (args.only and output.exists()) else {}
    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
        for path, part in zip(args.merge, parts):
            for run_key in part["runs"]:
                toy_name, key = run_key.split("/")
                measured = part["config"]["methods"][toy_name][key]
                if measured != json.loads(json.dumps(
                        _config_record(wgan.TOY_COMPARISON[toy_name][key]))):
                    raise SystemExit(f"--merge: {path} measured {run_key} with settings that "
                                     "are not the code's TOY_COMPARISON")
            if part["config"]["seeds"] != seeds or part["config"]["every"] != args.every:
                raise SystemExit(f"--merge: {path} measured other seeds or monitoring")
        record = {"runs": {k: v for p in parts for k, v in p["runs"].items()}}
        record["merged_from"] = [{"commit": p["commit"], "loadavg": p["loadavg"],
                                  "methods": sorted(p["runs"]), "measured": p.get("measured")}
                                 for p in parts]
        args.only = [] if args.only is None else args.only
    record.update({"benchmark": "wgan", "commit": provenance.commit(),
                   "loadavg": (max((p["loadavg"] for p in parts), key=lambda a: a[0])
                               if args.merge else list(os.getloadavg())),
                   "threads": torch.get_num_threads(), "cpus": os.cpu_count()})
    record["config"] = {"samples": SAMPLES, "seeds": seeds, "every": args.every,
                        "budget_seconds": wgan.TOY_BUDGET_SECONDS,
                        "methods": {toy: {key: _config_record(m) for key, m in methods.items()}
                                    for toy, methods in wgan.TOY_COMPARISON.items()}}
    record.setdefault("runs", {})
    for toy_name, methods in wgan.TOY_COMPARISON.items():
        toy = TOYS[toy_name]
        for key, method in methods.items():
            if args.only is not None and f"{toy_name}/{key}" not in args.only:
                continue
            runs = []
            for i, seed in enumerate(seeds):
                run = train_one(toy, method, seed, args.every,
                                keep=SHOWN_SAMPLES if i == 0 else 0)
                runs.append(run)
                print(f"{toy_name:>4} {key:>9} seed {seed}: {run['modes']:2d}/{toy.num_modes} modes, "
                      f"{100 * run['high_quality']:5.1f}% HQ, {run['wall_seconds']:6.1f} s wall, "
                      f"{run['cpu_seconds']:6.1f} s CPU (load {run['loadavg_at_end']})", flush=True)
            record["runs"][f"{toy_name}/{key}"] = {**summarise(runs), "runs": runs}
            output.write_text(json.dumps(record, indent=2) + "\n")
    runs = record["runs"]
    if all(f"{t}/{m}" in runs for t in ("ring", "grid") for m in ("wgan_gp", "gan")):
        gp_ring, gp_grid, gan_grid = runs["ring/wgan_gp"], runs["grid/wgan_gp"], runs["grid/gan"]
        record["goals"] = {
            "WGAN-GP ring: 8/8 modes on every seed": gp_ring["modes_min"] == 8,
            "WGAN-GP ring: high quality >= 70 % (mean)": gp_ring["high_quality_pct_mean"] >= 70,
            "WGAN-GP grid: >= 24/25 modes (mean)": gp_grid["modes_mean"] >= 24,
            "WGAN-GP grid: high quality above the GAN's (means)":
                gp_grid["high_quality_pct_mean"] > gan_grid["high_quality_pct_mean"],
            "each WGAN-GP run <= 90 s CPU": max(gp_ring["max_cpu_seconds"],
                                                gp_grid["max_cpu_seconds"]) <= 90,
        }
    record["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record["loadavg_at_end"] = list(os.getloadavg())
    print(f"\n{'':>16} {'ring modes':>12} {'ring HQ %':>12} {'grid modes':>12} {'grid HQ %':>12}")
    for key in wgan.TOY_COMPARISON["ring"]:
        cells = []
        for toy in ("ring", "grid"):
            r = runs.get(f"{toy}/{key}")
            cells += ([f"{r['modes_mean']:.1f} ± {r['modes_std']:.1f}",
                       f"{r['high_quality_pct_mean']:.1f} ± {r['high_quality_pct_std']:.1f}"]
                      if r else ["", ""])
        print(f"{key:>16} " + " ".join(f"{c:>12}" for c in cells))
    for goal, ok in record.get("goals", {}).items():
        print(f"  {'MET ' if ok else 'NOT MET'}  {goal}")
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {output}")


if __name__ == "__main__":
    main()
