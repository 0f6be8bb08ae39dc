"""A relightable 2.5D mesh (binary glTF, .glb) from a depth map, an albedo and a normal map.

Geometry: one vertex per grid point, unprojected through a pinhole camera at the origin
looking down -Z (+X right, +Y up, the maps' camera space, which is also glTF's frame),
with the vertical field of view `fov` (default 50 degrees, the ground-truth renderer's
camera; LumiX does not know the real one, so it is an input). Depth comes from the
near-white disparity map through `disparity_to_depth` (nearest point at distance 1,
farthest at `depth_range`). Triangles whose corners differ in depth by more than
`edge_threshold` (relative: max / min - 1) and whose face does not agree with the LumiX
normals at its corners are left out, so a foreground object does not join the background
with a skin of stretched triangles, while a floor seen at a grazing angle stays whole.

Material: glTF metallic-roughness, metallic 0, roughness 1 (a diffuse surface, which is
what LumiX's albedo describes), albedo as the sRGB base-colour texture, the LumiX
normals as per-vertex NORMAL and, for the detail between vertices, a tangent-space
normal texture (glTF normal textures are tangent space, so each texel's camera-space
normal is expressed in the frame of the interpolated vertex normal: T along +X made
orthogonal to it, B = N x T toward +Y). A viewer that lights the mesh therefore lights
it with LumiX's normals.

Size budget: at most `size_budget_mb` (default 30 MB); the grid is the map's resolution
capped at `max_side` (default 512) points on its longer side. Measured at 1024 x 1024
(a 512 x 512 grid, ~520k triangles, two full-resolution PNG textures): 14.6 MB for a
rendered scene, 17.8 MB with a noise albedo (a PNG that does not compress). The estimate
is checked before the file is assembled; a mesh over budget is refused with the fix.

Written with trimesh (PyPI `trimesh`, maintained, MIT, needs only numpy): its glTF
exporter writes PBR materials with base-colour and normal textures and reads them back,
which is what the tests check.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import to_float64
from ..errors import InputError
from ..image_io import atomic_path, to_pil
from ..intrinsics.checks import as_depth, as_image, same_size
from ..intrinsics.depth import DEPTH_RANGE, check_disparity, disparity_to_depth
from ..intrinsics.normals import unit_normals

DEFAULT_FOV = 50.0            # vertical field of view, degrees
DEFAULT_MAX_SIDE = 512        # grid points on the longer side
DEFAULT_EDGE_THRESHOLD = 0.05  # relative depth jump that cuts a triangle
SIZE_BUDGET_MB = 30.0
SURFACE_AGREEMENT = 0.5       # cos 60 degrees: a stepped triangle this close to its normals is surface
# Bytes per vertex (position, normal: 3 float32 each; uv: 2 float32) and per triangle (3 uint32).
_VERTEX_BYTES, _FACE_BYTES = 32, 12


@dataclass
class DepthMesh:
    """vertices [N, 3] float32 (camera space), faces [M, 3] int64, uvs [N, 2] float32 in
    glTF's convention (origin top-left, v down), normals [N, 3] unit float32, grid (rows, cols)."""
    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    normals: np.ndarray
    grid: tuple[int, int]


def check_fov(fov: float) -> float:
    if not (isinstance(fov, (int, float)) and 1.0 < fov < 179.0):
        raise InputError(f"fov must be a vertical field of view in degrees strictly between 1 and 179, got {fov}; "
                         f"{DEFAULT_FOV:g} suits most photos (a phone's main camera is about 50-60).")
    return float(fov)


def grid_size(height: int, width: int, max_side: int = DEFAULT_MAX_SIDE) -> tuple[int, int]:
    """(rows, cols) of the vertex grid: the map's size, scaled so the longer side is <= max_side."""
    if max_side < 2:
        raise InputError(f"max_side must be at least 2 grid points, got {max_side}.")
    scale = min(1.0, max_side / max(height, width))
    return max(2, round(height * scale)), max(2, round(width * scale))


def _nearest(values: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """values [H, W, ...] sampled at the pixels nearest the grid points (no blending across
    depth edges, which would float points between foreground and background)."""
    height, width = values.shape[:2]
    r = ((torch.arange(rows, dtype=torch.float64) + 0.5) * height / rows).long().clamp(max=height - 1)
    c = ((torch.arange(cols, dtype=torch.float64) + 0.5) * width / cols).long().clamp(max=width - 1)
    return values[r][:, c]


def depth_mesh(depth: torch.Tensor, normal: torch.Tensor, *, fov: float = DEFAULT_FOV,
               depth_range: float = DEPTH_RANGE, max_side: int = DEFAULT_MAX_SIDE,
               edge_threshold: float = DEFAULT_EDGE_THRESHOLD) -> DepthMesh:
    """The mesh of ONE scene: depth image [1, H, W, 1|3] (near white) and normal image
    [1, H, W, 3] (OpenGL-encoded), both as LumiX outputs them."""
    fov = check_fov(fov)
    if not edge_threshold > 0:
        raise InputError(f"edge_threshold must be > 0 (a relative depth jump, e.g. 0.05), got {edge_threshold}.")
    disparity = check_disparity(as_depth(depth, "depth"), "depth")
    normal = as_image(normal, "normal")
    same_size(depth=disparity[..., None], normal=normal)
    if disparity.shape[0] != 1:
        raise InputError(f"depth_mesh makes one mesh from one scene; got a batch of {disparity.shape[0]}. Call it "
                         f"once per image.")
    height, width = disparity.shape[1:]
    rows, cols = grid_size(height, width, max_side)
    z = disparity_to_depth(_nearest(to_float64(disparity[0], "cpu"), rows, cols), depth_range)
    unit = unit_normals(_nearest(to_float64(normal[0], "cpu"), rows, cols)[None], "normal")[0]

    focal = (height / 2) / math.tan(math.radians(fov) / 2)
    x_pixel = (torch.arange(cols, dtype=torch.float64) + 0.5) * width / cols           # pixel units
    y_pixel = (torch.arange(rows, dtype=torch.float64) + 0.5) * height / rows
    x = (x_pixel[None, :] - width / 2) / focal * z
    y = -(y_pixel[:, None] - height / 2) / focal * z
    vertices = torch.stack([x, y, -z], dim=-1).reshape(-1, 3)
    uvs = torch.stack([(x_pixel / width)[None, :].expand(rows, cols),
                       (y_pixel / height)[:, None].expand(rows, cols)], dim=-1).reshape(-1, 2)

    index = torch.arange(rows * cols).reshape(rows, cols)
    top_left, top_right = index[:-1, :-1].reshape(-1), index[:-1, 1:].reshape(-1)
    bottom_left, bottom_right = index[1:, :-1].reshape(-1), index[1:, 1:].reshape(-1)
    # Counter-clockwise seen from the camera (+Z toward the viewer), so the faces look at it.
    faces = torch.cat([torch.stack([top_left, bottom_left, top_right], 1),
                       torch.stack([top_right, bottom_left, bottom_right], 1)])
    corner_depth = z.reshape(-1)[faces]
    jump = corner_depth.max(1).values / corner_depth.min(1).values - 1 > edge_threshold
    # A big depth step is a discontinuity only where the triangle disagrees with the surface:
    # a triangle stretched between a foreground edge and the background faces sideways while
    # the LumiX normals at its corners face the camera, but a floor seen at a grazing angle
    # (large steps between grid rows, especially on a coarse grid) has triangles that lie in
    # the floor and agree with its normals. Kept: steps whose face normal is within 60 degrees
    # of every corner normal.
    corners = vertices[faces]
    face_normal = torch.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
    face_normal = face_normal / face_normal.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    agreement = (unit.reshape(-1, 3)[faces] * face_normal[:, None, :]).sum(-1).min(1).values
    keep = ~jump | (agreement >= SURFACE_AGREEMENT)
    return DepthMesh(vertices.float().numpy(), faces[keep].numpy(), uvs.float().numpy(),
                     unit.reshape(-1, 3).float().numpy(), (rows, cols))


def tangent_space_normals(normal: torch.Tensor, mesh: DepthMesh) -> torch.Tensor:
    """Camera-space normal image [1, H, W, 3] -> tangent-space normal texture [H, W, 3] in
    [0, 1], relative to the mesh's vertex normals interpolated over the texture."""
    height, width = normal.shape[1:3]
    unit = unit_normals(to_float64(normal, "cpu"), "normal")[0]
    rows, cols = mesh.grid
    grid = torch.from_numpy(mesh.normals).double().reshape(1, rows, cols, 3).permute(0, 3, 1, 2)
    base = F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    base = base / base.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x_axis = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    tangent = x_axis - (base * x_axis).sum(-1, keepdim=True) * base
    # A normal along +-X has no X-made tangent; +Y made orthogonal serves there.
    fallback = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    fallback = fallback - (base * fallback).sum(-1, keepdim=True) * base
    tangent = torch.where(tangent.norm(dim=-1, keepdim=True) > 1e-6, tangent, fallback)
    tangent = tangent / tangent.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    bitangent = torch.cross(base, tangent, dim=-1)
    local = torch.stack([(unit * tangent).sum(-1), (unit * bitangent).sum(-1), (unit * base).sum(-1)], dim=-1)
    return (local + 1.0) / 2.0


def _png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def estimate_bytes(mesh: DepthMesh, texture_bytes: int) -> int:
    return len(mesh.vertices) * _VERTEX_BYTES + len(mesh.faces) * _FACE_BYTES + texture_bytes + 4096


def glb_bytes(mesh: DepthMesh, albedo: torch.Tensor, normal: torch.Tensor, *,
              size_budget_mb: float = SIZE_BUDGET_MB) -> bytes:
    """The GLB of `mesh` with `albedo` [1, H, W, 3] (sRGB) as base colour and the tangent-space
    form of `normal` [1, H, W, 3] as normal texture; refused when over the size budget."""
    import trimesh  # imported here: only the mesh paths need the dependency

    albedo = as_image(albedo, "albedo")
    same_size(albedo=albedo, normal=as_image(normal, "normal"))
    albedo_png = _png(albedo[0])
    normal_png = _png(tangent_space_normals(normal, mesh))
    budget = size_budget_mb * 1e6
    estimate = estimate_bytes(mesh, len(albedo_png) + len(normal_png))
    if estimate > budget:
        raise InputError(_over_budget(estimate, budget, mesh))
    from PIL import Image
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.open(io.BytesIO(albedo_png)), normalTexture=Image.open(io.BytesIO(normal_png)),
        metallicFactor=0.0, roughnessFactor=1.0, doubleSided=True, name="lumix")
    uv = mesh.uvs.copy()
    uv[:, 1] = 1.0 - uv[:, 1]   # trimesh keeps OpenGL texture coordinates (v up) and flips them for glTF
    geometry = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, vertex_normals=mesh.normals,
                               visual=trimesh.visual.TextureVisuals(uv=uv, material=material), process=False)
    data = trimesh.Scene(geometry).export(file_type="glb", include_normals=True)
    if len(data) > budget:
        raise InputError(_over_budget(len(data), budget, mesh))
    return data


def _over_budget(size: float, budget: float, mesh: DepthMesh) -> str:
    rows, cols = mesh.grid
    smaller = max(2, int(max(rows, cols) * math.sqrt(budget / size) * 0.9))
    return (f"the mesh would be {size / 1e6:.1f} MB, over the size budget of {budget / 1e6:.0f} MB "
            f"({rows} x {cols} grid, {len(mesh.faces)} triangles). Lower max_side to about {smaller}, or raise "
            f"size_budget_mb.")


def write_glb(path: Union[str, Path], depth: torch.Tensor, albedo: torch.Tensor, normal: torch.Tensor, *,
              fov: float = DEFAULT_FOV, depth_range: float = DEPTH_RANGE, max_side: int = DEFAULT_MAX_SIDE,
              edge_threshold: float = DEFAULT_EDGE_THRESHOLD, size_budget_mb: float = SIZE_BUDGET_MB) -> DepthMesh:
    """Build the mesh of one scene and write it to `path` (complete or not at all); returns it."""
    same_size(depth=as_depth(depth)[..., None], albedo=as_image(albedo, "albedo"))
    mesh = depth_mesh(depth, normal, fov=fov, depth_range=depth_range, max_side=max_side,
                      edge_threshold=edge_threshold)
    data = glb_bytes(mesh, albedo, normal, size_budget_mb=size_budget_mb)
    path = Path(path)
    with atomic_path(path) as partial:
        partial.write_bytes(data)
    return mesh
