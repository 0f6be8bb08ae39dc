"""Recompose, residual, relight and material edit, all in linear light.

Maps are ComfyUI images [B, H, W, 3] in [0, 1], albedo / irradiance / color sRGB-encoded
(see render.py for the conventions). The model is color = albedo x irradiance (+ residual)
per channel in LINEAR light: multiplying sRGB-encoded values would darken every mid-tone.
Outputs that are images (color) are clipped to [0, 1]; irradiance may exceed 1 (a bright
relight) and is returned sRGB-encoded without clipping so that nothing is lost before
recomposition.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import InputError
from .checks import as_image, same_size
from .color_space import linear_to_srgb, srgb_to_linear
from .conventions import Light
from .environment import sh9_coefficients, sh9_irradiance
from .normals import decode_normals


def linear_product(albedo: torch.Tensor, irradiance: torch.Tensor, exposure: float = 0.0) -> torch.Tensor:
    """albedo x irradiance x 2^exposure in linear light, [B, H, W, 3], unclipped."""
    albedo, irradiance = as_image(albedo, "albedo"), as_image(irradiance, "irradiance")
    same_size(albedo=albedo, irradiance=irradiance)
    return srgb_to_linear(albedo) * srgb_to_linear(irradiance) * (2.0 ** exposure)


def recompose(albedo: torch.Tensor, irradiance: torch.Tensor, *, exposure: float = 0.0,
              residual: torch.Tensor | None = None) -> torch.Tensor:
    """color = albedo x irradiance x 2^exposure (+ residual), sRGB-encoded, clipped to [0, 1].

    exposure is in photographic stops (+1 doubles the light). `residual` is the linear,
    signed map from `residual()`; with it (and exposure 0) the input color comes back.
    """
    linear = linear_product(albedo, irradiance, exposure)
    if residual is not None:
        residual = as_image(residual, "residual")
        same_size(albedo=albedo, residual=residual)
        linear = linear + residual
    return linear_to_srgb(linear.clamp(0, 1))


def residual(albedo: torch.Tensor, irradiance: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """What albedo x irradiance does not explain: linear(color) - linear(albedo x irradiance),
    signed, [B, H, W, 3] (specular highlights, inter-reflections, model error)."""
    color = as_image(color, "color")
    same_size(albedo=albedo, irradiance=irradiance, color=color)
    return srgb_to_linear(color) - linear_product(albedo, irradiance)


def irradiance_from_lights(normal: torch.Tensor, lights: Sequence[Light],
                           ambient: Sequence[float] = (0.1, 0.1, 0.1), *,
                           environment: torch.Tensor | None = None, rotation: float = 0.0,
                           environment_intensity: float = 1.0) -> torch.Tensor:
    """Lambertian irradiance from an OpenGL-encoded normal image [B, H, W, 3] in [0, 1]:
    E = ambient + sum over lights of colour x intensity x max(0, n . l)
    (+ environment_intensity x the SH9 irradiance of `environment`), linear light.
    Returns it sRGB-encoded, unclipped. Directional lights only, no shadows: a normal map
    alone does not say where the occluders are. `environment`: equirectangular linear
    radiance [H, W, 3] (conventions and scale in environment.py), turned by `rotation`
    degrees about the vertical axis.
    """
    unit = decode_normals(normal)
    if len(ambient) != 3:
        raise InputError(f"ambient must be an RGB triple, got {len(ambient)} values.")
    linear = unit.new_tensor(ambient).expand_as(unit).clone()
    if environment is not None:
        if not environment_intensity >= 0:
            raise InputError(f"environment_intensity must be >= 0, got {environment_intensity}.")
        coefficients = sh9_coefficients(environment, rotation)
        linear = linear + (environment_intensity * sh9_irradiance(unit, coefficients)).to(linear.dtype)
    for light in lights:
        if light.kind != "directional":
            raise InputError(
                f"relighting from normals supports directional lights only, got a {light.kind!r} light; "
                f"give its direction as Light('directional', (x, y, z)) toward the light."
            )
        direction = unit.new_tensor(light.vector)
        if direction.norm() == 0:
            raise InputError("a light direction is (0, 0, 0); give a vector pointing toward the light, e.g. (0, 1, 1).")
        cosine = (unit * (direction / direction.norm())).sum(-1, keepdim=True).clamp_min(0)
        linear = linear + cosine * unit.new_tensor(light.color) * light.intensity
    return linear_to_srgb(linear)


def relight(albedo: torch.Tensor, normal: torch.Tensor | None = None, lights: Sequence[Light] = (), *,
            ambient: Sequence[float] = (0.1, 0.1, 0.1), irradiance: torch.Tensor | None = None,
            exposure: float = 0.0, environment: torch.Tensor | None = None, rotation: float = 0.0,
            environment_intensity: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """New color under new light: (color, irradiance), both sRGB-encoded.

    Either give `normal` and `lights` and/or an `environment` map (the irradiance is
    computed with `irradiance_from_lights`) or a ready `irradiance` image, which takes
    precedence.
    """
    if irradiance is None:
        if normal is None:
            raise InputError("relight needs either a normal map and lights, or an irradiance map; got neither.")
        same_size(albedo=as_image(albedo, "albedo"), normal=as_image(normal, "normal"))
        irradiance = irradiance_from_lights(normal, lights, ambient, environment=environment, rotation=rotation,
                                            environment_intensity=environment_intensity)
    return recompose(albedo, irradiance, exposure=exposure), irradiance


def material_edit(albedo: torch.Tensor, irradiance: torch.Tensor, *, new_albedo: torch.Tensor | None = None,
                  tint: Sequence[float] = (1.0, 1.0, 1.0), mask: torch.Tensor | None = None,
                  exposure: float = 0.0, residual_map: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap and/or tint the albedo inside `mask`, keep the lighting: (color, edited albedo).

    new_albedo: an sRGB image replacing the albedo (before tinting). tint: linear RGB
    multipliers (1, 1, 1 = unchanged). mask: [B, H, W] or [B, H, W, 1] in [0, 1], 1 =
    edit (default everywhere). residual_map: keep highlights from `residual()`.
    """
    albedo = as_image(albedo, "albedo")
    source = albedo if new_albedo is None else as_image(new_albedo, "new_albedo")
    same_size(albedo=albedo, irradiance=as_image(irradiance, "irradiance"), new_albedo=source)
    if len(tint) != 3 or min(tint) < 0:
        raise InputError(f"tint must be three non-negative linear RGB multipliers, got {tuple(tint)}.")
    edited = linear_to_srgb((srgb_to_linear(source) * source.new_tensor(tint)).clamp(0, 1))
    if mask is not None:
        weight = mask[..., None] if mask.ndim == 3 else mask
        if weight.ndim != 4 or weight.shape[-1] != 1:
            raise InputError(f"mask must be [B, H, W] or [B, H, W, 1], got {tuple(mask.shape)}.")
        same_size(albedo=albedo, mask=weight)
        # Blend in linear light, so a soft mask edge mixes reflectances, not encodings.
        blended = weight * srgb_to_linear(edited) + (1 - weight) * srgb_to_linear(albedo)
        edited = linear_to_srgb(blended)
    return recompose(edited, irradiance, exposure=exposure, residual=residual_map), edited
