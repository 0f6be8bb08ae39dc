"""Reliability of the engine: bad input at the engine level, every case a clear error.

Complements tests/test_checkpoint.py (missing, empty, truncated, garbled header, wrong keys,
shapes, M, rank, NaN, pickles, width / block-count mismatch, schnell): this file adds Inf,
structurally corrupt header entries, names outside the models folder, non-FLUX models,
FLUX variants, replacing LumiX patches on an already patched MODEL, sampler settings,
negative prompts of a different token length, and split / recompose inputs. The
ComfyUI-level half (real LumiXLoader / LumiXSampler / SplitIntrinsics, interruption, long
runs, API load) is tests/comfyui/test_reliability.py; fuzzing is test_reliability_fuzz.py.
Results table: tests/RELIABILITY.md.
"""
import copy
import json
import struct
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lumix_engine.errors import BatchLayoutError, CheckpointError, InputError, ModelMismatchError
from lumix_engine.intrinsics import recompose
from lumix_engine.method.checkpoint import AdapterCache, load_adapters
from lumix_engine.method.patch import block_patches, check_model, lumix_patches_in, without_lumix
from lumix_engine.method.sampling import GivenMaps, check_size, check_steps, schedule
from lumix_engine.modalities import join_maps, split_maps
from lumix_engine.tiny_random import random_adapters, random_bfl_flux, write_adapters
from tests.factories import TEST_FLUX


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_adapters(tmp_path_factory.mktemp("good") / "lumix.safetensors", random_adapters(TEST_FLUX, rank=2))


@pytest.fixture(scope="module")
def adapters(good):
    return load_adapters(good)


# ---------------------------------------------------------------- checkpoint files

@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_inf_values_are_refused_naming_the_tensor(tmp_path, good, value):
    state = load_file(str(good))
    state["single_blocks.2.processor.proj_tt_lora.G3"][1, 5, 0] = value
    state["single_blocks.2.processor.proj_tt_lora.G3"][2, 7, 1] = value
    path = tmp_path / "inf.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"single_blocks\.2\.processor\.proj_tt_lora\.G3 holds 2 NaN or Inf"):
        load_adapters(path)


def _rewrite_header(good, tmp_path, edit):
    data = good.read_bytes()
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
def test_structurally_corrupt_header_entries_are_clean_errors(tmp_path, good, field, value):
    path = _rewrite_header(good, tmp_path, lambda h: h[FIRST].__setitem__(field, value))
    with pytest.raises(CheckpointError, match=f"corrupt header entry for tensor '{FIRST}'"):
        load_adapters(path)


def test_absurdly_nested_header_is_a_clean_error(tmp_path):
    raw = b"[" * 100_000 + b"]" * 100_000   # used to escape as RecursionError (fixed)
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        load_adapters(path)


def test_metadata_that_safetensors_rejects_is_a_clean_error(tmp_path, good):
    path = _rewrite_header(good, tmp_path, lambda h: h.__setitem__("__metadata__", {"format": 1}))
    with pytest.raises(CheckpointError, match="could not be read as safetensors"):
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


# ---------------------------------------------------------------- models

class TinySDUNet(nn.Module):
    """SD1.5-shaped names (input_blocks / middle_block / output_blocks, time_embed)."""

    def __init__(self, sdxl: bool = False):
        super().__init__()
        self.time_embed = nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.Linear(16, 16))
        if sdxl:
            self.label_emb = nn.Sequential(nn.Linear(12, 16))
        self.input_blocks = nn.ModuleList([nn.Conv2d(4, 8, 3, padding=1)])
        self.middle_block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1))
        self.output_blocks = nn.ModuleList([nn.Conv2d(8, 4, 3, padding=1)])


class DiffusersUNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.down_blocks = nn.ModuleList([nn.Conv2d(4, 4, 1)])
        self.up_blocks = nn.ModuleList([nn.Conv2d(4, 4, 1)])


class FluxLookalike(nn.Module):
    """Has double_blocks / single_blocks attributes but no FLUX block inside (e.g. a wrapper)."""

    def __init__(self):
        super().__init__()
        self.double_blocks = nn.ModuleList([nn.Linear(4, 4)])
        self.single_blocks = nn.ModuleList([nn.Linear(4, 4)])


@pytest.mark.parametrize("model", [TinySDUNet(), TinySDUNet(sdxl=True), DiffusersUNetLike(), FluxLookalike()],
                         ids=["sd15", "sdxl", "diffusers-unet", "flux-lookalike"])
def test_non_flux_models_are_refused_naming_the_class(adapters, model):
    with pytest.raises(ModelMismatchError, match=rf"got {type(model).__name__}.*SD1\.5/SDXL.*flux1-dev"):
        block_patches(model, adapters)


def test_schnell_is_refused_through_block_patches_too(adapters):
    schnell = random_bfl_flux(replace(TEST_FLUX, guidance_embed=False))
    with pytest.raises(ModelMismatchError, match="no guidance embedding.*schnell.*flux1-dev"):
        block_patches(schnell, adapters)


def test_flux_variant_with_more_blocks_than_the_checkpoint(adapters):
    """A deeper FLUX than the checkpoint was made for: the checkpoint's blocks get adapters,
    the extra blocks get QBA only (qba=True) or are left alone (qba=False). Documented, not
    refused: the published file covers all 57 FLUX.1-dev blocks, so this only happens with
    partial checkpoints."""
    deep = random_bfl_flux(replace(TEST_FLUX, depth=4, depth_single_blocks=5))
    with_qba = block_patches(deep, adapters, qba=True)
    assert len(with_qba) == 4 + 5
    assert with_qba[("double_block", 3)].block_adapters.kv is None
    without_qba = block_patches(deep, adapters, qba=False)
    assert sorted(without_qba) == [("double_block", 0), ("double_block", 1),
                                   ("single_block", 0), ("single_block", 1), ("single_block", 2)]


def test_flux_variant_with_fewer_double_blocks_names_them(adapters):
    shallow = random_bfl_flux(replace(TEST_FLUX, depth=1))
    with pytest.raises(ModelMismatchError, match=r"double_blocks \[1\].*only 1 double_blocks"):
        check_model(shallow, adapters)


def test_flux_variant_with_other_heads_is_refused(adapters):
    # 3 heads do not divide the width 64 used by the checkpoint's k/v split.
    with pytest.raises(ModelMismatchError, match="hidden size"):
        check_model(random_bfl_flux(replace(TEST_FLUX, hidden_size=48, num_heads=3, axes_dim=[4, 6, 6])), adapters)


# ---------------------------------------------------------------- a MODEL patched twice

def _inputs(batch=5, tokens=7, seed=3):
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(batch, TEST_FLUX.in_channels // 4, 4, 4, generator=g)
    return (latent, torch.rand(batch, generator=g), torch.randn(batch, tokens, TEST_FLUX.context_in_dim, generator=g),
            torch.randn(batch, TEST_FLUX.vec_in_dim, generator=g), torch.full((batch,), 3.5))


def _repatch(options: dict, model, adapters, **settings) -> dict:
    """What nodes/loader.patch_model does to a clone's transformer_options."""
    options = copy.deepcopy(options)
    options["patches_replace"] = without_lumix(options.get("patches_replace"))
    options["patches_replace"].setdefault("dit", {}).update(block_patches(model, adapters, **settings))
    return options


def test_second_lumix_loader_replaces_the_first_cleanly(adapters, tmp_path):
    model = random_bfl_flux(TEST_FLUX)
    other = load_adapters(write_adapters(tmp_path / "other.safetensors", random_adapters(TEST_FLUX, rank=3, seed=9)))
    class ForeignPatch:  # another pack's patch on a block LumiX does not touch stays
        def __deepcopy__(self, memo):
            return self
    foreign = ForeignPatch()
    base = {"patches_replace": {"dit": {("double_block", 99): foreign}}}
    first = _repatch(base, model, adapters, strength=1.0, qba=True)
    second = _repatch(first, model, other, strength=0.5, qba=False)
    fresh = _repatch(base, model, other, strength=0.5, qba=False)

    patches = lumix_patches_in(second["patches_replace"])
    assert len(patches) == 5 and all(p.adapters is other for p in patches)
    assert all(p.block_adapters.strength == 0.5 and p.block_adapters.qba is False for p in patches)
    assert second["patches_replace"]["dit"][("double_block", 99)] is foreign
    # qba=False patches only the adapted blocks, so none of the first loader's QBA-only
    # patches may survive either: the key sets equal a single loader's.
    assert set(second["patches_replace"]["dit"]) == set(fresh["patches_replace"]["dit"])

    del second["patches_replace"]["dit"][("double_block", 99)], fresh["patches_replace"]["dit"][("double_block", 99)]
    with torch.no_grad():
        twice = model.forward_latent(*_inputs(), transformer_options=second)
        once = model.forward_latent(*_inputs(), transformer_options=fresh)
        first_only = model.forward_latent(*_inputs(), transformer_options={
            "patches_replace": without_lumix(first["patches_replace"]) | {"dit": block_patches(model, adapters)}})
    assert torch.equal(twice, once)
    assert (twice - first_only).abs().max() > 1e-3


def test_without_lumix_leaves_the_input_untouched(adapters):
    model = random_bfl_flux(TEST_FLUX)
    replace_ = {"dit": block_patches(model, adapters)}
    stripped = without_lumix(replace_)
    assert stripped["dit"] == {} and len(replace_["dit"]) == 5
    assert without_lumix(None) == {} and without_lumix({}) == {}


# ---------------------------------------------------------------- sampler settings

@pytest.mark.parametrize("width, height, message", [
    (72, 64, "width 72 is not a positive multiple of 16.*use 64"),
    (64, 8, "height 8 is not a positive multiple of 16.*use 16"),
    (0, 64, "width 0 is not a positive multiple of 16"),
    (-16, 64, "width -16 is not a positive multiple of 16"),
    (4112, 64, "width 4112 exceeds 4096"),
])
def test_sizes_are_checked(width, height, message):
    with pytest.raises(InputError, match=message):
        check_size(width, height)


@pytest.mark.parametrize("steps", [0, -1, -50])
def test_zero_or_negative_steps_are_refused(steps):
    with pytest.raises(InputError, match=f"steps must be at least 1, got {steps}"):
        check_steps(steps)
    with pytest.raises(InputError, match="steps must be at least 1"):
        schedule(steps, 64, 64)


def test_given_maps_of_different_sizes_are_refused():
    with pytest.raises(InputError, match="different latent shapes"):
        GivenMaps({"color": torch.zeros(1, 16, 8, 8), "depth": torch.zeros(1, 16, 6, 8)})


def test_given_map_latent_of_another_size_than_the_sample_is_refused():
    given = GivenMaps({"color": torch.zeros(1, 16, 6, 8)})
    with pytest.raises(InputError, match=r"the given color latent is \(16, 6, 8\).*\(16, 8, 8\).*resize"):
        given.hold(torch.zeros(5, 16, 8, 8))


def test_given_map_batch_that_disagrees_with_the_scene_count_is_refused():
    given = GivenMaps({"color": torch.zeros(3, 16, 8, 8)})
    with pytest.raises(InputError, match=r"3 given image\(s\) per map but 2 scene\(s\)"):
        given.hold(torch.zeros(10, 16, 8, 8))
    with pytest.raises(InputError, match="1 scene"):
        given.hold(torch.zeros(10, 16, 8, 8), chunks=2)


def test_all_five_maps_given_is_refused():
    with pytest.raises(InputError, match="nothing to generate"):
        GivenMaps({name: torch.zeros(1, 16, 4, 4) for name in ("albedo", "irradiance", "color", "depth", "normal")})


def test_negative_prompt_of_another_token_length(adapters):
    """ComfyUI batches cond and uncond into one forward when their text lengths match and
    runs them as separate forwards when they differ. LumiX groups every 5 batch entries, so
    a scene's velocity must not depend on what else shares its forward: a chunk run alone
    equals the same chunk inside a batched forward, for either token length."""
    model = random_bfl_flux(TEST_FLUX)
    options = {"patches_replace": {"dit": block_patches(model, adapters)}}
    pos = _inputs(batch=5, tokens=8, seed=1)
    neg_same = _inputs(batch=5, tokens=8, seed=2)
    neg_long = _inputs(batch=5, tokens=13, seed=2)
    with torch.no_grad():
        alone_pos = model.forward_latent(*pos, transformer_options=options)
        alone_neg = model.forward_latent(*neg_same, transformer_options=options)
        batched = model.forward_latent(*(torch.cat(pair) for pair in zip(neg_same, pos)), transformer_options=options)
        long_neg = model.forward_latent(*neg_long, transformer_options=options)
        long_neg_twice = model.forward_latent(*(torch.cat(pair) for pair in zip(neg_long, neg_long)),
                                              transformer_options=options)
    torch.testing.assert_close(batched[5:], alone_pos, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched[:5], alone_neg, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(long_neg_twice[5:], long_neg, rtol=1e-5, atol=1e-6)
    assert torch.isfinite(long_neg).all() and (long_neg - alone_neg).abs().max() > 1e-4


def test_a_forward_that_is_not_a_multiple_of_five_is_refused(adapters):
    model = random_bfl_flux(TEST_FLUX)
    options = {"patches_replace": {"dit": block_patches(model, adapters)}}
    with pytest.raises(BatchLayoutError, match="multiple of 5; got a batch of 6"):
        with torch.no_grad():
            model.forward_latent(*_inputs(batch=6), transformer_options=options)


# ---------------------------------------------------------------- split / recompose

@pytest.mark.parametrize("batch", [1, 4, 6, 9])
def test_split_batch_not_a_multiple_of_five(batch):
    with pytest.raises(BatchLayoutError, match=f"multiple of 5; got a batch of {batch}"):
        split_maps(torch.rand(batch, 8, 8, 3))


def test_split_of_a_single_channel_batch_keeps_one_channel():
    """SplitIntrinsics is channel-agnostic: a grey [5, H, W, 1] batch splits into grey maps."""
    maps = split_maps(torch.rand(10, 8, 6, 1))
    assert all(m.shape == (2, 8, 6, 1) for m in maps.values())


def test_join_of_mismatched_sizes_is_refused():
    maps = {name: torch.rand(1, 8, 8, 3) for name in ("albedo", "irradiance", "color", "depth", "normal")}
    maps["depth"] = torch.rand(1, 8, 6, 3)
    with pytest.raises(BatchLayoutError, match="different shapes.*pixel-aligned"):
        join_maps(maps)


def test_recompose_of_mismatched_sizes_is_refused():
    with pytest.raises(InputError, match=r"pixel-aligned.*albedo 1x8x8, irradiance 1x8x6.*Resize"):
        recompose(torch.rand(1, 8, 8, 3), torch.rand(1, 8, 6, 3))


def test_recompose_of_mismatched_batches_is_refused():
    with pytest.raises(InputError, match="pixel-aligned"):
        recompose(torch.rand(2, 8, 8, 3), torch.rand(1, 8, 8, 3))


def test_recompose_of_a_single_channel_image_is_refused():
    with pytest.raises(InputError, match="1 channel but 3 are needed.*expand"):
        recompose(torch.rand(1, 8, 8, 1), torch.rand(1, 8, 8, 3))
