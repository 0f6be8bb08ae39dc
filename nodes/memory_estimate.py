"""ComfyUI's estimate of sampling memory, raised to what LumiX's five-map step needs.

Before sampling, ComfyUI decides how much of the model to keep on the GPU from
`memory_required(noise_shape)` (comfy/sampler_helpers.py `estimate_memory`), a formula per
latent pixel that leaves out FLUX's 512 text tokens. LumiX's batch already holds the five
latents of each scene, so the estimate grows with them, but at small working sizes it stays
below what a step needs (simulated, docs/memory.md: 0.60 GB of activations at 256x256
against an estimate of 0.33 GB). ComfyUI reads the noise shape there for that estimate only
(0.3.64 and 0.29), so the wrapper passes a batch whose estimate covers the simulated
activations; sampling itself is untouched.
"""
from __future__ import annotations

import math

from ..lumix_engine.method.memory import activations_gb
from ..lumix_engine.modalities import NUM_MAPS

MEMORY_WRAPPER_KEY = "lumix_memory_estimate"
SIMULATED_HIDDEN_SIZE = 3072  # the table is FLUX.1-dev's; other widths keep ComfyUI's estimate
# Between and beyond the simulated sizes the table is interpolated (within 1 % of a simulation
# at 256x256, below its first point); the margin also covers the allocator's rounding.
MARGIN = 1.1
LATENT_SCALE = 8  # FLUX VAE: pixels per latent pixel


def covering_shape(base_model, noise_shape) -> list:
    """noise_shape, or one with a larger batch if ComfyUI's estimate for it is below LumiX's
    simulated activations for that many scenes."""
    shape = list(noise_shape)
    if len(shape) != 4 or shape[0] % NUM_MAPS:
        return shape
    width, height = shape[3] * LATENT_SCALE, shape[2] * LATENT_SCALE
    needed = MARGIN * activations_gb(width, height) * 1e9 * (shape[0] // NUM_MAPS)
    per_entry = base_model.memory_required([1, *shape[1:]])
    if per_entry <= 0 or per_entry * shape[0] >= needed:
        return shape
    return [math.ceil(needed / per_entry), *shape[1:]]


class LumiXMemoryEstimate:
    """ComfyUI PREPARE_SAMPLING wrapper: `wrapper(executor, model, noise_shape, conds, ...)`."""

    def __deepcopy__(self, memo: dict) -> "LumiXMemoryEstimate":
        return self

    def __call__(self, executor, model, noise_shape, conds, *args, **kwargs):
        return executor(model, covering_shape(model.model, noise_shape), conds, *args, **kwargs)
