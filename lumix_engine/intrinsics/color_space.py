"""Exact sRGB <-> linear conversions (IEC 61966-2-1, the piecewise curve, not gamma 2.2).

The piecewise curve matters: a pure 2.2 power is off by up to ~0.01 near black, which
is exactly where irradiance lives in shadows, and it would break the round trip that
recomposition relies on. Works on any float tensor, any shape; no clamping above 1 so
that linear HDR values survive a round trip (negative inputs are clamped to 0 because
the curve is undefined there).
"""
from __future__ import annotations

import torch

# IEC 61966-2-1 constants. The decode threshold 0.04045 and the encode threshold
# 0.0031308 are the published pair (0.04045 / 12.92 = 0.0031308...).
_DECODE_THRESHOLD = 0.04045
_ENCODE_THRESHOLD = 0.0031308
_SLOPE = 12.92
_A = 0.055
_GAMMA = 2.4


def srgb_to_linear(encoded: torch.Tensor) -> torch.Tensor:
    """Decode sRGB-encoded values to linear light. Any float tensor; keeps dtype."""
    encoded = encoded.clamp_min(0.0)
    curve = ((encoded + _A) / (1.0 + _A)) ** _GAMMA
    return torch.where(encoded <= _DECODE_THRESHOLD, encoded / _SLOPE, curve)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Encode linear light to sRGB. Any float tensor; keeps dtype."""
    linear = linear.clamp_min(0.0)
    curve = (1.0 + _A) * linear ** (1.0 / _GAMMA) - _A
    return torch.where(linear <= _ENCODE_THRESHOLD, linear * _SLOPE, curve)
