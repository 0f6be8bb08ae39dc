"""Seed for seed against the authors' own code (MIT; ../shared/reference/lumix-authors).

Their modules are imported here, in the test only, never by the pack. Two levels:
- blocks: their LumiX processors inside their FLUX blocks, loaded with our tiny random
  weights, against our block patches (float64, to round-off);
- sampling end to end: their inference functions (text -> maps with true CFG, and
  decomposition) against LumiXPipeline(numerics="authors") on the same tiny random
  transformer, adapters, text encoders and VAE, from the seed to the five latents;
- decomposition end to end on the maps users get: their script's returned images against
  `decompose(..., numerics="authors")` at non-square sizes.

Their functions return PIL images only, so the VAE they are given records the latents it is
asked to decode and the images it decodes them to (an adapter over our tiny diffusers VAE
with their encode/decode signature).
Their scripts hard-code bfloat16; the float32 runs swap their module's `torch` for one whose
`bfloat16` is float32, so their exact loop runs in float32. Their decomposition samples the
VAE posterior with an unseeded generator; the adapter returns the posterior mode, as ours does.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lumix_engine.apps.pipeline import LumiXPipeline
from lumix_engine.method.adapters import DOUBLE, SINGLE
from lumix_engine.method.patch import block_patches
from lumix_engine.tiny_random import TINY_FLUX, random_adapters, random_bfl_flux, tiny_components
from tests.factories import scene_inputs

# ../shared/reference/lumix-authors beside the checkout, or beside a folder above it (a git
# worktree kept in a subfolder); the first that exists.
AUTHORS = next((folder / "shared" / "reference" / "lumix-authors" for folder in Path(__file__).resolve().parents[1].parents
                if (folder / "shared" / "reference" / "lumix-authors").is_dir()),
               Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "lumix-authors")
pytestmark = pytest.mark.skipif(not (AUTHORS / "src" / "flux" / "sampling.py").is_file(),
                                reason=f"the authors' code is not at {AUTHORS} (../shared/reference/lumix-authors)")

PROMPT = "a red sphere and a blue cube on a checkered floor"
NEGATIVE = "blurry, low quality, artifacts"
SIZE, STEPS = 64, 4


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.fixture(scope="module")
def authors():
    """Their packages (`src.flux...`) and the two inference scripts as modules."""
    sys.path.insert(0, str(AUTHORS))
    try:
        import src.flux.model as model
        import src.flux.modules.conditioner as conditioner
        import src.flux.modules.layers as layers
        import src.flux.modules.layers_lumix as layers_lumix
        scripts = {}
        for name in ("eval_lumix_inference", "eval_lumix_conditional_inference"):
            spec = importlib.util.spec_from_file_location(f"authors_{name}", AUTHORS / "eval" / f"{name}.py")
            scripts[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(scripts[name])
    finally:
        sys.path.remove(str(AUTHORS))
    return types.SimpleNamespace(model=model, layers=layers, layers_lumix=layers_lumix, conditioner=conditioner,
                                 text=scripts["eval_lumix_inference"],
                                 decompose=scripts["eval_lumix_conditional_inference"])


def their_flux(authors, flux_bfl: nn.Module, adapters, dtype: torch.dtype) -> nn.Module:
    """Their Flux with their LumiX processors on every block, loaded as their script loads
    the checkpoint (model state updated with the LoRA keys), from our weights."""
    c = TINY_FLUX
    model = authors.model.Flux(authors.model.FluxParams(
        in_channels=c.in_channels, vec_in_dim=c.vec_in_dim, context_in_dim=c.context_in_dim,
        hidden_size=c.hidden_size, mlp_ratio=c.mlp_ratio, num_heads=c.num_heads, depth=c.depth,
        depth_single_blocks=c.depth_single_blocks, axes_dim=list(c.axes_dim), theta=c.theta, qkv_bias=c.qkv_bias,
        guidance_embed=c.guidance_embed))
    processors = {}
    for name in model.attn_processors:
        kind = (authors.layers_lumix.LumiXDoubleStreamProcessor if name.startswith("double_blocks")
                else authors.layers_lumix.LumiXSingleStreamProcessor)
        processors[name] = kind(dim=c.hidden_size, rank=adapters.rank, network_alpha=None, lora_weight=1.0,
                                num_modalities=5)
    model.set_attn_processor(processors)
    state = model.state_dict()
    ours = {**flux_bfl.state_dict(), **adapters.state_dict()}
    assert set(ours) == set(state), set(ours) ^ set(state)
    model.load_state_dict(ours)
    return model.to(dtype).eval().requires_grad_(False)


def embedder(authors, module: nn.Module, tokenizer, max_length: int, is_clip: bool) -> nn.Module:
    """Their HFEmbedder around our tiny encoder (theirs loads from the Hub by name)."""
    wrapper = authors.conditioner.HFEmbedder.__new__(authors.conditioner.HFEmbedder)
    nn.Module.__init__(wrapper)
    wrapper.is_clip, wrapper.max_length = is_clip, max_length
    wrapper.output_key = "pooler_output" if is_clip else "last_hidden_state"
    wrapper.tokenizer, wrapper.hf_module = tokenizer, module
    return wrapper


class RecordingVAE:
    """Their AutoEncoder's interface over our VAE: encode(pixels in [-1, 1]) -> scaled
    latent (posterior mode); decode(latent) = decoder(latent / scale + shift), as their
    AutoEncoder.decode, recording both the latents and the decoded images."""

    def __init__(self, vae: nn.Module) -> None:
        self.vae, self.latents, self.decoded = vae, None, None
        self.scale, self.shift = float(vae.config.scaling_factor), float(vae.config.shift_factor)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        mode = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.mode()
        return (mode - self.shift) * self.scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        self.latents = latents.clone()
        self.decoded = self.vae.decode((latents / self.scale + self.shift).to(self.vae.dtype)).sample
        return self.decoded


class _TorchWith(types.ModuleType):
    """torch, except that `bfloat16` names another dtype (to run their bf16-only scripts in float32)."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__("torch")
        self._dtype = dtype

    def __getattr__(self, name: str):
        return self._dtype if name == "bfloat16" else getattr(torch, name)


def both_sides(authors, dtype: torch.dtype, seed: int = 0):
    """(our pipeline with authors' numerics, their model, t5, clip, vae) on one set of tiny weights."""
    ours_parts, theirs_parts = tiny_components(seed), tiny_components(seed)
    theirs = their_flux(authors, theirs_parts.flux_bfl, theirs_parts.adapters, dtype)
    t5 = embedder(authors, theirs_parts.text_encoder_2.to(dtype), theirs_parts.tokenizer_2, 512, is_clip=False)
    clip = embedder(authors, theirs_parts.text_encoder.to(dtype), theirs_parts.tokenizer, 77, is_clip=True)
    pipe = LumiXPipeline(ours_parts.transformer, ours_parts.vae, ours_parts.text_encoder, ours_parts.tokenizer,
                         ours_parts.text_encoder_2, ours_parts.tokenizer_2, ours_parts.adapters, device="cpu",
                         dtype=dtype, progress=False, numerics="authors")
    return pipe, theirs, t5, clip, RecordingVAE(theirs_parts.vae.float().eval())


def in_dtype(module: types.ModuleType, dtype: torch.dtype):
    """Their script module with `torch.bfloat16` meaning `dtype` (restored by the caller)."""
    original = module.torch
    module.torch = _TorchWith(dtype) if dtype != torch.bfloat16 else torch
    return original


# Tolerances. float32: both sides run the same float32 operations except where the layouts
# differ (diffusers' transformer blocks vs their BFL blocks, batch-5 vs batch-1 text
# encoding), so they agree to round-off: relative 1e-5 on the five latents after 4 steps.
# bfloat16: the same differences round to bf16 (8 bits of mantissa) at every matmul, and
# the state is itself bf16, so one ulp (2^-8 = 0.4 %) of drift per step is expected:
# relative 3e-2 on the latents.
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 3e-2}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_text_to_maps_with_true_cfg_matches_the_authors_script(authors, dtype):
    pipe, theirs, t5, clip, vae = both_sides(authors, dtype)
    script = authors.text
    original = in_dtype(script, dtype)
    try:
        script.generate_multimodal_images(theirs, vae, t5, clip, "cpu", PROMPT, width=SIZE, height=SIZE,
                                          num_steps=STEPS, guidance=3.5, seed=7, true_gs=3.0, num_modalities=5,
                                          neg_prompt=NEGATIVE)
    finally:
        script.torch = original
    maps = pipe.generate(PROMPT, seed=7, steps=STEPS, cfg=3.0, guidance=3.5, width=SIZE, height=SIZE,
                         negative_prompt=NEGATIVE)
    assert maps.latents.dtype == dtype   # the state is kept in the model's dtype
    error = rel(maps.latents, vae.latents)
    print(f"{dtype}: relative difference of the five latents {error:.2e}")
    assert error <= TOLERANCE[dtype], error


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_decomposition_matches_the_authors_script(authors, dtype):
    from PIL import Image
    pipe, theirs, t5, clip, vae = both_sides(authors, dtype)
    pixels = (torch.rand(SIZE, SIZE, 3, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8)
    photo = Image.fromarray(pixels.numpy())
    script = authors.decompose
    names = ["diffuse_reflectance", "diffuse_illumination", "color", "depth", "normal"]
    original = in_dtype(script, dtype)
    try:
        script.generate_conditional_multimodal_images(
            theirs, vae, t5, clip, "cpu", PROMPT, [photo], ["color"], [n for n in names if n != "color"], names,
            width=SIZE, height=SIZE, num_steps=STEPS, guidance=1.0, seed=11, true_gs=1.0, neg_prompt="")
    finally:
        script.torch = original
    maps = pipe.decompose(np.asarray(photo), prompt=PROMPT, seed=11, steps=STEPS, width=SIZE, height=SIZE)
    error = rel(maps.latents, vae.latents)
    print(f"{dtype}: relative difference of the five latents {error:.2e}")
    assert error <= TOLERANCE[dtype], error
    # The held color map is their encoded latent rounded to the state's dtype, bit for bit.
    assert torch.equal(maps.latents[2], vae.latents[2].to(maps.latents.dtype)) or dtype == torch.float32


THEIR_NAMES = {"diffuse_reflectance": "albedo", "diffuse_illumination": "irradiance", "color": "color",
               "depth": "depth", "normal": "normal"}


@pytest.mark.parametrize("width,height", [(48, 32), (32, 48)], ids=["48x32", "32x48"])
def test_decomposition_maps_equal_the_authors_script_float32(authors, width, height):
    """The maps a user gets from `decompose(numerics="authors")` against the images their
    decomposition script returns, same seed, same photo, float32, at a non-square size.

    Their script returns 8-bit PIL images: (127.5 (clamp(decoded, -1, 1) + 1)).byte(), i.e.
    the decoded float map (clamp(decoded, -1, 1) + 1) / 2 truncated to 8 bits. So two checks:
    the float maps within 1e-5 (the recorded decoded images, mapped as their script maps
    them), and their 8-bit images equal to floor(255 x ours) except where 255 x ours lies
    within 255 x 1e-5 of a code boundary. The color map is the one exception by design:
    decompose returns the photo that was given (their script returns its VAE reconstruction,
    which is decode_latents of the returned color latent, checked as such)."""
    from PIL import Image
    dtype = torch.float32
    pipe, theirs, t5, clip, vae = both_sides(authors, dtype)
    pixels = (torch.rand(height, width, 3, generator=torch.Generator().manual_seed(5)) * 255).to(torch.uint8)
    photo = Image.fromarray(pixels.numpy())
    script = authors.decompose
    names = list(THEIR_NAMES)
    original = in_dtype(script, dtype)
    try:
        results = script.generate_conditional_multimodal_images(
            theirs, vae, t5, clip, "cpu", PROMPT, [photo], ["color"], [n for n in names if n != "color"], names,
            width=width, height=height, num_steps=STEPS, guidance=1.0, seed=13, true_gs=1.0, neg_prompt="")
    finally:
        script.torch = original
    maps = pipe.decompose(photo, prompt=PROMPT, seed=13, steps=STEPS, width=width, height=height)
    assert maps.settings["postprocess"] == [] and maps.settings["ensemble_size"] == 1
    assert rel(maps.latents, vae.latents) <= TOLERANCE[dtype]
    their_floats = ((vae.decoded.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)
    ours = maps.as_dict()
    worst = {}
    for k, (their_name, name) in enumerate(THEIR_NAMES.items()):
        image = np.asarray(results[their_name]).astype(np.float64)
        assert image.shape == (height, width, 3)
        if name == "color":
            assert torch.equal(ours["color"][0], torch.from_numpy(np.array(photo)).float() / 255)
            reconstruction = pipe.decode_latents(maps.latents[k:k + 1])
            assert (reconstruction - their_floats[k:k + 1]).abs().max() <= 1e-5
            continue
        assert ours[name].shape == (1, height, width, 3), name
        worst[name] = float((ours[name][0] - their_floats[k]).abs().max())
        scaled = ours[name][0].double().numpy() * 255
        near_boundary = np.abs(scaled - np.round(scaled)) <= 255 * 1e-5
        assert ((np.floor(scaled) == image) | near_boundary).all(), name
        assert (np.abs(np.floor(scaled) - image) <= 1).all(), name
    print(f"{width}x{height}: largest difference per map {worst}")
    assert all(error <= 1e-5 for error in worst.values()), worst
    # Decoded maps without post-processing: depth channels differ (the old ensemble-of-one
    # path greyed them, a 34 % difference from theirs), normals are not unit length.
    assert (ours["depth"][..., 0] - ours["depth"][..., 1]).abs().max() > 1e-3
    assert ((ours["normal"] * 2 - 1).norm(dim=-1) - 1).abs().max() > 1e-2


@pytest.fixture(scope="module")
def weights64():
    return random_bfl_flux(TINY_FLUX, dtype=torch.float64), random_adapters(TINY_FLUX).double()


@pytest.mark.parametrize("kind", [DOUBLE, SINGLE])
def test_our_blocks_match_the_authors_processors_float64(authors, weights64, kind):
    """Their processor inside their block, loaded with our weights, one scene at a time (their
    processors take exactly the five maps of one scene), against our patch on two scenes.
    Tolerance 1e-6 relative: their apply_rope casts q and k to float32 (math.py), so even a
    float64 run of their block carries float32 round-off in the rotated queries and keys."""
    flux, adapters = weights64
    img, txt, vec, pe = scene_inputs(TINY_FLUX, scenes=2, dtype=torch.float64)
    index = 1
    c = TINY_FLUX
    if kind == DOUBLE:
        block = authors.layers.DoubleStreamBlock(c.hidden_size, c.num_heads, c.mlp_ratio, qkv_bias=c.qkv_bias)
        processor = authors.layers_lumix.LumiXDoubleStreamProcessor(dim=c.hidden_size, rank=adapters.rank)
    else:
        block = authors.layers.SingleStreamBlock(c.hidden_size, c.num_heads, c.mlp_ratio)
        processor = authors.layers_lumix.LumiXSingleStreamProcessor(dim=c.hidden_size, rank=adapters.rank)
    block.set_processor(processor)
    ours_block = getattr(flux, kind)[index]
    state = {**ours_block.state_dict(),
             **{f"processor.{k}": v for k, v in adapters.processor(kind, index).state_dict().items()}}
    block.load_state_dict(state)
    block = block.double().eval()
    patch = block_patches(flux, adapters)[("double_block" if kind == DOUBLE else "single_block", index)]
    with torch.no_grad():
        if kind == DOUBLE:
            out = patch({"img": img, "txt": txt, "vec": vec, "pe": pe, "attn_mask": None,
                         "transformer_options": {}}, {})
            theirs = [block(img=img[s:s + 5], txt=txt[s:s + 5], vec=vec[s:s + 5], pe=pe[s:s + 5]) for s in (0, 5)]
            assert rel(out["img"], torch.cat([t[0] for t in theirs])) <= 1e-6
            assert rel(out["txt"], torch.cat([t[1] for t in theirs])) <= 1e-6
        else:
            x = torch.cat((txt, img), 1)
            out = patch({"img": x, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": {}}, {})["img"]
            theirs = torch.cat([block(x[s:s + 5], vec=vec[s:s + 5], pe=pe[s:s + 5]) for s in (0, 5)])
            assert rel(out, theirs) <= 1e-6
