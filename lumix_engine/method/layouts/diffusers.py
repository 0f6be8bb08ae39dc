"""The diffusers block layout (`FluxTransformerBlock`, `FluxSingleTransformerBlock`).

Queries, keys and values have separate projections here (to_q/to_k/to_v), so skipping the
discarded queries needs no weight access at all. Fused projections (`fuse_qkv_projections`)
go through the same weight-slicing rule as the BFL layout.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ...flux.linear import LinearWeights, plain_linear_weights, split_linear
from ..qba import Modulation


def _chunks(norm: nn.Module, temb: torch.Tensor, count: int) -> list[torch.Tensor]:
    emb = norm.linear(norm.silu(temb))
    return [c[:, None, :] for c in emb.chunk(count, dim=-1)]


def _heads(x: torch.Tensor, attn: nn.Module, norm: Optional[nn.Module] = None) -> torch.Tensor:
    """[B, L, H*Dh] -> normed [B, H, L, Dh] (diffusers norms act on [B, L, H, Dh])."""
    x = x.unflatten(-1, (-1, attn.head_dim))
    if norm is not None:
        x = norm(x)
    return x.transpose(1, 2)


def _project(attn: nn.Module, h: torch.Tensor, query_rows: Optional[slice],
             names: tuple[str, str, str], fused: str, weights: LinearWeights):
    if getattr(attn, "fused_projections", False) and hasattr(attn, fused):
        inner = attn.inner_dim
        q, kv = split_linear(getattr(attn, fused), h, inner, query_rows, weights)
        return q, kv[..., :inner], kv[..., inner:]
    to_q, to_k, to_v = (getattr(attn, n) for n in names)
    q = to_q(h if query_rows is None else h[query_rows])
    return q, to_k(h), to_v(h)


class DiffusersDoubleBlock:
    def __init__(self, block: nn.Module, weights: LinearWeights = plain_linear_weights) -> None:
        self.block = block
        self.attn = block.attn
        self.num_heads = block.attn.heads
        self.weights = weights

    def img_modulation(self, vec):
        shift1, scale1, gate1, shift2, scale2, gate2 = _chunks(self.block.norm1, vec, 6)
        return Modulation(shift1, scale1, gate1), Modulation(shift2, scale2, gate2)

    def txt_modulation(self, vec):
        shift1, scale1, gate1, shift2, scale2, gate2 = _chunks(self.block.norm1_context, vec, 6)
        return Modulation(shift1, scale1, gate1), Modulation(shift2, scale2, gate2)

    def img_norm1(self, x):
        return self.block.norm1.norm(x)

    def img_norm2(self, x):
        return self.block.norm2(x)

    def txt_norm1(self, x):
        return self.block.norm1_context.norm(x)

    def txt_norm2(self, x):
        return self.block.norm2_context(x)

    def img_qkv(self, h, query_rows):
        q, k, v = _project(self.attn, h, query_rows, ("to_q", "to_k", "to_v"), "to_qkv", self.weights)
        return _heads(q, self.attn, self.attn.norm_q), _heads(k, self.attn, self.attn.norm_k), _heads(v, self.attn)

    def txt_qkv(self, h):
        q, k, v = _project(self.attn, h, None, ("add_q_proj", "add_k_proj", "add_v_proj"), "to_added_qkv",
                           self.weights)
        return (_heads(q, self.attn, self.attn.norm_added_q), _heads(k, self.attn, self.attn.norm_added_k),
                _heads(v, self.attn))

    def img_proj(self, a):
        return self.attn.to_out[1](self.attn.to_out[0](a))

    def txt_proj(self, a):
        return self.attn.to_add_out(a)

    def img_mlp(self, h):
        return self.block.ff(h)

    def txt_mlp(self, h):
        return self.block.ff_context(h)


class DiffusersSingleBlock:
    def __init__(self, block: nn.Module, weights: LinearWeights = plain_linear_weights) -> None:
        self.block = block
        self.attn = block.attn
        self.num_heads = block.attn.heads
        self.weights = weights

    def modulation(self, vec):
        shift, scale, gate = _chunks(self.block.norm, vec, 3)
        return Modulation(shift, scale, gate)

    def pre_norm(self, x):
        return self.block.norm.norm(x)

    def project(self, h, query_rows):
        q, k, v = _project(self.attn, h, query_rows, ("to_q", "to_k", "to_v"), "to_qkv", self.weights)
        return q, k, v, self.block.proj_mlp(h)

    def heads(self, q, k, v, mlp):
        return (_heads(q, self.attn, self.attn.norm_q), _heads(k, self.attn, self.attn.norm_k),
                _heads(v, self.attn), mlp)

    def mlp_act(self, mlp):
        return self.block.act_mlp(mlp)

    def output(self, attn, mlp):
        return self.block.proj_out(torch.cat((attn, mlp), dim=2))
