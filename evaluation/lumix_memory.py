"""Peak GPU memory of one LumiX decomposition step, simulated through the real sampling code.

Two paths, both at any FLUX shape (FLUX.1-dev by default), five maps, one scene, no CFG
(decomposition as published: the color map held at t = 0, guidance 1):

- `simulate_pipeline`: the standalone `LumiXPipeline` (diffusers FluxTransformer2DModel
  patched by `patch_diffusers`, the engine's Euler sampler) in this process;
- the ComfyUI node path runs inside a ComfyUI interpreter: `evaluation/comfy_memory_probe.py`
  (ComfyUI's own loader, ModelPatcher, LumiX Loader and the sampler node's `sample_maps`).

Counted: everything on the (fake) GPU while one denoising step runs: the transformer's
weights, LumiX's adapters (folded cores and readouts as cached on the device), the VAE
where it stays resident (the pipeline keeps it on the GPU), the latents and every
activation. Not counted: the text encoders (offloaded to the CPU while sampling: ComfyUI
unloads them, the pipeline's `offload_text_encoders=True`), the VAE's encode of the photo
and decode of the maps (separate phases, one image at a time), kernel workspaces.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, replace
from typing import Any, Optional, Sequence

import torch

from evaluation.memory_sim import FAKE_GPU, PeakMemory, fake_cuda, materialize, module_tensors

DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32", torch.float8_e4m3fn: "fp8"}


@dataclass(frozen=True)
class FluxShape:
    """A FLUX transformer's widths: FLUX.1-dev by default; smaller ones for quick checks."""
    hidden_size: int = 3072
    num_heads: int = 24
    depth: int = 19
    depth_single_blocks: int = 38
    context_in_dim: int = 4096
    vec_in_dim: int = 768
    text_tokens: int = 512
    rank: int = 8

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


FLUX_DEV = FluxShape()


def small_shape(blocks: int = 1) -> FluxShape:
    """FLUX.1-dev's widths with `blocks` double and `blocks` single blocks (seconds on a CPU)."""
    return replace(FLUX_DEV, depth=blocks, depth_single_blocks=blocks)


@dataclass
class StepMemory:
    """One denoising step's memory on the fake GPU, bytes: `weights` = the model's
    parameters and buffers before sampling (plus the VAE for the pipeline), `peak` the
    most alive at once during the step, `activations` = peak - what was alive at its start."""
    path: str
    weights_dtype: str
    width: int
    height: int
    weights: int
    resident: int
    peak: int
    peak_op: str
    ops: int

    @property
    def activations(self) -> int:
        return self.peak - self.resident

    def as_dict(self) -> dict[str, Any]:
        gb = 1e9
        return {"path": self.path, "weights_dtype": self.weights_dtype, "width": self.width, "height": self.height,
                "megapixels": self.width * self.height / 1e6, "weights_gb": self.weights / gb,
                "resident_gb": self.resident / gb, "peak_gb": self.peak / gb, "activations_gb": self.activations / gb,
                "peak_op": self.peak_op, "ops": self.ops}


def _diffusers_transformer(shape: FluxShape):
    from diffusers import FluxTransformer2DModel
    head = shape.head_dim
    spatial = (head * 7 // 16) // 2 * 2
    with torch.device("meta"):
        return FluxTransformer2DModel(num_layers=shape.depth, num_single_layers=shape.depth_single_blocks,
                                      attention_head_dim=head, num_attention_heads=shape.num_heads,
                                      joint_attention_dim=shape.context_in_dim, pooled_projection_dim=shape.vec_in_dim,
                                      guidance_embeds=True, axes_dims_rope=(head - 2 * spatial, spatial, spatial))


def _flux_vae():
    from diffusers import AutoencoderKL
    with torch.device("meta"):  # FLUX.1-dev's ae.safetensors config
        return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16,
                             down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                             block_out_channels=(128, 256, 512, 512), layers_per_block=2, scaling_factor=0.3611,
                             shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)


class _TextEncoderPlaceholder(torch.nn.Module):
    """Stands in for CLIP-L / T5-XXL, which sit on the CPU while sampling (offloaded): the
    pipeline only moves it and reads its dtype; the prompt embeddings are given directly."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(1), requires_grad=False)


def simulate_pipeline(sizes: Sequence[tuple[int, int]], shape: FluxShape = FLUX_DEV,
                      dtype: torch.dtype = torch.bfloat16, steps: int = 1) -> list[StepMemory]:
    """Peak memory of `steps` decomposition steps of the standalone pipeline at each (width, height).

    One pipeline serves every size; a first step at the smallest size builds LumiX's
    per-device caches (folded adapter cores), as the first step of any run does.
    """
    from lumix_engine.apps.pipeline import LumiXPipeline
    from lumix_engine.method.adapters import new_adapters
    from lumix_engine.method.sampling import DECOMPOSITION, GivenMaps

    transformer, vae = _diffusers_transformer(shape), _flux_vae()
    results = []
    with fake_cuda():
        materialize(transformer, FAKE_GPU, lambda name, t: dtype if t.is_floating_point() else None)
        materialize(vae, FAKE_GPU, lambda name, t: dtype if t.is_floating_point() else None)
        with torch.device("meta"):
            adapters = new_adapters(shape.hidden_size, shape.depth, shape.depth_single_blocks, rank=shape.rank)
        materialize(adapters, FAKE_GPU, lambda name, t: dtype)
        encoders = [materialize(_TextEncoderPlaceholder(), "cpu") for _ in range(2)]
        pipe = LumiXPipeline(transformer, vae, encoders[0], None, encoders[1], None, adapters, device=FAKE_GPU,
                             dtype=dtype, offload_text_encoders=True, progress=False)

        def encode_prompt(self, prompts):
            count = len(list(prompts))
            return (torch.empty(count, shape.text_tokens, shape.context_in_dim, device=self.device, dtype=self.dtype),
                    torch.empty(count, shape.vec_in_dim, device=self.device, dtype=self.dtype))
        pipe.encode_prompt = types.MethodType(encode_prompt, pipe)
        weights = sum(t.untyped_storage().nbytes() for t in module_tensors(transformer))
        tracker = PeakMemory("cuda")
        with tracker, torch.no_grad():
            tracker.track(module_tensors(transformer) + module_tensors(vae))
            warm = min(sizes, key=lambda s: s[0] * s[1])
            for index, (width, height) in enumerate([warm, *sizes]):
                settings = pipe._settings(DECOMPOSITION, steps=steps, width=width, height=height)
                color = torch.empty(1, 16, height // 8, width // 8, device=FAKE_GPU, dtype=torch.float32)
                tracker.reset_peak()
                pipe._sample([""], settings, pipe._noise(1, settings, 0), GivenMaps({"color": color}), None)
                del color
                if index:
                    report = tracker.report()
                    results.append(StepMemory("pipeline", DTYPE_NAMES[dtype], width, height, weights, report.resident,
                                              report.peak, report.peak_op, report.ops))
    return results


def comfy_probe_args(width: int, height: int, shape: FluxShape, weights_dtype: str, steps: int = 1,
                     free_gb: Optional[float] = None) -> dict[str, Any]:
    return {"width": width, "height": height, "shape": shape.as_dict(), "weights_dtype": weights_dtype,
            "steps": steps, "free_gb": free_gb}
