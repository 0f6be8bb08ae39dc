"""The conventions every map function shares, and the camera and light types.

Conventions (stated once, used by the whole `intrinsics` subpackage and the nodes):
- color = albedo x irradiance (+ residual), in LINEAR light, per RGB channel.
- `albedo`, `irradiance` and `color` are stored sRGB-encoded, [B, H, W, 3] in [0, 1], like
  the published LumiX maps (the model decodes every map through the same VAE as an
  image). Irradiance is sRGB-encoded too: it is a displayable image in the published
  maps, and the encoding spends its code values on the shadows, where irradiance lives.
  The lights are budgeted so that irradiance never exceeds 1, so the encoding is exact.
- `residual` is linear and signed (zero unless `specular > 0`): the part of color that
  albedo x irradiance does not explain, after clipping color to [0, 1].
- `depth` is the camera-space distance along the view axis (-Z of the hit point, scene
  units), [B, H, W, 1]; `normal` holds unit vectors in camera space, [B, H, W, 3] in
  [-1, 1]: +X right, +Y up, +Z toward the viewer (OpenGL).
- As images (what the model outputs and the nodes pass on): depth is normalised disparity,
  near = white, [B, H, W, 3]; normals are encoded (n + 1) / 2.
- The five maps of one scene are always ordered albedo, irradiance, color, depth, normal.
- Pinhole camera at the origin looking down -Z; pixel (row i, column j) has its centre at
  (j + 0.5, i + 0.5) in pixel units.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PinholeCamera:
    """Pinhole intrinsics in pixels; camera at the origin looking down -Z, +Y up."""
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, fov_y_degrees: float = 50.0) -> "PinholeCamera":
        focal = (height / 2) / math.tan(math.radians(fov_y_degrees) / 2)
        return cls(width, height, focal, focal, width / 2, height / 2)

    def rays(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Ray directions [H, W, 3] with z = -1, so a hit at ray parameter t has depth t."""
        cols = (torch.arange(self.width, dtype=dtype) + 0.5 - self.cx) / self.fx
        rows = -(torch.arange(self.height, dtype=dtype) + 0.5 - self.cy) / self.fy  # +Y up
        a = cols[None, :].expand(self.height, self.width)
        b = rows[:, None].expand(self.height, self.width)
        return torch.stack([a, b, -torch.ones_like(a)], dim=-1)


@dataclass(frozen=True)
class Light:
    """A light. kind 'directional': `vector` points TOWARD the light. kind 'point': `vector`
    is its position. `color` is linear RGB (max channel 1), scaled by `intensity`."""
    kind: str
    vector: tuple[float, float, float]
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    intensity: float = 1.0
