"""The LumiX blocks computed the plain way, straight from the paper's formulas (Sec. 3), for tests and benchmarks.

Full q/k/v for every map, the query broadcast done by copying, Tensor LoRA in the authors'
contraction order, one scene at a time. Shares no code with `qba.py` beyond the block's
submodules, so agreement between the two is evidence, not tautology. BFL layout only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from lumix_engine.method.tensor_lora import TensorLoRA
from lumix_engine.modalities import NUM_MAPS, QUERY_SOURCE


def tensor_lora_reference(
    x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor, scale: float
) -> torch.Tensor:
    """Y[i,l,o] = s sum_{j,u,r,q} x[j,l,u] G2[i,u,r,q] G1[i,j,q] G3[i,o,r] as written, for one
    scene x [M, L, d_in], in float64."""
    x, g1, g2, g3 = (t.double() for t in (x, g1, g2, g3))
    return scale * torch.einsum("jlu,iurq,ijq,ior->ilo", x, g2, g1, g3)


def tensor_lora_authors_order(x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor,
                              scale: float) -> torch.Tensor:
    """The authors' contraction order (x with G2 first), for benchmarks: x [M, L, d_in]."""
    b = torch.einsum("jlu,iurq->ijlrq", x, g2)
    h = torch.einsum("ijlrq,ijq->ijlr", b, g1)
    per_source = torch.einsum("ijlr,ior->ijlo", h, g3)  # materialised, as the authors do
    return per_source.sum(dim=1) * scale


def tensor_lora_plain(adapter: TensorLoRA, x: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """The adapter's output for a batch x [B, L, d_in] of whole scenes, by the float64 sum."""
    return torch.cat([tensor_lora_reference(scene, adapter.G1, adapter.G2, adapter.G3, adapter.scale * strength)
                      for scene in x.split(adapter.num_maps)])


def _lora(adapter: TensorLoRA | None, x: torch.Tensor, strength: float) -> torch.Tensor:
    if adapter is None:
        return torch.zeros(())
    out = []
    for scene in x.split(NUM_MAPS):
        y = tensor_lora_authors_order(scene.to(adapter.G1.dtype), adapter.G1, adapter.G2, adapter.G3, adapter.scale)
        out.append((y * strength).to(x.dtype))
    return torch.cat(out)


def _rope(x: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
    pairs = x.to(pe.dtype).reshape(*x.shape[:-1], -1, 1, 2)
    return (pe[..., 0] * pairs[..., 0] + pe[..., 1] * pairs[..., 1]).reshape(x.shape).type_as(x)


def _attention(q, k, v, pe):
    q, k = _rope(q, pe), _rope(k, pe)
    return rearrange(F.scaled_dot_product_attention(q, k, v), "b h l d -> b l (h d)")


def _broadcast_queries(q: torch.Tensor) -> torch.Tensor:
    out = q.clone()
    for start in range(0, q.shape[0], NUM_MAPS):
        out[start:start + NUM_MAPS] = q[start + QUERY_SOURCE]
    return out


def plain_double_block(block: nn.Module, img, txt, vec, pe, kv: TensorLoRA | None, proj: TensorLoRA | None,
                       strength: float = 1.0, qba: bool = True):
    heads = block.num_heads
    img_mod1, img_mod2 = block.img_mod(vec)
    txt_mod1, txt_mod2 = block.txt_mod(vec)
    h = (1 + img_mod1.scale) * block.img_norm1(img) + img_mod1.shift
    q, k, v = rearrange(block.img_attn.qkv(h), "b l (three h d) -> three b h l d", three=3, h=heads)
    q, k = block.img_attn.norm(q, k, v)
    dk, dv = rearrange(_lora(kv, h, strength).expand(*h.shape[:2], 2 * h.shape[2]),
                       "b l (two h d) -> two b h l d", two=2, h=heads)
    k, v = k + dk, v + dv
    if qba:
        q = _broadcast_queries(q)
    th = (1 + txt_mod1.scale) * block.txt_norm1(txt) + txt_mod1.shift
    tq, tk, tv = rearrange(block.txt_attn.qkv(th), "b l (three h d) -> three b h l d", three=3, h=heads)
    tq, tk = block.txt_attn.norm(tq, tk, tv)
    attn = _attention(torch.cat((tq, q), 2), torch.cat((tk, k), 2), torch.cat((tv, v), 2), pe)
    txt_attn, img_attn = attn[:, : txt.shape[1]], attn[:, txt.shape[1]:]
    p = block.img_attn.proj(img_attn)
    p = p + _lora(proj, p, strength)
    img = img + img_mod1.gate * p
    img = img + img_mod2.gate * block.img_mlp((1 + img_mod2.scale) * block.img_norm2(img) + img_mod2.shift)
    txt = txt + txt_mod1.gate * block.txt_attn.proj(txt_attn)
    txt = txt + txt_mod2.gate * block.txt_mlp((1 + txt_mod2.scale) * block.txt_norm2(txt) + txt_mod2.shift)
    return img, txt


def plain_single_block(block: nn.Module, x, vec, pe, kv: TensorLoRA | None, proj: TensorLoRA | None,
                       strength: float = 1.0, qba: bool = True):
    heads, hidden = block.num_heads, block.hidden_size
    mod, _ = block.modulation(vec)
    h = (1 + mod.scale) * block.pre_norm(x) + mod.shift
    qkv, mlp = torch.split(block.linear1(h), [3 * hidden, block.mlp_hidden_dim], dim=-1)
    q, k, v = rearrange(qkv, "b l (three h d) -> three b h l d", three=3, h=heads)
    q, k = block.norm(q, k, v)
    dk, dv = rearrange(_lora(kv, h, strength).expand(*h.shape[:2], 2 * hidden),
                       "b l (two h d) -> two b h l d", two=2, h=heads)
    k, v = k + dk, v + dv
    if qba:
        q = _broadcast_queries(q)
    out = block.linear2(torch.cat((_attention(q, k, v, pe), block.mlp_act(mlp)), 2))
    out = out + _lora(proj, out, strength)
    return x + mod.gate * out
