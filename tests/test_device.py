"""gradelib.device: device choice and seeding."""

import pytest
import torch

from gradelib.device import get_device, make_generator, seed_everything


def test_get_device_prefers_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device().type == expected
    assert get_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda.is_available"):
            get_device("cuda")


def test_make_generator_same_seed_same_numbers():
    a = torch.randn(5, generator=make_generator(7))
    b = torch.randn(5, generator=make_generator(7))
    c = torch.randn(5, generator=make_generator(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(TypeError, match="seed must be an int, got float"):
        make_generator(1.5)


def test_seed_everything_makes_initialisation_reproducible():
    seed_everything(3)
    first = torch.nn.Linear(4, 2).weight.detach().clone()
    seed_everything(3)
    assert torch.equal(first, torch.nn.Linear(4, 2).weight)
