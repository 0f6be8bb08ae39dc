"""Depth maps as images: normalised disparity with near = white.

FLUX depth control models and ComfyUI's own depth/geometry nodes expect a depth IMAGE in
which near is white and far is black, i.e. (normalised) disparity, not metric depth.
Disparity (1 / depth) is also what a pinhole camera makes linear across a plane, so it
is the natural quantity to normalise.

Inputs: depth as [B, H, W], [B, H, W, 1] or [B, H, W, 3] (equal channels are averaged).
Output: [B, H, W, 3] float image in [0, 1] (three equal channels, ComfyUI IMAGE).
"""
from __future__ import annotations

import torch

from ..errors import InputError
from .checks import as_depth

NORMALIZATIONS = ("percentile", "minmax")
# A LumiX depth map is relative: normalised disparity fixes depth only up to scale and an
# offset. To place points in 3D we assume the white end lies at distance 1 and the black
# end at DEPTH_RANGE (far / near); the ratio is an input wherever depth becomes geometry.
DEPTH_RANGE = 10.0
SOURCES = ("metric", "near_white", "near_dark")


def depth_to_disparity(depth: torch.Tensor) -> torch.Tensor:
    """1 / depth for metric depth [B, H, W]; non-positive depth (no hit) becomes 0 = far."""
    positive = depth > 0
    return torch.where(positive, 1.0 / torch.where(positive, depth, torch.ones_like(depth)), torch.zeros_like(depth))


def normalize_per_image(values: torch.Tensor, normalization: str = "percentile",
                        low_percentile: float = 2.0, high_percentile: float = 98.0) -> torch.Tensor:
    """Map each image of `values` [B, H, W] to [0, 1].

    'minmax' uses the extremes (exact, but one outlier pixel compresses the rest);
    'percentile' maps the given percentiles to 0 and 1 and clips, which is robust to the
    isolated far/near outliers that generated depth maps have.
    """
    if normalization not in NORMALIZATIONS:
        raise InputError(f"normalization {normalization!r} is unknown; use one of {NORMALIZATIONS}.")
    if not 0.0 <= low_percentile < high_percentile <= 100.0:
        raise InputError(
            f"percentiles must satisfy 0 <= low < high <= 100; got low={low_percentile}, high={high_percentile}."
        )
    flat = values.reshape(values.shape[0], -1)
    if normalization == "minmax":
        low, high = flat.min(dim=1).values, flat.max(dim=1).values
    else:
        q = torch.tensor([low_percentile / 100, high_percentile / 100], dtype=flat.dtype)
        low, high = torch.quantile(flat, q, dim=1)
    span = (high - low).clamp_min(torch.finfo(values.dtype).tiny)   # a constant map becomes 0
    return ((values - low[:, None, None]) / span[:, None, None]).clamp(0, 1)


def invert(image: torch.Tensor) -> torch.Tensor:
    """Swap near and far of a normalised depth image (near-white <-> near-dark)."""
    return 1.0 - image


def depth_to_image(depth: torch.Tensor, *, source: str = "metric", normalization: str = "percentile",
                   low_percentile: float = 2.0, high_percentile: float = 98.0,
                   invert_output: bool = False) -> torch.Tensor:
    """Export depth as a near-white normalised disparity image [B, H, W, 3].

    source: 'metric' (distance, far = large: converted to disparity first), 'near_white'
    (already a disparity-like image) or 'near_dark' (a depth-like image, flipped).
    invert_output: give near = black instead, for tools that want depth rather than disparity.
    """
    if source not in SOURCES:
        raise InputError(f"depth source {source!r} is unknown; use one of {SOURCES}.")
    values = as_depth(depth)
    if source == "metric":
        values = depth_to_disparity(values)
    elif source == "near_dark":
        values = -values   # normalisation below maps it back to [0, 1] with near white
    image = normalize_per_image(values, normalization, low_percentile, high_percentile)
    if invert_output:
        image = invert(image)
    return image[..., None].expand(*image.shape, 3).contiguous()


def check_disparity(values: torch.Tensor, name: str = "depth") -> torch.Tensor:
    """Refuse a depth image [B, H, W] that carries no geometry: NaN / Inf, all zeros, or
    constant. Returns it unchanged."""
    if not torch.isfinite(values).all():
        bad = int((~torch.isfinite(values)).sum())
        raise InputError(f"{name} has {bad} NaN or infinite pixel(s); connect a finite depth image (the depth "
                         f"output of Split Intrinsics, or LumiX Depth Convert to clean an external one).")
    for index, image in enumerate(values):
        if not bool((image != 0).any()):
            raise InputError(f"{name} image {index} is all zeros (black): it has no depth to export. Connect the "
                             f"depth map itself (near = white), not an empty or masked image.")
        if bool((image == image.reshape(-1)[0]).all()):
            raise InputError(f"{name} image {index} is constant ({float(image.reshape(-1)[0]):.4g} everywhere): a "
                             f"flat map has no geometry. Connect a real depth map, or normalise it first with "
                             f"LumiX Depth Convert.")
    return values


def disparity_to_depth(disparity: torch.Tensor, depth_range: float = DEPTH_RANGE) -> torch.Tensor:
    """Normalised disparity (1 = near, 0 = far) -> distance along the view axis in units of
    the nearest distance, in [1, depth_range].

    Disparity is inverse depth, so it is interpolated linearly between the two planes:
    1 / z = d / near + (1 - d) / far with near = 1 and far = depth_range. A min-max
    normalised disparity of a metric depth z (as `depth_to_image` writes it) comes back
    exactly as z / min(z) when depth_range = max(z) / min(z).
    """
    if not depth_range > 1.0:
        raise InputError(f"depth_range (far / near) must be > 1, got {depth_range}; 10 suits most scenes.")
    d = disparity.clamp(0.0, 1.0)
    return 1.0 / (d + (1.0 - d) / depth_range)


def distance_from_disparity(disparity: torch.Tensor, depth_range: float = DEPTH_RANGE) -> torch.Tensor:
    """A LumiX depth image [B, H, W] (relative disparity, near = white) -> distance along the
    view axis in units of the nearest point: per image, the nearest pixel at exactly 1 and the
    farthest at exactly `depth_range`.

    LumiX's disparity is relative and need not span [0, 1] (the shipped tiny model's spans
    about 0.13-0.99), so each image is stretched to [0, 1] first; without that the farthest
    point would land short of `depth_range` and the nearest beyond 1. Refuse flat or
    non-finite maps with `check_disparity` before calling this.
    """
    flat = disparity.reshape(disparity.shape[0], -1)
    low = flat.min(dim=1).values[:, None, None]
    high = flat.max(dim=1).values[:, None, None]
    return disparity_to_depth((disparity - low) / (high - low), depth_range)
