"""Tiny FLUX-shaped models and LumiX checkpoints with random weights, written as real
safetensors files in the real key layouts and loaded back through the real loaders."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from lumix_engine.flux.model import Flux, FluxConfig, load_flux
from lumix_engine.method.adapters import LumiXAdapters, new_adapters
from lumix_engine.method.checkpoint import load_adapters, save_adapters

TINY = FluxConfig(in_channels=64, out_channels=64, vec_in_dim=32, context_in_dim=48, hidden_size=64, num_heads=4,
                  depth=2, depth_single_blocks=3, axes_dim=[4, 6, 6])


def random_flux(config: FluxConfig = TINY, seed: int = 0, dtype: torch.dtype = torch.float32) -> Flux:
    """Every parameter random (norm scales and biases too), so no path hides behind zeros."""
    generator = torch.Generator().manual_seed(seed)
    model = Flux(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = 1.0 if name.endswith("scale") else 0.5 / p.shape[-1] ** 0.5 if p.ndim == 2 else 0.1
            p.copy_(torch.randn(p.shape, generator=generator) * std + (1.0 if name.endswith("scale") else 0.0))
    return model.to(dtype).eval().requires_grad_(False)


def write_flux(path: Path, config: FluxConfig = TINY, seed: int = 0, prefix: str = "") -> Path:
    model = random_flux(config, seed)
    save_file({prefix + k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def flux_from_file(path: Path) -> Flux:
    from safetensors.torch import load_file
    return load_flux(load_file(str(path))).eval().requires_grad_(False)


def random_adapters(config: FluxConfig = TINY, rank: int = 4, seed: int = 1, g3_std: float = 0.3,
                    double_ids: list[int] | None = None, single_ids: list[int] | None = None) -> LumiXAdapters:
    """Adapters with a non-zero G3 (a fresh adapter is a no-op, which would test nothing)."""
    torch.manual_seed(seed)
    if double_ids is None and single_ids is None:
        adapters = new_adapters(config.hidden_size, config.depth, config.depth_single_blocks, rank)
    else:
        adapters = LumiXAdapters(config.hidden_size, 5, rank, double_ids or [], single_ids or [])
    with torch.no_grad():
        for name, p in adapters.named_parameters():
            if name.endswith("G3"):
                p.normal_(0, g3_std)
            elif name.endswith("G1"):
                p.normal_(0, 1.0)
    return adapters.requires_grad_(False)


def write_adapters(path: Path, adapters: LumiXAdapters, prefix: str = "", dtype: torch.dtype | None = None) -> Path:
    if prefix:
        state = {prefix + k: v.contiguous() for k, v in adapters.state_dict().items()}
        save_file(state, str(path))
    else:
        save_adapters(adapters, path, dtype)
    return path


def adapters_roundtrip(tmp_path: Path, adapters: LumiXAdapters, dtype: torch.dtype | None = None) -> LumiXAdapters:
    """Through a real file and the real loader."""
    return load_adapters(write_adapters(tmp_path / "lumix.safetensors", adapters, dtype=dtype))


def scene_inputs(config: FluxConfig = TINY, scenes: int = 2, img_tokens: int = 16, txt_tokens: int = 7,
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
