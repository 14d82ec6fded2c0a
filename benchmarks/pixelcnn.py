"""Benchmarks of the PixelCNN chapter's quality bars and calibration of the hw2 colour band.

Run from the repository root (``OMP_NUM_THREADS=1``; several minutes on a busy 2-core CPU)::

    uv run python benchmarks/pixelcnn.py                  # every part
    uv run python benchmarks/pixelcnn.py --part chapter   # the chapter's one-channel bars
    uv run python benchmarks/pixelcnn.py --part colour    # the homework's band
    uv run python benchmarks/pixelcnn.py --part budgets   # the homework's notebook and autograde times

Part ``chapter`` (issue 4; ``benchmarks/results/pixelcnn.json``), on embedded MNIST binarized
at 0.5: the reference :class:`gradelib.pixelcnn.PixelCNN` trained for the chapter's epochs
(bar: test NLL <= 80 nats within 120 s of training), and sampling 16 digits (bar: <= 20 s).

Part ``colour`` (hw2 second edition; ``benchmarks/results/pixelcnn_colour.json``), on colour
MNIST (:func:`gradelib.data.load_colour_mnist`): the test bits/dim, computed as the hidden
check does, after the notebook's training (``NOTEBOOK_EPOCHS`` epochs of Adam, batches of
``NOTEBOOK_BATCH_SIZE``, learning rate ``NOTEBOOK_LEARNING_RATE``) of

- the solution (the reference :class:`ColourPixelCNN` with ``NOTEBOOK_CONFIG``), three seeds;
- weaker but acceptable variants: half the width and one residual layer; one epoch only;
- broken variants: channels independent within a pixel (the first layer's centre fully
  masked, which the dependency test rejects anyway), the best model without context (the
  training frequency of each dimension), the untrained network, fair coins;

with training wall and CPU seconds, whether ``check_trained_colour_pixelcnn`` accepts each,
and the check's own run time. It also times the pieces the notebook's and the grader's
budgets are made of: the check's training probe, the evaluation of the 1,000 test digits,
and sampling 8 digits with the reference sampler (the notebook's demo).

Part ``budgets`` (``benchmarks/results/pixelcnn_colour_budgets.json``): the wall time of
the solution notebook executed top to bottom (goal <= 150 s) and of ``nbgrader autograde`` of
one correct submission (goal <= 120 s), each with the CPU time of the kernel (what the wall
time would be on an idle machine: everything runs on one thread) and the load average.

Records follow the benchmark convention: ``commit``, ``config``, ``loadavg`` (before the
run), ``threads`` and, for the colour part, ``constants`` (the calibrated values in
``gradelib.checks.hw2_pixelcnn``, which a test compares with the code).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import provenance  # benchmarks/provenance.py: the record's first keys
from gradelib import pixelcnn as pc
from gradelib.checks import hw2_pixelcnn as hw2
from gradelib.checks.references import hw2_pixelcnn as ref
from gradelib.data import load_colour_mnist, load_mnist
from gradelib.device import make_generator, seed_everything

NLL_BAR_NATS = 80.0
TRAIN_BAR_SECONDS = 120.0
SAMPLE_BAR_SECONDS = 20.0
CHAPTER_EPOCHS = 3  # the chapter's EPOCHS
RESULTS = Path(__file__).parent / "results"
CALIBRATED = ("TEST_BPD_BAND", "TRAINING_TIME_BUDGET_S", "TRAINING_TIME_FACTOR",
              "EVALUATION_TIME_BUDGET_S", "EVALUATION_TIME_FACTOR", "NOTEBOOK_EPOCHS",
              "NOTEBOOK_BATCH_SIZE", "NOTEBOOK_LEARNING_RATE")


def _record(config: dict) -> dict:
    return provenance.record_header(config)


def _write(name: str, record: dict) -> None:
    path = RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    record["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {path}", flush=True)


# ----------------------------------------------------------------------------- chapter


def train_and_track(config: pc.PixelCNNConfig, epochs: int, train: torch.Tensor,
                    test: torch.Tensor) -> tuple[pc.PixelCNN, list[dict]]:
    """Train from seed 0; after each epoch record training seconds so far and test NLL."""
    seed_everything(0)
    model = pc.PixelCNN(config)
    records: list[dict] = []
    clock = {"train": 0.0, "since": time.perf_counter(), "cpu": 0.0, "cpu_since": time.process_time()}

    def after_epoch(epoch: int, train_nll: float) -> None:
        clock["train"] += time.perf_counter() - clock["since"]
        clock["cpu"] += time.process_time() - clock["cpu_since"]
        nll = pc.evaluate_nll(model, test).mean().item()
        records.append({"epoch": epoch, "train_seconds": round(clock["train"], 2),
                        "train_cpu_seconds": round(clock["cpu"], 2),
                        "train_nll_nats": round(train_nll, 3), "test_nll_nats": round(nll, 3),
                        "test_bits_per_dim": round(pc.nats_to_bits_per_dim(nll, 784).item(), 5)})
        print(f"  epoch {epoch}: {clock['train']:.1f} s of training, train NLL {train_nll:.2f}, "
              f"test NLL {nll:.2f} nats", flush=True)
        clock["since"], clock["cpu_since"] = time.perf_counter(), time.process_time()

    pc.train_pixelcnn(model, train, epochs, make_generator(0), callback=after_epoch)
    return model, records


def chapter(epochs: int) -> None:
    train, _ = load_mnist("train", binarized=True)
    test, _ = load_mnist("test", binarized=True)
    record = _record({"data": "embedded MNIST, binarized at 0.5, 4000 train / 1000 test",
                      "model": pc.PixelCNNConfig().__dict__, "epochs": epochs,
                      "training": pc.PixelCNNTrainingConfig().__dict__, "seed": 0,
                      "sampling": {"images": 16, "size": [28, 28], "seed": 0}})
    print(f"reference PixelCNN {pc.PixelCNNConfig()}, {epochs} epochs", flush=True)
    model, records = train_and_track(pc.PixelCNNConfig(), epochs, train, test)
    reached = [r for r in records if r["test_nll_nats"] <= NLL_BAR_NATS]
    record["training"] = {
        "epochs": records, "bar": f"test NLL <= {NLL_BAR_NATS} nats within {TRAIN_BAR_SECONDS} s",
        "first_epoch_under_bar": reached[0]["epoch"] if reached else None,
        "seconds_to_bar": reached[0]["train_seconds"] if reached else None,
        "passes": bool(reached) and reached[0]["train_seconds"] <= TRAIN_BAR_SECONDS,
    }
    start, cpu = time.perf_counter(), time.process_time()
    samples = pc.sample(model, 16, 28, 28, make_generator(0))
    seconds = time.perf_counter() - start
    record["sampling"] = {"network_evaluations": 784, "seconds": round(seconds, 2),
                          "cpu_seconds": round(time.process_time() - cpu, 2),
                          "bar_seconds": SAMPLE_BAR_SECONDS, "passes": seconds <= SAMPLE_BAR_SECONDS,
                          "mean_ink": round(samples.mean().item(), 4)}
    print(f"sampling 16 images: {seconds:.1f} s", flush=True)
    _write("pixelcnn.json", record)


# ----------------------------------------------------------------------------- colour


def _independent_channels(config: ref.ColourPixelCNNConfig) -> ref.ColourPixelCNN:
    """The reference with its first layer's centre fully masked: given the earlier pixels,
    the three channels of a pixel are independent."""
    model = ref.ColourPixelCNN(config)
    m = config.first_kernel_size // 2
    model.first.mask[:, :, m, m] = 0.0
    return model


class _Frequencies(torch.nn.Module):
    """No context: each dimension is 1 with its frequency in the training digits."""

    def __init__(self, train: torch.Tensor):
        super().__init__()
        p = train.mean(dim=0, keepdim=True).clamp(1e-3, 1 - 1e-3)  # (1, 3, 28, 28)
        self.register_buffer("logits", torch.logit(p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1, -1, -1)


def _train_notebook_loop(model: torch.nn.Module, train: torch.Tensor, epochs: int,
                         seed: int) -> tuple[float, float]:
    """The notebook's training loop; returns (wall seconds, CPU seconds)."""
    shuffle = make_generator(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=hw2.NOTEBOOK_LEARNING_RATE)
    start, cpu = time.perf_counter(), time.process_time()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=shuffle)
        for s in range(0, len(train), hw2.NOTEBOOK_BATCH_SIZE):
            batch = train[order[s:s + hw2.NOTEBOOK_BATCH_SIZE]]
            loss = ref.bits_per_dim(model(batch), batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    return time.perf_counter() - start, time.process_time() - cpu


@torch.no_grad()
def _test_bpd(model: torch.nn.Module, test: torch.Tensor) -> float:
    model.eval()
    logits = torch.cat([model(test[s:s + 250]) for s in range(0, len(test), 250)])
    return float(ref.bits_per_dim(logits.double(), test.double()).mean())


def _judge(model: torch.nn.Module) -> dict:
    start = time.perf_counter()
    try:
        hw2.check_trained_colour_pixelcnn(model, 0.0)
        verdict = {"passes_check": True}
    except AssertionError as error:
        verdict = {"passes_check": False, "message": str(error).splitlines()[0][:300]}
    verdict["check_seconds"] = round(time.perf_counter() - start, 2)
    return verdict


def colour() -> None:
    train, _ = load_colour_mnist("train")
    test, _ = load_colour_mnist("test")
    epochs = hw2.NOTEBOOK_EPOCHS
    record = _record({
        "data": "colour MNIST (load_colour_mnist), 4000 train / 1000 test, 3 x 28 x 28 in {0, 1}",
        "model": hw2.NOTEBOOK_CONFIG.__dict__, "epochs": epochs,
        "batch_size": hw2.NOTEBOOK_BATCH_SIZE, "learning_rate": hw2.NOTEBOOK_LEARNING_RATE,
        "optimizer": "Adam", "seeds": [0, 1, 2],
        "weaker": {"half_width_one_layer": {"hidden_channels": hw2.NOTEBOOK_CONFIG.hidden_channels // 2
                                            // 3 * 3, "num_layers": 1},
                   "one_epoch": 1},
    })
    record["constants"] = {f"gradelib.checks.hw2_pixelcnn.{name}": getattr(hw2, name)
                           for name in CALIBRATED}
    variants: dict[str, dict] = {}

    def run(label: str, build, train_epochs: int, seed: int) -> torch.nn.Module:
        seed_everything(seed)
        model = build()
        wall, cpu = _train_notebook_loop(model, train, train_epochs, seed) if train_epochs else (0.0, 0.0)
        result = {"epochs": train_epochs, "train_seconds": round(wall, 2),
                  "train_cpu_seconds": round(cpu, 2), "test_bits_per_dim": round(_test_bpd(model, test), 5)}
        result.update(_judge(model))
        result["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
        variants[label] = result
        print(f"{label}: {result}", flush=True)
        return model

    solution = None
    for seed in (0, 1, 2):
        model = run(f"solution, seed {seed}", lambda: ref.ColourPixelCNN(hw2.NOTEBOOK_CONFIG), epochs, seed)
        solution = solution or model
    half = ref.ColourPixelCNNConfig(hidden_channels=hw2.NOTEBOOK_CONFIG.hidden_channels // 2 // 3 * 3,
                                    num_layers=1)
    run("weaker: half width, one residual layer", lambda: ref.ColourPixelCNN(half), epochs, 0)
    run("weaker: one epoch", lambda: ref.ColourPixelCNN(hw2.NOTEBOOK_CONFIG), 1, 0)
    run("broken: channels independent within a pixel",
        lambda: _independent_channels(hw2.NOTEBOOK_CONFIG), epochs, 0)
    run("broken: no context (training frequencies)", lambda: _Frequencies(train), 0, 0)
    run("broken: untrained network", lambda: ref.ColourPixelCNN(hw2.NOTEBOOK_CONFIG), 0, 0)
    variants["broken: fair coins"] = {"test_bits_per_dim": 1.0}
    record["variants"] = variants

    timings: dict[str, float] = {}
    start = time.perf_counter()
    timings["training_time_budget_s"] = round(hw2.training_time_budget(), 1)
    timings["training_probe_with_budget_s"] = round(time.perf_counter() - start, 2)
    start, cpu = time.perf_counter(), time.process_time()
    _test_bpd(solution, test)
    timings["evaluate_1000_test_digits_s"] = round(time.perf_counter() - start, 2)
    timings["evaluate_1000_test_digits_cpu_s"] = round(time.process_time() - cpu, 2)
    start, cpu = time.perf_counter(), time.process_time()
    samples = ref.sample(solution, 8, 28, 28, make_generator(0))
    timings["sample_8_digits_s"] = round(time.perf_counter() - start, 2)
    timings["sample_8_digits_cpu_s"] = round(time.process_time() - cpu, 2)
    code = (4 * samples[:, 0] + 2 * samples[:, 1] + samples[:, 2]).long().flatten(1)  # (8, 784)
    counts = torch.stack([(code == k).sum(dim=1) for k in range(1, 8)], dim=1)  # (8, 7)
    timings["sample_colour_consistency"] = round(float(
        (counts.max(dim=1).values / counts.sum(dim=1).clamp(min=1)).mean()), 3)
    record["timings"] = timings
    print(f"timings: {timings}", flush=True)
    solutions = [v["test_bits_per_dim"] for k, v in variants.items() if k.startswith("solution")]
    record["summary"] = {
        "band": hw2.TEST_BPD_BAND, "solution_worst": max(solutions),
        "weaker_worst": max(v["test_bits_per_dim"] for k, v in variants.items() if k.startswith("weaker")),
        "broken_best": min(v["test_bits_per_dim"] for k, v in variants.items() if k.startswith("broken")),
        "fair_coins": 1.0, "log2_of_7_colours_per_dim": round(math.log2(7) / (3 * 784), 5),
    }
    print(json.dumps(record["summary"], indent=2))
    _write("pixelcnn_colour.json", record)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def budgets() -> None:
    """Time the solution notebook and the autograding of one correct submission."""
    import nbformat
    from nbclient import NotebookClient

    repo = Path(__file__).resolve().parent.parent
    assignment = "hw2_pixelcnn"
    source = repo / "solutions" / assignment / f"{assignment}.ipynb"
    record = _record({"notebook": str(source.relative_to(repo)), "goal_notebook_s": 150,
                      "goal_autograde_s": 120, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")})
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    notebook = nbformat.read(source, as_version=4)
    cpu, start, load = _children_cpu(), time.perf_counter(), os.getloadavg()
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    record["solution_notebook"] = {"seconds": round(time.perf_counter() - start, 1),
                                   "kernel_cpu_seconds": round(_children_cpu() - cpu, 1),
                                   "loadavg_before": [round(v, 2) for v in load],
                                   "loadavg_after": [round(v, 2) for v in os.getloadavg()]}
    print(f"solution notebook: {record['solution_notebook']}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        shutil.copy(repo / "nbgrader_config.py", course)
        shutil.copytree(repo / "solutions" / assignment, course / "solutions" / assignment)

        def nbgrader(*args: str) -> None:
            subprocess.run(["nbgrader", *args, f"--CourseDirectory.root={course}"], cwd=course,
                           env=env, check=True, capture_output=True)

        nbgrader("generate_assignment", assignment)
        target = course / "submitted" / "student" / assignment
        target.mkdir(parents=True)
        shutil.copy(source, target)
        cpu, start, load = _children_cpu(), time.perf_counter(), os.getloadavg()
        nbgrader("autograde", assignment)
        record["autograde_one_submission"] = {
            "seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds_nbgrader_and_kernel": round(_children_cpu() - cpu, 1),
            "loadavg_before": [round(v, 2) for v in load],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()]}
    print(f"autograde: {record['autograde_one_submission']}", flush=True)
    _write("pixelcnn_colour_budgets.json", record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("chapter", "colour", "budgets", "all"), default="all")
    parser.add_argument("--epochs", type=int, default=CHAPTER_EPOCHS, help="chapter epochs")
    args = parser.parse_args()
    if args.part in ("chapter", "all"):
        chapter(args.epochs)
    if args.part in ("colour", "all"):
        colour()
    if args.part in ("budgets", "all"):
        budgets()


if __name__ == "__main__":
    main()
