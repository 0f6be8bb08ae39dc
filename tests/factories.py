"""Test inputs over the tiny random components of `lumix_engine.tiny_random`: checkpoints
through a real file and the real loader, and random block inputs for a batch of scenes."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from lumix_engine.flux.model import Flux, FluxConfig, load_flux
from lumix_engine.method.adapters import LumiXAdapters
from lumix_engine.method.checkpoint import load_adapters
from lumix_engine.tiny_random import TINY_FLUX, write_adapters

# The demo's tiny FLUX with three single blocks instead of two: counts that differ between
# the two block kinds make a double/single index mix-up fail loudly.
TEST_FLUX = replace(TINY_FLUX, depth_single_blocks=3)


def adapters_roundtrip(tmp_path: Path, adapters: LumiXAdapters, dtype: torch.dtype | None = None) -> LumiXAdapters:
    """Through a real file and the real loader."""
    return load_adapters(write_adapters(tmp_path / "lumix.safetensors", adapters, dtype=dtype))


def scene_inputs(config: FluxConfig = TEST_FLUX, scenes: int = 2, img_tokens: int = 16, txt_tokens: int = 7,
                 seed: int = 2, dtype: torch.dtype = torch.float32):
    """Random block inputs for `scenes` scenes of 5 maps: img, txt, vec, pe."""
    from lumix_engine.flux.rotary import bfl_pe
    g = torch.Generator().manual_seed(seed)
    batch = 5 * scenes
    img = torch.randn(batch, img_tokens, config.hidden_size, generator=g, dtype=dtype)
    txt = torch.randn(batch, txt_tokens, config.hidden_size, generator=g, dtype=dtype)
    vec = torch.randn(batch, config.hidden_size, generator=g, dtype=dtype)
    side = int(img_tokens ** 0.5)
    ids = torch.zeros(batch, txt_tokens + img_tokens, 3)
    ids[:, txt_tokens:, 1] = torch.arange(side).repeat_interleave(side).float()
    ids[:, txt_tokens:, 2] = torch.arange(side).repeat(side).float()
    pe = bfl_pe(ids, config.axes_dim, config.theta)
    return img, txt, vec, pe


def flux_from_file(path: Path) -> Flux:
    """A BFL FLUX read back from its safetensors file through the real loader."""
    from safetensors.torch import load_file
    return load_flux(load_file(str(path))).eval().requires_grad_(False)
