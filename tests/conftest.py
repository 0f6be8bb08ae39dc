"""Shared fixtures: tiny random models and checkpoints written as real files."""
import pytest
import torch

from lumix_engine.tiny_random import random_adapters, random_bfl_flux, write_adapters
from tests.factories import TEST_FLUX, adapters_roundtrip

# Tests compare against float64 references; keep CPU thread count fixed so timings of
# the 2-core CI machine are not oversubscribed by nested parallelism.
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def checkpoint_file(tmp_path_factory):
    """A valid LumiX checkpoint (rank 3, every block of TEST_FLUX) as a safetensors file."""
    return write_adapters(tmp_path_factory.mktemp("good") / "lumix.safetensors", random_adapters(TEST_FLUX, rank=3))


@pytest.fixture(scope="session")
def flux64():
    """TEST_FLUX with random weights in float64, for comparisons with the plain formulas."""
    return random_bfl_flux(TEST_FLUX, dtype=torch.float64)


@pytest.fixture(scope="session")
def adapters64(tmp_path_factory):
    """Random adapters for TEST_FLUX, through a real float64 file and the real loader."""
    return adapters_roundtrip(tmp_path_factory.mktemp("ckpt64"), random_adapters(TEST_FLUX), dtype=torch.float64)
