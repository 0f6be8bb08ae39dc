"""BFL (single-file) FLUX weights -> diffusers `FluxTransformer2DModel`, at any width.

diffusers' own converter hard-codes FLUX.1's hidden size 3072; this mapping reads the
width from the tensors, so tiny test models convert too. The tests check it against
diffusers' converter at full width.
"""
from __future__ import annotations

from typing import Any

import torch

from .model import FluxConfig


def _swap_halves(t: torch.Tensor) -> torch.Tensor:
    # BFL's final modulation is (shift, scale); diffusers' AdaLayerNormContinuous is (scale, shift).
    shift, scale = t.chunk(2, dim=0)
    return torch.cat([scale, shift], dim=0)


def bfl_to_diffusers(state: dict[str, torch.Tensor], config: FluxConfig) -> dict[str, torch.Tensor]:
    """Rename and split a BFL state dict into diffusers' key layout."""
    out: dict[str, torch.Tensor] = {}
    hidden = config.hidden_size

    def linear(src: str, dst: str) -> None:
        for suffix in ("weight", "bias"):
            if f"{src}.{suffix}" in state:
                out[f"{dst}.{suffix}"] = state[f"{src}.{suffix}"]

    def split(src: str, dsts: list[str], sizes: list[int]) -> None:
        for suffix in ("weight", "bias"):
            if f"{src}.{suffix}" in state:
                for dst, part in zip(dsts, torch.split(state[f"{src}.{suffix}"], sizes, dim=0)):
                    out[f"{dst}.{suffix}"] = part

    linear("img_in", "x_embedder")
    linear("txt_in", "context_embedder")
    for bfl, dif in (("time_in", "timestep_embedder"), ("vector_in", "text_embedder"),
                     ("guidance_in", "guidance_embedder")):
        linear(f"{bfl}.in_layer", f"time_text_embed.{dif}.linear_1")
        linear(f"{bfl}.out_layer", f"time_text_embed.{dif}.linear_2")

    for i in range(config.depth):
        src, dst = f"double_blocks.{i}", f"transformer_blocks.{i}"
        linear(f"{src}.img_mod.lin", f"{dst}.norm1.linear")
        linear(f"{src}.txt_mod.lin", f"{dst}.norm1_context.linear")
        split(f"{src}.img_attn.qkv", [f"{dst}.attn.to_q", f"{dst}.attn.to_k", f"{dst}.attn.to_v"], [hidden] * 3)
        split(f"{src}.txt_attn.qkv", [f"{dst}.attn.add_q_proj", f"{dst}.attn.add_k_proj", f"{dst}.attn.add_v_proj"],
              [hidden] * 3)
        out[f"{dst}.attn.norm_q.weight"] = state[f"{src}.img_attn.norm.query_norm.scale"]
        out[f"{dst}.attn.norm_k.weight"] = state[f"{src}.img_attn.norm.key_norm.scale"]
        out[f"{dst}.attn.norm_added_q.weight"] = state[f"{src}.txt_attn.norm.query_norm.scale"]
        out[f"{dst}.attn.norm_added_k.weight"] = state[f"{src}.txt_attn.norm.key_norm.scale"]
        linear(f"{src}.img_attn.proj", f"{dst}.attn.to_out.0")
        linear(f"{src}.txt_attn.proj", f"{dst}.attn.to_add_out")
        linear(f"{src}.img_mlp.0", f"{dst}.ff.net.0.proj")
        linear(f"{src}.img_mlp.2", f"{dst}.ff.net.2")
        linear(f"{src}.txt_mlp.0", f"{dst}.ff_context.net.0.proj")
        linear(f"{src}.txt_mlp.2", f"{dst}.ff_context.net.2")

    mlp_hidden = int(hidden * config.mlp_ratio)
    for i in range(config.depth_single_blocks):
        src, dst = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
        split(f"{src}.linear1", [f"{dst}.attn.to_q", f"{dst}.attn.to_k", f"{dst}.attn.to_v", f"{dst}.proj_mlp"],
              [hidden, hidden, hidden, mlp_hidden])
        out[f"{dst}.attn.norm_q.weight"] = state[f"{src}.norm.query_norm.scale"]
        out[f"{dst}.attn.norm_k.weight"] = state[f"{src}.norm.key_norm.scale"]
        linear(f"{src}.linear2", f"{dst}.proj_out")
        linear(f"{src}.modulation.lin", f"{dst}.norm.linear")

    linear("final_layer.linear", "proj_out")
    for suffix in ("weight", "bias"):
        out[f"norm_out.linear.{suffix}"] = _swap_halves(state[f"final_layer.adaLN_modulation.1.{suffix}"])
    return out


def diffusers_config(config: FluxConfig) -> dict[str, Any]:
    """Constructor arguments of diffusers' FluxTransformer2DModel for this architecture."""
    return {
        "patch_size": 1,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "num_layers": config.depth,
        "num_single_layers": config.depth_single_blocks,
        "attention_head_dim": config.head_dim,
        "num_attention_heads": config.num_heads,
        "joint_attention_dim": config.context_in_dim,
        "pooled_projection_dim": config.vec_in_dim,
        "guidance_embeds": config.guidance_embed,
        "axes_dims_rope": tuple(config.axes_dim),
    }


def diffusers_transformer_from_bfl(state: dict[str, torch.Tensor], config: FluxConfig | None = None):
    """A diffusers FluxTransformer2DModel holding the given BFL weights (strict load)."""
    from diffusers import FluxTransformer2DModel

    config = config or FluxConfig.from_state_dict(state)
    with torch.device("meta"):
        model = FluxTransformer2DModel(**diffusers_config(config))
    model.load_state_dict(bfl_to_diffusers(state, config), strict=True, assign=True)
    return model
