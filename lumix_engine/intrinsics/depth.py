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
