"""Normal maps: unit length, [0, 1] image encoding, OpenGL / DirectX, normals from depth.

Vectors are camera space, +X right, +Y up, +Z toward the viewer (OpenGL, the default).
An encoded normal image is (n + 1) / 2, [B, H, W, 3] in [0, 1]. DirectX tangent-space
tools expect +Y down, i.e. the green channel flipped; the same flip converts back.
"""
from __future__ import annotations

import torch

from ..errors import InputError
from .checks import as_depth, as_image
from .conventions import PinholeCamera

CONVENTIONS = ("opengl", "directx")
# A decoded normal shorter than this has no direction: exact grey (0.5, 0.5, 0.5), a blank
# or masked image. It is set below the 8-bit quantisation step (2 / 255 per channel), so a
# stored map is refused only where it really holds zero vectors; a short but non-zero
# vector (a blurred or VAE-decoded map) is renormalised.
ZERO_LENGTH = 1e-3


def normalize_normals(normal: torch.Tensor) -> torch.Tensor:
    """Rescale vectors [..., 3] to unit length; zero vectors (no data) become +Z, facing
    the viewer, rather than NaN."""
    length = normal.norm(dim=-1, keepdim=True)
    facing = torch.zeros_like(normal)
    facing[..., 2] = 1.0
    return torch.where(length > 1e-8, normal / length.clamp_min(1e-8), facing)


def encode_normals(normal: torch.Tensor) -> torch.Tensor:
    """Unit vectors [B, H, W, 3] in [-1, 1] -> image in [0, 1] (renormalised first)."""
    return (normalize_normals(normal) + 1.0) / 2.0


def decode_normals(image: torch.Tensor) -> torch.Tensor:
    """Normal image [B, H, W, 3] in [0, 1] -> unit vectors. Generated maps are not exactly
    unit length after VAE decoding, so they are renormalised here."""
    return normalize_normals(as_image(image, "normal image") * 2.0 - 1.0)


def unit_normals(image: torch.Tensor, name: str = "normal") -> torch.Tensor:
    """Normal image [B, H, W, 3] in [0, 1] -> unit vectors, refusing pixels whose decoded
    vector 2 * rgb - 1 has (near) zero length: there is no direction to export there, and
    substituting one would hide a wrong input (a grey or blank image)."""
    raw = as_image(image, name) * 2.0 - 1.0
    if not torch.isfinite(raw).all():
        raise InputError(f"{name} has NaN or infinite pixels; connect a finite normal map.")
    short = raw.norm(dim=-1) < ZERO_LENGTH
    if short.any():
        raise InputError(
            f"{name} has {int(short.sum())} pixel(s) whose vector 2 * rgb - 1 has zero length (rgb near 0.5, "
            f"0.5, 0.5); a normal map encodes unit vectors as (n + 1) / 2 (a flat surface facing the camera "
            f"is 0.5, 0.5, 1.0). Connect the normal output of Split Intrinsics or LumiX Normal Convert."
        )
    return raw / raw.norm(dim=-1, keepdim=True)


def convert_convention(image: torch.Tensor, source: str = "opengl", target: str = "directx") -> torch.Tensor:
    """Convert an encoded normal image between OpenGL (green = +Y) and DirectX (green = -Y)."""
    for name in (source, target):
        if name not in CONVENTIONS:
            raise InputError(f"normal convention {name!r} is unknown; use one of {CONVENTIONS}.")
    image = as_image(image, "normal image")
    if source == target:
        return image
    flipped = image.clone()
    flipped[..., 1] = 1.0 - image[..., 1]
    return flipped


def _safe_difference(values: torch.Tensor, dim: int, reference: torch.Tensor) -> torch.Tensor:
    """Derivative of `values` along spatial `dim` (1 = rows, 2 = columns of [B, H, W, ...]),
    per pixel, that does not straddle depth discontinuities.

    The central difference (second-order accurate) is used where `reference` (a depth-like
    map [B, H, W]) is smooth; at an occlusion edge the one-sided difference with the
    smaller depth change (the pixel's own surface) is used instead.
    """
    size = reference.shape[dim]

    def shifted(x: torch.Tensor, step: int) -> torch.Tensor:
        index = torch.arange(size) + step
        return x.index_select(dim, index.clamp(0, size - 1))

    forward, backward = shifted(values, 1) - values, values - shifted(values, -1)
    ref_forward, ref_backward = shifted(reference, 1) - reference, reference - shifted(reference, -1)
    # Smooth: the two sides agree within half their size (a slope), or the second difference
    # is tiny against the value itself (an extremum, e.g. the tip of a sphere, where both
    # sides are near zero with opposite signs). An occlusion fails both tests.
    second = (ref_forward - ref_backward).abs()
    smooth = (second <= 0.5 * torch.maximum(ref_forward.abs(), ref_backward.abs())) | (second <= 1e-3 * reference.abs())
    use_forward = ref_forward.abs() <= ref_backward.abs()
    # On the image border only the inward one-sided difference exists.
    smooth.index_fill_(dim, torch.tensor([0, size - 1]), False)
    use_forward.index_fill_(dim, torch.tensor([0]), True)
    use_forward.index_fill_(dim, torch.tensor([size - 1]), False)
    if values.ndim > reference.ndim:
        smooth, use_forward = smooth[..., None], use_forward[..., None]
    return torch.where(smooth, (forward + backward) / 2, torch.where(use_forward, forward, backward))


def depth_gradients(depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """d(depth)/dx and d(depth)/dy per pixel, x right, y UP (camera convention), in map
    units per pixel, not straddling discontinuities. depth: [B, H, W] (or see checks)."""
    values = as_depth(depth)
    along_x = _safe_difference(values, 2, values)
    along_y = -_safe_difference(values, 1, values)   # rows grow downward, +Y is up
    return along_x, along_y


def normals_from_depth(depth: torch.Tensor, camera: PinholeCamera | None = None, *,
                       strength: float = 1.0) -> torch.Tensor:
    """Estimate unit normals [B, H, W, 3] from depth.

    With `camera` (pinhole intrinsics known): `depth` is metric distance along the view
    axis; each pixel is back-projected to 3D and the normal is the cross product of the
    surface tangents, exact for planes and second-order accurate on smooth surfaces.
    Without `camera`: `depth` is a near-white image (disparity-like height); the normal is
    the screen-space estimate (-s dh/dx, -s dh/dy, 1) with s = strength x image width, a
    shape cue only (the true scale is unknown without intrinsics).
    """
    values = as_depth(depth)
    batch, height, width = values.shape
    if camera is None:
        along_x, along_y = depth_gradients(values)
        scale = strength * width
        return normalize_normals(torch.stack([-scale * along_x, -scale * along_y, torch.ones_like(values)], dim=-1))
    if (camera.width, camera.height) != (width, height):
        raise InputError(
            f"depth is {width}x{height} but the camera intrinsics are for {camera.width}x{camera.height}; "
            f"pass the intrinsics of the camera that produced this depth map."
        )
    rays = camera.rays(values.dtype)                       # [H, W, 3] with z = -1
    points = values[..., None] * rays                      # camera-space points
    tangent_x = _safe_difference(points, 2, values)        # toward +X (right)
    tangent_y = -_safe_difference(points, 1, values)       # toward +Y (up)
    normal = torch.linalg.cross(tangent_x, tangent_y, dim=-1)
    return normalize_normals(normal)
