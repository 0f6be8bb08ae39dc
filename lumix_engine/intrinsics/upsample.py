"""Maps made at the working size, brought back to the photo's full size with its detail.

Two ideas, both guided by the full-resolution photo:

- Joint bilateral upsampling (Kopf, Cohen, Lischinski and Uyttendaele, "Joint Bilateral
  Upsampling", SIGGRAPH 2007): every full-size pixel p is a weighted mean of the working-size
  samples q around it, weight = exp(-|p - q|^2 / 2 sigma_s^2) (distance in working pixels)
  x exp(-|I(p) - I~(q)|^2 / 2 sigma_r^2) (I the sRGB photo, I~ the photo at the working
  size). Across an object's edge the samples of the other side have another colour and drop
  out, so the map's edge comes back at the photo's sharpness; a texture the map does not
  have (a checkered floor under a flat normal) cannot leak in, because a weighted mean of
  equal values is that value. The weights are not linear in position, so on a smooth ramp
  (a tilted floor's depth) bilinear is exact and this is not: the result is blended with
  bilinear by how much the map itself changes around the pixel (its max - min over the
  3 x 3 working pixels: joint bilateral above tau, bilinear below tau / 4, linear in
  between), so joint bilateral at the map's edges and bilinear inside its smooth regions. Used for depth, normals, and irradiance in log space.

- Exact recomposition: irradiance is smooth, so its upsampling is trusted, and the albedo
  is then defined as photo / irradiance in linear light. albedo x irradiance is the
  full-resolution photo exactly (to float precision before the output quantisation), and all
  texture finer than the working size lands in the albedo, where it belongs. Irradiance is
  raised to at least the photo's value per channel so that the albedo stays <= 1.

Written in plain torch rather than with kornia: kornia's joint_bilateral_blur and
guided_blur filter an input that already has the guide's size, while here the map exists
only at the working size (joint *upsampling*), and kornia would add kornia-rs, a compiled
dependency, for some forty lines. The joint bilateral term is computed only at the pixels
where it is used (near the map's edges), in strips, so time and memory stay bounded for a
24 MP photo.

Images are [B, H, W, C] floats in [0, 1] (ComfyUI's IMAGE layout), sRGB-encoded for
albedo, irradiance and the photo, as everywhere in lumix_engine.intrinsics.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ..errors import InputError
from .color_space import linear_to_srgb, srgb_to_linear
from .normals import decode_normals, encode_normals

Method = Literal["guided", "bilinear"]
METHODS = ("guided", "bilinear")

# Chosen on procedural scenes (benchmarks/photo_upsampling.py) and left there for any photo.
RADIUS = 2            # working pixels each side: a 5 x 5 neighbourhood
SIGMA_SPACE = 0.7     # working pixels
SIGMA_RANGE = 0.06    # sRGB units of the photo
TAU = {"depth": 0.2, "normal": 0.4, "log_irradiance": 0.5, "other": 0.2}   # map change for full joint bilateral
DARK = 1e-6           # linear irradiance below which photo / irradiance is not trusted
STRIP_PIXELS = 1 << 20   # output pixels per strip (bounds the temporaries to ~100 MB)


def _chw(image: torch.Tensor) -> torch.Tensor:
    return image.permute(0, 3, 1, 2)


def _hwc(image: torch.Tensor) -> torch.Tensor:
    return image.permute(0, 2, 3, 1)


def resize_linear(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, C, h, w] -> [B, C, height, width]: bilinear, antialiased when shrinking."""
    if image.shape[-2:] == (height, width):
        return image
    shrinking = height < image.shape[-2] or width < image.shape[-1]
    return F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking)


def _sample_positions(full: int, low: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres of `full` output pixels in working-pixel coordinates, and the nearest working pixel."""
    position = (torch.arange(full, dtype=dtype) + 0.5) * low / full - 0.5
    return position, position.round().long().clamp(0, low - 1)


def _bilateral_at(low: torch.Tensor, guide_low: torch.Tensor, guide: torch.Tensor, ys: torch.Tensor,
                  xs: torch.Tensor, radius: int, sigma_space: float, sigma_range: float) -> torch.Tensor:
    """Joint bilateral values [C, N] of one image at output positions (ys, xs) (working-pixel
    coordinates [N]), where guide [G, N] is the photo at those pixels."""
    channels, height_low, width_low = low.shape
    cy, cx = ys.round().long().clamp(0, height_low - 1), xs.round().long().clamp(0, width_low - 1)
    total = torch.zeros(channels, len(ys), dtype=low.dtype)
    weights = torch.zeros(len(ys), dtype=low.dtype)
    flat_low, flat_guide = low.flatten(1), guide_low.flatten(1)
    for dy in range(-radius, radius + 1):
        qy = (cy + dy).clamp(0, height_low - 1)
        for dx in range(-radius, radius + 1):
            qx = (cx + dx).clamp(0, width_low - 1)
            index = qy * width_low + qx
            space = ((qy - ys) ** 2 + (qx - xs) ** 2) / (2 * sigma_space ** 2)
            difference = (flat_guide[:, index] - guide).pow(2).sum(0) / (2 * sigma_range ** 2)
            # The small floor keeps a pixel whose colour matches no sample a spatial mean.
            weight = torch.exp(-space) * (torch.exp(-difference) + 1e-6)
            total += weight * flat_low[:, index]
            weights += weight
    return total / weights


def joint_bilateral_upsample(low: torch.Tensor, guide: torch.Tensor, radius: int = RADIUS,
                             sigma_space: float = SIGMA_SPACE, sigma_range: float = SIGMA_RANGE,
                             where: torch.Tensor | None = None) -> torch.Tensor:
    """Map [B, C, h, w] + guide [B, G, H, W] -> [B, C, H, W] (formula in the module docstring),
    computed at the pixels of `where` [B, H, W] (all by default; elsewhere bilinear), in
    strips of STRIP_PIXELS so that memory stays bounded."""
    batch, channels, height_low, width_low = low.shape
    height, width = guide.shape[-2:]
    guide_low = resize_linear(guide, height_low, width_low)
    ys, _ = _sample_positions(height, height_low, low.dtype)
    xs, _ = _sample_positions(width, width_low, low.dtype)
    out = resize_linear(low, height, width).clone()
    for b in range(batch):
        pixels = (where[b] if where is not None else torch.ones(height, width, dtype=torch.bool)).flatten().nonzero()[:, 0]
        for start in range(0, len(pixels), STRIP_PIXELS):
            chosen = pixels[start:start + STRIP_PIXELS]
            rows, cols = chosen // width, chosen % width
            values = _bilateral_at(low[b], guide_low[b], guide[b].flatten(1)[:, chosen], ys[rows], xs[cols], radius,
                                   sigma_space, sigma_range)
            out[b].view(channels, -1)[:, chosen] = values
    return out


def local_change(low: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> [B, C, h, w]: max - min over the 3 x 3 neighbourhood, per channel."""
    return F.max_pool2d(low, 3, 1, 1) + F.max_pool2d(-low, 3, 1, 1)


def edge_aware_upsample(low: torch.Tensor, guide: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """Joint bilateral where a channel of the map changes by tau or more around a pixel,
    bilinear where it changes by less than tau / 4 (flat, or a smooth ramp), blended linearly
    in between (module docstring). [B, C, h, w] + guide [B, G, H, W] -> [B, C, H, W]; `tau`
    one value or one per channel. The joint bilateral term is only computed where it is used."""
    height, width = guide.shape[-2:]
    tau = torch.as_tensor(tau, dtype=low.dtype).reshape(-1, 1, 1)
    change = resize_linear(local_change(low), height, width)
    blend = ((change / tau - 0.25) / 0.75).clamp(0, 1)
    bilinear = resize_linear(low, height, width)
    needed = (blend > 0).any(1)
    if not needed.any():
        return bilinear
    bilateral = joint_bilateral_upsample(low, guide, where=needed)
    return torch.lerp(bilinear, bilateral, blend)


def _check(low: torch.Tensor, photo: torch.Tensor, name: str) -> None:
    if low.ndim != 4 or photo.ndim != 4 or low.shape[0] != photo.shape[0]:
        raise InputError(f"{name}: maps [B, h, w, C] and the photo [B, H, W, 3] need the same batch; got "
                         f"{tuple(low.shape)} and {tuple(photo.shape)}")


def upsample_map(low: torch.Tensor, photo: torch.Tensor, method: Method = "guided", tau: float = TAU["other"]
                 ) -> torch.Tensor:
    """A map [B, h, w, C] in [0, 1] -> [B, H, W, C] at the photo's size, edge-aware guided by
    the photo (or plain bilinear). For depth images and anything without a unit-length
    constraint; normals: `upsample_normals`."""
    _check(low, photo, "upsample_map")
    height, width = photo.shape[1:3]
    if method == "bilinear":
        return _hwc(resize_linear(_chw(low), height, width)).clamp(0, 1)
    return _hwc(edge_aware_upsample(_chw(low), _chw(photo.to(low.dtype)), tau)).clamp(0, 1)


def upsample_normals(low: torch.Tensor, photo: torch.Tensor, method: Method = "guided") -> torch.Tensor:
    """OpenGL-encoded normal image [B, h, w, 3] -> [B, H, W, 3]: the decoded vectors are
    upsampled (edge-aware or bilinear) and renormalised to unit length, then encoded."""
    _check(low, photo, "upsample_normals")
    height, width = photo.shape[1:3]
    vectors = _chw(decode_normals(low))
    if method == "bilinear":
        up = resize_linear(vectors, height, width)
    else:
        up = edge_aware_upsample(vectors, _chw(photo.to(low.dtype)), TAU["normal"])
    return encode_normals(F.normalize(_hwc(up), dim=-1, eps=1e-8))


def upsample_albedo_irradiance(albedo: torch.Tensor, irradiance: torch.Tensor, photo: torch.Tensor,
                               method: Method = "guided") -> tuple[torch.Tensor, torch.Tensor]:
    """Working-size albedo and irradiance (sRGB) + the full-size photo -> both at full size.

    guided: log irradiance upsampled edge-aware, raised to at least the photo (so albedo
    <= 1), and albedo = photo / irradiance in linear light, so that albedo x irradiance =
    photo exactly; where the irradiance is darker than DARK the ratio means nothing and the
    edge-aware upsampled albedo is kept. bilinear: both resized plainly (the baseline; it
    does not recompose the photo)."""
    _check(albedo, photo, "albedo")
    _check(irradiance, photo, "irradiance")
    height, width = photo.shape[1:3]
    if method == "bilinear":
        return (_hwc(resize_linear(_chw(albedo), height, width)).clamp(0, 1),
                _hwc(resize_linear(_chw(irradiance), height, width)).clamp(0, 1))
    if method != "guided":
        raise InputError(f"upsampling method {method!r} is unknown; use one of {', '.join(METHODS)}")
    compute = torch.float64 if photo.dtype == torch.float64 else torch.float32
    photo = photo.to(compute)
    photo_linear = srgb_to_linear(photo)
    log_irradiance = torch.log(_chw(srgb_to_linear(irradiance.to(compute))) + 1e-4)
    irradiance_full = _hwc(torch.exp(edge_aware_upsample(log_irradiance, _chw(photo), TAU["log_irradiance"])) - 1e-4)
    irradiance_full = torch.maximum(irradiance_full.clamp(0, 1), photo_linear)
    ratio = photo_linear / irradiance_full.clamp_min(DARK)
    dark = irradiance_full <= DARK
    if dark.any():
        ratio = torch.where(dark, srgb_to_linear(upsample_map(albedo.to(compute), photo)), ratio)
    albedo_full = ratio.clamp(0, 1)
    return linear_to_srgb(albedo_full).to(albedo.dtype), linear_to_srgb(irradiance_full).to(irradiance.dtype)


def upsample_maps(maps: dict[str, torch.Tensor], photo: torch.Tensor, method: Method = "guided",
                  recompose: bool = True) -> dict[str, torch.Tensor]:
    """{name: working-size map} -> the same maps at the photo's size (albedo and irradiance
    together, by exact recomposition; depth guided; normals guided and renormalised; color is
    the photo itself; any other map, e.g. an uncertainty, bilinear).

    recompose=False: `photo` is only a guide (e.g. a given depth image, not a color photo),
    so albedo and irradiance are each guided-upsampled and color too."""
    if method not in METHODS:
        raise InputError(f"upsampling method {method!r} is unknown; use one of {', '.join(METHODS)}")
    out: dict[str, torch.Tensor] = {}
    if recompose and "albedo" in maps and "irradiance" in maps:
        out["albedo"], out["irradiance"] = upsample_albedo_irradiance(maps["albedo"], maps["irradiance"], photo, method)
    for name, low in maps.items():
        if name in out:
            continue
        if name == "color" and recompose:
            out[name] = photo
        elif name == "normal":
            out[name] = upsample_normals(low, photo, method)
        elif name in ("depth", "albedo", "irradiance", "color"):
            out[name] = upsample_map(low, photo, method)
        else:
            out[name] = upsample_map(low, photo, "bilinear")
    return {name: out[name] for name in maps}
