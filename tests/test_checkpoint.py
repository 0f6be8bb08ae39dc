"""Every bad checkpoint gets an error that names the problem and the fix."""
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

from lumix_engine.errors import CheckpointError, ModelMismatchError
from lumix_engine.method.checkpoint import inspect_checkpoint, load_adapters
from lumix_engine.method.patch import block_patches, check_model
from lumix_engine.tiny_random import random_adapters, random_bfl_flux, write_adapters
from tests.factories import TEST_FLUX


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_adapters(tmp_path_factory.mktemp("good") / "lumix.safetensors", random_adapters(TEST_FLUX, rank=3))


def test_valid_checkpoint_loads_with_inferred_shape(good):
    adapters = load_adapters(good)
    assert (adapters.num_maps, adapters.rank, adapters.hidden_size) == (5, 3, TEST_FLUX.hidden_size)
    assert adapters.double_ids == [0, 1] and adapters.single_ids == [0, 1, 2]
    reference = random_adapters(TEST_FLUX, rank=3)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(adapters.state_dict()[name], tensor)


@pytest.mark.parametrize("prefix", ["diffusion_model.", "model.diffusion_model.", "transformer."])
def test_publisher_prefixes_are_accepted(tmp_path, prefix):
    path = write_adapters(tmp_path / "p.safetensors", random_adapters(TEST_FLUX, rank=2), prefix=prefix)
    assert inspect_checkpoint(path).prefix == prefix
    assert load_adapters(path).rank == 2


def test_partial_block_set_is_read_from_the_file(tmp_path):
    path = write_adapters(tmp_path / "p.safetensors", random_adapters(TEST_FLUX, double_ids=[1], single_ids=[0, 2]))
    adapters = load_adapters(path)
    assert adapters.double_ids == [1] and adapters.single_ids == [0, 2]


def corrupt(tmp_path, good, edit):
    from safetensors.torch import load_file
    state = load_file(str(good))
    edit(state)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    return path


def test_missing_keys(tmp_path, good):
    path = corrupt(tmp_path, good, lambda s: s.pop("single_blocks.1.processor.kv_tt_lora.G2"))
    with pytest.raises(CheckpointError, match=r"single_blocks\.1\.processor\.kv_tt_lora is missing G2"):
        load_adapters(path)


def test_missing_half_of_a_block(tmp_path, good):
    def drop(s):
        for g in ("G1", "G2", "G3"):
            s.pop(f"double_blocks.0.processor.proj_tt_lora.{g}")
    with pytest.raises(CheckpointError, match="double_blocks.0 has no proj_tt_lora"):
        load_adapters(corrupt(tmp_path, good, drop))


def test_wrong_shape(tmp_path, good):
    path = corrupt(tmp_path, good, lambda s: s.update({"double_blocks.1.processor.kv_tt_lora.G3": torch.randn(5, 100, 3)}))
    with pytest.raises(CheckpointError, match=r"kv_tt_lora\.G3 has shape \[5, 100, 3\], expected \[5, 128, 3\]"):
        load_adapters(path)


def test_rank_differs_between_blocks(tmp_path, good):
    def change(s):
        s["single_blocks.2.processor.proj_tt_lora.G2"] = torch.randn(5, TEST_FLUX.hidden_size, 4, 4)
    with pytest.raises(CheckpointError, match="rank 4 differs from rank 3"):
        load_adapters(corrupt(tmp_path, good, change))


def test_wrong_number_of_maps(tmp_path):
    adapters = random_adapters(TEST_FLUX, rank=2)
    state = {k: v[:3, :3] if k.endswith("G1") else v[:3] for k, v in adapters.state_dict().items()}
    path = tmp_path / "m3.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(CheckpointError, match="trained for 3 maps per scene, LumiX uses 5"):
        load_adapters(path)


def test_wrong_keys_named(tmp_path):
    path = tmp_path / "flux.safetensors"
    save_file({"double_blocks.0.img_attn.qkv.weight": torch.randn(4, 4), "img_in.weight": torch.randn(2, 2)}, str(path))
    with pytest.raises(CheckpointError, match=r"not a LumiX checkpoint.*img_in\.weight|not a LumiX checkpoint.*img_attn"):
        load_adapters(path)


def test_nan_values_are_refused_naming_the_tensor(tmp_path, good):
    def poison(s):
        s["double_blocks.0.processor.kv_tt_lora.G1"][0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"double_blocks\.0\.processor\.kv_tt_lora\.G1 holds 1 NaN"):
        load_adapters(corrupt(tmp_path, good, poison))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_adapters(tmp_path / "nope.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_adapters(tmp_path / "empty.safetensors")


@pytest.mark.parametrize("keep", [3, 8, 20, 200, -50, -1])
def test_truncated_files(tmp_path, good, keep):
    data = good.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:keep] if keep > 0 else data[:len(data) + keep])
    with pytest.raises(CheckpointError, match="truncated|corrupt"):
        load_adapters(path)


def test_corrupt_header(tmp_path, good):
    data = bytearray(good.read_bytes())
    data[8:12] = b"\xff\xfe{["
    path = tmp_path / "garbled.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        load_adapters(path)
    path.write_bytes(struct.pack("<Q", 10**15) + b"{}")
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors header"):
        load_adapters(path)


@pytest.mark.parametrize("name", ["lumix.pt", "lumix.ckpt", "renamed.safetensors"])
def test_pickle_files_are_never_unpickled(tmp_path, name):
    marker = tmp_path / "was_unpickled"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / name
    path.write_bytes(pickle.dumps({"weights": Exploit()}, protocol=4))
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_adapters(path)
    assert not marker.exists()


def test_width_mismatch_with_the_model_names_both_sides(good):
    from lumix_engine.flux.model import FluxConfig
    wide = random_bfl_flux(FluxConfig(vec_in_dim=32, context_in_dim=48, hidden_size=96, num_heads=4, depth=2,
                                  depth_single_blocks=3, axes_dim=[4, 10, 10]))
    with pytest.raises(ModelMismatchError, match="hidden size 64.*hidden size 96"):
        block_patches(wide, load_adapters(good))


def test_block_count_mismatch_names_the_blocks(good):
    from dataclasses import replace
    short = random_bfl_flux(replace(TEST_FLUX, depth_single_blocks=2))
    with pytest.raises(ModelMismatchError, match=r"single_blocks \[2\].*only 2 single_blocks"):
        check_model(short, load_adapters(good))


def test_schnell_and_non_flux_models_are_refused(good):
    from dataclasses import replace
    schnell = random_bfl_flux(replace(TEST_FLUX, guidance_embed=False))
    with pytest.raises(ModelMismatchError, match="schnell"):
        check_model(schnell, load_adapters(good))
    with pytest.raises(ModelMismatchError, match="needs a FLUX.1-dev transformer"):
        check_model(torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3)), load_adapters(good))


def test_adapters_survive_deepcopy_as_one_object(good):
    import copy
    adapters = load_adapters(good)
    patches = block_patches(random_bfl_flux(TEST_FLUX), adapters)
    options = {"patches_replace": {"dit": patches}}
    copied = copy.deepcopy(options)
    assert copied["patches_replace"]["dit"][("double_block", 0)].adapters is adapters


def test_adapter_cache_loads_each_file_once_and_reloads_changed_files(tmp_path):
    import os

    from lumix_engine.method.checkpoint import AdapterCache
    path = write_adapters(tmp_path / "lumix.safetensors", random_adapters(TEST_FLUX, rank=2))
    cache = AdapterCache()
    first = cache.load(path)
    assert cache.load(path) is first
    write_adapters(path, random_adapters(TEST_FLUX, rank=3))
    os.utime(path, ns=(1, 10**18))
    assert cache.load(path).rank == 3


def test_split_and_join_maps_round_trip():
    from lumix_engine.errors import BatchLayoutError
    from lumix_engine.modalities import join_maps, split_maps
    images = torch.randn(10, 4, 6, 3)
    maps = split_maps(images)
    assert list(maps) == ["albedo", "irradiance", "color", "depth", "normal"]
    assert torch.equal(maps["color"][1], images[7])
    assert torch.equal(join_maps(maps), images)
    with pytest.raises(BatchLayoutError, match="multiple of 5"):
        split_maps(torch.randn(6, 4, 6, 3))
