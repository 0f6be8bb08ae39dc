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

Inference (no autograd: ComfyUI samples under inference_mode, the pipeline under no_grad)
allocates no more than a stock block: the modulation, the k/v and projection deltas and the
second residual add are written in place into tensors the block itself created, rope writes
straight into the joint q and k, and the adapters' readouts accumulate into their targets.
With gradients enabled (training) every op stays out of place, as autograd needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

import torch

from ..flux.attention import AttentionFn, sdpa_attention
from ..flux.rotary import Rotary
from ..modalities import NUM_MAPS, QUERY_SOURCE, broadcast_to_scene, scene_count
from .tensor_lora import LowRankDelta, TensorLoRA


@dataclass
class Modulation:
    """shift, scale, gate, each [B, 1, D]."""
    shift: torch.Tensor
    scale: torch.Tensor
    gate: torch.Tensor

    def apply(self, normed: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, normed, 1 + self.scale)

    def apply_(self, normed: torch.Tensor) -> torch.Tensor:
        """`apply` written into `normed` (inference, on a tensor the caller owns)."""
        return torch.addcmul(self.shift, normed, 1 + self.scale, out=normed)


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
    def project(self, h: torch.Tensor, query_rows: Optional[slice]) -> tuple[torch.Tensor, ...]: ...
    def heads(self, *projected: torch.Tensor) -> tuple[torch.Tensor, ...]: ...  # q, k, v (q/k normed), mlp
    def mlp_act(self, mlp: torch.Tensor) -> torch.Tensor: ...
    def output(self, attn: torch.Tensor, mlp: torch.Tensor) -> torch.Tensor: ...  # mlp: mlp_act's output


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

    def kv_input(self, h: torch.Tensor, inplace: bool) -> "torch.Tensor | LowRankDelta | None":
        """What `add_kv_delta` needs of h: in place its low-rank part (small; None without a
        kv adapter), so h itself can be freed first; else h."""
        if not inplace:
            return h
        return self.kv.low_rank(h, self.strength) if self.kv is not None and self.strength != 0 else None

    def add_kv_delta(self, h: "torch.Tensor | LowRankDelta | None", k: torch.Tensor, v: torch.Tensor,
                     num_heads: int, inplace: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(k + dk, v + dv); with `inplace` (k and v the block's own tensors) written into k and v.
        h: the block's modulated input, or in place also what `kv_input` made of it."""
        if not inplace:
            delta = self.kv_delta(h, num_heads)
            return (k, v) if delta is None else (k + delta[0], v + delta[1])
        low = h if not isinstance(h, torch.Tensor) else self.kv_input(h, inplace)
        if low is not None:
            width = k.shape[1] * k.shape[3]
            _add_by_rows(low, k, slice(0, width))
            _add_by_rows(low, v, slice(width, 2 * width))
        return k, v

    def proj_delta(self, p: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        if self.proj is None or self.strength == 0:
            return p
        if inplace:
            return self.proj.low_rank(p, self.strength).add_to(p)  # p is read whole before it is written
        return p + self.proj(p, self.strength)


def _add_by_rows(low: LowRankDelta, heads: torch.Tensor, columns: slice) -> None:
    """heads [B, H, L, Dh] += the delta's `columns` [B, L, H*Dh], in place: straight into heads when
    it is a view of a [B, L, H*Dh] tensor (v: the projection's output), else through the delta."""
    batch, num_heads, length, head_dim = heads.shape
    # Heads and channels merge into one row view only when a head's stride spans its channels.
    # Decided from the strides, not by trying a view: torch.compile traces this too.
    if heads.stride(1) == head_dim * heads.stride(3):
        low.add_to(heads.transpose(1, 2).view(batch, length, num_heads * head_dim), columns)
    else:  # laid out head-major (a norm's output): through the delta
        heads.add_(low.delta(columns).view(batch, length, num_heads, head_dim).transpose(1, 2))


def _inference() -> bool:
    """In-place updates are for inference: with gradients enabled autograd needs every input."""
    return not torch.is_grad_enabled()


def _modulated(mod: Modulation, normed: torch.Tensor, source: torch.Tensor, inplace: bool) -> torch.Tensor:
    """mod applied to a norm's output, in place when that output is new (not the block's input)."""
    if inplace and not _shares_storage(normed, source):
        return mod.apply_(normed)
    return mod.apply(normed)


def _shares_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage()._cdata == b.untyped_storage()._cdata


def _gated_add(x: torch.Tensor, gate: torch.Tensor, y: torch.Tensor, inplace: bool, own: bool) -> torch.Tensor:
    """x + gate * y: one new tensor for inference (addcmul), none when x is the block's own (`own`)."""
    if not inplace:
        return x + gate * y
    return x.addcmul_(gate, y) if own else torch.addcmul(x, gate, y)


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


def _joint_rotated(parts: tuple[tuple[torch.Tensor, bool], ...], rotary: Optional[Rotary], batch: int) -> torch.Tensor:
    """The parts [b, H, n, Dh] one after another along the sequence, each rotated for its
    positions, written into one new [batch, H, S, Dh] tensor (inference: rope's out= has no
    autograd). A part flagged per-scene holds one row per scene (the color map's queries): it
    is rotated once into the color map's slot and copied to the scene's other maps."""
    first = parts[0][0]
    joint = first.new_empty(batch, first.shape[1], sum(p.shape[2] for p, _ in parts), first.shape[3])
    start = 0
    for part, per_scene in parts:
        positions = slice(start, start + part.shape[2])
        start = positions.stop
        target = joint[:, :, positions]
        rows = None
        if per_scene:
            maps = target.unflatten(0, (-1, NUM_MAPS))
            target, rows = maps[:, QUERY_SOURCE], QUERY_SOURCE_ROWS
        if rotary is None:
            target.copy_(part)
        else:
            rotary.rotate_into(part, positions, target, rows)
        if per_scene:
            source = maps[:, QUERY_SOURCE:QUERY_SOURCE + 1]
            maps[:, :QUERY_SOURCE].copy_(source)
            maps[:, QUERY_SOURCE + 1:].copy_(source)
    return joint


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
    inplace = _inference()
    rows = QUERY_SOURCE_ROWS if adapters.qba else None
    img_mod1, img_mod2 = layout.img_modulation(vec)
    txt_mod1, txt_mod2 = layout.txt_modulation(vec)

    h = _modulated(img_mod1, layout.img_norm1(img), img, inplace)
    img_q, img_k, img_v = layout.img_qkv(h, rows)
    img_k, img_v = adapters.add_kv_delta(h, img_k, img_v, layout.num_heads, inplace)
    del h
    txt_q, txt_k, txt_v = layout.txt_qkv(_modulated(txt_mod1, layout.txt_norm1(txt), txt, inplace))

    if hooks is not None and hooks.before is not None:
        q = torch.cat((txt_q, img_q), dim=2) if rows is None else _text_then_scene_queries(txt_q, img_q)
        q, k, v, rotary, mask = hooks.before(q, torch.cat((txt_k, img_k), dim=2), torch.cat((txt_v, img_v), dim=2),
                                             rotary, mask)
        q, k = _rotate_joint(q, k, rotary)
    elif inplace:
        q = _joint_rotated(((txt_q, False), (img_q, rows is not None)), rotary, batch)
        k = _joint_rotated(((txt_k, False), (img_k, False)), rotary, batch)
        v = torch.cat((txt_v, img_v), dim=2)
    else:
        image_positions, text_positions = slice(txt_len, None), slice(0, txt_len)
        if rotary is not None:
            img_q = rotary(img_q, image_positions, rows)
            img_k = rotary(img_k, image_positions)
            txt_q = rotary(txt_q, text_positions)
            txt_k = rotary(txt_k, text_positions)
        q = torch.cat((txt_q, img_q), dim=2) if rows is None else _text_then_scene_queries(txt_q, img_q)
        k, v = torch.cat((txt_k, img_k), dim=2), torch.cat((txt_v, img_v), dim=2)
    del txt_q, txt_k, txt_v, img_q, img_k, img_v
    attn = attention(q, k, v, mask, transformer_options)
    del q, k, v
    if hooks is not None and hooks.after is not None:
        attn = hooks.after(attn)
    txt_attn, img_attn = attn[:, :txt_len], attn[:, txt_len:]

    img = _gated_add(img, img_mod1.gate, adapters.proj_delta(layout.img_proj(img_attn), inplace), inplace, own=False)
    img = _gated_add(img, img_mod2.gate, layout.img_mlp(_modulated(img_mod2, layout.img_norm2(img), img, inplace)),
                     inplace, own=True)

    txt = _gated_add(txt, txt_mod1.gate, layout.txt_proj(txt_attn), inplace, own=False)
    txt = _gated_add(txt, txt_mod2.gate, layout.txt_mlp(_modulated(txt_mod2, layout.txt_norm2(txt), txt, inplace)),
                     inplace, own=True)
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
    inplace = _inference()
    rows = QUERY_SOURCE_ROWS if adapters.qba else None
    mod = layout.modulation(vec)
    h = _modulated(mod, layout.pre_norm(x), x, inplace)
    projected = layout.project(h, rows)
    # The k/v delta reads h; in place its low-rank part is taken now, so h (a full-width
    # activation) is gone before the q/k norm's float32 temporaries, as in FLUX's own block.
    kv_input = adapters.kv_input(h, inplace)
    del h
    q, k, v, mlp = layout.heads(*projected)
    del projected
    k, v = adapters.add_kv_delta(kv_input, k, v, layout.num_heads, inplace)
    if hooks is not None and hooks.before is not None:
        if rows is not None:
            q = broadcast_to_scene(q)
        q, k, v, rotary, mask = hooks.before(q, k, v, rotary, mask)
        q, k = _rotate_joint(q, k, rotary)
    elif inplace:
        if rotary is not None or rows is not None:
            q = _joint_rotated(((q, rows is not None),), rotary, batch)
        if rotary is not None:
            k = _joint_rotated(((k, False),), rotary, batch)
    else:
        if rotary is not None:
            everything = slice(0, None)
            q, k = rotary(q, everything, rows), rotary(k, everything)
        if rows is not None:
            q = broadcast_to_scene(q)
    attn = attention(q, k, v, mask, transformer_options)
    del q, k, v
    if hooks is not None and hooks.after is not None:
        attn = hooks.after(attn)
    # Rebinding mlp drops the last reference to the fused projection's output (mlp is a view of
    # it in BFL's layout) before the concatenation allocates, as FLUX's own single block does.
    mlp = layout.mlp_act(mlp)
    out = adapters.proj_delta(layout.output(attn, mlp), inplace)
    return _fp16_safe(_gated_add(x, mod.gate, out, inplace, own=False))
