"""Every bad checkpoint gets an error that names the problem and the fix."""
import copy
import json
import pickle
import struct
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file

from lumix_engine.errors import BatchLayoutError, CheckpointError, ModelMismatchError
from lumix_engine.method.checkpoint import AdapterCache, inspect_checkpoint, load_adapters
from lumix_engine.method.patch import block_patches, check_model
from lumix_engine.modalities import join_maps, split_maps
from lumix_engine.tiny_random import random_adapters, random_bfl_flux, write_adapters
from tests.factories import TEST_FLUX


def test_valid_checkpoint_loads_with_inferred_shape(checkpoint_file):
    adapters = load_adapters(checkpoint_file)
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


def corrupt(tmp_path, checkpoint_file, edit):
    from safetensors.torch import load_file
    state = load_file(str(checkpoint_file))
    edit(state)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    return path


def test_missing_keys(tmp_path, checkpoint_file):
    path = corrupt(tmp_path, checkpoint_file, lambda s: s.pop("single_blocks.1.processor.kv_tt_lora.G2"))
    with pytest.raises(CheckpointError, match=r"single_blocks\.1\.processor\.kv_tt_lora is missing G2"):
        load_adapters(path)


def test_missing_half_of_a_block(tmp_path, checkpoint_file):
    def drop(s):
        for g in ("G1", "G2", "G3"):
            s.pop(f"double_blocks.0.processor.proj_tt_lora.{g}")
    with pytest.raises(CheckpointError, match="double_blocks.0 has no proj_tt_lora"):
        load_adapters(corrupt(tmp_path, checkpoint_file, drop))


def test_wrong_shape(tmp_path, checkpoint_file):
    path = corrupt(tmp_path, checkpoint_file, lambda s: s.update({"double_blocks.1.processor.kv_tt_lora.G3": torch.randn(5, 100, 3)}))
    with pytest.raises(CheckpointError, match=r"kv_tt_lora\.G3 has shape \[5, 100, 3\], expected \[5, 128, 3\]"):
        load_adapters(path)


def test_rank_differs_between_blocks(tmp_path, checkpoint_file):
    def change(s):
        s["single_blocks.2.processor.proj_tt_lora.G2"] = torch.randn(5, TEST_FLUX.hidden_size, 4, 4)
    with pytest.raises(CheckpointError, match="rank 4 differs from rank 3"):
        load_adapters(corrupt(tmp_path, checkpoint_file, change))


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


def test_nan_values_are_refused_naming_the_tensor(tmp_path, checkpoint_file):
    def poison(s):
        s["double_blocks.0.processor.kv_tt_lora.G1"][0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"double_blocks\.0\.processor\.kv_tt_lora\.G1 holds 1 NaN"):
        load_adapters(corrupt(tmp_path, checkpoint_file, poison))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_adapters(tmp_path / "nope.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_adapters(tmp_path / "empty.safetensors")


@pytest.mark.parametrize("keep", [3, 8, 20, 200, -50, -1])
def test_truncated_files(tmp_path, checkpoint_file, keep):
    data = checkpoint_file.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:keep] if keep > 0 else data[:len(data) + keep])
    # A cut inside the tensor data (an interrupted download) is named as such.
    with pytest.raises(CheckpointError, match="truncated|corrupt" if keep > 0 else "cut.safetensors is truncated"):
        load_adapters(path)


def test_corrupt_header(tmp_path, checkpoint_file):
    data = bytearray(checkpoint_file.read_bytes())
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


def test_width_mismatch_with_the_model_names_both_sides(checkpoint_file):
    from lumix_engine.flux.model import FluxConfig
    wide = random_bfl_flux(FluxConfig(vec_in_dim=32, context_in_dim=48, hidden_size=96, num_heads=4, depth=2,
                                  depth_single_blocks=3, axes_dim=[4, 10, 10]))
    with pytest.raises(ModelMismatchError, match="hidden size 64.*hidden size 96"):
        block_patches(wide, load_adapters(checkpoint_file))


def test_block_count_mismatch_names_the_blocks(checkpoint_file):
    short = random_bfl_flux(replace(TEST_FLUX, depth_single_blocks=2))
    with pytest.raises(ModelMismatchError, match=r"single_blocks \[2\].*only 2 single_blocks"):
        check_model(short, load_adapters(checkpoint_file))


def test_schnell_and_non_flux_models_are_refused(checkpoint_file):
    schnell = random_bfl_flux(replace(TEST_FLUX, guidance_embed=False))
    with pytest.raises(ModelMismatchError, match="schnell"):
        check_model(schnell, load_adapters(checkpoint_file))
    with pytest.raises(ModelMismatchError, match="needs a FLUX.1-dev transformer"):
        check_model(torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3)), load_adapters(checkpoint_file))


def test_adapters_survive_deepcopy_as_one_object(checkpoint_file):
    adapters = load_adapters(checkpoint_file)
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
    images = torch.randn(10, 4, 6, 3)
    maps = split_maps(images)
    assert list(maps) == ["albedo", "irradiance", "color", "depth", "normal"]
    assert torch.equal(maps["color"][1], images[7])
    assert torch.equal(join_maps(maps), images)
    with pytest.raises(BatchLayoutError, match="multiple of 5"):
        split_maps(torch.randn(6, 4, 6, 3))


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_inf_values_are_refused_naming_the_tensor(tmp_path, checkpoint_file, value):
    state = load_file(str(checkpoint_file))
    state["single_blocks.2.processor.proj_tt_lora.G3"][1, 5, 0] = value
    state["single_blocks.2.processor.proj_tt_lora.G3"][2, 7, 1] = value
    path = tmp_path / "inf.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"single_blocks\.2\.processor\.proj_tt_lora\.G3 holds 2 NaN or Inf"):
        load_adapters(path)


def _rewrite_header(checkpoint_file, tmp_path, edit):
    data = checkpoint_file.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path = tmp_path / "edited.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + length:])
    return path


FIRST = "double_blocks.0.processor.kv_tt_lora.G1"


@pytest.mark.parametrize("field, value", [
    ("dtype", ["F32"]),          # unhashable: used to escape as TypeError (fixed)
    ("dtype", {"F32": 1}),
    ("shape", [True, 5, 2]),     # bool passed as int 1 ("True maps") before the fix
    ("shape", "5,5,2"),
    ("data_offsets", [0.0, 200.0]),
    ("data_offsets", [0]),
])
def test_structurally_corrupt_header_entries_are_clean_errors(tmp_path, checkpoint_file, field, value):
    # safetensors' own parser rejects these; its message is quoted inside ours.
    path = _rewrite_header(checkpoint_file, tmp_path, lambda h: h[FIRST].__setitem__(field, value))
    with pytest.raises(CheckpointError, match=r"edited\.safetensors has a corrupt safetensors header \(safetensors: "
                                              r".+\)\. Download lumix\.safetensors again"):
        load_adapters(path)


def test_absurdly_nested_header_is_a_clean_error(tmp_path):
    raw = b"[" * 100_000 + b"]" * 100_000   # used to escape as RecursionError (fixed)
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        load_adapters(path)


def test_metadata_that_safetensors_rejects_is_a_clean_error(tmp_path, checkpoint_file):
    path = _rewrite_header(checkpoint_file, tmp_path, lambda h: h.__setitem__("__metadata__", {"format": 1}))
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        load_adapters(path)


@pytest.mark.parametrize("name", ["../../x", "../../x.safetensors", "../lumix/../../etc/passwd"])
def test_names_outside_the_folder_give_not_found_at_engine_level(tmp_path, name):
    """The engine takes a path; the ComfyUI loader only offers names from models/lumix (the
    real-ComfyUI test checks that '../../x' is refused by validation before it gets here)."""
    (tmp_path / "models" / "lumix").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="not found"):
        AdapterCache().load(tmp_path / "models" / "lumix" / name)


def test_a_directory_is_refused(tmp_path):
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(CheckpointError, match="is not a file"):
        load_adapters(tmp_path / "dir.safetensors")


def test_integer_tensors_are_refused_naming_the_dtype(tmp_path, checkpoint_file):
    """A well-formed safetensors file (safe_open reads it) whose tensor is not floating point."""
    state = load_file(str(checkpoint_file))
    state[FIRST] = state[FIRST].to(torch.int32)
    path = tmp_path / "ints.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=f"tensor '{FIRST}' has dtype I32; LumiX adapters are floating point"):
        load_adapters(path)
