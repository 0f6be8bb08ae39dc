"""The BFL FLUX model here against diffusers' FluxTransformer2DModel, unpatched and with LumiX."""
import pytest
import torch

from lumix_engine.flux.convert import bfl_to_diffusers, diffusers_transformer_from_bfl
from lumix_engine.flux.model import FluxConfig, pack_latent
from lumix_engine.method.patch import block_patches, patched_diffusers
from lumix_engine.tiny_random import random_adapters, random_bfl_flux, write_bfl_flux
from tests.factories import TEST_FLUX, adapters_roundtrip, flux_from_file


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def model_inputs(config, scenes=1, side=8, txt_len=7, seed=3, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    batch = 5 * scenes
    latent = torch.randn(batch, config.in_channels // 4, side, side, generator=g)
    tokens, img_ids = pack_latent(latent)
    ctx = torch.randn(batch, txt_len, config.context_in_dim, generator=g)
    y = torch.randn(batch, config.vec_in_dim, generator=g)
    t = torch.rand(batch, generator=g)
    guidance = torch.full((batch,), 3.5)
    txt_ids = torch.zeros(batch, txt_len, 3)
    return [v.to(dtype) for v in (tokens, img_ids, ctx, txt_ids, t, y, guidance)]


def run_bfl(model, inputs, patches=None):
    options = {"patches_replace": {"dit": patches}} if patches else {}
    tokens, img_ids, ctx, txt_ids, t, y, guidance = inputs
    return model(tokens, img_ids, ctx, txt_ids, t, y, guidance, transformer_options=options)


def run_diffusers(model, inputs):
    tokens, img_ids, ctx, txt_ids, t, y, guidance = inputs
    return model(hidden_states=tokens, encoder_hidden_states=ctx, pooled_projections=y, timestep=t,
                 img_ids=img_ids[0], txt_ids=txt_ids[0], guidance=guidance, return_dict=False)[0]


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    path = write_bfl_flux(tmp_path_factory.mktemp("flux") / "flux.safetensors", TEST_FLUX)
    bfl = flux_from_file(path)
    from safetensors.torch import load_file
    return bfl, diffusers_transformer_from_bfl(load_file(str(path))).eval()


def test_unpatched_bfl_model_equals_diffusers_at_tiny_width(tiny_pair):
    bfl, dif = tiny_pair
    inputs = model_inputs(TEST_FLUX)
    with torch.no_grad():
        assert rel(run_bfl(bfl, inputs), run_diffusers(dif, inputs)) <= 1e-6


@pytest.mark.parametrize("qba", [True, False])
def test_lumix_forward_is_the_same_in_both_layouts(tiny_pair, tmp_path, qba):
    bfl, dif = tiny_pair
    adapters = adapters_roundtrip(tmp_path, random_adapters(TEST_FLUX))
    inputs = model_inputs(TEST_FLUX, scenes=2)
    with torch.no_grad():
        ours = run_bfl(bfl, inputs, block_patches(bfl, adapters, qba=qba, strength=0.8))
        with patched_diffusers(dif, adapters, qba=qba, strength=0.8):
            theirs = run_diffusers(dif, inputs)
        plain = run_bfl(bfl, inputs)
    assert rel(ours, theirs) <= 1e-5
    assert rel(ours, plain) > 1e-3  # the patch did something
    with torch.no_grad():
        assert torch.equal(run_diffusers(dif, inputs), run_diffusers(dif, inputs))
        assert rel(run_diffusers(dif, inputs), plain) <= 1e-6  # unpatched again


def test_patches_leave_the_model_weights_untouched(tiny_pair, tmp_path):
    bfl, _ = tiny_pair
    before = {k: v.clone() for k, v in bfl.state_dict().items()}
    with torch.no_grad():
        run_bfl(bfl, model_inputs(TEST_FLUX), block_patches(bfl, adapters_roundtrip(tmp_path, random_adapters(TEST_FLUX))))
    assert all(torch.equal(before[k], v) for k, v in bfl.state_dict().items())


def test_full_width_conversion_matches_diffusers_converter_and_layouts_agree(tmp_path):
    """FLUX.1-dev width (3072, 24 heads) with 1 double and 1 single block: 545M parameters."""
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    config = FluxConfig(depth=1, depth_single_blocks=1)
    torch.manual_seed(0)
    bfl = random_bfl_flux(config, seed=5)
    state = bfl.state_dict()
    ours = bfl_to_diffusers(state, config)
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(state))
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    del theirs
    dif = diffusers_transformer_from_bfl(state, config).eval()
    inputs = model_inputs(config, side=8, txt_len=8)
    adapters = random_adapters(config, rank=8, g3_std=0.05)
    with torch.no_grad():
        assert rel(run_bfl(bfl, inputs), run_diffusers(dif, inputs)) <= 2e-6
        lumix_bfl = run_bfl(bfl, inputs, block_patches(bfl, adapters))
        with patched_diffusers(dif, adapters):
            lumix_dif = run_diffusers(dif, inputs)
    assert rel(lumix_bfl, lumix_dif) <= 1e-5
