"""The 2.5D GLB mesh: read back with trimesh (counts, textures, UVs), geometry against the
ground-truth renderer's 3D points, cuts at depth discontinuities, size budget, bad input."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from lumix_engine.errors import InputError
from lumix_engine.formats.mesh import depth_mesh, grid_size, tangent_space_normals, write_glb
from lumix_engine.intrinsics import render_scene

trimesh = pytest.importorskip("trimesh")


@pytest.fixture(scope="module")
def scene():
    return render_scene(11, 64, 48)


def gltf_json(data: bytes) -> dict:
    length = struct.unpack("<I", data[12:16])[0]
    return json.loads(data[20:20 + length])


def test_glb_reads_back_with_the_right_counts_and_textures(tmp_path, scene):
    maps = scene.images()
    path = tmp_path / "scene.glb"
    mesh = write_glb(path, maps["depth"], maps["albedo"], maps["normal"], max_side=32)
    assert mesh.grid == (24, 32) and len(mesh.vertices) == 24 * 32
    loaded = trimesh.load(str(path), process=False)
    [geometry] = loaded.geometry.values()
    assert geometry.vertices.shape == (24 * 32, 3) and geometry.faces.shape == mesh.faces.shape
    assert np.array_equal(geometry.faces, mesh.faces)
    assert np.allclose(geometry.vertices, mesh.vertices)
    assert np.allclose(geometry.vertex_normals, mesh.normals, atol=1e-6)
    material = geometry.visual.material
    assert material.baseColorTexture.size == (64, 48) and material.normalTexture.size == (64, 48)
    assert np.allclose(geometry.visual.uv[:, 1], 1 - mesh.uvs[:, 1]) and np.allclose(geometry.visual.uv[:, 0],
                                                                                      mesh.uvs[:, 0])
    document = gltf_json(path.read_bytes())
    assert len(document["textures"]) == 2 and len(document["images"]) == 2
    [gltf_material] = document["materials"]
    assert gltf_material["pbrMetallicRoughness"]["metallicFactor"] == 0.0
    assert "normalTexture" in gltf_material and "baseColorTexture" in gltf_material["pbrMetallicRoughness"]
    # The albedo texture is the albedo map (8-bit).
    albedo = np.asarray(material.baseColorTexture.convert("RGB"), dtype=np.float64) / 255
    assert np.abs(albedo - maps["albedo"][0].numpy()).max() <= 0.5 / 255 + 1e-6


def test_vertices_are_the_ground_truth_points(scene):
    maps = scene.images()
    depth = scene.depth[0, ..., 0].double()
    ratio = float(depth.max() / depth.min())
    mesh = depth_mesh(maps["depth"], maps["normal"], fov=50.0, depth_range=ratio)   # render()'s camera
    rays = scene.camera.rays(torch.float64)                                     # z = -1, so point = depth * ray
    truth = (depth[..., None] * rays / depth.min()).reshape(-1, 3).numpy()
    assert np.abs(mesh.vertices - truth).max() / ratio < 1e-5
    assert np.abs(mesh.normals - scene.normal[0].reshape(-1, 3).numpy()).max() < 1e-5


def test_triangles_are_cut_at_depth_discontinuities(scene):
    maps = scene.images()
    mesh = depth_mesh(maps["depth"], maps["normal"], edge_threshold=0.05)
    rows, cols = mesh.grid
    assert len(mesh.faces) < 2 * (rows - 1) * (cols - 1)
    objects = scene.object_id[0].reshape(-1).numpy()[mesh.faces]
    depth = scene.depth[0, ..., 0].reshape(-1).numpy()[mesh.faces]
    jumps = depth.max(1) / depth.min(1) - 1
    # No kept triangle joins two objects across a depth jump; where objects touch (a box on the floor)
    # they stay joined.
    joined = (objects.min(1) != objects.max(1)) & (jumps > 0.05)
    assert joined.sum() <= 0.002 * len(mesh.faces), joined.sum()
    # Big steps that are kept lie in one surface (a floor at a grazing angle), which stays whole.
    assert (jumps > 0.05).sum() > 0 and (objects[jumps > 0.05].min(1) == objects[jumps > 0.05].max(1)).mean() > 0.95
    everything = depth_mesh(maps["depth"], maps["normal"], edge_threshold=1e9)
    assert len(everything.faces) == 2 * (rows - 1) * (cols - 1)


def test_faces_look_at_the_camera(scene):
    maps = scene.images()
    mesh = depth_mesh(maps["depth"], maps["normal"])
    a, b, c = (mesh.vertices[mesh.faces[:, k]] for k in range(3))
    face_normals = np.cross(b - a, c - a)
    towards_camera = -(a + b + c) / 3
    assert ((face_normals * towards_camera).sum(1) > 0).mean() > 0.999


def test_tangent_space_texture_is_flat_where_vertices_carry_the_normals(scene):
    maps = scene.images()
    mesh = depth_mesh(maps["depth"], maps["normal"], max_side=64)   # one vertex per pixel
    texture = tangent_space_normals(maps["normal"], mesh)
    assert torch.allclose(texture, texture.new_tensor([0.5, 0.5, 1.0]).expand_as(texture), atol=1e-6)
    coarse = depth_mesh(maps["depth"], maps["normal"], max_side=16)
    detail = tangent_space_normals(maps["normal"], coarse)
    assert float((detail[..., 2] < 0.99).float().mean()) > 0.01   # detail between coarse vertices


def test_size_budget_is_stated_and_enforced(tmp_path, scene):
    maps = scene.images()
    with pytest.raises(InputError, match=r"over the size budget of 0.05 MB.*Set max_side to \d+ or less"):
        write_glb(tmp_path / "big.glb", maps["depth"], maps["albedo"], maps["normal"], size_budget_mb=0.05)
    with pytest.raises(InputError, match=r"textures alone do not fit whatever the grid: downscale the maps"):
        write_glb(tmp_path / "big.glb", maps["depth"], maps["albedo"], maps["normal"], size_budget_mb=0.002)
    assert list(tmp_path.iterdir()) == []
    assert grid_size(1024, 1024) == (512, 512) and grid_size(768, 1360) == (289, 512)
    assert grid_size(48, 64) == (48, 64)


@pytest.mark.parametrize("fov", [1.0, 0.5, 179.0, 200.0, float("nan")])
def test_field_of_view_outside_1_179_is_refused(tmp_path, scene, fov):
    maps = scene.images()
    with pytest.raises(InputError, match="fov must be"):
        write_glb(tmp_path / "x.glb", maps["depth"], maps["albedo"], maps["normal"], fov=fov)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, make, message", [
    ("depth", lambda m: torch.zeros_like(m["depth"]), "all zeros"),
    ("depth", lambda m: torch.full_like(m["depth"], 0.3), "constant"),
    ("depth", lambda m: m["depth"].clone().index_fill_(1, torch.tensor([5]), float("nan")), "NaN"),
    ("normal", lambda m: m["normal"].clone().index_fill_(2, torch.tensor([7]), 0.5), "zero length"),
])
def test_bad_maps_are_refused_and_nothing_is_written(tmp_path, scene, name, make, message):
    maps = dict(scene.images())
    maps[name] = make(maps)
    with pytest.raises(InputError, match=message):
        write_glb(tmp_path / "x.glb", maps["depth"], maps["albedo"], maps["normal"])
    assert list(tmp_path.iterdir()) == []


def test_maps_of_different_sizes_are_refused(tmp_path, scene):
    maps = scene.images()
    with pytest.raises(InputError, match="pixel-aligned"):
        write_glb(tmp_path / "x.glb", maps["depth"], maps["albedo"][:, :32], maps["normal"])


@pytest.fixture(scope="module")
def large_scene():
    return render_scene(11, 320, 256)


@pytest.mark.parametrize("albedo_kind", ["rendered", "noise"])
@pytest.mark.parametrize("budget_fraction", [0.8, 0.4])
def test_the_advised_max_side_always_fits(tmp_path, large_scene, albedo_kind, budget_fraction):
    """The refusal names a max_side; building with it must fit the same budget. Noise albedo is a
    PNG that does not compress, so the fixed-size textures are most of the file there."""
    maps = large_scene.images()
    albedo = maps["albedo"] if albedo_kind == "rendered" else \
        torch.rand(maps["albedo"].shape, generator=torch.Generator().manual_seed(1))
    full = write_glb(tmp_path / "full.glb", maps["depth"], albedo, maps["normal"], max_side=320)
    size = (tmp_path / "full.glb").stat().st_size
    geometry = len(full.vertices) * 32 + len(full.faces) * 12
    budget_mb = (size - geometry * (1 - budget_fraction)) / 1e6          # cuts into the geometry only
    with pytest.raises(InputError, match=r"Set max_side to (\d+) or less") as refused:
        write_glb(tmp_path / "refused.glb", maps["depth"], albedo, maps["normal"], max_side=320,
                  size_budget_mb=budget_mb)
    import re
    advised = int(re.search(r"Set max_side to (\d+)", str(refused.value)).group(1))
    assert 2 <= advised < 320
    write_glb(tmp_path / "advised.glb", maps["depth"], albedo, maps["normal"], max_side=advised,
              size_budget_mb=budget_mb)
    assert (tmp_path / "advised.glb").stat().st_size <= budget_mb * 1e6
