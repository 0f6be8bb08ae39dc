"""Guided upsampling written out pixel by pixel in float64 numpy (the sums of
lumix_engine/intrinsics/upsample.py's docstring), for tests on small random inputs.

- bilinear: torch's align_corners=False rule, source = (p + 0.5) * low / full - 0.5,
  floored at 0, the upper sample clamped to the grid;
- joint bilateral (Kopf et al. 2007): mean of the (2 r + 1)^2 working samples around p's
  nearest sample (clamped), weight exp(-d^2 / 2 s^2) (exp(-|I(p) - I~(q)|^2 / 2 r^2) + 1e-6);
- edge-aware: per map (a group of channels), bilinear + blend (joint bilateral - bilinear),
  blend = clip((change / tau - 1/4) / (3/4), 0, 1), change = bilinear upsampling of the
  map's largest |second difference| over its 3 x 3 working neighbourhood and its channels;
- recomposition: irradiance = max(exp(upsampled log(E + 1e-4)) - 1e-4 clipped to [0, 1],
  photo), albedo = photo / irradiance (linear light), both sRGB-encoded.
"""
from __future__ import annotations

import math

import numpy as np


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.maximum(x, 0.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.maximum(x, 0.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def _source(p: int, low: int, full: int) -> float:
    return (p + 0.5) * low / full - 0.5


def bilinear(low: np.ndarray, height: int, width: int) -> np.ndarray:
    """[C, h, w] -> [C, height, width]."""
    channels, h, w = low.shape
    out = np.zeros((channels, height, width))
    for y in range(height):
        sy = max(_source(y, h, height), 0.0)
        y0 = min(int(math.floor(sy)), h - 1)
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for x in range(width):
            sx = max(_source(x, w, width), 0.0)
            x0 = min(int(math.floor(sx)), w - 1)
            x1, fx = min(x0 + 1, w - 1), sx - x0
            out[:, y, x] = ((1 - fy) * ((1 - fx) * low[:, y0, x0] + fx * low[:, y0, x1])
                            + fy * ((1 - fx) * low[:, y1, x0] + fx * low[:, y1, x1]))
    return out


def joint_bilateral(low: np.ndarray, guide_low: np.ndarray, guide: np.ndarray, radius: int, sigma_space: float,
                    sigma_range: float) -> np.ndarray:
    """low [C, h, w], guide_low [G, h, w] (the photo at the working size), guide [G, H, W]."""
    channels, h, w = low.shape
    height, width = guide.shape[1:]
    out = np.zeros((channels, height, width))
    for y in range(height):
        py = _source(y, h, height)
        cy = min(max(round(py), 0), h - 1)
        for x in range(width):
            px = _source(x, w, width)
            cx = min(max(round(px), 0), w - 1)
            total, weights = np.zeros(channels), 0.0
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    qy, qx = min(max(cy + dy, 0), h - 1), min(max(cx + dx, 0), w - 1)
                    space = math.exp(-((qy - py) ** 2 + (qx - px) ** 2) / (2 * sigma_space ** 2))
                    difference = ((guide_low[:, qy, qx] - guide[:, y, x]) ** 2).sum()
                    weight = space * (math.exp(-difference / (2 * sigma_range ** 2)) + 1e-6)
                    total += weight * low[:, qy, qx]
                    weights += weight
            out[:, y, x] = total / weights
    return out


def local_change(low: np.ndarray) -> np.ndarray:
    """Per channel: the largest |second difference| (x or y, borders replicated) over the
    3 x 3 neighbourhood clipped at the border."""
    channels, h, w = low.shape
    curvature = np.zeros_like(low)
    for y in range(h):
        for x in range(w):
            left, right = low[:, y, max(x - 1, 0)], low[:, y, min(x + 1, w - 1)]
            up, below = low[:, max(y - 1, 0), x], low[:, min(y + 1, h - 1), x]
            curvature[:, y, x] = np.maximum(np.abs(left + right - 2 * low[:, y, x]), np.abs(up + below - 2 * low[:, y, x]))
    out = np.zeros_like(low)
    for y in range(h):
        for x in range(w):
            out[:, y, x] = curvature[:, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].reshape(channels, -1).max(1)
    return out


def edge_aware(low: np.ndarray, guide_low: np.ndarray, guide: np.ndarray, tau: list[float], sizes: list[int],
               radius: int, sigma_space: float, sigma_range: float) -> np.ndarray:
    """low [C, h, w]: maps of `sizes` channels each, one tau per map."""
    height, width = guide.shape[1:]
    smooth = bilinear(low, height, width)
    sharp = joint_bilateral(low, guide_low, guide, radius, sigma_space, sigma_range)
    out, start = np.zeros_like(smooth), 0
    for size, threshold in zip(sizes, tau):
        maps = slice(start, start + size)
        change = bilinear(local_change(low[maps]).max(0, keepdims=True), height, width)
        blend = np.clip((change / threshold - 0.25) / 0.75, 0, 1)
        out[maps] = smooth[maps] + blend * (sharp[maps] - smooth[maps])
        start += size
    return out


def recompose_albedo_irradiance(log_irradiance: np.ndarray, photo: np.ndarray, log_offset: float, dark: float
                                ) -> tuple[np.ndarray, np.ndarray]:
    """Upsampled log irradiance [3, H, W] + sRGB photo [3, H, W] -> sRGB albedo, irradiance."""
    photo_linear = srgb_to_linear(photo)
    irradiance = np.maximum(np.clip(np.exp(log_irradiance) - log_offset, 0, 1), photo_linear)
    albedo = np.clip(photo_linear / np.maximum(irradiance, dark), 0, 1)
    return linear_to_srgb(albedo), linear_to_srgb(irradiance)
