"""A relightable 2.5D mesh (binary glTF, .glb) from a depth map, an albedo and a normal map.

Geometry: one vertex per grid point, unprojected through a pinhole camera at the origin
looking down -Z (+X right, +Y up, the maps' camera space, which is also glTF's frame),
with the vertical field of view `fov` (default 50 degrees, the ground-truth renderer's
camera; LumiX does not know the real one, so it is an input). Depth comes from the
near-white disparity map through `distance_from_disparity` (nearest pixel at exactly
distance 1, farthest at exactly `depth_range`). Triangles whose corners differ in depth by more than
`edge_threshold` (relative: max / min - 1) and whose face does not agree with the LumiX
normals at its corners are left out, so a foreground object does not join the background
with a skin of stretched triangles, while a floor seen at a grazing angle stays whole.

Material: glTF metallic-roughness, metallic 0, roughness 1 (a diffuse surface, which is
what LumiX's albedo describes), albedo as the sRGB base-colour texture, the LumiX
normals as per-vertex NORMAL with an explicit TANGENT (+X made orthogonal to the normal),
and, for the detail between vertices, a tangent-space normal texture encoded in the very
frame a glTF viewer rebuilds per fragment (vertex normal, tangent and bitangent interpolated
over each triangle, `tangent_space_normals`). A viewer that follows the glTF spec therefore
lights each texel with LumiX's normal, up to 8-bit rounding (tests/test_mesh_viewer.py
checks this with the spec's shading maths and the Khronos glTF validator).

Size budget: at most `size_budget_mb` (default 30 MB); the grid is the map's resolution
capped at `max_side` (default 512) points on its longer side. Measured at 1024 x 1024
(a 512 x 512 grid, ~520k triangles, two full-resolution PNG textures, on a scene from our
own renderer): 18.9 MB for the rendered albedo, 22.0 MB with a noise albedo (a PNG that does
not compress). The estimate is checked before the file is assembled; a mesh over budget is
refused with a max_side that fits (`fitting_max_side`): the textures keep the maps'
resolution whatever the grid, so only the geometry shrinks.

Written with trimesh (PyPI `trimesh`, maintained, MIT, needs only numpy): its glTF
exporter writes PBR materials with base-colour and normal textures and reads them back,
which is what the tests check.
"""
from __future__ import annotations

import io
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch

from ..devices import to_float64
from ..errors import InputError
from ..image_io import atomic_path, to_pil
from ..intrinsics.checks import as_depth, as_image, same_size
from ..intrinsics.depth import DEPTH_RANGE, check_disparity, distance_from_disparity
from ..intrinsics.normals import unit_normals

DEFAULT_FOV = 50.0            # vertical field of view, degrees
DEFAULT_MAX_SIDE = 512        # grid points on the longer side
DEFAULT_EDGE_THRESHOLD = 0.05  # relative depth jump that cuts a triangle
SIZE_BUDGET_MB = 30.0
SURFACE_AGREEMENT = 0.5       # cos 60 degrees: a stepped triangle this close to its normals is surface
# Bytes per vertex (position, normal: 3 float32 each; uv: 2; tangent: 4) and per triangle (3 uint32).
_VERTEX_BYTES, _FACE_BYTES = 48, 12


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
    z = _nearest(distance_from_disparity(to_float64(disparity, "cpu"), depth_range)[0], rows, cols)
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


def vertex_tangents(normals: np.ndarray) -> np.ndarray:
    """glTF TANGENT [N, 4] for unit vertex normals [N, 3]: +X (the direction of increasing u)
    made orthogonal to the normal, +Y where the normal lies along X; w = +1, so the bitangent
    N x T points up the image (toward decreasing v), as glTF's normal-texture convention wants."""
    unit = torch.from_numpy(normals).double()
    tangent = _orthogonal(unit, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    fallback = _orthogonal(unit, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    tangent = torch.where(tangent.norm(dim=-1, keepdim=True) > 1e-6, tangent, fallback)
    tangent = tangent / tangent.norm(dim=-1, keepdim=True)
    return torch.cat([tangent, torch.ones_like(tangent[:, :1])], dim=1).float().numpy()


def _orthogonal(normals: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    return axis - (normals * axis).sum(-1, keepdim=True) * normals


def _texel_barycentrics(height: int, width: int, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For every texel centre: the three grid vertices of the triangle whose UV triangle holds it
    (index [H, W, 3]) and its barycentric weights there (float64 [H, W, 3]), with the triangles
    split as `depth_mesh` splits each grid square (top-left, bottom-left, top-right | top-right,
    bottom-left, bottom-right). Texels in the half-cell border outside the vertex grid get the
    nearest triangle's weights extrapolated; no triangle is drawn there."""
    # Vertex j sits at pixel x = (j + 0.5) * width / cols, so a texel centre's grid coordinate is:
    u = (torch.arange(width, dtype=torch.float64) + 0.5) * cols / width - 0.5
    v = (torch.arange(height, dtype=torch.float64) + 0.5) * rows / height - 0.5
    col = u.floor().clamp(0, cols - 2).long()
    row = v.floor().clamp(0, rows - 2).long()
    a = (u - col)[None, :].expand(height, width)
    b = (v - row)[:, None].expand(height, width)
    top_left = row[:, None] * cols + col[None, :]
    top_right, bottom_left = top_left + 1, top_left + cols
    bottom_right = bottom_left + 1
    upper = a + b <= 1
    index = torch.where(upper[..., None], torch.stack([top_left, bottom_left, top_right], -1),
                        torch.stack([bottom_right, bottom_left, top_right], -1))
    weights = torch.where(upper[..., None], torch.stack([1 - a - b, b, a], -1),
                          torch.stack([a + b - 1, 1 - a, 1 - b], -1))
    return index, weights


def tangent_space_normals(normal: torch.Tensor, mesh: DepthMesh) -> torch.Tensor:
    """Camera-space normal image [1, H, W, 3] -> tangent-space normal texture [H, W, 3] in
    [0, 1], in the frame a glTF viewer rebuilds at each fragment.

    A viewer interpolates the vertex NORMAL, TANGENT and bitangent (N x T * w, formed per vertex)
    over each triangle, normalises each, and lights with normalize([T B N] * texel) (glTF 2.0
    spec, normalTexture; Khronos sample viewer, three.js). Each texel therefore stores
    normalize([T B N]^-1 * n): the viewer's product gives back the LumiX normal n, up to 8-bit
    rounding, wherever the texel falls."""
    height, width = normal.shape[1:3]
    unit = unit_normals(to_float64(normal, "cpu"), "normal")[0]
    index, weights = _texel_barycentrics(height, width, *mesh.grid)
    normals = torch.from_numpy(mesh.normals).double()
    tangents = torch.from_numpy(vertex_tangents(mesh.normals)).double()
    bitangents = torch.cross(normals, tangents[:, :3], dim=-1) * tangents[:, 3:]

    def interpolated(per_vertex: torch.Tensor) -> torch.Tensor:
        value = (per_vertex[index] * weights[..., None]).sum(-2)
        return value / value.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    frame = torch.stack([interpolated(tangents[:, :3]), interpolated(bitangents), interpolated(normals)], dim=-1)
    local = torch.linalg.solve(frame, unit[..., None])[..., 0]
    local = local / local.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (local + 1.0) / 2.0


def _with_tangents(glb: bytes, tangents: np.ndarray) -> bytes:
    """`glb` (one mesh primitive, as trimesh writes it) with a TANGENT attribute added: trimesh
    does not write tangents, and without them a viewer derives its own from the UVs, which the
    normal texture was not encoded for (the validator's MESH_PRIMITIVE_GENERATED_TANGENT_SPACE)."""
    json_length = struct.unpack_from("<I", glb, 12)[0]
    document = json.loads(glb[20:20 + json_length])
    binary = bytearray(glb[20 + json_length + 8:])
    offset = len(binary) + (-len(binary)) % 4
    data = np.ascontiguousarray(tangents, dtype="<f4").tobytes()
    binary += bytes(offset - len(binary)) + data
    document["bufferViews"].append({"buffer": 0, "byteOffset": offset, "byteLength": len(data), "target": 34962})
    document["accessors"].append({"bufferView": len(document["bufferViews"]) - 1, "componentType": 5126,
                                  "count": len(tangents), "type": "VEC4"})
    [primitive] = [p for m in document["meshes"] for p in m["primitives"]]
    primitive["attributes"]["TANGENT"] = len(document["accessors"]) - 1
    document["buffers"][0]["byteLength"] = len(binary)
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 4)
    binary += bytes((-len(binary)) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(text), b"JSON") + text
            + struct.pack("<I4s", len(binary), b"BIN\x00") + bytes(binary))


def _png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


_CONTAINER_BYTES = 4096      # glTF JSON, chunk headers and padding


def estimate_bytes(mesh: DepthMesh, texture_bytes: int) -> int:
    return len(mesh.vertices) * _VERTEX_BYTES + len(mesh.faces) * _FACE_BYTES + texture_bytes + _CONTAINER_BYTES


def fitting_max_side(height: int, width: int, albedo_bytes: int, normal_bytes: int, budget: float) -> int | None:
    """The largest `max_side` whose mesh fits `budget` bytes for maps of height x width, or None
    when the textures alone do not fit.

    The textures stay at the maps' full resolution whatever the grid, so only the geometry
    shrinks with max_side; it is bounded by a full grid (every triangle kept). The normal
    texture carries the detail between vertices and grows as the grid coarsens, so it is
    counted twice: measured at 1024 x 1024 it grew by half from a 512 to a 308 grid.
    """
    textures = albedo_bytes + 2 * normal_bytes + _CONTAINER_BYTES
    for side in range(max(height, width), 1, -1):
        rows, cols = grid_size(height, width, side)
        if rows * cols * _VERTEX_BYTES + 2 * (rows - 1) * (cols - 1) * _FACE_BYTES + textures <= budget:
            return side
    return None


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
    advice = (albedo.shape[1], albedo.shape[2], len(albedo_png), len(normal_png))
    if estimate > budget:
        raise InputError(_over_budget(estimate, budget, mesh, *advice))
    from PIL import Image
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.open(io.BytesIO(albedo_png)), normalTexture=Image.open(io.BytesIO(normal_png)),
        metallicFactor=0.0, roughnessFactor=1.0, doubleSided=True, name="lumix")
    uv = mesh.uvs.copy()
    uv[:, 1] = 1.0 - uv[:, 1]   # trimesh keeps OpenGL texture coordinates (v up) and flips them for glTF
    geometry = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, vertex_normals=mesh.normals,
                               visual=trimesh.visual.TextureVisuals(uv=uv, material=material), process=False)
    data = _with_tangents(trimesh.Scene(geometry).export(file_type="glb", include_normals=True),
                          vertex_tangents(mesh.normals))
    if len(data) > budget:
        raise InputError(_over_budget(len(data), budget, mesh, *advice))
    return data


def _over_budget(size: float, budget: float, mesh: DepthMesh, height: int, width: int, albedo_bytes: int,
                 normal_bytes: int) -> str:
    rows, cols = mesh.grid
    problem = (f"the mesh would be {size / 1e6:.1f} MB, over the size budget of {budget / 1e6:.2f} MB "
               f"({rows} x {cols} grid, {len(mesh.faces)} triangles, {(albedo_bytes + normal_bytes) / 1e6:.1f} MB "
               f"of full-resolution textures).")
    side = fitting_max_side(height, width, albedo_bytes, normal_bytes, budget)
    if side is None:
        return (f"{problem} The textures alone do not fit whatever the grid: downscale the maps (the textures are "
                f"the maps' {width} x {height} pixels), or raise size_budget_mb.")
    return f"{problem} Set max_side to {side} or less, or raise size_budget_mb."


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
