"""The LumiX block math, written once for both FLUX layouts (paper Sec. 3: Query-Broadcast Attention and Tensor LoRA in every block).

A layout adapter (`layouts/bfl.py`, `layouts/diffusers.py`) exposes a block's own
submodules under one vocabulary: modulation, norms, projections, MLP. The functions here
add the two LumiX changes to an unpatched FLUX block:

- Query-Broadcast Attention: every map of a scene attends with the color map's queries
  (image queries in double blocks, the whole sequence in single blocks). The discarded
  queries are never computed: layouts project queries for the color rows only.
- Tensor LoRA: k and v get a cross-map delta after the q/k RMS norm, and the attention
  output projection gets another.

Maps interact only through those two; attention itself stays within each map.
Tensors are [B, L, D] with B = 5 * scenes, scene-major, maps ordered albedo, irradiance, color, depth, normal.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

import torch

from ..flux.attention import AttentionFn, sdpa_attention
from ..flux.rotary import Rotary
from ..modalities import NUM_MAPS, QUERY_SOURCE, broadcast_to_scene, scene_count
from .tensor_lora import TensorLoRA


@dataclass
class Modulation:
    """shift, scale, gate, each [B, 1, D]."""
    shift: torch.Tensor
    scale: torch.Tensor
    gate: torch.Tensor

    def apply(self, normed: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, normed, 1 + self.scale)


class DoubleBlockLayout(Protocol):
    num_heads: int

    def img_modulation(self, vec: torch.Tensor) -> tuple[Modulation, Modulation]: ...
    def txt_modulation(self, vec: torch.Tensor) -> tuple[Modulation, Modulation]: ...
    def img_norm1(self, x: torch.Tensor) -> torch.Tensor: ...
    def img_norm2(self, x: torch.Tensor) -> torch.Tensor: ...
    def txt_norm1(self, x: torch.Tensor) -> torch.Tensor: ...
    def txt_norm2(self, x: torch.Tensor) -> torch.Tensor: ...
    def img_qkv(self, h: torch.Tensor, query_rows: Optional[slice]) -> tuple[torch.Tensor, ...]: ...
    def txt_qkv(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]: ...
    def img_proj(self, a: torch.Tensor) -> torch.Tensor: ...
    def txt_proj(self, a: torch.Tensor) -> torch.Tensor: ...
    def img_mlp(self, h: torch.Tensor) -> torch.Tensor: ...
    def txt_mlp(self, h: torch.Tensor) -> torch.Tensor: ...


class SingleBlockLayout(Protocol):
    num_heads: int

    def modulation(self, vec: torch.Tensor) -> Modulation: ...
    def pre_norm(self, x: torch.Tensor) -> torch.Tensor: ...
    def qkv_mlp(self, h: torch.Tensor, query_rows: Optional[slice]) -> tuple[torch.Tensor, ...]: ...
    def output(self, attn: torch.Tensor, mlp: torch.Tensor) -> torch.Tensor: ...


@dataclass
class BlockAdapters:
    """The two Tensor LoRAs of one block and how to apply them.

    `strength` scales both deltas (the authors' lora_weight); `qba=False` keeps each map's own
    queries, for ablations. With no adapters and qba=False the block is the unpatched one.
    """
    kv: Optional[TensorLoRA] = None
    proj: Optional[TensorLoRA] = None
    strength: float = 1.0
    qba: bool = True

    def kv_delta(self, h: torch.Tensor, num_heads: int) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        if self.kv is None or self.strength == 0:
            return None
        delta = self.kv(h, self.strength)
        batch, length, _ = delta.shape
        dk, dv = delta.view(batch, length, 2, num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        return dk, dv

    def proj_delta(self, p: torch.Tensor) -> torch.Tensor:
        if self.proj is None or self.strength == 0:
            return p
        return p + self.proj(p, self.strength)


@dataclass
class AttentionHooks:
    """Other code's changes to a block's attention, applied where a stock FLUX block applies them.

    `before(q, k, v, rotary, mask)` sees the joint q, k, v [B, H, S, Dh] before rope (q is
    already the broadcast query under QBA) and returns all five, possibly replaced; rope then
    rotates the whole joint sequence with the rotary it returned. `after(attn)` sees the
    attention output [B, S, H*Dh]. Without a `before` hook the cheaper path (rope on the color
    queries only, then broadcast) is kept.
    """
    before: Optional[Callable[..., tuple]] = None
    after: Optional[Callable[[torch.Tensor], torch.Tensor]] = None


def _rotate_joint(q: torch.Tensor, k: torch.Tensor, rotary: Optional[Rotary]) -> tuple[torch.Tensor, torch.Tensor]:
    if rotary is None:
        return q, k
    everything = slice(0, None)
    return rotary(q, everything), rotary(k, everything)


# Batch rows of each scene's color map (2, 7, 12, ...) as a strided slice: indexing with it
# is a view (no index tensor built per block call, no copy for one scene).
QUERY_SOURCE_ROWS = slice(QUERY_SOURCE, None, NUM_MAPS)


def _text_then_scene_queries(txt_q: torch.Tensor, img_q: torch.Tensor) -> torch.Tensor:
    """[txt_q[m]; img_q[scene of m]] for every map m: txt_q [B, H, T, Dh], img_q [k, H, L, Dh].

    Writes each scene's image queries straight into the joint tensor, so the broadcast
    costs no copy of its own (it is the concatenation's copy).
    """
    batch, heads, txt_len, head_dim = txt_q.shape
    scenes, _, img_len, _ = img_q.shape
    q = txt_q.new_empty(batch, heads, txt_len + img_len, head_dim)
    q[:, :, :txt_len] = txt_q
    q.view(scenes, NUM_MAPS, heads, txt_len + img_len, head_dim)[:, :, :, txt_len:] = img_q.unsqueeze(1)
    return q


def _fp16_safe(x: torch.Tensor) -> torch.Tensor:
    # FLUX blocks clamp fp16 activations the same way; without it fp16 overflows to inf.
    if x.dtype == torch.float16:
        return torch.nan_to_num(x, nan=0.0, posinf=65504, neginf=-65504)
    return x


def lumix_double_block(
    layout: DoubleBlockLayout,
    adapters: BlockAdapters,
    img: torch.Tensor,
    txt: torch.Tensor,
    vec: torch.Tensor,
    rotary: Optional[Rotary],
    attention: AttentionFn = sdpa_attention,
    mask: Optional[torch.Tensor] = None,
    transformer_options: Any = None,
    hooks: Optional[AttentionHooks] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One double block with QBA and Tensor LoRA: LoRA deltas on k and v after the q/k norm, every map
    attends with the color map's image queries, proj output plus its LoRA delta."""
    batch, txt_len = img.shape[0], txt.shape[1]
    scene_count(batch)
    rows = QUERY_SOURCE_ROWS if adapters.qba else None
    img_mod1, img_mod2 = layout.img_modulation(vec)
    txt_mod1, txt_mod2 = layout.txt_modulation(vec)

    h = img_mod1.apply(layout.img_norm1(img))
    img_q, img_k, img_v = layout.img_qkv(h, rows)
    delta = adapters.kv_delta(h, layout.num_heads)
    if delta is not None:
        img_k, img_v = img_k + delta[0], img_v + delta[1]

    txt_q, txt_k, txt_v = layout.txt_qkv(txt_mod1.apply(layout.txt_norm1(txt)))

    if hooks is not None and hooks.before is not None:
        q = torch.cat((txt_q, img_q), dim=2) if rows is None else _text_then_scene_queries(txt_q, img_q)
        q, k, v, rotary, mask = hooks.before(q, torch.cat((txt_k, img_k), dim=2), torch.cat((txt_v, img_v), dim=2),
                                             rotary, mask)
        q, k = _rotate_joint(q, k, rotary)
    else:
        image_positions, text_positions = slice(txt_len, None), slice(0, txt_len)
        if rotary is not None:
            img_q = rotary(img_q, image_positions, rows)
            img_k = rotary(img_k, image_positions)
            txt_q = rotary(txt_q, text_positions)
            txt_k = rotary(txt_k, text_positions)
        q = torch.cat((txt_q, img_q), dim=2) if rows is None else _text_then_scene_queries(txt_q, img_q)
        k, v = torch.cat((txt_k, img_k), dim=2), torch.cat((txt_v, img_v), dim=2)
    attn = attention(q, k, v, mask, transformer_options)
    if hooks is not None and hooks.after is not None:
        attn = hooks.after(attn)
    txt_attn, img_attn = attn[:, :txt_len], attn[:, txt_len:]

    img = img + img_mod1.gate * adapters.proj_delta(layout.img_proj(img_attn))
    img = img + img_mod2.gate * layout.img_mlp(img_mod2.apply(layout.img_norm2(img)))

    txt = txt + txt_mod1.gate * layout.txt_proj(txt_attn)
    txt = txt + txt_mod2.gate * layout.txt_mlp(txt_mod2.apply(layout.txt_norm2(txt)))
    return _fp16_safe(img), _fp16_safe(txt)


def lumix_single_block(
    layout: SingleBlockLayout,
    adapters: BlockAdapters,
    x: torch.Tensor,
    vec: torch.Tensor,
    rotary: Optional[Rotary],
    attention: AttentionFn = sdpa_attention,
    mask: Optional[torch.Tensor] = None,
    transformer_options: Any = None,
    hooks: Optional[AttentionHooks] = None,
) -> torch.Tensor:
    """One single block on x = [txt; img] with QBA and Tensor LoRA: LoRA deltas on k and v over all
    tokens, every map attends with the color map's queries (text and image), linear2 plus its delta."""
    batch = x.shape[0]
    scene_count(batch)
    rows = QUERY_SOURCE_ROWS if adapters.qba else None
    mod = layout.modulation(vec)
    h = mod.apply(layout.pre_norm(x))
    q, k, v, mlp = layout.qkv_mlp(h, rows)
    delta = adapters.kv_delta(h, layout.num_heads)
    if delta is not None:
        k, v = k + delta[0], v + delta[1]
    if hooks is not None and hooks.before is not None:
        if rows is not None:
            q = broadcast_to_scene(q)
        q, k, v, rotary, mask = hooks.before(q, k, v, rotary, mask)
        q, k = _rotate_joint(q, k, rotary)
    else:
        if rotary is not None:
            everything = slice(0, None)
            q, k = rotary(q, everything, rows), rotary(k, everything)
        if rows is not None:
            q = broadcast_to_scene(q)
    attn = attention(q, k, v, mask, transformer_options)
    if hooks is not None and hooks.after is not None:
        attn = hooks.after(attn)
    out = adapters.proj_delta(layout.output(attn, mlp))
    return _fp16_safe(x + mod.gate * out)
