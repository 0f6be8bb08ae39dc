"""Tiny synthetic models for the real-ComfyUI tests: written with torch alone.

- A FLUX transformer in BFL single-file layout (`double_blocks.N.img_attn.qkv.weight`, ...),
  the layout ComfyUI's UNETLoader reads. ComfyUI 0.3.64 hard-codes hidden 3072 / 24 heads /
  context 4096 for FLUX; `shim/lumix_test_shim.py` makes it read widths from the tensors.
- A 16-channel VAE in ComfyUI's TAESD single-file layout (`taesd_encoder.*`,
  `taesd_decoder.*`, `vae_scale`, `vae_shift`), which VAELoader loads as a FLUX-latent VAE.
- LumiX adapters (`{double,single}_blocks.N.processor.{kv,proj}_tt_lora.G{1,2,3}`) for such a tiny FLUX.

Weights are seeded random numbers: these models exist to exercise graphs, not to draw.
"""
from __future__ import annotations

import dataclasses
import pathlib

import torch
from safetensors.torch import save_file

LUMIX_MAPS = 5


@dataclasses.dataclass(frozen=True)
class TinyFlux:
    hidden_size: int = 64
    num_heads: int = 4  # head_dim 16; the shim picks axes_dim [4, 6, 6]
    depth: int = 2
    depth_single_blocks: int = 2
    context_in_dim: int = 48  # T5 width stand-in (4096 in FLUX.1)
    vec_in_dim: int = 32  # CLIP-L pooled width stand-in (768 in FLUX.1)
    in_channels: int = 16
    mlp_ratio: float = 4.0
    guidance_embed: bool = True

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)


def _linear(shapes: dict, name: str, d_out: int, d_in: int, bias: bool = True):
    shapes[f"{name}.weight"] = (d_out, d_in)
    if bias:
        shapes[f"{name}.bias"] = (d_out,)


def flux_shapes(config: TinyFlux) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a BFL-layout FLUX transformer (patch size 2)."""
    d, mlp, s = config.hidden_size, config.mlp_hidden, {}
    _linear(s, "img_in", d, config.in_channels * 4)
    _linear(s, "time_in.in_layer", d, 256)
    _linear(s, "time_in.out_layer", d, d)
    _linear(s, "vector_in.in_layer", d, config.vec_in_dim)
    _linear(s, "vector_in.out_layer", d, d)
    if config.guidance_embed:
        _linear(s, "guidance_in.in_layer", d, 256)
        _linear(s, "guidance_in.out_layer", d, d)
    _linear(s, "txt_in", d, config.context_in_dim)
    for i in range(config.depth):
        for stream in ("img", "txt"):
            block = f"double_blocks.{i}.{stream}"
            _linear(s, f"{block}_mod.lin", 6 * d, d)
            _linear(s, f"{block}_attn.qkv", 3 * d, d)
            s[f"{block}_attn.norm.query_norm.scale"] = (config.head_dim,)
            s[f"{block}_attn.norm.key_norm.scale"] = (config.head_dim,)
            _linear(s, f"{block}_attn.proj", d, d)
            _linear(s, f"{block}_mlp.0", mlp, d)
            _linear(s, f"{block}_mlp.2", d, mlp)
    for i in range(config.depth_single_blocks):
        block = f"single_blocks.{i}"
        _linear(s, f"{block}.linear1", 3 * d + mlp, d)
        _linear(s, f"{block}.linear2", d, d + mlp)
        s[f"{block}.norm.query_norm.scale"] = (config.head_dim,)
        s[f"{block}.norm.key_norm.scale"] = (config.head_dim,)
        _linear(s, f"{block}.modulation.lin", 3 * d, d)
    _linear(s, "final_layer.linear", 4 * config.in_channels, d)
    _linear(s, "final_layer.adaLN_modulation.1", 2 * d, d)
    return s


def _random_state_dict(shapes: dict, seed: int, std: float) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith(".scale"):  # RMSNorm scales: near 1, as in a trained model
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            state[key] = std * torch.randn(shape, generator=generator)
    return state


def write_tiny_flux(path: pathlib.Path, config: TinyFlux = TinyFlux(), seed: int = 0,
                    dtype: torch.dtype = torch.float32) -> pathlib.Path:
    state = _random_state_dict(flux_shapes(config), seed, std=0.05)
    save_file({k: v.to(dtype).contiguous() for k, v in state.items()}, str(path))
    return path


def _taesd_conv(shapes: dict, name: str, n_in: int, n_out: int, bias: bool = True):
    shapes[f"{name}.weight"] = (n_out, n_in, 3, 3)
    if bias:
        shapes[f"{name}.bias"] = (n_out,)


def _taesd_block(shapes: dict, name: str):
    for conv_index in (0, 2, 4):  # Sequential(conv, ReLU, conv, ReLU, conv)
        _taesd_conv(shapes, f"{name}.conv.{conv_index}", 64, 64)


def taesd_shapes(latent_channels: int = 16) -> dict[str, tuple[int, ...]]:
    """Key -> shape of ComfyUI's TAESD (comfy/taesd/taesd.py), 64 channels wide."""
    s = {}
    # Encoder: conv, Block, then three (strided conv, 3 Blocks), then conv to latent.
    _taesd_conv(s, "taesd_encoder.0", 3, 64)
    _taesd_block(s, "taesd_encoder.1")
    index = 2
    for _ in range(3):
        _taesd_conv(s, f"taesd_encoder.{index}", 64, 64, bias=False)
        for offset in (1, 2, 3):
            _taesd_block(s, f"taesd_encoder.{index + offset}")
        index += 4
    _taesd_conv(s, f"taesd_encoder.{index}", 64, latent_channels)
    # Decoder: Clamp, conv, ReLU, then three (3 Blocks, Upsample, conv), Block, conv to RGB.
    _taesd_conv(s, "taesd_decoder.1", latent_channels, 64)
    index = 3
    for _ in range(3):
        for offset in (0, 1, 2):
            _taesd_block(s, f"taesd_decoder.{index + offset}")
        _taesd_conv(s, f"taesd_decoder.{index + 4}", 64, 64, bias=False)
        index += 5
    _taesd_block(s, f"taesd_decoder.{index}")
    _taesd_conv(s, f"taesd_decoder.{index + 1}", 64, 3)
    return s


def write_tiny_vae(path: pathlib.Path, latent_channels: int = 16, seed: int = 1) -> pathlib.Path:
    state = _random_state_dict(taesd_shapes(latent_channels), seed, std=0.03)
    # FLUX's latent statistics, as ComfyUI's taef1 uses them.
    state["vae_scale"] = torch.tensor(0.3611)
    state["vae_shift"] = torch.tensor(0.1159)
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(path))
    return path


def write_tiny_lumix_adapters(path: pathlib.Path, config: TinyFlux = TinyFlux(), rank: int = 2,
                              maps: int = LUMIX_MAPS, seed: int = 2, zero_readout: bool = False,
                              prefix: str = "") -> pathlib.Path:
    """A LumiX checkpoint  for `config`: kv and proj adapters on
    every block. zero_readout=True gives G3 = 0, the no-op adapter of a fresh training run."""
    d, generator, state = config.hidden_size, torch.Generator().manual_seed(seed), {}
    blocks = [f"double_blocks.{i}" for i in range(config.depth)]
    blocks += [f"single_blocks.{i}" for i in range(config.depth_single_blocks)]
    for block in blocks:
        for adapter, d_out in (("kv_tt_lora", 2 * d), ("proj_tt_lora", d)):
            name = f"{prefix}{block}.processor.{adapter}"
            # Larger than the published init so that the adapters visibly change tiny-model outputs.
            state[f"{name}.G1"] = 0.5 * torch.randn(maps, maps, rank, generator=generator)
            state[f"{name}.G2"] = torch.randn(maps, d, rank, rank, generator=generator) / (d * rank) ** 0.5
            readout = torch.randn(maps, d_out, rank, generator=generator) * 0.5
            state[f"{name}.G3"] = torch.zeros_like(readout) if zero_readout else readout
    save_file(state, str(path))
    return path
