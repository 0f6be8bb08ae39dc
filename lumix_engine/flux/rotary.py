"""Rotary position embeddings in the two layouts FLUX comes in.

The LumiX block math applies rope itself (rather than inside the attention kernel) so that
the broadcast query is rotated once per scene instead of once per map. Both forms rotate
consecutive channel pairs (2i, 2i+1) of each head by the angle of that pair's frequency.
"""
from __future__ import annotations

from typing import Protocol

import torch

from ..devices import float64_device, to_device, to_float64


class Rotary(Protocol):
    """Rotates q or k [b, H, n, Dh] whose tokens sit at `positions` of the joint sequence.

    `rotate_into` writes the result into `out` (a view of a joint q or k tensor) instead of
    returning a new tensor: inference-only (out= records no autograd graph).
    """

    def __call__(self, x: torch.Tensor, positions: slice, rows: slice | None = None) -> torch.Tensor: ...

    def rotate_into(self, x: torch.Tensor, positions: slice, out: torch.Tensor,
                    rows: slice | None = None) -> torch.Tensor: ...


class BflRotary:
    """BFL / ComfyUI form: pe [B or 1, 1, S, Dh/2, 2, 2] of 2x2 rotation matrices (float32)."""

    def __init__(self, pe: torch.Tensor) -> None:
        self.pe = pe

    def __call__(self, x: torch.Tensor, positions: slice, rows: slice | None = None) -> torch.Tensor:
        pe = self.pe[:, :, positions]
        if rows is not None and pe.shape[0] > 1:
            pe = pe[rows]
        pairs = x.to(pe.dtype).reshape(*x.shape[:-1], -1, 1, 2)
        out = pe[..., 0] * pairs[..., 0] + pe[..., 1] * pairs[..., 1]
        return out.reshape(x.shape).type_as(x)

    def rotate_into(self, x: torch.Tensor, positions: slice, out: torch.Tensor,
                    rows: slice | None = None) -> torch.Tensor:
        """The same rotation written into `out` (last dim contiguous). Computed in pe's dtype
        as above (a narrower x is promoted inside the multiply, a wider one is rounded first):
        straight into `out` when that is out's dtype, else through one temporary."""
        pe = self.pe[:, :, positions]
        if rows is not None and pe.shape[0] > 1:
            pe = pe[rows]
        if torch.promote_types(x.dtype, pe.dtype) != pe.dtype:
            x = x.to(pe.dtype)
        pairs = x.reshape(*x.shape[:-1], -1, 1, 2)
        direct = out.dtype == pe.dtype
        rotated = torch.mul(pe[..., 0], pairs[..., 0], out=out.view(*out.shape[:-1], -1, 2) if direct else None)
        rotated.addcmul_(pe[..., 1], pairs[..., 1])
        if not direct:
            out.copy_(rotated.reshape(out.shape))
        return out


class DiffusersRotary:
    """diffusers form: (cos, sin), each [S, Dh] with every frequency repeated twice."""

    def __init__(self, cos: torch.Tensor, sin: torch.Tensor) -> None:
        self.cos, self.sin = cos, sin

    def __call__(self, x: torch.Tensor, positions: slice, rows: slice | None = None) -> torch.Tensor:
        cos, sin = self.cos[positions].to(x.device), self.sin[positions].to(x.device)
        real, imag = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
        rotated = torch.stack([-imag, real], dim=-1).flatten(-2)
        return (x.float() * cos + rotated.float() * sin).to(x.dtype)

    def rotate_into(self, x: torch.Tensor, positions: slice, out: torch.Tensor,
                    rows: slice | None = None) -> torch.Tensor:
        return out.copy_(self(x, positions, rows))


def rope_frequencies(positions: torch.Tensor, dim: int, theta: float) -> torch.Tensor:
    """BFL rope table for one position axis: positions [..., n] -> [..., n, dim/2, 2, 2]."""
    if dim % 2:
        raise ValueError(f"rope axis dim must be even, got {dim}")
    # Angles in float64 (as BFL and ComfyUI compute them), on the CPU for a device without
    # float64 (MPS), so every device gets the same table.
    scale = torch.arange(0, dim, 2, dtype=torch.float64, device=float64_device(positions.device)) / dim
    omega = 1.0 / (theta ** scale)
    angles = to_float64(positions)[..., None] * omega
    cos, sin = torch.cos(angles), torch.sin(angles)
    table = torch.stack([cos, -sin, sin, cos], dim=-1)
    return to_device(table.reshape(*table.shape[:-1], 2, 2).float(), positions.device)


def bfl_pe(ids: torch.Tensor, axes_dim: list[int] | tuple[int, ...], theta: float = 10000) -> torch.Tensor:
    """ids [B, S, n_axes] -> pe [B, 1, S, Dh/2, 2, 2], as FLUX's EmbedND builds it."""
    tables = [rope_frequencies(ids[..., axis], dim, theta) for axis, dim in enumerate(axes_dim)]
    return torch.cat(tables, dim=-3).unsqueeze(1)
