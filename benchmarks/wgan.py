"""Benchmark of issue 6: mode coverage of WGAN (clipping), WGAN-GP and the vanilla GAN on the
2-D toys, with modes-vs-time curves.

For each toy (the ring of 8 and the grid of 25 Gaussians) and each seed, trains

- the vanilla GAN of the GAN chapter (:data:`gradelib.gan.TOY_GAN_STEPS` steps, k = 1,
  :class:`gradelib.gan.GANTrainingConfig` defaults),
- WGAN with weight clipping, the paper's settings (:data:`gradelib.wgan.WGAN_CLIPPING`:
  RMSProp 5e-5, c = 0.01, m = 64, n_critic = 5),
- WGAN-GP as tuned for the toys (:data:`gradelib.wgan.TOY_WGAN_GP`: lambda = 10,
  n_critic = 5, Adam 1e-3 with linear decay, batches of 256; on the grid
  :data:`gradelib.wgan.TOY_WGAN_GP_GRID`, the same with the generator's step size 1e-4),

the WGANs for :data:`gradelib.wgan.TOY_WGAN_STEPS` generator steps (WGAN-GP on the grid
:data:`gradelib.wgan.TOY_WGAN_STEPS_GRID`), all with the same
3x128 MLPs and 2-D noise. Every ``--every`` generator steps it draws 2,500 samples and
records the modes captured and the high-quality share (3 std, VEEGAN's protocol) against
training time. Prints a table (mean ± std over seeds) and writes
``benchmarks/results/wgan.json``.

Quality bars (issue 6): WGAN-GP captures 8/8 ring modes with >= 30 % high-quality samples
and >= 20/25 grid modes (means over >= 3 seeds), each run <= 120 s, and more modes than the
vanilla GAN. Wall time depends on the machine's load; the script also records each run's
CPU time, which is close to the wall time of a quiet machine with one torch thread.

    uv run python benchmarks/wgan.py [--seeds 0 1 2] [--every 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from gradelib import gan, wgan
from gradelib.data import grid_mixture, ring_mixture
from gradelib.device import make_generator, seed_everything

RESULTS = Path(__file__).resolve().parent / "results" / "wgan.json"
TIME_BUDGET_S = 120.0
SAMPLES = 2500


def train_one(method: str, toy, seed: int, every: int) -> dict:
    """Train one model; return its final coverage, times and the coverage curve."""
    seed_everything(seed)
    generator, critic = gan.MLPGenerator(), gan.MLPDiscriminator()
    eval_noise = torch.randn(SAMPLES, generator.latent_dim, generator=make_generator(10_000 + seed))

    def monitor(step: int, seconds: float) -> dict:
        modes, share = gan.mode_coverage(generator(eval_noise), toy.centers, toy.std)
        return {"step": step, "seconds": round(seconds, 2), "modes": modes,
                "high_quality": round(share, 4)}

    cpu = time.process_time()
    if method == "gan":
        steps = gan.TOY_GAN_STEPS[toy.name]
        history = gan.train_gan(generator, critic, toy.sample, steps, 1, make_generator(seed),
                                monitor=monitor, monitor_every=every)
    else:
        steps, config = wgan.TOY_WGAN_STEPS, wgan.WGAN_CLIPPING
        if method == "wgan_gp":
            steps, config = ((wgan.TOY_WGAN_STEPS_GRID, wgan.TOY_WGAN_GP_GRID)
                             if toy.name == "grid" else (wgan.TOY_WGAN_STEPS, wgan.TOY_WGAN_GP))
        history = wgan.train_wgan(generator, critic, toy.sample, steps, make_generator(seed),
                                  config=config, monitor=monitor, monitor_every=every)
    cpu = time.process_time() - cpu
    final = history["monitor"][-1]
    return {"seed": seed, "steps": steps, "modes": final["modes"],
            "high_quality": final["high_quality"], "wall_seconds": round(history["seconds"], 1),
            "cpu_seconds": round(cpu, 1), "curve": history["monitor"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["gan", "wgan_clip", "wgan_gp"])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    record = {"benchmark": "wgan", "samples": SAMPLES, "seeds": args.seeds,
              "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "configs": {"gan": {"steps": gan.TOY_GAN_STEPS, **vars(gan.GANTrainingConfig())},
                          "wgan_clip": {"steps": wgan.TOY_WGAN_STEPS, **vars(wgan.WGAN_CLIPPING)},
                          "wgan_gp": {"ring": {"steps": wgan.TOY_WGAN_STEPS,
                                               **vars(wgan.TOY_WGAN_GP)},
                                      "grid": {"steps": wgan.TOY_WGAN_STEPS_GRID,
                                               **vars(wgan.TOY_WGAN_GP_GRID)}}},
              "runs": {}}
    for toy in (ring_mixture(), grid_mixture()):
        for method in args.methods:
            runs = []
            for seed in args.seeds:
                run = train_one(method, toy, seed, args.every)
                runs.append(run)
                print(f"{toy.name:>4} {method:>9} seed {seed}: {run['modes']:2d}/{toy.num_modes} "
                      f"modes, {100 * run['high_quality']:5.1f}% HQ, {run['wall_seconds']:6.1f} s "
                      f"wall, {run['cpu_seconds']:6.1f} s CPU", flush=True)
            modes = np.array([r["modes"] for r in runs], dtype=float)
            share = 100 * np.array([r["high_quality"] for r in runs])
            record["runs"][f"{toy.name}/{method}"] = {
                "modes_mean": round(float(modes.mean()), 2),
                "modes_std": round(float(modes.std()), 2),
                "high_quality_pct_mean": round(float(share.mean()), 2),
                "high_quality_pct_std": round(float(share.std()), 2),
                "max_wall_seconds": max(r["wall_seconds"] for r in runs),
                "max_cpu_seconds": max(r["cpu_seconds"] for r in runs), "runs": runs}
    runs = record["runs"]
    if {"wgan_gp", "gan"} <= set(args.methods):
        gp_ring, gp_grid = runs["ring/wgan_gp"], runs["grid/wgan_gp"]
        record["bars"] = {
            "WGAN-GP ring modes == 8 (mean)": bool(gp_ring["modes_mean"] == 8),
            "WGAN-GP ring high quality >= 30 % (mean)":
                bool(gp_ring["high_quality_pct_mean"] >= 30),
            "WGAN-GP grid modes >= 20 (mean)": bool(gp_grid["modes_mean"] >= 20),
            f"each WGAN-GP run <= {TIME_BUDGET_S:g} s wall": bool(
                max(gp_ring["max_wall_seconds"], gp_grid["max_wall_seconds"]) <= TIME_BUDGET_S),
            f"each WGAN-GP run <= {TIME_BUDGET_S:g} s CPU": bool(
                max(gp_ring["max_cpu_seconds"], gp_grid["max_cpu_seconds"]) <= TIME_BUDGET_S),
            "WGAN-GP captures more modes than the GAN (ring + grid means)": bool(
                gp_ring["modes_mean"] + gp_grid["modes_mean"]
                > runs["ring/gan"]["modes_mean"] + runs["grid/gan"]["modes_mean"]),
        }
    record["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record["load_average_at_end"] = list(os.getloadavg())
    print(f"\n{'':>16} {'ring modes':>12} {'ring HQ %':>12} {'grid modes':>12} {'grid HQ %':>12}")
    for method in args.methods:
        cells = []
        for toy in ("ring", "grid"):
            r = runs[f"{toy}/{method}"]
            cells += [f"{r['modes_mean']:.1f} ± {r['modes_std']:.1f}",
                      f"{r['high_quality_pct_mean']:.1f} ± {r['high_quality_pct_std']:.1f}"]
        print(f"{method:>16} " + " ".join(f"{c:>12}" for c in cells))
    for bar, ok in record.get("bars", {}).items():
        print(f"  {'PASS' if ok else 'FAIL'}  {bar}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {args.output}")


if __name__ == "__main__":
    main()
