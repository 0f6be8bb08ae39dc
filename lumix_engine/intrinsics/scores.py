"""Consistency checks for a set of five maps (the "coherence scores"): the project's own.

The paper's alignment metric is not public, so LumiX-for-ComfyUI defines these (see
docs/coherence.md). Each is a plain number in a documented range; on exact ground truth
(render.py) they are at or near their best value. They are reference-free CONSISTENCY
checks, not measures of accuracy: each detects some failures (copies of the image, shifted,
blurred or swapped maps, texture leaking into geometry), and each is satisfied by wrong
decompositions built from the image alone (doctored.wrong_but_consistent, tested in
tests/test_intrinsics_adversarial.py): irradiance = luminance^0.5 with albedo = color /
irradiance recomposes exactly, adds up exactly and sits on color's edges, so it rates like
ground truth; normals computed from ANY depth map (e.g. inverted luminance) have ~0
normal-depth error. Given only the image, no such check can tell the true split of color
into albedo x irradiance from another; compare models with ground-truth errors on rendered
scenes instead.

1. Structural alignment, in [0, 1], 1 = best, 0 = no better than chance. Per map it is
   SUPPORT x INTEGRITY: support asks that the map's edges are where the image says they
   should be; integrity asks that they are the right KIND of edge, so that a map copied
   from the image (which has every edge) cannot score well.
   Support (soft matching, chance-corrected): an edge pixel at chessboard distance d from
   the nearest reference edge earns max(0, 1 - d / radius_px), radius 16 px; the mean
   credit of a map's edges is corrected for chance as (observed - chance) / (1 - chance),
   clamped, with chance = the reference credit averaged over all pixels (what the same
   edges placed at random would earn). albedo, irradiance, depth, normal: precision against
   color's edges; color: recall against the union of albedo and irradiance edges.
   Integrity:
   - albedo, irradiance, color: log-gradient additivity. In log linear light
     color = albedo x irradiance is a sum, so at every edge pixel the log-gradients must
     add up: g_C = g_A + g_I (6-vectors: x and y of three channels; a global gain or any
     exposure split between albedo and irradiance has no gradient, so it is free). The
     mismatch |g_C - g_A - g_I| / ((|g_A| + |g_I| + |g_C|) / 2), clamped to [0, 1], is
     averaged over the map's own edge pixels; integrity = 1 - that. A copy of color in
     albedo leaves every shadow edge unexplained (mismatch 2/3 there), a copy in irradiance
     every texture edge; blurred, shifted and swapped maps break the sum at their edges.
   - depth, normal: no leak of texture or cast shading. Texture edges are albedo edges with
     no irradiance edge within 1 px; shading-only edges the reverse (cast shadows, creases).
     A depth edge pixel within 1 px of either, or a normal edge pixel within 1 px of a
     texture edge, is suspicious unless the OTHER geometry map has an edge within 2 px (an
     occlusion between equally lit surfaces, a crease: both depth and normal show it; a
     texture copied into one of them does not). Normals skip the shading-only test: their
     edges legitimately cover the shading bands of curved surfaces, which depth's second
     difference does not see. Integrity = 1 - the suspicious fraction of the map's edge
     pixels, chance-corrected like support.
   The score is the mean of the five. A map with no edges while its reference has some
   scores 0. Edge sets are capped at the strongest 25% of pixels per image
   (MAX_EDGE_DENSITY; rendered maps use <= 13%), so noise cannot saturate the reference.
   Edge detectors: albedo, irradiance, color: gradient magnitude of log(linear + 0.01)
   above 0.15 per pixel; depth: second difference of the min-max normalised near-white
   disparity above 0.02 (only occlusions and folds respond); normal: gradient magnitude of
   the unit normals above 0.25 (creases and occlusions).
2. Recomposition error, RMSE in [0, 1], 0 = best: sRGB-encoded color against
   albedo x irradiance recomposed in linear light, after one least-squares gain on the
   product (generated albedo and irradiance share an arbitrary exposure split).
3. Normal-depth consistency, mean angular error in degrees, [0, 180], 0 = best: for a
   pinhole camera the image-plane gradient of depth points exactly along the normal's
   (x, y) part (derivation in docs/coherence.md), for any focal length and for ANY
   increasing remapping of depth, so the score needs neither intrinsics nor metric depth.
   It is the mean angle between (n_x, n_y) and the direction in which depth increases,
   over pixels whose normal is tilted by more than ~11.5 degrees (|(n_x, n_y)| > 0.2)
   and whose depth gradient is non-zero. Random pairs give ~90.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .checks import as_depth, as_image, same_size
from .color_space import linear_to_srgb, srgb_to_linear
from .depth import normalize_per_image
from .normals import decode_normals, depth_gradients

# Version of the structural-alignment definition, for results computed with an older one:
# 1 = precision of every map's edges against color (copying color scored perfectly);
# 2 = support x integrity (log-gradient additivity, no texture or shading leak into geometry).
SCORE_VERSION = 2
LOG_EDGE_THRESHOLD = 0.15
DEPTH_EDGE_THRESHOLD = 0.02
NORMAL_EDGE_THRESHOLD = 0.25
MATCH_RADIUS_PX = 16
MAX_EDGE_DENSITY = 0.25
MIN_TILT = 0.2
ADDITIVITY_OFFSET = 1e-3
SOLE_CHANGE_RATIO = 0.5
LEAK_RADIUS_PX = 1
VETO_RADIUS_PX = 2


@dataclass
class CoherenceReport:
    """The consistency checks of one set of maps (the whole batch pooled). See the module
    docstring: passing them does not make the maps right."""
    structural_alignment: float          # [0, 1], 1 best
    alignment_per_map: dict[str, float] = field(default_factory=dict)  # each [0, 1]
    recomposition_rmse: float = 0.0      # [0, 1], 0 best
    normal_depth_error_degrees: float = 0.0  # [0, 180], 0 best
    score_version: int = SCORE_VERSION

    @property
    def text(self) -> str:
        per_map = ", ".join(f"{name} {value:.3f}" for name, value in self.alignment_per_map.items())
        return (
            "consistency checks, not accuracy (maps built from the image alone can pass all three: docs/coherence.md)\n"
            f"structural alignment v{self.score_version} {self.structural_alignment:.3f} (0..1, 1 best; {per_map})\n"
            f"recomposition RMSE {self.recomposition_rmse:.4f} (0..1, 0 best)\n"
            f"normal-depth error {self.normal_depth_error_degrees:.2f} deg (0..180, 0 best)"
        )


def _log_gradients(image: torch.Tensor, offset: float) -> torch.Tensor:
    """Central differences of log(linear + offset) of an sRGB-encoded [B, H, W, C] image ->
    [B, H, W, 2C] (x then y per channel), replicated borders."""
    values = torch.log(srgb_to_linear(image) + offset).permute(0, 3, 1, 2)
    padded = F.pad(values, (1, 1, 1, 1), mode="replicate")
    along_x = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) / 2
    along_y = (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]) / 2
    return torch.cat([along_x, along_y], dim=1).permute(0, 2, 3, 1)


def _gradient_magnitude(values: torch.Tensor) -> torch.Tensor:
    """Central-difference gradient magnitude of [B, H, W, C], max over channels -> [B, H, W]."""
    padded = F.pad(values.permute(0, 3, 1, 2), (1, 1, 1, 1), mode="replicate")
    along_x = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) / 2
    along_y = (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]) / 2
    return torch.sqrt(along_x ** 2 + along_y ** 2).amax(dim=1)


def capped_edges(strength: torch.Tensor, threshold: float, max_density: float = MAX_EDGE_DENSITY) -> torch.Tensor:
    """Pixels of strength [B, H, W] above `threshold`, and per image at most the
    `max_density` fraction of its pixels: only the strongest are kept past that. Rendered
    maps stay well below the cap (<= 0.13 on render_scene seeds 0-39 at 160 px, less at
    larger sizes), so it acts on edge-saturated maps such as noise, whose edges would
    otherwise cover every pixel and leave no room above chance -> bool [B, H, W]."""
    flat = strength.flatten(1)
    pixels = flat.shape[1]
    keep = int(max_density * pixels)
    edges = strength > threshold
    if bool((edges.flatten(1).sum(dim=1) > keep).any()):
        # Strictly above the (pixels - keep)-th smallest value: at most `keep` pixels.
        floor = flat.kthvalue(pixels - keep, dim=1).values if keep > 0 else flat.amax(dim=1)
        edges = edges & (strength > floor[:, None, None])
    return edges


def image_edges(image: torch.Tensor) -> torch.Tensor:
    """Edges of an sRGB-encoded albedo / irradiance / color image -> bool [B, H, W]."""
    return capped_edges(_gradient_magnitude(torch.log(srgb_to_linear(image) + 0.01)), LOG_EDGE_THRESHOLD)


def depth_edges(depth: torch.Tensor) -> torch.Tensor:
    """Occlusion edges of a near-white depth image -> bool [B, H, W]."""
    disparity = normalize_per_image(as_depth(depth), "minmax")
    padded = F.pad(disparity[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    center = padded[:, 1:-1, 1:-1]
    second_x = padded[:, 1:-1, 2:] - 2 * center + padded[:, 1:-1, :-2]
    second_y = padded[:, 2:, 1:-1] - 2 * center + padded[:, :-2, 1:-1]
    return capped_edges(torch.maximum(second_x.abs(), second_y.abs()), DEPTH_EDGE_THRESHOLD)


def normal_edges(normal: torch.Tensor) -> torch.Tensor:
    """Creases and occlusions of an encoded normal image -> bool [B, H, W]."""
    return capped_edges(_gradient_magnitude(decode_normals(normal)), NORMAL_EDGE_THRESHOLD)


def edge_credit(reference_edges: torch.Tensor, radius_px: int = MATCH_RADIUS_PX) -> torch.Tensor:
    """Per pixel, max(0, 1 - d / radius_px) with d the chessboard distance to the nearest
    edge pixel of bool [B, H, W]. Each 3x3 dilation of the edge set grows d by one, so
    summing the dilations counts how many steps each pixel is inside: exact and cheap."""
    covered = reference_edges[:, None].float()
    credit = covered.clone()
    for _ in range(radius_px - 1):
        covered = F.max_pool2d(covered, 3, stride=1, padding=1)
        credit = credit + covered
    return credit[:, 0] / radius_px


def dilate(edges: torch.Tensor, radius_px: int) -> torch.Tensor:
    """Pixels within chessboard distance `radius_px` of bool [B, H, W] edges."""
    if radius_px <= 0:
        return edges
    size = 2 * radius_px + 1
    return F.max_pool2d(edges[:, None].float(), size, stride=1, padding=radius_px)[:, 0] > 0


def matched_fraction(edges: torch.Tensor, reference_credit: torch.Tensor, reference_has_edges: bool) -> float:
    """Alignment beyond chance, in [0, 1], of the pixels of `edges` against a reference's
    `edge_credit`: observed = their mean credit; chance = the mean credit over ALL pixels
    (what the same number of edge pixels placed at random would earn); the result is
    (observed - chance) / (1 - chance), clamped to [0, 1]. 1.0 when both are empty, 0.0
    when only `edges` is (a featureless map cannot be aligned)."""
    if not edges.any():
        return 0.0 if reference_has_edges else 1.0
    if not reference_has_edges:
        return 0.0
    observed = reference_credit[edges].mean()
    chance = reference_credit.mean()
    return float(((observed - chance) / (1 - chance).clamp_min(1e-6)).clamp(0, 1))


def leaked_fraction(edges: torch.Tensor, forbidden: torch.Tensor) -> float:
    """How much of `edges` lies on `forbidden` pixels beyond chance, in [0, 1]:
    (observed - chance) / (1 - chance) clamped, observed = the fraction of edge pixels that
    are forbidden, chance = the fraction of ALL pixels that are (random placement)."""
    if not edges.any() or not forbidden.any():
        return 0.0
    observed = forbidden[edges].float().mean()
    chance = forbidden.float().mean()
    return float(((observed - chance) / (1 - chance).clamp_min(1e-6)).clamp(0, 1))


def additivity(edges: torch.Tensor, mismatch: torch.Tensor) -> float:
    """Mean of 1 - mismatch over the pixels of `edges` (1.0 when there are none)."""
    return float((1 - mismatch[edges]).mean()) if edges.any() else 1.0


def log_mismatch(albedo: torch.Tensor, irradiance: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """Per pixel, how far log-gradients break color = albedo x irradiance, in [0, 1]:
    |g_C - g_A - g_I| / ((|g_A| + |g_I| + |g_C|) / 2), clamped (g: the 6-vector of x and y
    log-gradients of the three channels). 0 where the maps add up; a copy of color in
    albedo leaves |g_I| unexplained at every shadow edge (2/3)."""
    g_a, g_i, g_c = (_log_gradients(x, ADDITIVITY_OFFSET) for x in (albedo, irradiance, color))
    residual = (g_c - g_a - g_i).norm(dim=-1)
    scale = (g_a.norm(dim=-1) + g_i.norm(dim=-1) + g_c.norm(dim=-1)) / 2
    return (residual / scale.clamp_min(1e-6)).clamp(0, 1)


def structural_alignment(albedo: torch.Tensor, irradiance: torch.Tensor, color: torch.Tensor,
                         depth: torch.Tensor, normal: torch.Tensor,
                         radius_px: int = MATCH_RADIUS_PX, parts: dict | None = None) -> dict[str, float]:
    """Per-map structural alignment, each in [0, 1] (see the module docstring). `parts`, if
    given, receives {map: (support, integrity)} whose products are the values."""
    color_e = image_edges(color)
    albedo_e, irradiance_e = image_edges(albedo), image_edges(irradiance)
    depth_e, normal_e = depth_edges(depth), normal_edges(normal)
    color_credit, color_any = edge_credit(color_e, radius_px), bool(color_e.any())
    explained = albedo_e | irradiance_e
    mismatch = log_mismatch(albedo, irradiance, color)
    # Texture: reflectance changes where shading does not change; shading-only: the
    # reverse (cast shadows, and creases, which geometry may legitimately share).
    texture = albedo_e & ~dilate(irradiance_e, LEAK_RADIUS_PX)
    shading = irradiance_e & ~dilate(albedo_e, LEAK_RADIUS_PX)
    # Geometry may sit on such an edge only where the OTHER geometry map corroborates it
    # (an occlusion between two equally lit surfaces is an albedo-only edge, but it is in
    # both depth and normal); a texture or shadow copied into one geometry map is not.
    # Normals skip shading-only edges: the shading bands of curved surfaces (spheres near
    # the terminator) are where normals change, and depth's second difference does not
    # respond there to excuse them.
    suspicious = dilate(texture | shading, LEAK_RADIUS_PX)
    depth_forbidden = suspicious & ~dilate(normal_e, VETO_RADIUS_PX)
    normal_forbidden = dilate(texture, LEAK_RADIUS_PX) & ~dilate(depth_e, VETO_RADIUS_PX)
    found = {
        "albedo": (matched_fraction(albedo_e, color_credit, color_any), additivity(albedo_e, mismatch)),
        "irradiance": (matched_fraction(irradiance_e, color_credit, color_any), additivity(irradiance_e, mismatch)),
        "color": (matched_fraction(color_e, edge_credit(explained, radius_px), bool(explained.any())),
                  additivity(color_e, mismatch)),
        "depth": (matched_fraction(depth_e, color_credit, color_any), 1 - leaked_fraction(depth_e, depth_forbidden)),
        "normal": (matched_fraction(normal_e, color_credit, color_any),
                   1 - leaked_fraction(normal_e, normal_forbidden)),
    }
    if parts is not None:
        parts.update(found)
    return {name: support * integrity for name, (support, integrity) in found.items()}


def recomposition_rmse(albedo: torch.Tensor, irradiance: torch.Tensor, color: torch.Tensor,
                       fit_gain: bool = True) -> float:
    """RMSE in [0, 1] between color and the (gain-fitted) linear product, both sRGB-encoded."""
    product = srgb_to_linear(albedo) * srgb_to_linear(irradiance)
    target = srgb_to_linear(color)
    if fit_gain:
        # Least-squares gain g minimising |target - g * product|^2 in linear light.
        gain = (target * product).sum() / (product * product).sum().clamp_min(1e-12)
        product = product * gain
    recomposed = linear_to_srgb(product.clamp(0, 1))
    return float(torch.sqrt(((recomposed - color) ** 2).mean()))


def normal_depth_error(depth: torch.Tensor, normal: torch.Tensor, depth_near_is_white: bool = True) -> float:
    """Mean angle in degrees, [0, 180], between the normals' tilt direction (n_x, n_y) and
    the direction in which depth increases (see the module docstring)."""
    unit = decode_normals(normal)
    along_x, along_y = depth_gradients(depth)
    if depth_near_is_white:
        # Disparity falls where depth rises.
        along_x, along_y = -along_x, -along_y
    tilt = unit[..., :2]
    gradient = torch.stack([along_x, along_y], dim=-1)
    tilt_length, gradient_length = tilt.norm(dim=-1), gradient.norm(dim=-1)
    valid = (tilt_length > MIN_TILT) & (gradient_length > 1e-12)
    if not valid.any():
        return 0.0
    cosine = (tilt * gradient).sum(-1)[valid] / (tilt_length[valid] * gradient_length[valid])
    return float(torch.rad2deg(torch.acos(cosine.clamp(-1, 1))).mean())


def coherence_report(albedo: torch.Tensor, irradiance: torch.Tensor, color: torch.Tensor,
                     depth: torch.Tensor, normal: torch.Tensor, *, radius_px: int = MATCH_RADIUS_PX,
                     depth_near_is_white: bool = True) -> CoherenceReport:
    """All scores for five maps as ComfyUI images [B, H, W, 3] in [0, 1]: albedo,
    irradiance, color sRGB-encoded; depth a normalised depth image (near white unless
    `depth_near_is_white` is False; [B, H, W] or [B, H, W, 1] also accepted); normal
    OpenGL-encoded."""
    albedo, irradiance, color = (as_image(albedo, "albedo"), as_image(irradiance, "irradiance"),
                                 as_image(color, "color"))
    normal = as_image(normal, "normal")
    depth = as_depth(depth)
    same_size(albedo=albedo, irradiance=irradiance, color=color, depth=depth, normal=normal)
    per_map = structural_alignment(albedo, irradiance, color, depth, normal, radius_px)
    if not depth_near_is_white:
        depth = 1.0 - depth   # edges are sign-free; only the direction test needs near-white
    return CoherenceReport(
        structural_alignment=sum(per_map.values()) / len(per_map),
        alignment_per_map=per_map,
        recomposition_rmse=recomposition_rmse(albedo, irradiance, color),
        normal_depth_error_degrees=normal_depth_error(depth, normal),
    )
