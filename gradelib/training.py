"""The training plumbing every model family shares: device, progress bar, the step clock.

The adversarial training loops of :mod:`gradelib.gan` and :mod:`gradelib.wgan` each report
how long training took, leaving out the time spent in an optional ``monitor`` callback (a
metric evaluated every few steps for a figure), so that the chapters' timings compare
methods, not monitors. That bookkeeping lives here once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

__all__ = ["device_of", "progress", "TrainingClock", "evaluating", "monitor_step"]


def device_of(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter or buffer (CPU for a module with neither)."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return torch.device("cpu")


def progress(iterable: Iterable, enabled: bool, desc: str):
    """``tqdm.auto`` over ``iterable`` (a widget in Jupyter), or the iterable itself if not
    ``enabled``; the bar disappears when done."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, disable=None if enabled else True, leave=False)


class TrainingClock:
    """Wall-clock seconds of training, leaving out the time spent in :meth:`paused` blocks."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.excluded = 0.0

    @property
    def seconds(self) -> float:
        """Training seconds so far."""
        return time.perf_counter() - self.start - self.excluded

    @contextlib.contextmanager
    def paused(self) -> Iterator[float]:
        """A block whose time is not training time; yields the training seconds at its start."""
        began = time.perf_counter()
        try:
            yield began - self.start - self.excluded
        finally:
            self.excluded += time.perf_counter() - began


@contextlib.contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode (and switch autograd off) for the block, then back in
    training mode."""
    for module in modules:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module in modules:
            module.train()


def monitor_step(step: int, steps: int, monitor: Callable[[int, float], object] | None, every: int,
                 clock: TrainingClock, history: dict, *modules: nn.Module) -> None:
    """Call ``monitor(step, training_seconds)`` every ``every`` steps and at the last step,
    with ``modules`` in eval mode and the clock paused; append its record to
    ``history["monitor"]``."""
    if monitor is None or not ((every and step % every == 0) or step == steps):
        return
    with clock.paused() as seconds, evaluating(*modules):
        history["monitor"].append(monitor(step, seconds))
