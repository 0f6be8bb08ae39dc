"""Tensor LoRA: low-rank adapters through which every map reads every other map.

Spec (Tensor LoRA): for the M maps of one scene, x [M, L, d_in], the output for map i is

    Y[i, l, o] = s * sum_j sum_u sum_r sum_q x[j, l, u] G2[i, u, r, q] G1[i, j, q] G3[i, o, r]

The authors contract x with G2 first, which builds an [M, M, L, R, R] intermediate:
O(M^2 L d_in R^2). Here G1 is folded into G2 once, giving a core
F[j, u, i, r] = s * sum_q G2[i, u, r, q] G1[i, j, q], so one scene costs a batched
[L, d_in] @ [d_in, M*R] per source map j, summed over j, plus a batched [L, R] @ [R, d_out]
per target map: O(M^2 L d_in R + M L R d_out). The maps are never copied side by side, so
the only large tensor a call allocates is its output. The folded core is cached per device
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
        out = torch.matmul(low, readout)  # [k, M, L, d_out], broadcast over scenes
        return out.reshape(batch, length, self.out_features).to(x.dtype)


__all__ = ["TensorLoRA", "NUM_MAPS"]
