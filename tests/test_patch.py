"""Patching a FLUX model: what is refused (non-FLUX, schnell, variants whose blocks or heads
do not fit the checkpoint) and what a second LumiX patch on a patched MODEL does.
"""
import copy
from dataclasses import replace

import pytest
import torch
from torch import nn

from lumix_engine.errors import BatchLayoutError, ModelMismatchError
from lumix_engine.method.checkpoint import load_adapters
from lumix_engine.method.patch import block_patches, check_model, lumix_patches_in, without_lumix
from lumix_engine.tiny_random import random_adapters, random_bfl_flux, write_adapters
from tests.factories import TEST_FLUX


@pytest.fixture(scope="module")
def adapters(checkpoint_file):
    return load_adapters(checkpoint_file)


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
