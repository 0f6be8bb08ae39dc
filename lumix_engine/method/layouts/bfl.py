"""The BFL block layout, used by ComfyUI (`comfy/ldm/flux/layers.py`), by the single-file
`flux1-dev.safetensors`, and by this package's own plain-torch FLUX (`flux/model.py`).

Only the blocks' submodules are called (img_mod, img_norm1, img_attn.qkv/norm/proj, ...), so
whatever ComfyUI put behind them (fp8 casts, GGUF, offloading, LoRA weight hooks) still works.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ...flux.linear import LinearWeights, plain_linear_weights, split_linear
from ..qba import Modulation


def _modulation(out) -> Modulation:
    return Modulation(out.shift, out.scale, out.gate)


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, L, H*Dh] -> [B, H, L, Dh]."""
    batch, length, _ = x.shape
    return x.view(batch, length, num_heads, -1).transpose(1, 2)


def _split_kv(kv: torch.Tensor, num_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch, length, _ = kv.shape
    k, v = kv.view(batch, length, 2, num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    return k, v


class BflDoubleBlock:
    """A `DoubleStreamBlock` (img_mod, img_norm1, img_attn, img_norm2, img_mlp, txt_*)."""

    def __init__(self, block: nn.Module, weights: LinearWeights = plain_linear_weights) -> None:
        self.block = block
        self.num_heads = block.num_heads
        self.hidden_size = block.img_attn.proj.in_features if hasattr(block.img_attn.proj, "in_features") \
            else block.hidden_size
        self.weights = weights

    def img_modulation(self, vec):
        first, second = self.block.img_mod(vec)
        return _modulation(first), _modulation(second)

    def txt_modulation(self, vec):
        first, second = self.block.txt_mod(vec)
        return _modulation(first), _modulation(second)

    def img_norm1(self, x):
        return self.block.img_norm1(x)

    def img_norm2(self, x):
        return self.block.img_norm2(x)

    def txt_norm1(self, x):
        return self.block.txt_norm1(x)

    def txt_norm2(self, x):
        return self.block.txt_norm2(x)

    def img_qkv(self, h: torch.Tensor, query_rows: Optional[slice]):
        q, kv = split_linear(self.block.img_attn.qkv, h, self.hidden_size, query_rows, self.weights)
        k, v = _split_kv(kv, self.num_heads)
        q, k = self.block.img_attn.norm(_heads(q, self.num_heads), k, v)
        return q, k, v

    def txt_qkv(self, h: torch.Tensor):
        q, kv = split_linear(self.block.txt_attn.qkv, h, self.hidden_size, None, self.weights)
        k, v = _split_kv(kv, self.num_heads)
        q, k = self.block.txt_attn.norm(_heads(q, self.num_heads), k, v)
        return q, k, v

    def img_proj(self, a):
        return self.block.img_attn.proj(a)

    def txt_proj(self, a):
        return self.block.txt_attn.proj(a)

    def img_mlp(self, h):
        return self.block.img_mlp(h)

    def txt_mlp(self, h):
        return self.block.txt_mlp(h)


class BflSingleBlock:
    """A `SingleStreamBlock` (modulation, pre_norm, linear1, norm, mlp_act, linear2)."""

    def __init__(self, block: nn.Module, weights: LinearWeights = plain_linear_weights) -> None:
        self.block = block
        self.num_heads = block.num_heads
        self.hidden_size = block.hidden_size
        self.weights = weights

    def modulation(self, vec):
        first, _ = self.block.modulation(vec)
        return _modulation(first)

    def pre_norm(self, x):
        return self.block.pre_norm(x)

    def project(self, h: torch.Tensor, query_rows: Optional[slice]):
        return split_linear(self.block.linear1, h, self.hidden_size, query_rows, self.weights)

    def heads(self, q, rest):
        d = self.hidden_size
        k, v = _split_kv(rest[..., : 2 * d], self.num_heads)
        q, k = self.block.norm(_heads(q, self.num_heads), k, v)
        return q, k, v, rest[..., 2 * d:]

    def mlp_act(self, mlp):
        return self.block.mlp_act(mlp)

    def output(self, attn, mlp):
        return self.block.linear2(torch.cat((attn, mlp), dim=2))
