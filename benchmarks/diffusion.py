"""Benchmark of issue 19: the diffusion chapter's quality bars and the hw7 check's bands.

Parts (``--parts``, default all):

- ``toys``: for each toy (ring of 8, grid of 25 Gaussians) and seed, trains the chapter's
  DDPM (:data:`gradelib.diffusion.TOY_DDPM`, :data:`gradelib.diffusion.TOY_DDPM_STEPS`),
  draws 2,500 ancestral samples (1,000 network evaluations each) and 2,500 DDIM samples
  (100 evaluations), and records modes captured and the high-quality share with
  ``gradelib.gan.mode_coverage`` (VEEGAN's protocol, as ``benchmarks/wgan.py``), with wall and
  CPU seconds of training. Goal: 8/8 and 25/25 modes, >= 80 % high quality on the ring and
  >= 50 % on the grid, each run <= 60 s.
- ``mnist``: trains the latent DDPM (:class:`gradelib.diffusion.LatentDDPMConfig` defaults:
  autoencoder with a 16-number code, then a DDPM on its codes) on the 4,000 embedded training
  digits and judges 1,000 samples with the course's digit classifier: share labelled with
  confidence > 0.9 and digits present among them, training seconds and network evaluations.
  Goal: >= 70 % confident, all ten digits, <= 180 s of training.
- ``hw7``: calibrates the bands of ``gradelib.checks.hw7_diffusion.check_train_flow_matching``:
  the reference ``train_flow_matching`` with the check's settings over seeds, a weaker but
  acceptable run (half the steps), and a wrong one (label dropout never applied), each scored
  by the check's own ``grid_quality``.

Writes ``benchmarks/results/diffusion.json`` (commit, configuration, load average before
the run, torch threads, the calibrated constants). Commit the code first: the record names
the commit it measured.

    OMP_NUM_THREADS=1 uv run python benchmarks/diffusion.py [--seeds 0 1 2] [--parts toys mnist hw7]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from gradelib import diffusion, gan
from gradelib.checks import hw7_diffusion as checks
from gradelib.checks.references import hw7_diffusion as reference
from gradelib.data import grid_mixture, load_mnist, ring_mixture
from gradelib.device import make_generator
from gradelib.digit_classifier import reference_digit_classifier

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "diffusion.json"
SAMPLES = 2500
TIME_BUDGET_S = 60.0


def toy_run(toy, seed: int) -> dict:
    torch.manual_seed(seed)
    model = diffusion.TimeConditionedMLP()
    cpu = time.process_time()
    history = diffusion.train_ddpm(model, toy.sample, diffusion.TOY_DDPM_STEPS[toy.name],
                                   make_generator(seed), config=diffusion.TOY_DDPM)
    cpu = time.process_time() - cpu
    x_T = torch.randn(SAMPLES, 2, generator=make_generator(10_000 + seed))
    start = time.perf_counter()
    samples = diffusion.ancestral_sample(model, x_T, history["schedule"], make_generator(20_000 + seed))
    sampling = time.perf_counter() - start
    modes, share = gan.mode_coverage(samples, toy.centers, toy.std)
    ddim_modes, ddim_share = gan.mode_coverage(
        diffusion.ddim_sample(model, x_T, history["schedule"], 100), toy.centers, toy.std)
    return {"seed": seed, "steps": len(history["loss"]), "modes": modes,
            "high_quality": round(share, 4), "wall_seconds": round(history["seconds"], 1),
            "cpu_seconds": round(cpu, 1), "sampling_seconds": round(sampling, 1),
            "ddim100_modes": ddim_modes, "ddim100_high_quality": round(ddim_share, 4)}


def summarise(runs: list[dict]) -> dict:
    modes = np.array([r["modes"] for r in runs], dtype=float)
    share = 100 * np.array([r["high_quality"] for r in runs])
    return {"modes_mean": round(float(modes.mean()), 2), "modes_std": round(float(modes.std()), 2),
            "high_quality_pct_mean": round(float(share.mean()), 2),
            "high_quality_pct_std": round(float(share.std()), 2),
            "max_wall_seconds": max(r["wall_seconds"] for r in runs),
            "max_cpu_seconds": max(r["cpu_seconds"] for r in runs), "runs": runs}


def mnist_run(seed: int) -> dict:
    images, _ = load_mnist("train")
    config = diffusion.LatentDDPMConfig()
    cpu = time.process_time()
    start = time.perf_counter()
    model, history = diffusion.train_latent_ddpm(images, seed, config=config)
    train_seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    judge, accuracy = reference_digit_classifier()
    result = {"seed": seed, "train_seconds": round(train_seconds, 1), "train_cpu_seconds": round(cpu, 1),
              "autoencoder_seconds": round(history["autoencoder_seconds"], 1),
              "ddpm_seconds": round(history["ddpm_seconds"], 1), "judge_test_accuracy": round(accuracy, 4)}
    for sampler, steps in (("ancestral", config.ddpm.num_steps), ("ddim", 50)):
        start = time.perf_counter()
        samples = model.sample(1000, make_generator(30_000 + seed), sampler=sampler, num_steps=steps)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            confidence, label = torch.softmax(judge(samples), 1).max(1)
        confident = confidence > 0.9
        key = "" if sampler == "ancestral" else "ddim50_"
        result.update({f"{key}confident_share": round(float(confident.float().mean()), 4),
                       f"{key}digits_present": len(set(label[confident].tolist())),
                       f"{key}network_evaluations": steps,
                       f"{key}sampling_seconds": round(seconds, 1)})
    return result


def hw7_run(seed: int, steps: int, p_uncond: float) -> dict:
    data, labels = checks._grid_data(20_000, seed)
    torch.manual_seed(seed)
    model = diffusion.TimeConditionedMLP(data_dim=2, hidden_dim=128, num_layers=3, num_classes=25)
    saved = reference.P_UNCOND
    reference.P_UNCOND = p_uncond
    try:
        cpu = time.process_time()
        start = time.perf_counter()
        reference.train_flow_matching(model, data, labels, steps, make_generator(seed + 1))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        reference.P_UNCOND = saved
    quality = checks.grid_quality(model, seed=seed + 2)
    return {"seed": seed, "steps": steps, "p_uncond": p_uncond, "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1), **{k: round(v, 4) for k, v in quality.items()}}


def toy_bars(record: dict) -> dict:
    """The issue's goals for the toys, from the recorded runs."""
    ring_runs, grid_runs = record["runs"]["ring/ddpm"]["runs"], record["runs"]["grid/ddpm"]["runs"]
    return {
        "ring: 8/8 modes in every run": all(r["modes"] == 8 for r in ring_runs),
        "grid: 25/25 modes in every run": all(r["modes"] == 25 for r in grid_runs),
        "ring: >= 80 % high quality (mean)": record["runs"]["ring/ddpm"]["high_quality_pct_mean"] >= 80,
        "grid: >= 50 % high quality (mean)": record["runs"]["grid/ddpm"]["high_quality_pct_mean"] >= 50,
        f"each run <= {TIME_BUDGET_S:g} s CPU": all(r["cpu_seconds"] <= TIME_BUDGET_S
                                                   for r in ring_runs + grid_runs),
        f"each run <= {TIME_BUDGET_S:g} s wall": all(r["wall_seconds"] <= TIME_BUDGET_S
                                                    for r in ring_runs + grid_runs),
    }


def merge(parts: list[Path], output: Path) -> None:
    """Combine records written by separate invocations into one (the last file's commit and
    top-level fields win; pass the most recent last)."""
    records = [json.loads(p.read_text()) for p in parts]
    # parts may come from different commits (a part re-measured after its code changed): the
    # record names each part's commit, and the latest as the record's own
    merged = {k: v for r in records for k, v in r.items() if k not in ("runs", "bars")}
    merged["commits_of_parts"] = {
        part: r["commit"] for r in records
        for part in (("toys",) if "runs" in r else ()) + tuple(p for p in ("mnist", "hw7") if p in r)}
    merged["loadavg"] = max((r["loadavg"] for r in records), key=lambda v: v[0])
    merged["loadavg_of_parts"] = [r["loadavg"] for r in records]
    merged["seeds"] = sorted({s for r in records for s in r["seeds"]})
    merged["config"] = {k: v for r in records for k, v in r.get("config", {}).items()}
    toy_runs: dict[str, list] = {}
    for r in records:
        for key, summary in r.get("runs", {}).items():
            toy_runs.setdefault(key, []).extend(summary["runs"])
    if toy_runs:
        merged["runs"] = {k: summarise(sorted(v, key=lambda run: run["seed"])) for k, v in toy_runs.items()}
    bars = {k: v for r in records for k, v in r.get("bars", {}).items()}
    if {"ring/ddpm", "grid/ddpm"} <= set(toy_runs):
        bars.update(toy_bars(merged))
    merged["bars"] = bars
    output.write_text(json.dumps(merged, indent=2) + "\n")
    for bar, ok in bars.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {bar}")
    print(f"merged {len(parts)} records into {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parts", nargs="+", default=["toys", "mnist", "hw7"])
    parser.add_argument("--toys", nargs="+", default=["ring", "grid"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="merge records of separate runs (e.g. one per toy and seed, run in "
                             "parallel on a busy machine) into --output")
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, args.output)
        return
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    record = json.loads(args.output.read_text()) if args.output.exists() else {}
    record.update({"benchmark": "diffusion", "commit": commit, "loadavg": list(os.getloadavg()),
                   "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "samples": SAMPLES,
                   "seeds": args.seeds})
    config = record.setdefault("config", {})
    config["toys"] = {"steps": diffusion.TOY_DDPM_STEPS, **dataclasses.asdict(diffusion.TOY_DDPM),
                      "network": "TimeConditionedMLP(hidden_dim=128, num_layers=3, time_dim=32)",
                      "samplers": ["ancestral (1000 evaluations)", "ddim (100 evaluations)"]}
    config["mnist"] = dataclasses.asdict(diffusion.LatentDDPMConfig())
    config["hw7"] = {"train_steps": checks.TRAIN_STEPS, "sample_steps": checks.SAMPLE_STEPS,
                     "guidance": checks.GUIDANCE, "batch_size": reference.BATCH_SIZE,
                     "learning_rate": reference.LEARNING_RATE, "p_uncond": reference.P_UNCOND}
    if "toys" in args.parts:
        record["runs"] = {}
        record["toys_loadavg"] = list(os.getloadavg())
        for toy in (t for t in (ring_mixture(), grid_mixture()) if t.name in args.toys):
            runs = []
            for seed in args.seeds:
                run = toy_run(toy, seed)
                runs.append(run)
                print(f"{toy.name:>4} seed {seed}: {run['modes']:2d}/{toy.num_modes} modes, "
                      f"{100 * run['high_quality']:5.1f}% HQ (DDIM-100 {100 * run['ddim100_high_quality']:5.1f}%), "
                      f"{run['wall_seconds']:6.1f} s wall, {run['cpu_seconds']:6.1f} s CPU", flush=True)
            record["runs"][f"{toy.name}/ddpm"] = summarise(runs)
    if "toys" in args.parts and set(args.toys) == {"ring", "grid"}:
        record.setdefault("bars", {}).update(toy_bars(record))
    if "mnist" in args.parts:
        loadavg = list(os.getloadavg())
        record["mnist"] = {**mnist_run(args.seeds[0]), "loadavg": loadavg}
        m = record["mnist"]
        print(f"mnist: {100 * m['confident_share']:.1f}% confident, {m['digits_present']} digits, "
              f"{m['train_seconds']:.1f} s training ({m['train_cpu_seconds']:.1f} s CPU)", flush=True)
        record.setdefault("bars", {}).update({
            "mnist: >= 70 % confident": m["confident_share"] >= 0.7,
            "mnist: all ten digits": m["digits_present"] == 10,
            "mnist: <= 180 s of training (CPU)": m["train_cpu_seconds"] <= 180})
    if "hw7" in args.parts:
        loadavg = list(os.getloadavg())
        calibration = {"reference": [hw7_run(s, checks.TRAIN_STEPS, reference.P_UNCOND) for s in args.seeds],
                       "half_steps": [hw7_run(s, checks.TRAIN_STEPS // 2, reference.P_UNCOND) for s in args.seeds[:2]],
                       "no_label_dropout": [hw7_run(args.seeds[0], checks.TRAIN_STEPS, 0.0)]}
        record["hw7"] = {**calibration, "loadavg": loadavg}
        for kind, runs in calibration.items():  # noqa: B007
            for r in runs:
                print(f"hw7 {kind} seed {r['seed']}: guided {r['modes']}/25 modes, "
                      f"{100 * r['high_quality']:.1f}% HQ, {100 * r['on_requested']:.1f}% on request; "
                      f"unconditional {r['unconditional_modes']}/25, "
                      f"{100 * r['unconditional_high_quality']:.1f}% HQ; {r['cpu_seconds']:.1f} s CPU", flush=True)
        record["constants"] = {f"gradelib.checks.hw7_diffusion.{name}": getattr(checks, name)
                               for name in ("TRAIN_STEPS", "SAMPLE_STEPS", "GUIDANCE", "MIN_MODES",
                                            "MIN_HIGH_QUALITY", "MIN_ON_REQUESTED_MODE",
                                            "MIN_UNCONDITIONAL_MODES")}
    record["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record["load_average_at_end"] = list(os.getloadavg())
    for bar, ok in record.get("bars", {}).items():
        print(f"  {'PASS' if ok else 'FAIL'}  {bar}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {args.output}")


if __name__ == "__main__":
    main()
