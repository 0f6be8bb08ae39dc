"""Decomposition errors against exact ground truth, and per-scene coherence scores.

- albedo / irradiance: scale-invariant RMSE in linear light (one least-squares gain per
  image: a decomposition fixes albedo and irradiance only up to a shared scale);
- depth: AbsRel after a least-squares scale and shift in disparity (the model's depth map
  is a normalised near-white disparity image), against the exact metric depth;
- normal: mean angle in degrees to the exact camera-space normals.
All per image, then averaged over the images.

Shipped, not evaluation-only: the demo (showcase.py) reports these against the exact ground
truth; the benchmarks and tests (evaluation/) use the same functions.
"""
from __future__ import annotations

import torch

from ..devices import to_float64
from ..intrinsics import coherence_report
from ..intrinsics.color_space import srgb_to_linear
from ..intrinsics.normals import decode_normals

# The coherence scores' edge-matching radius is 16 px at 512 x 512; at 64 x 64 the same
# fraction of the image is 2 px.
RADIUS_64 = 2


def si_rmse(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """[B] scale-invariant RMSE of sRGB-encoded images [B, H, W, 3], in linear light."""
    p, g = srgb_to_linear(predicted.clamp(0, 1)).flatten(1), srgb_to_linear(truth.clamp(0, 1)).flatten(1)
    gain = (p * g).sum(1) / (p * p).sum(1).clamp_min(1e-12)
    return ((gain[:, None] * p - g) ** 2).mean(1).sqrt()


def depth_absrel(predicted_image: torch.Tensor, metric_depth: torch.Tensor) -> torch.Tensor:
    """[B] AbsRel of a near-white disparity image [B, H, W, 3] after scale/shift alignment
    of its disparity to 1 / metric depth [B, H, W, 1]."""
    disparity = to_float64(predicted_image.mean(-1).flatten(1))
    depths = to_float64(metric_depth[..., 0].flatten(1), disparity.device)
    target = 1.0 / depths
    errors = []
    for p, g, depth in zip(disparity, target, depths):
        design = torch.stack([p, torch.ones_like(p)], 1)
        solution = torch.linalg.lstsq(design, g[:, None]).solution[:, 0]
        aligned = (design @ solution).clamp_min(float(g.min()) * 0.5)   # no negative or zero disparity
        errors.append(((1.0 / aligned - depth).abs() / depth).mean())
    return torch.stack(errors).float()


def normal_angle(predicted_image: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """[B] mean angle in degrees between decoded normals [B, H, W, 3] and unit truth."""
    p = torch.nn.functional.normalize(decode_normals(predicted_image), dim=-1)
    cosine = (p * truth).sum(-1).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cosine)).flatten(1).mean(1)


def decomposition_errors(predicted: dict[str, torch.Tensor], albedo: torch.Tensor, irradiance: torch.Tensor,
                         depth: torch.Tensor, normal: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image errors (see the module docstring); `depth` metric, `normal` unit vectors."""
    return {"albedo_si_rmse": si_rmse(predicted["albedo"], albedo),
            "irradiance_si_rmse": si_rmse(predicted["irradiance"], irradiance),
            "depth_absrel": depth_absrel(predicted["depth"], depth),
            "normal_degrees": normal_angle(predicted["normal"], normal)}


def coherence_per_scene(maps: dict[str, torch.Tensor], radius_px: int = RADIUS_64) -> dict[str, torch.Tensor]:
    """[B] structural alignment, recomposition RMSE and normal-depth error, scene by scene."""
    rows = {"structural_alignment": [], "recomposition_rmse": [], "normal_depth_degrees": []}
    for k in range(next(iter(maps.values())).shape[0]):
        report = coherence_report(**{name: image[k:k + 1] for name, image in maps.items()}, radius_px=radius_px)
        rows["structural_alignment"].append(report.structural_alignment)
        rows["recomposition_rmse"].append(report.recomposition_rmse)
        rows["normal_depth_degrees"].append(report.normal_depth_error_degrees)
    return {name: torch.tensor(values) for name, values in rows.items()}
