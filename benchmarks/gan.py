"""Benchmark of issue 5: toy GANs' mode coverage and time, and the conditional MNIST GAN.

1. The vanilla GAN of the chapter (3x128 MLPs, 2-D noise, Adam 1e-3, beta1 0.5, batches of
   256, k = 1, non-saturating loss) on the ring of 8 and the grid of 25 Gaussians for
   :data:`gradelib.gan.TOY_GAN_STEPS` steps and ``--seeds`` seeds: modes captured and
   high-quality share on 2,500 samples (3 std, VEEGAN's protocol), wall and CPU time.
2. The conditional MNIST GAN of the chapter (:class:`gradelib.gan.MNISTGenerator` /
   :class:`gradelib.gan.MNISTDiscriminator` with 10 classes, ``--cgan-steps`` steps): the
   share of 1,000 samples (100 per digit) that the reference digit classifier
   (:func:`gradelib.digit_classifier.reference_digit_classifier`) assigns to the requested
   digit, and the training time.

Quality bars (issue 5): each toy run <= 60 s; >= 80 % of the conditional samples classified
as the requested digit, within 180 s of training. Results go to
``benchmarks/results/gan.json``.

With ``--band`` it instead calibrates the hidden training check of ``hw4_gan``
(:func:`gradelib.checks.hw4_gan.check_train_gan`): it trains, exactly as the check does
(seeded reference MLPs, :data:`~gradelib.checks.hw4_gan.TRAINING_STEPS` steps, k = 1, one
thread), the homework's solution loop with the check's seed and four more, the same loop
drawing its random numbers in another order, an acceptable variant (batches of 128), the
original minimax generator loss (which Adam trains at k = 1: the loss functions' own checks,
not this one, tell the two losses apart), and broken loops (the discriminator's loss with its
sign flipped; fakes not detached and both networks stepped on the discriminator's loss), and
records
their modes and high-quality share in ``benchmarks/results/gan_band.json``.

    uv run python benchmarks/gan.py [--seeds 0 1 2 3 4] [--cgan-steps 1500]
    uv run python benchmarks/gan.py --band
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gradelib import gan
from gradelib.checks import hw4_gan as checks
from gradelib.data import grid_mixture, load_mnist, ring_mixture
from gradelib.device import make_generator, seed_everything
from gradelib.digit_classifier import classify_digits, reference_digit_classifier

RESULTS = Path(__file__).resolve().parent / "results" / "gan.json"
BAND_RESULTS = RESULTS.with_name("gan_band.json")
TOY_BUDGET_S = 60.0
CGAN_BUDGET_S = 180.0
CGAN_ACCURACY_BAR = 0.80


def toy_runs(seeds: list[int]) -> dict:
    record = {}
    for toy in (ring_mixture(), grid_mixture()):
        runs = []
        for seed in seeds:
            seed_everything(seed)
            generator, discriminator = gan.MLPGenerator(), gan.MLPDiscriminator()
            cpu = time.process_time()
            history = gan.train_gan(generator, discriminator, toy.sample,
                                    gan.TOY_GAN_STEPS[toy.name], 1, make_generator(seed))
            cpu = time.process_time() - cpu
            samples = gan.draw_samples(generator, 2500, make_generator(1000 + seed))
            modes, share = gan.mode_coverage(samples, toy.centers, toy.std)
            runs.append({"seed": seed, "modes": modes, "high_quality": round(share, 4),
                         "wall_seconds": round(history["seconds"], 1),
                         "cpu_seconds": round(cpu, 1)})
            print(f"{toy.name} seed {seed}: {modes}/{toy.num_modes} modes, {100 * share:.1f}% HQ, "
                  f"{history['seconds']:.1f} s wall, {cpu:.1f} s CPU", flush=True)
        modes = np.array([r["modes"] for r in runs], dtype=float)
        share = 100 * np.array([r["high_quality"] for r in runs])
        record[toy.name] = {"steps": gan.TOY_GAN_STEPS[toy.name],
                            "modes_mean": round(float(modes.mean()), 2),
                            "modes_std": round(float(modes.std()), 2),
                            "high_quality_pct_mean": round(float(share.mean()), 2),
                            "high_quality_pct_std": round(float(share.std()), 2),
                            "max_wall_seconds": max(r["wall_seconds"] for r in runs),
                            "max_cpu_seconds": max(r["cpu_seconds"] for r in runs), "runs": runs}
    return record


def conditional_run(steps: int) -> dict:
    images, labels = load_mnist("train")
    start = time.perf_counter()
    judge, judge_accuracy = reference_digit_classifier()
    judge_seconds = time.perf_counter() - start
    requested = torch.arange(10).repeat(100)

    def accuracy(generator) -> float:
        samples = gan.draw_samples(generator, 1000, make_generator(11), labels=requested)
        return float((classify_digits(judge, samples) == requested).float().mean())

    seed_everything(0)
    generator = gan.MNISTGenerator(num_classes=10)
    discriminator = gan.MNISTDiscriminator(num_classes=10)
    cpu = time.process_time()
    history = gan.train_conditional_gan(
        generator, discriminator, images, labels, steps, make_generator(0),
        monitor=lambda step, seconds: {"step": step, "seconds": round(seconds, 1),
                                       "accuracy": round(accuracy(generator), 4)},
        monitor_every=500)
    cpu = time.process_time() - cpu
    final = history["monitor"][-1]
    print(f"conditional GAN: {steps} steps in {history['seconds']:.1f} s wall ({cpu:.1f} s CPU "
          f"with evaluations); {100 * final['accuracy']:.1f}% classified as requested "
          f"(judge: {100 * judge_accuracy:.1f}% test accuracy, trained in {judge_seconds:.1f} s)")
    return {"steps": steps, "wall_seconds": round(history["seconds"], 1),
            "cpu_seconds_with_evaluations": round(cpu, 1),
            "class_accuracy": final["accuracy"], "curve": history["monitor"],
            "judge_test_accuracy": round(judge_accuracy, 4),
            "judge_train_seconds": round(judge_seconds, 1)}


def homework_train_gan(generator, discriminator, data_sampler, steps, k, generator_rng, *,
                       batch=256, reorder=False, loss="nonsaturating", flip_d=False,
                       no_detach=False):
    """The homework's solution loop, with switches for the variants the band is tested on."""
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    history = {"discriminator": [], "generator": []}
    for _ in range(steps):
        for _ in range(k):
            if reorder:
                z = torch.randn(batch, generator.latent_dim, generator=generator_rng)
                real = data_sampler(batch, generator_rng)
            else:
                real = data_sampler(batch, generator_rng)
                z = torch.randn(batch, generator.latent_dim, generator=generator_rng)
            fake = generator(z) if no_detach else generator(z).detach()
            loss_d = (F.softplus(-discriminator(real)).mean()
                      + F.softplus(discriminator(fake)).mean())
            if flip_d:
                loss_d = -loss_d
            opt_d.zero_grad()
            if no_detach:
                opt_g.zero_grad()
            loss_d.backward()
            opt_d.step()
            if no_detach:
                opt_g.step()
        z = torch.randn(batch, generator.latent_dim, generator=generator_rng)
        logits = discriminator(generator(z))
        loss_g = (F.softplus(-logits).mean() if loss == "nonsaturating"
                  else -F.softplus(logits).mean())
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        history["discriminator"].append(loss_d.item())
        history["generator"].append(loss_g.item())
    return history


def calibrate_band(output: Path) -> None:
    torch.set_num_threads(1)
    variants = {f"homework solution, seed {checks.SEED + i}": ({}, checks.SEED + i)
                for i in range(5)}
    variants.update({
        "solution drawing noise before data": ({"reorder": True}, checks.SEED),
        "acceptable: batches of 128": ({"batch": 128}, checks.SEED),
        "variant: minimax generator loss (Adam, k = 1)": ({"loss": "minimax"}, checks.SEED),
        "broken: discriminator loss sign flipped": ({"flip_d": True}, checks.SEED),
        "broken: fakes not detached, generator stepped on D's loss": ({"no_detach": True},
                                                                      checks.SEED),
    })
    record = {"benchmark": "gan_band", "steps": checks.TRAINING_STEPS,
              "min_modes": checks.MIN_RING_MODES, "min_high_quality": checks.MIN_HIGH_QUALITY,
              "time_budget_s": checks.TRAINING_TIME_BUDGET_S, "variants": {}}
    for label, (options, seed) in variants.items():
        def train(*args, options=options):
            return homework_train_gan(*args, **options)

        start = time.perf_counter()
        try:
            modes, share = checks.check_train_gan(train, seed=seed)
            passed = True
        except AssertionError as error:
            passed = False
            modes = share = None
            print(f"    {str(error).splitlines()[0][:150]}")
        seconds = time.perf_counter() - start
        if modes is None:  # the check failed: measure what it saw
            ring = ring_mixture()
            torch.manual_seed(seed)
            generator, discriminator = gan.MLPGenerator(), gan.MLPDiscriminator()
            train(generator, discriminator, ring.sample, checks.TRAINING_STEPS, 1,
                  make_generator(seed))
            modes, share = gan.mode_coverage(
                gan.draw_samples(generator, 2500, make_generator(seed + 1)), ring.centers, ring.std)
        record["variants"][label] = {"modes": modes, "high_quality": round(share, 4),
                                     "passes_check": passed, "check_seconds": round(seconds, 1)}
        print(f"{label:>58}: {modes}/8 modes, {100 * share:5.1f}% HQ, "
              f"{'PASS' if passed else 'FAIL'} ({seconds:.1f} s)", flush=True)
    record["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record["load_average_at_end"] = list(os.getloadavg())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--cgan-steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--band", action="store_true",
                        help="calibrate the hw4_gan trained-model band instead")
    args = parser.parse_args()
    if args.band:
        calibrate_band(args.output or BAND_RESULTS)
        return
    torch.set_num_threads(args.threads)
    record = {"benchmark": "gan", "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "toys": toy_runs(args.seeds), "conditional_mnist": conditional_run(args.cgan_steps)}
    toys, cgan = record["toys"], record["conditional_mnist"]
    record["bars"] = {
        f"each toy run <= {TOY_BUDGET_S:g} s wall":
            bool(max(t["max_wall_seconds"] for t in toys.values()) <= TOY_BUDGET_S),
        f"each toy run <= {TOY_BUDGET_S:g} s CPU":
            bool(max(t["max_cpu_seconds"] for t in toys.values()) <= TOY_BUDGET_S),
        f"conditional samples classified as requested >= {100 * CGAN_ACCURACY_BAR:g} %":
            bool(cgan["class_accuracy"] >= CGAN_ACCURACY_BAR),
        f"conditional GAN trained within {CGAN_BUDGET_S:g} s wall":
            bool(cgan["wall_seconds"] <= CGAN_BUDGET_S),
    }
    record["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record["load_average_at_end"] = list(os.getloadavg())
    for name, toy in toys.items():
        print(f"{name}: {toy['modes_mean']:.1f} ± {toy['modes_std']:.1f} modes, "
              f"{toy['high_quality_pct_mean']:.1f} ± {toy['high_quality_pct_std']:.1f} % HQ "
              f"over seeds {args.seeds}")
    for bar, ok in record["bars"].items():
        print(f"  {'PASS' if ok else 'FAIL'}  {bar}")
    output = args.output or RESULTS
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {output}")


if __name__ == "__main__":
    main()
