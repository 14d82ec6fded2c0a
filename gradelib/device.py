"""Device selection and seeding: CUDA when present, else CPU; randomness passed in explicitly."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["get_device", "make_generator", "seed_everything"]


def get_device(prefer: str | None = None) -> torch.device:
    """Return the device to train on: ``prefer`` if given, else CUDA when available, else CPU.

    Raises:
        ValueError: ``prefer`` names CUDA but no CUDA device is available.
    """
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"prefer={prefer!r} but torch.cuda.is_available() is False")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``: same seed, same numbers.

    Raises:
        TypeError: ``seed`` is not an int.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(seed)
    return generator


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and torch's global generators, and return a CPU generator.

    Graded functions never read global random state; this is for notebooks, so that weight
    initialisation (which uses torch's global generator) is reproducible too.
    """
    gen = make_generator(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return gen
