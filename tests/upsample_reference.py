"""Guided upsampling written out pixel by pixel in float64 numpy (the sums of
lumix_engine/intrinsics/upsample.py's docstring), for tests on small random inputs.

- bilinear: torch's align_corners=False rule, source = (p + 0.5) * low / full - 0.5,
  floored at 0, the upper sample clamped to the grid;
- window statistics at working pixel k: the (2 r + 1)^2 samples at k + (dy, dx), positions
  clamped to the grid (replicated borders); means, covariance of the photo (3 x 3) and
  of the photo with the map (3 x C); detrended: minus the parts explained by the offsets
  dx and dy to the pixels read (clamped positions minus k),
  cov(a, b) - cov(a, dx) cov(dx, b) / var(dx) - cov(a, dy) cov(dy, b) / var(dy);
- slopes A_k = (cov(I, I) + epsilon Id)^-1 cov(I, M), by numpy's solver;
- output p: bilinear(M)(p) + sum_j bilinear(A_j)(p) (I_j(p) - bilinear(I~_j)(p));
- recomposition: irradiance = max(clip(E, 0, 1), photo), albedo = photo / irradiance
  (linear light); where the irradiance's largest channel is below DARK_HIGH, albedo =
  exp(lerp(log max(albedo, floor), log clip(model albedo, floor, 1), w)), w =
  clip((DARK_HIGH - level) / (DARK_HIGH - DARK_LOW), 0, 1), raised to the photo and
  clipped to [floor, 1], and irradiance = photo / albedo; both sRGB-encoded.
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


def slopes(low: np.ndarray, guide_low: np.ndarray, epsilon: float, radius: int, detrend: bool) -> np.ndarray:
    """low [C, h, w], guide_low [3, h, w] -> A [3, C, h, w]."""
    channels, h, w = low.shape
    out = np.zeros((3, channels, h, w))
    offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    for y in range(h):
        for x in range(w):
            positions = [(min(max(y + oy, 0), h - 1), min(max(x + ox, 0), w - 1)) for oy, ox in offsets]
            photo = np.stack([guide_low[:, py, px] for py, px in positions])          # [n, 3]
            values = np.stack([low[:, py, px] for py, px in positions])              # [n, C]
            photo_c, values_c = photo - photo.mean(0), values - values.mean(0)
            covariance = photo_c.T @ photo_c / len(offsets)
            cross = photo_c.T @ values_c / len(offsets)
            if detrend:   # offsets to the pixels read (clamped at the borders), centred
                for axis, centre in ((0, y), (1, x)):
                    offset = np.array([p[axis] - centre for p in positions], dtype=np.float64)
                    offset -= offset.mean()
                    variance = (offset * offset).mean()
                    with_photo, with_values = offset @ photo_c / len(offsets), offset @ values_c / len(offsets)
                    covariance = covariance - np.outer(with_photo, with_photo) / variance
                    cross = cross - np.outer(with_photo, with_values) / variance
            out[:, :, y, x] = np.linalg.solve(covariance + epsilon * np.eye(3), cross)
    return out


def local_linear(low: np.ndarray, guide_low: np.ndarray, guide: np.ndarray, fits: list, sizes: list[int]
                 ) -> np.ndarray:
    """low [C, h, w] (maps of `sizes` channels, one (epsilon, radius, detrend) each),
    guide_low [3, h, w] (the photo at the working size, linear), guide [3, H, W]."""
    height, width = guide.shape[1:]
    out = bilinear(low, height, width)
    detail = guide - bilinear(guide_low, height, width)                              # [3, H, W]
    start = 0
    for size, (epsilon, radius, detrend) in zip(sizes, fits):
        maps = slice(start, start + size)
        slope = slopes(low[maps], guide_low, epsilon, radius, detrend)              # [3, c, h, w]
        for j in range(3):
            out[maps] += bilinear(slope[j], height, width) * detail[j]
        start += size
    return out


def recompose_albedo_irradiance(irradiance: np.ndarray, model_albedo: np.ndarray, photo: np.ndarray,
                                dark_low: float, dark_high: float, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Upsampled linear irradiance [3, H, W], bilinear linear model albedo [3, H, W] and the
    sRGB photo [3, H, W] -> sRGB albedo, irradiance."""
    photo_linear = srgb_to_linear(photo)
    irradiance = np.maximum(np.clip(irradiance, 0, 1), photo_linear)
    albedo = np.divide(photo_linear, irradiance, out=np.zeros_like(photo_linear), where=irradiance > 0)
    level = irradiance.max(0)
    for y, x in zip(*np.nonzero(level < dark_high)):
        weight = min(max((dark_high - level[y, x]) / (dark_high - dark_low), 0.0), 1.0)
        blended = np.exp((1 - weight) * np.log(np.maximum(albedo[:, y, x], floor))
                         + weight * np.log(np.clip(model_albedo[:, y, x], floor, 1)))
        blended = np.clip(np.maximum(blended, photo_linear[:, y, x]), floor, 1)
        albedo[:, y, x], irradiance[:, y, x] = blended, photo_linear[:, y, x] / blended
    return linear_to_srgb(albedo), linear_to_srgb(irradiance)
