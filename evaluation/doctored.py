"""Doctored map sets: plausible-looking failures to check a coherence score against.

A score that claims to measure how well five maps describe one scene must rank the true
maps above every way of faking them. Each function here takes the true maps of a scene
(`RenderedScene.images()`, and for some another scene's maps) and returns a full set of
five in which one failure is staged: texture leaking into geometry, shading baked into
albedo, a map copied from the image, a blurred, shifted or swapped map. `doctored_sets`
lists them all by name; docs/coherence.md tabulates what each scores.

`wrong_but_consistent` lists the other kind: wrong decompositions built (mostly from the
image alone) to satisfy the checks, which no reference-free score can rule out; they
document the checks' blind spots rather than failures the checks must catch.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from lumix_engine.intrinsics.color_space import linear_to_srgb, srgb_to_linear
from lumix_engine.intrinsics.normals import decode_normals, encode_normals, normals_from_depth

Maps = dict[str, torch.Tensor]
MAP_ORDER = ("albedo", "irradiance", "color", "depth", "normal")


def grey(image: torch.Tensor) -> torch.Tensor:
    """Rec. 709 luma of an sRGB-encoded image, repeated to 3 channels."""
    luma = image @ image.new_tensor([0.2126, 0.7152, 0.0722])
    return luma[..., None].expand(*luma.shape, 3).contiguous()


def shifted(image: torch.Tensor, pixels: int) -> torch.Tensor:
    """Move the content right by `pixels`, repeating the left column (no wrap-around)."""
    return torch.cat([image[:, :, :1].expand(-1, -1, pixels, -1), image[:, :, :-pixels]], dim=2)


def blurred(image: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Separable Gaussian blur (radius 4 px) with replicated borders."""
    radius = 4
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=image.dtype) ** 2 / (2 * sigma ** 2))
    taps = taps / taps.sum()
    channels = image.shape[-1]
    x = F.pad(image.permute(0, 3, 1, 2), (radius,) * 4, mode="replicate")
    x = F.conv2d(x, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    x = F.conv2d(x, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return x.permute(0, 2, 3, 1)


def _texture(albedo: torch.Tensor) -> torch.Tensor:
    """Ridges along every albedo edge (gradient magnitude, max over channels, scaled to a
    peak of 1): the pattern a leaking generator would paint into geometry. Edges, not a
    channel mix, so that every reflectance change leaks whatever its colours. -> [B, H, W, 1]"""
    padded = F.pad(albedo.permute(0, 3, 1, 2), (1, 1, 1, 1), mode="replicate")
    along_x = padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]
    along_y = padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]
    ridges = torch.sqrt(along_x ** 2 + along_y ** 2).amax(dim=1)
    return (ridges / ridges.flatten(1).amax(dim=1).clamp_min(1e-6)[:, None, None])[..., None]


def depth_with_texture(truth: Maps, amount: float = 0.2) -> torch.Tensor:
    """True depth with ridges along the albedo edges (texture leaking into geometry)."""
    depth = truth["depth"] + amount * _texture(truth["albedo"])
    return depth.clamp(0, 1)


def normal_with_texture(truth: Maps, amount: float = 2.0) -> torch.Tensor:
    """True normals tilted as if the albedo edges were ridges in relief."""
    pattern = _texture(truth["albedo"])[..., 0]
    along_x = F.pad(pattern[:, :, 1:] - pattern[:, :, :-1], (0, 1))
    along_y = F.pad(pattern[:, 1:] - pattern[:, :-1], (0, 0, 0, 1))
    unit = decode_normals(truth["normal"])
    tilted = unit + amount * torch.stack([-along_x, along_y, torch.zeros_like(along_x)], dim=-1)
    return encode_normals(tilted)


def albedo_with_shading(truth: Maps, amount: float = 0.5) -> torch.Tensor:
    """Albedo with part of the irradiance baked in (shadows and shading left in albedo)."""
    linear = srgb_to_linear(truth["albedo"]) * srgb_to_linear(truth["irradiance"]) ** amount
    return linear_to_srgb(linear / linear.max().clamp_min(1e-6))


def irradiance_with_texture(truth: Maps, amount: float = 0.5) -> torch.Tensor:
    """Irradiance with part of the albedo pattern in it (texture leaking into shading)."""
    linear = srgb_to_linear(truth["irradiance"]) * srgb_to_linear(truth["albedo"]) ** amount
    return linear_to_srgb(linear / linear.max().clamp_min(1e-6))


def _luminance(image: torch.Tensor) -> torch.Tensor:
    """Rec. 709 luminance in linear light of an sRGB-encoded image -> [B, H, W, 1]."""
    return (srgb_to_linear(image) @ image.new_tensor([0.2126, 0.7152, 0.0722]))[..., None]


def divided_by(color: torch.Tensor, irradiance: torch.Tensor) -> torch.Tensor:
    """color / irradiance in linear light, scaled so its brightest pixel is 1, sRGB-encoded:
    the albedo that makes ANY irradiance recompose the image exactly (up to the gain that
    every score fits or ignores)."""
    linear = srgb_to_linear(color) / srgb_to_linear(irradiance).clamp_min(1e-4)
    return linear_to_srgb(linear / linear.flatten(1).amax(dim=1).clamp_min(1e-6)[:, None, None, None])


def split_luminance(color: torch.Tensor, power: float = 0.5) -> Maps:
    """Albedo and irradiance from the image alone: irradiance = luminance^power (grey),
    albedo = color / irradiance. Every color edge is shared between the two, so both sit
    exactly on color's edges and their log-gradients add up; no scene is looked at."""
    irradiance = linear_to_srgb(_luminance(color).clamp_min(1e-4).pow(power).expand_as(color).contiguous())
    return {"albedo": divided_by(color, irradiance), "irradiance": irradiance}


def relief_from_luminance(color: torch.Tensor) -> Maps:
    """Depth and normals from the image alone: depth = inverted luminance ("dark is far"),
    normals computed from that depth, so the two agree with each other by construction."""
    depth = (1 - linear_to_srgb(_luminance(color))).expand_as(color).contiguous()
    return {"depth": depth, "normal": encode_normals(normals_from_depth(depth[..., 0]))}


def normals_of(depth: torch.Tensor, strength: float) -> torch.Tensor:
    """Encoded normals computed from a near-white depth image at a chosen relief strength."""
    return encode_normals(normals_from_depth(depth[..., 0] if depth.dim() == 4 else depth, strength=strength))


Doctor = Callable[[Maps, Maps], Maps]


def wrong_but_consistent() -> dict[str, Doctor]:
    """Constructions that are WRONG but that the reference-free consistency checks cannot
    rule out (docs/coherence.md, "What no reference-free check can see"): each is built to
    satisfy one or more checks exactly. `tests/test_intrinsics_adversarial.py` records what
    each check says about them; they are not in `doctored_sets`, which holds the failures
    the checks do detect."""
    return {
        "albedo = color / another scene's irradiance": lambda t, o: {
            **t, "irradiance": o["irradiance"], "albedo": divided_by(t["color"], o["irradiance"])},
        "irradiance = luminance^0.5, albedo = color / irradiance": lambda t, o: {**t, **split_luminance(t["color"])},
        "depth and normal from inverted luminance": lambda t, o: {**t, **relief_from_luminance(t["color"])},
        "every map from the image alone": lambda t, o: {**t, **split_luminance(t["color"]),
                                                        **relief_from_luminance(t["color"])},
        "normal from true depth, 4x the relief": lambda t, o: {**t, "normal": normals_of(t["depth"], 4.0)},
    }


def doctored_sets() -> dict[str, Doctor]:
    """{name: doctor(truth, other_scene) -> five maps}, every failure the suite stages."""
    sets: dict[str, Doctor] = {
        "depth = grey copy of color": lambda t, o: {**t, "depth": grey(t["color"])},
        "depth + albedo texture": lambda t, o: {**t, "depth": depth_with_texture(t)},
        "normal = color": lambda t, o: {**t, "normal": t["color"]},
        "normal + albedo texture": lambda t, o: {**t, "normal": normal_with_texture(t)},
        "depth and normal + albedo texture": lambda t, o: {**t, "depth": depth_with_texture(t),
                                                           "normal": normal_with_texture(t)},
        "albedo = color": lambda t, o: {**t, "albedo": t["color"]},
        "albedo + half the shading": lambda t, o: {**t, "albedo": albedo_with_shading(t)},
        "irradiance = color": lambda t, o: {**t, "irradiance": t["color"]},
        "irradiance = grey copy of color": lambda t, o: {**t, "irradiance": grey(t["color"])},
        "irradiance + half the texture": lambda t, o: {**t, "irradiance": irradiance_with_texture(t)},
        "every map = color": lambda t, o: {name: t["color"] for name in MAP_ORDER},
        "every map = grey copy of color": lambda t, o: {**{n: grey(t["color"]) for n in MAP_ORDER},
                                                        "color": t["color"]},
        "maps from another scene, true color": lambda t, o: {**o, "color": t["color"]},
    }
    for name in MAP_ORDER:
        sets[f"{name} blurred"] = lambda t, o, n=name: {**t, n: blurred(t[n])}
        sets[f"{name} shifted 4 px"] = lambda t, o, n=name: {**t, n: shifted(t[n], 4)}
        sets[f"{name} from another scene"] = lambda t, o, n=name: {**t, n: o[n]}
    return sets
