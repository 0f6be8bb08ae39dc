"""Diffuse lighting from an environment map through 9 spherical-harmonic coefficients.

Ramamoorthi & Hanrahan, "An Efficient Representation for Irradiance Environment Maps"
(SIGGRAPH 2001): the irradiance E(n) = integral of L(w) max(0, n . w) dw is, to within a
few percent for any lighting, the first three SH bands of L filtered by the clamped
cosine, E(n) = sum_lm A_l L_lm Y_lm(n) with A_0 = pi, A_1 = 2 pi / 3, A_2 = pi / 4 (their
eq. 8), because the clamped cosine's higher even bands are tiny (A_4 = -pi / 24, ...).

Conventions. Environment maps are equirectangular [H, W, 3], W = 2 H, linear radiance.
Directions are camera space (+X right, +Y up, +Z toward the viewer, as the normals):
row 0 is straight up, the middle row the horizon; the image centre looks along -Z (into
the scene, what the camera sees), the quarter to its right along +X, the left and right
edges along +Z (behind the camera). `rotation` turns the environment about the vertical
axis by that many degrees: +90 brings what was at the image centre (ahead, -Z) to the
right (+X), so the light moves right as the angle grows.
Irradiance is returned divided by pi, the scale the rest of the package uses (a surface
facing a directional light of intensity 1 gets 1): a uniform environment of radiance 1
gives irradiance 1, so color = albedo.
"""
from __future__ import annotations

import math

import torch

from ..devices import to_device, to_float64
from ..errors import InputError

# Real SH basis constants, bands 0..2 (Ramamoorthi & Hanrahan eq. 3; x, y, z unit).
_C0, _C1, _C2, _C3, _C4 = 0.282095, 0.488603, 1.092548, 0.315392, 0.546274
# Clamped-cosine filter per band, over pi (see the module docstring for the scale).
BAND_FILTER = (1.0, 2.0 / 3.0, 1.0 / 4.0)
_BAND_OF = (0, 1, 1, 1, 2, 2, 2, 2, 2)


def check_environment(environment: torch.Tensor, name: str = "environment") -> torch.Tensor:
    """Equirectangular linear radiance [H, W, 3] or [1, H, W, 3] -> [H, W, 3], refusing
    what cannot be a light: not 2:1, NaN / Inf, negative values."""
    if not isinstance(environment, torch.Tensor) or not environment.is_floating_point():
        raise InputError(f"{name} must be a float tensor [H, W, 3] of linear radiance.")
    if environment.ndim == 4:
        if environment.shape[0] != 1:
            raise InputError(f"{name} is a batch of {environment.shape[0]} images; give one environment map "
                             f"(pick one with an Image From Batch node).")
        environment = environment[0]
    if environment.ndim != 3 or environment.shape[-1] < 3:
        raise InputError(f"{name} must be [H, W, 3]; got shape {tuple(environment.shape)}.")
    environment = environment[..., :3]
    height, width = environment.shape[:2]
    if width != 2 * height:
        raise InputError(f"{name} is {width}x{height}; an equirectangular (latitude-longitude) map is exactly 2:1 "
                         f"(e.g. 1024x512). Resize or crop it to 2:1, or use a lat-long HDRI rather than a "
                         f"photo or cube map.")
    if not torch.isfinite(environment).all():
        bad = int((~torch.isfinite(environment)).sum())
        raise InputError(f"{name} has {bad} NaN or infinite value(s); fix or clamp them in an HDR editor (a sun "
                         f"stored as Inf is a common cause) before lighting with it.")
    if bool((environment < 0).any()):
        raise InputError(f"{name} has negative values (min {float(environment.min()):.4g}); radiance cannot be "
                         f"negative. Clamp it to >= 0 (negative pixels often come from a colour-space "
                         f"conversion) before lighting with it.")
    return environment


def environment_directions(height: int, width: int, rotation: float = 0.0,
                           dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit directions [H, W, 3] of the pixel centres and their solid angles [H, W]."""
    theta = (torch.arange(height, dtype=dtype) + 0.5) * (math.pi / height)           # polar angle from +Y
    phi = (torch.arange(width, dtype=dtype) + 0.5) * (2 * math.pi / width) - math.pi + math.radians(rotation)
    sin_t = torch.sin(theta)[:, None]
    directions = torch.stack([sin_t * torch.sin(phi)[None, :], torch.cos(theta)[:, None].expand(height, width),
                              -sin_t * torch.cos(phi)[None, :]], dim=-1)
    # Exact solid angle of each latitude band, (cos theta_top - cos theta_bottom) dphi, so the
    # weights sum to 4 pi exactly and a constant environment projects onto band 0 only.
    edges = torch.cos(torch.arange(height + 1, dtype=dtype) * (math.pi / height))
    solid_angle = ((edges[:-1] - edges[1:]) * (2 * math.pi / width))[:, None].expand(height, width)
    return directions, solid_angle


def sh_basis(directions: torch.Tensor) -> torch.Tensor:
    """The 9 real SH functions of bands 0..2 at unit directions [..., 3] -> [..., 9]."""
    x, y, z = directions.unbind(-1)
    return torch.stack([
        torch.full_like(x, _C0),
        _C1 * y, _C1 * z, _C1 * x,
        _C2 * x * y, _C2 * y * z, _C3 * (3 * z * z - 1), _C2 * x * z, _C4 * (x * x - y * y),
    ], dim=-1)


def sh9_coefficients(environment: torch.Tensor, rotation: float = 0.0) -> torch.Tensor:
    """Project linear radiance [H, W, 3] onto the 9 SH functions: L_lm [9, 3] (float64)."""
    environment = check_environment(environment)
    directions, solid_angle = environment_directions(*environment.shape[:2], rotation=rotation)
    weights = sh_basis(directions) * solid_angle[..., None]                          # [H, W, 9]
    return torch.einsum("hwk,hwc->kc", weights, to_float64(environment, "cpu"))


def sh9_irradiance(unit_normals: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """E(n) / pi = sum_lm A_l / pi L_lm Y_lm(n) for unit normals [..., 3] -> [..., 3], linear."""
    filtered = coefficients * coefficients.new_tensor([BAND_FILTER[b] for b in _BAND_OF])[:, None]
    # Per pixel, so on the normals' device; in float64 for float64 coefficients (on the CPU
    # for a device without it, the result coming back in float32).
    normals = to_float64(unit_normals) if filtered.dtype == torch.float64 else unit_normals.to(filtered.dtype)
    return to_device(sh_basis(normals) @ filtered.to(normals.device), unit_normals.device)


def procedural_sky(height: int = 32, sun_sharpness: float = 16.0, sun: tuple[float, float, float] = (0.5, 0.6, -0.62),
                   sun_peak: float = 4.0) -> torch.Tensor:
    """A lat-long test sky [height, 2 height, 3], linear: blue above the horizon (brighter
    toward the zenith), brown ground below, and a warm sun lobe sun_peak x exp(k (w . s - 1))
    toward `sun` (k = sun_sharpness: larger is a smaller sun; sun_peak 0: overcast)."""
    directions, _ = environment_directions(height, 2 * height)
    toward = torch.tensor(sun, dtype=torch.float64)
    toward = toward / toward.norm()
    up = directions[..., 1:2]
    base = torch.where(up > 0, torch.tensor([0.35, 0.5, 0.8]) * (0.6 + 0.4 * up), torch.tensor([0.25, 0.2, 0.15]))
    lobe = torch.exp(sun_sharpness * ((directions * toward).sum(-1, keepdim=True) - 1)) * torch.tensor([1.0, 0.9, 0.7])
    return (base + sun_peak * lobe).float()
