"""Calibration of ``hw5_wgan``'s hidden training check, and the assignment's run times.

``--band`` trains, exactly as :func:`gradelib.checks.hw5_wgan.check_train_sn_wgan` does
(seeded public networks, the spectrally normalised critic of
:func:`~gradelib.checks.hw5_wgan.sn_critic`, :data:`~gradelib.checks.hw5_wgan.TRAINING_STEPS`
generator steps, one thread), the reference loop with the check's seed and five more, two
acceptable variants (the same draws in another order; one critic forward on the real and
fake points concatenated) and three broken loops (the generator's loss with its sign
flipped; the critic's loss with its sign flipped; the critic never stepped), and records
their mode coverage, high-quality share, sliced W1 to the data, Lipschitz bound and time in
``benchmarks/results/hw5_wgan_band.json`` with the constants they calibrate.

``--times`` executes the solution notebook top to bottom (nbclient, as ``nbgrader
validate`` does) and autograds it (``nbgrader autograde`` in a temporary course, as
``benchmarks/autograde_times.py`` does), and records both times in
``benchmarks/results/hw5_wgan_times.json``. Budgets (issue 18): solution notebook <= 90 s,
autograde <= 60 s per submission, on an idle machine.

    uv run python benchmarks/hw5_wgan.py --band [--seeds 5005 0 1 2 3 4]
    uv run python benchmarks/hw5_wgan.py --times
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import provenance  # benchmarks/provenance.py: the record's first keys
from gradelib.checks import hw5_wgan as checks
from gradelib.checks.references import hw5_wgan as reference

REPO = Path(__file__).resolve().parent.parent
BAND_RESULTS = REPO / "benchmarks" / "results" / "hw5_wgan_band.json"
TIMES_RESULTS = REPO / "benchmarks" / "results" / "hw5_wgan_times.json"
NOTEBOOK_BUDGET_S = 90.0
AUTOGRADE_BUDGET_S = 60.0


def variant(*, reorder: bool = False, concatenate: bool = False, generator_sign: float = -1.0,
            critic_sign: float = 1.0, critic_steps: bool = True):
    """A ``train_sn_wgan`` like the reference, changed as the flags say."""

    def train(generator, critic, data_sampler, steps, n_critic, generator_rng):
        lr, betas, m = reference.LEARNING_RATE, reference.BETAS, reference.BATCH_SIZE
        optimizer_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
        optimizer_c = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)
        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda i: 1 - i / steps)
                      for o in (optimizer_g, optimizer_c)]
        history = {key: [] for key in checks.HISTORY_KEYS}
        for _ in range(steps):
            for _ in range(n_critic):
                if reorder:
                    z = torch.randn(m, generator.latent_dim, generator=generator_rng)
                    real = data_sampler(m, generator_rng)
                else:
                    real = data_sampler(m, generator_rng)
                    z = torch.randn(m, generator.latent_dim, generator=generator_rng)
                with torch.no_grad():
                    fake = generator(z)
                if concatenate:
                    scores = critic(torch.cat([real, fake]))
                    real_scores, fake_scores = scores[:m], scores[m:]
                else:
                    real_scores, fake_scores = critic(real), critic(fake)
                loss_c = critic_sign * (fake_scores.mean() - real_scores.mean())
                if critic_steps:
                    optimizer_c.zero_grad()
                    loss_c.backward()
                    optimizer_c.step()
            z = torch.randn(m, generator.latent_dim, generator=generator_rng)
            loss_g = generator_sign * critic(generator(z)).mean()
            optimizer_g.zero_grad()
            loss_g.backward()
            optimizer_g.step()
            for scheduler in schedulers:
                scheduler.step()
            history["critic"].append(loss_c.item())
            history["generator"].append(loss_g.item())
            history["wasserstein_estimate"].append((real_scores.mean() - fake_scores.mean()).item())
            history["lipschitz_bound"].append(
                reference.gradient_norm_bound(critic, torch.cat([real, fake])).item())
        return history

    return train


def band(seeds: list[int]) -> None:
    torch.set_num_threads(1)
    record = {**provenance.record_header({
                  "steps": checks.TRAINING_STEPS, "n_critic": checks.TRAINING_N_CRITIC,
                  "hidden": checks.TRAINING_HIDDEN, "batch_size": reference.BATCH_SIZE,
                  "learning_rate": reference.LEARNING_RATE, "betas": reference.BETAS,
                  "samples": 2500, "sliced_projections": 200, "seeds": seeds}),
              "cpus": os.cpu_count(),
              "constants": {
                  "gradelib.checks.hw5_wgan.MIN_RING_MODES": checks.MIN_RING_MODES,
                  "gradelib.checks.hw5_wgan.MAX_SLICED_W1": checks.MAX_SLICED_W1,
                  "gradelib.checks.hw5_wgan.MAX_LIPSCHITZ_BOUND": checks.MAX_LIPSCHITZ_BOUND,
                  "gradelib.checks.hw5_wgan.TRAINING_STEPS": checks.TRAINING_STEPS,
                  "gradelib.checks.hw5_wgan.TRAINING_HIDDEN": checks.TRAINING_HIDDEN},
              "variants": {}}
    runs = [(f"reference, seed {seed}", reference.train_sn_wgan, seed, True) for seed in seeds]
    runs += [("reference with its draws reordered", variant(reorder=True), seeds[0], True),
             ("one critic forward on real and fake concatenated", variant(concatenate=True),
              seeds[0], True),
             ("generator loss with its sign flipped", variant(generator_sign=1.0), seeds[0], False),
             ("critic loss with its sign flipped", variant(critic_sign=-1.0), seeds[0], False),
             ("critic never stepped", variant(critic_steps=False), seeds[0], False)]
    for label, train, seed, acceptable in runs:
        cpu = time.process_time()
        run = checks.train_and_measure(train, seed)
        cpu = time.process_time() - cpu
        bounds = run["history"]["lipschitz_bound"]
        tail = sorted(bounds[-max(1, len(bounds) // 10):])
        try:
            checks.judge(run)
            passes = True
        except AssertionError as error:
            passes = False
            why = str(error).splitlines()[0]
        entry = {"acceptable": acceptable, "modes": run["modes"],
                 "high_quality": round(run["high_quality"], 4),
                 "sliced_w1": round(run["sliced_w1"], 4),
                 "lipschitz_bound_median": round(tail[len(tail) // 2], 4),
                 "rng_as_specified": run["rng_as_specified"], "check_seconds": round(run["seconds"], 1),
                 "cpu_seconds": round(cpu, 1), "budget_s": round(run["budget"], 1),
                 "passes_check": passes}
        if not passes:
            entry["failure"] = why
        record["variants"][label] = entry
        print(f"{label:>48}: {run['modes']} modes, {100 * run['high_quality']:5.1f}% HQ, sliced W1 "
              f"{run['sliced_w1']:.3f}, bound {entry['lipschitz_bound_median']:.3f}, "
              f"{run['seconds']:.1f} s wall ({cpu:.1f} s CPU), passes: {passes}", flush=True)
    record["loadavg_at_end"] = list(os.getloadavg())
    record["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    BAND_RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {BAND_RESULTS.relative_to(REPO)}")


def _nbgrader(args: list[str], course: Path) -> None:
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    subprocess.run(["nbgrader", *args, f"--CourseDirectory.root={course}"], cwd=course, env=env,
                   check=True, capture_output=True)


def times() -> None:
    import nbclient
    import nbformat

    record = provenance.record_header({"assignment": "hw5_wgan", "budgets_s": {
        "solution_notebook": NOTEBOOK_BUDGET_S, "autograde": AUTOGRADE_BUDGET_S}})
    source = REPO / "solutions" / "hw5_wgan" / "hw5_wgan.ipynb"
    notebook = nbformat.read(source, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(source.parent)}}).execute()
    record["solution_notebook_s"] = round(time.perf_counter() - start, 1)
    record["loadavg_after_notebook"] = list(os.getloadavg())
    print(f"solution notebook: {record['solution_notebook_s']} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        shutil.copy(REPO / "nbgrader_config.py", course)
        shutil.copytree(REPO / "solutions" / "hw5_wgan", course / "solutions" / "hw5_wgan")
        _nbgrader(["generate_assignment", "hw5_wgan"], course)
        target = course / "submitted" / "student" / "hw5_wgan"
        target.mkdir(parents=True)
        shutil.copy(source, target)
        start = time.perf_counter()
        _nbgrader(["autograde", "hw5_wgan"], course)
        record["autograde_s"] = round(time.perf_counter() - start, 1)
    record["loadavg_at_end"] = list(os.getloadavg())
    record["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print(f"autograde: {record['autograde_s']} s per submission (load {record['loadavg_at_end']})")
    TIMES_RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {TIMES_RESULTS.relative_to(REPO)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--band", action="store_true")
    parser.add_argument("--times", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[checks.SEED, 0, 1, 2, 3, 4])
    args = parser.parse_args()
    if args.band:
        band(args.seeds)
    if args.times:
        times()


if __name__ == "__main__":
    main()
