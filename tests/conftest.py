import pytest
import torch

# Tests compare against float64 references; keep CPU thread count fixed so timings of
# the 2-core CI machine are not oversubscribed by nested parallelism.
torch.set_num_threads(2)


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
