"""Benchmark of the PixelCNN quality bars (issue 4) and calibration of the hw2 NLL band.

Run from the repository root::

    uv run python benchmarks/pixelcnn.py            # everything (a few minutes on 2 cores)
    uv run python benchmarks/pixelcnn.py --skip-calibration

What it measures, on embedded MNIST binarized at 0.5 (4,000 train / 1,000 test digits):

1. The reference :class:`gradelib.pixelcnn.PixelCNN` (default config) trained with
   :func:`gradelib.pixelcnn.train_pixelcnn` for ``--epochs`` epochs (the chapter's number):
   training wall time per epoch (evaluation excluded) and the exact test NLL after each
   epoch. Bar: test NLL <= 80 nats within 120 s of training.
2. Sampling 16 images of 28x28 with :func:`gradelib.pixelcnn.sample` (784 network
   evaluations). Bar: <= 20 s.
3. Calibration of ``gradelib.checks.hw2_pixelcnn.TEST_NLL_BAND``: the test NLL after the
   notebook's training (``NOTEBOOK_EPOCHS`` epochs of ``NOTEBOOK_CONFIG``), of a weaker but
   correct PixelCNN (16 channels, 2 type-B layers, same epochs) and of the best model that
   ignores the context (independent pixels with the training frequencies).

The figures are printed and written to ``benchmarks/results/pixelcnn.json``, with the
machine's load average so that timings measured on a busy machine can be recognised.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch

from gradelib import pixelcnn as pc
from gradelib.checks import hw2_pixelcnn as hw2
from gradelib.data import load_mnist
from gradelib.device import get_device, make_generator, seed_everything

NLL_BAR_NATS = 80.0
TRAIN_BAR_SECONDS = 120.0
SAMPLE_BAR_SECONDS = 20.0
CHAPTER_EPOCHS = 3  # the chapter's EPOCHS
RESULTS = Path(__file__).parent / "results" / "pixelcnn.json"


def train_and_track(config: pc.PixelCNNConfig, epochs: int, train: torch.Tensor,
                    test: torch.Tensor) -> tuple[pc.PixelCNN, list[dict]]:
    """Train from seed 0; after each epoch record training seconds so far and test NLL."""
    device = get_device()
    seed_everything(0)
    model = pc.PixelCNN(config).to(device)
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


def independent_pixels_nll(train: torch.Tensor, test: torch.Tensor) -> float:
    """Test NLL of independent Bernoulli pixels with the training frequencies (clamped)."""
    p = train.mean(dim=0, keepdim=True).clamp(1e-3, 1 - 1e-3)  # (1, 1, 28, 28)
    logits = torch.logit(p).expand_as(test)
    return pc.bernoulli_nll(logits, test).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=CHAPTER_EPOCHS)
    parser.add_argument("--skip-calibration", action="store_true")
    args = parser.parse_args()

    train, _ = load_mnist("train", binarized=True)
    test, _ = load_mnist("test", binarized=True)
    result: dict = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "device": str(get_device()),
                    "load_average_at_start": [round(v, 2) for v in os.getloadavg()]},
        "data": "embedded MNIST, binarized at 0.5, 4000 train / 1000 test",
    }

    print(f"reference PixelCNN {pc.PixelCNNConfig()}, {args.epochs} epochs", flush=True)
    model, records = train_and_track(pc.PixelCNNConfig(), args.epochs, train, test)
    reached = [r for r in records if r["test_nll_nats"] <= NLL_BAR_NATS]
    result["training"] = {
        "config": pc.PixelCNNConfig().__dict__, "epochs": records,
        "bar": f"test NLL <= {NLL_BAR_NATS} nats within {TRAIN_BAR_SECONDS} s",
        "first_epoch_under_bar": reached[0]["epoch"] if reached else None,
        "seconds_to_bar": reached[0]["train_seconds"] if reached else None,
        "passes": bool(reached) and reached[0]["train_seconds"] <= TRAIN_BAR_SECONDS,
    }

    start = time.perf_counter()
    samples = pc.sample(model, 16, 28, 28, make_generator(0))
    sample_seconds = time.perf_counter() - start
    result["sampling"] = {"images": 16, "network_evaluations": 784,
                          "seconds": round(sample_seconds, 2),
                          "bar_seconds": SAMPLE_BAR_SECONDS,
                          "passes": sample_seconds <= SAMPLE_BAR_SECONDS,
                          "mean_ink": round(samples.mean().item(), 4)}
    print(f"sampling 16 images: {sample_seconds:.1f} s", flush=True)

    if not args.skip_calibration:
        calibration = {"band": hw2.TEST_NLL_BAND, "notebook_epochs": hw2.NOTEBOOK_EPOCHS}
        if hw2.NOTEBOOK_EPOCHS <= len(records) and hw2.NOTEBOOK_CONFIG == pc.PixelCNNConfig():
            calibration["reference"] = records[hw2.NOTEBOOK_EPOCHS - 1]["test_nll_nats"]
        else:
            _, ref_records = train_and_track(hw2.NOTEBOOK_CONFIG, hw2.NOTEBOOK_EPOCHS, train, test)
            calibration["reference"] = ref_records[-1]["test_nll_nats"]
        weaker = pc.PixelCNNConfig(hidden_channels=16, num_layers=2)
        print(f"weaker PixelCNN {weaker}", flush=True)
        _, weak_records = train_and_track(weaker, hw2.NOTEBOOK_EPOCHS, train, test)
        calibration["weaker_16ch_2layers"] = weak_records[-1]["test_nll_nats"]
        calibration["independent_pixels"] = round(independent_pixels_nll(train, test), 3)
        calibration["fair_coins"] = round(784 * math.log(2), 3)
        result["hw2_band_calibration"] = calibration
        print(f"calibration: {calibration}", flush=True)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
