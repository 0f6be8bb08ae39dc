"""Tensor LoRA: low-rank adapters through which every map reads every other map.

Spec (Tensor LoRA): for the M maps of one scene, x [M, L, d_in], the output for map i is

    Y[i, l, o] = s * sum_j sum_u sum_r sum_q x[j, l, u] G2[i, u, r, q] G1[i, j, q] G3[i, o, r]

The authors contract x with G2 first, which builds an [M, M, L, R, R] intermediate:
O(M^2 L d_in R^2). Here G1 is folded into G2 once, giving a core
F[j, u, i, r] = s * sum_q G2[i, u, r, q] G1[i, j, q], so one scene costs a batched
[L, d_in] @ [d_in, M*R] per source map j, summed over j, plus a batched [L, R] @ [R, d_out]
per target map: O(M^2 L d_in R + M L R d_out). The maps are never copied side by side, so
the only large tensor a call allocates is its output, and `low_rank(...).add_to(t)` (inference)
accumulates the readout straight into t, so not even that. The folded core is cached per device
and dtype and rebuilt only when a parameter changes, so sampling pays for the fold once per
run; G3 is read in place when it already has the compute dtype.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..modalities import NUM_MAPS, scene_count


class TensorLoRA(nn.Module):
    """One adapter: `num_maps` maps, `in_features` -> `out_features`, rank `rank`.

    Parameter names and shapes are the checkpoint's (G1 [M, M, R], G2 [M, d_in, R, R],
    G3 [M, d_out, R]); a fresh adapter is a no-op because G3 starts at zero.
    """

    def __init__(
        self,
        num_maps: int,
        in_features: int,
        out_features: int,
        rank: int = 8,
        alpha: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.num_maps = num_maps
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.alpha = alpha
        factory = {"device": device, "dtype": dtype}
        # The authors' initialisation: G1 ~ N(0, 0.02^2), G2 ~ N(0, 1) / sqrt(d_in R), G3 = 0 (a no-op).
        self.G1 = nn.Parameter(torch.randn(num_maps, num_maps, rank, **factory) * 0.02)
        self.G2 = nn.Parameter(
            torch.randn(num_maps, in_features, rank, rank, **factory) / math.sqrt(in_features * rank)
        )
        self.G3 = nn.Parameter(torch.zeros(num_maps, out_features, rank, **factory))
        self._folded: dict[tuple, tuple[torch.Tensor, torch.Tensor, tuple[int, int, int]]] = {}

    @property
    def scale(self) -> float:
        """s without the strength: (alpha or 1) / sqrt(R)."""
        return (self.alpha if self.alpha is not None else 1.0) / math.sqrt(self.rank)

    def extra_repr(self) -> str:
        return (f"maps={self.num_maps}, in={self.in_features}, out={self.out_features}, "
                f"rank={self.rank}, alpha={self.alpha}")

    def _parameters_version(self) -> tuple[int, ...]:
        # Tensors created under torch.inference_mode (ComfyUI loads everything that way) have
        # no version counter; they are never updated in place, so their storage identifies them.
        return tuple(p.data_ptr() if p.is_inference() else p._version for p in (self.G1, self.G2, self.G3))

    def folded(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(core [M, d_in, M*R] with s folded in, readout [M, R, d_out]) on device/dtype.

        Cached unless gradients flow into the parameters (training), where the fold must
        stay in the autograd graph.
        """
        training = torch.is_grad_enabled() and any(p.requires_grad for p in (self.G1, self.G2, self.G3))
        key = (torch.device(device), dtype)
        if not training:
            hit = self._folded.get(key)
            if hit is not None and hit[2] == self._parameters_version():
                return hit[0], hit[1]
        # Fold in at least float32 so a bf16 compute dtype only rounds the finished core.
        fold_dtype = torch.promote_types(self.G2.dtype, torch.float32)
        g1 = self.G1.to(device=device, dtype=fold_dtype)
        g2 = self.G2.to(device=device, dtype=fold_dtype)
        m, d_in, r = self.num_maps, self.in_features, self.rank
        core = torch.einsum("iurq,ijq->juir", g2, g1).reshape(m, d_in, m * r) * self.scale
        core = core.to(dtype).contiguous()
        # A transposed view, not a copy, when G3 already is on device/dtype: matmul reads it as is.
        readout = self.G3.to(device=device, dtype=dtype).transpose(1, 2)
        if not training:
            self._folded[key] = (core, readout, self._parameters_version())
        return core, readout

    def release_cache(self) -> None:
        """Drop the folded cores (e.g. to free GPU memory between runs)."""
        self._folded.clear()

    def forward(self, x: torch.Tensor, strength: float = 1.0, compute_dtype: torch.dtype | None = None) -> torch.Tensor:
        """x [B, L, d_in] with B = M * scenes, scene-major -> [B, L, d_out] in x's dtype.

        Computes in `compute_dtype`, by default x's dtype: the adapter follows the model.
        """
        return self.low_rank(x, strength, compute_dtype).delta()

    def low_rank(self, x: torch.Tensor, strength: float = 1.0, compute_dtype: torch.dtype | None = None
                 ) -> "LowRankDelta":
        """The delta for x up to its readout: what `forward` computes before its last matmul,
        so the readout can be written where the caller wants it (`LowRankDelta.add_to`)."""
        batch, length, d_in = x.shape
        scenes = scene_count(batch, self.num_maps)
        dtype = compute_dtype or x.dtype
        core, readout = self.folded(x.device, dtype)
        m, r = self.num_maps, self.rank
        # sum over source maps j of x[j] @ core[j]: [k, M, L, d] @ [M, d, M*R] -> [k, L, M*R]
        low = torch.matmul(x.to(dtype).view(scenes, m, length, d_in), core).sum(dim=1)
        if strength != 1.0:
            low = low * strength
        low = low.view(scenes, length, m, r).transpose(1, 2)  # [k, M, L, R], target map first
        return LowRankDelta(low, readout, x.dtype)


class LowRankDelta:
    """A Tensor LoRA delta before its readout: low [k, M, L, R] and readout [M, R, d_out].

    `delta()` is the adapter's output; `add_to(target)` adds it to a tensor in place, with the
    readout matmul accumulating straight into the target when its layout allows, so the
    [B, L, d_out] delta is never allocated. In-place writes record no autograd graph: for
    inference only. `columns` picks part of d_out (the k or the v half of a kv adapter).
    """

    def __init__(self, low: torch.Tensor, readout: torch.Tensor, out_dtype: torch.dtype) -> None:
        self.low, self.readout, self.out_dtype = low, readout, out_dtype

    def delta(self, columns: slice = slice(None)) -> torch.Tensor:
        scenes, m, length, _ = self.low.shape
        out = torch.matmul(self.low, self.readout[:, :, columns])  # [k, M, L, c], broadcast over scenes
        return out.reshape(scenes * m, length, out.shape[-1]).to(self.out_dtype)

    def add_to(self, target: torch.Tensor, columns: slice = slice(None)) -> torch.Tensor:
        """target [B, L, c] += delta(columns), in place; returns target."""
        scenes, m, length, rank = self.low.shape
        readout = self.readout[:, :, columns]
        if target.dtype != self.low.dtype:  # the sum is formed in the target's dtype either way
            return target.add_(self.delta(columns))
        # Both factors are small ([B, L, R] and [B, R, c]); their copies cost next to nothing.
        low = self.low.reshape(scenes * m, length, rank)
        readout = readout.expand(scenes, *readout.shape).reshape(scenes * m, rank, readout.shape[-1])
        return target.baddbmm_(low, readout)


__all__ = ["LowRankDelta", "TensorLoRA", "NUM_MAPS"]
