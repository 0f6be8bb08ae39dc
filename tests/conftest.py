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


@pytest.fixture(scope="session")
def tiny_model_config(tmp_path_factory):
    """Tiny random models written as real files, and a lumix.toml naming them (paths relative
    to the file, as a user writes it)."""
    from lumix_engine.apps.loading import quiet_libraries
    from lumix_engine.tiny_random import write_tiny_models
    folder = tmp_path_factory.mktemp("tiny_models")
    with quiet_libraries():
        write_tiny_models(folder, seed=0)
    config = folder / "lumix.toml"
    config.write_text('flux_dir = "FLUX.1-dev"\nlumix = "lumix.safetensors"\n')
    return config
