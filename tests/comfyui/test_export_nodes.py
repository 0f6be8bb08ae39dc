"""The export nodes in a real ComfyUI: float EXR (bit-exact against the engine), the GLB mesh
(+ Preview 3D, and on trees with it the core MESH into SaveGLB), ComfyUI's own
SaveImageAdvanced fed with LumiX's linear maps, relighting from an environment map, bad
input, and the loader's report on a checkpoint with holes.

The EXR and GLB writers need the pack's requirements (OpenEXR, trimesh) in ComfyUI's
Python; without them these tests fail with the import error, by design."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch
from comfyui_harness import WorkflowFailed
from PIL import Image

from lumix_engine.formats.exr import map_channels, read_exr
from lumix_engine.formats.hdr import load_environment
from lumix_engine.formats.mesh import depth_mesh
from lumix_engine.image_io import to_pil
from lumix_engine.intrinsics import relight, render_scene, srgb_to_linear
from lumix_engine.tiny_random import TINY_FLUX, random_adapters, write_adapters

trimesh = pytest.importorskip("trimesh")
MAPS = ("albedo", "depth", "normal")
WIDTH, HEIGHT, GRID = 160, 120, 80   # the maps, and the mesh's vertex grid (longer side)
DEPTH_RANGE = 5.0                    # far / near of scene 11 is 5.09: the mesh keeps its proportions


@pytest.fixture(scope="module")
def inputs(comfyui_server) -> dict[str, str]:
    """8-bit PNGs of a ground-truth scene (and a 2:1 sky) in the server's input folder; the
    tensors ComfyUI's LoadImage makes of them are read back the same way here."""
    maps = render_scene(11, WIDTH, HEIGHT).images()
    names = {}
    for name in MAPS:
        names[name] = f"lumix_export_{name}.png"
        to_pil(maps[name][0]).save(comfyui_server.input_dir / names[name])
    sky = torch.linspace(0, 1, 32)[:, None, None].expand(32, 64, 3).clone()
    sky[4:8, 40:46] = 1.0
    names["sky"] = "lumix_export_sky.png"
    to_pil(sky).save(comfyui_server.input_dir / names["sky"])
    square = "lumix_export_square.png"
    to_pil(torch.rand(32, 32, 3)).save(comfyui_server.input_dir / square)
    names["square"] = square
    return names


def as_loaded(server, filename: str) -> torch.Tensor:
    """What LoadImage gives for an RGB PNG: uint8 / 255 in float32, [1, H, W, 3]."""
    array = np.asarray(Image.open(server.input_dir / filename).convert("RGB")).astype(np.float32) / 255.0
    return torch.from_numpy(array)[None]


def load(filename: str) -> dict:
    return {"class_type": "LoadImage", "inputs": {"image": filename}}


def export_graph(names: dict[str, str], fov: float = 50.0, core_mesh: bool = False) -> dict:
    graph = {f"load_{name}": load(names[name]) for name in MAPS}
    for name in MAPS:
        graph[f"exr_{name}"] = {"class_type": "LumiXSaveEXR",
                                "inputs": {"images": [f"load_{name}", 0], "map": name, "precision": "float32",
                                           "depth_range": 10.0, "filename_prefix": f"exr/{name}"}}
    graph["mesh"] = {"class_type": "LumiXSaveMesh",
                     "inputs": {"depth": ["load_depth", 0], "albedo": ["load_albedo", 0],
                                "normal": ["load_normal", 0], "fov": fov, "depth_range": DEPTH_RANGE, "max_side": GRID,
                                "edge_threshold": 0.05, "size_budget_mb": 30.0, "filename_prefix": "3d/lumix"}}
    graph["preview"] = {"class_type": "Preview3D", "inputs": {"model_file": ["mesh", 0]}}
    if core_mesh:
        graph["save_glb"] = {"class_type": "SaveGLB", "inputs": {"mesh": ["mesh", 1], "filename_prefix": "3d/core"}}
    return graph


def test_export_nodes_are_listed(comfyui):
    info = comfyui.object_info()
    for node in ("LumiXSaveEXR", "LumiXLinearMaps", "LumiXSaveMesh", "LumiXRelightEnvironment"):
        assert node in info, node
        assert info[node]["category"].startswith("LumiX/")
    assert info["LumiXSaveMesh"]["output"] == ["STRING", "MESH"]
    assert info["LumiXLoader"]["output"] == ["MODEL", "STRING"]


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def test_exr_is_bit_exact_and_the_mesh_reads_back(comfyui, comfyui_server, comfyui_install, inputs):
    core_mesh = "SaveGLB" in comfyui.object_info()
    entry = comfyui.run(export_graph(inputs, core_mesh=core_mesh))
    for name in MAPS:
        [written] = sorted((comfyui_server.output_dir / "exr").glob(f"{name}_*.exr"))
        expected = map_channels(name, as_loaded(comfyui_server, inputs[name]), depth_range=10.0)[0]
        back = read_exr(written)
        assert sorted(back) == sorted(expected)
        for channel, array in expected.items():
            assert back[channel].tobytes() == array.tobytes(), (name, channel)
    [glb] = sorted((comfyui_server.output_dir / "3d").glob("lumix_*.glb"))
    loaded = {name: as_loaded(comfyui_server, inputs[name]) for name in MAPS}
    mesh = depth_mesh(loaded["depth"], loaded["normal"], fov=50.0, depth_range=DEPTH_RANGE, max_side=GRID)
    [geometry] = trimesh.load(str(glb), process=False).geometry.values()
    assert geometry.vertices.shape == mesh.vertices.shape and np.array_equal(geometry.faces, mesh.faces)
    assert geometry.visual.material.baseColorTexture.size == (WIDTH, HEIGHT)
    assert geometry.visual.material.normalTexture.size == (WIDTH, HEIGHT)
    # Preview 3D got the file name (relative to the output folder) from model_file.
    preview = entry["outputs"]["preview"]
    assert any(glb.name in str(value) for value in preview.values()), preview
    if core_mesh:   # ComfyUI's own SaveGLB writes our MESH
        [core] = sorted((comfyui_server.output_dir / "3d").glob("core_*.glb"))
        [core_geometry] = trimesh.load(str(core), process=False).geometry.values()
        assert len(core_geometry.vertices) == len(mesh.vertices)
        assert len(core_geometry.faces) == len(mesh.faces)
        if version_tuple(comfyui_install.version()) >= (0, 29):   # its MESH carries UVs and a texture
            assert core_geometry.visual.material.baseColorTexture.size == (WIDTH, HEIGHT)


def test_linear_maps_chain_into_save_image_advanced(comfyui, comfyui_server, comfyui_install, inputs):
    if "SaveImageAdvanced" not in comfyui.object_info():
        # It arrived after 0.3.64; there LumiX Save EXR is the only float EXR writer.
        assert version_tuple(comfyui_install.version()) < (0, 29)
        return

    def advanced(source: list, space: str, prefix: str) -> dict:
        return {"class_type": "SaveImageAdvanced",
                "inputs": {"images": source, "filename_prefix": prefix, "format": "exr",
                           "format.bit_depth": "32-bit float", "format.input_color_space": space}}

    graph = {"load_albedo": load(inputs["albedo"]), "load_normal": load(inputs["normal"]),
             "normal_linear": {"class_type": "LumiXLinearMaps",
                               "inputs": {"images": ["load_normal", 0], "map": "normal", "depth_range": 10.0}},
             "albedo_linear": {"class_type": "LumiXLinearMaps",
                               "inputs": {"images": ["load_albedo", 0], "map": "albedo", "depth_range": 10.0}},
             # albedo as it comes (sRGB-encoded) into the sRGB input, or linearised into the linear input
             "albedo_srgb_in": advanced(["load_albedo", 0], "sRGB", "advanced/albedo_srgb"),
             "albedo_linear_in": advanced(["albedo_linear", 0], "linear", "advanced/albedo_linear"),
             "normal_linear_in": advanced(["normal_linear", 0], "linear", "advanced/normal")}
    comfyui.run(graph)
    folder = comfyui_server.output_dir / "advanced"
    albedo = map_channels("albedo", as_loaded(comfyui_server, inputs["albedo"]))[0]
    normal = map_channels("normal", as_loaded(comfyui_server, inputs["normal"]))[0]
    for prefix, expected, names, tolerance in (("albedo_srgb", albedo, "RGB", 1e-6),
                                               ("albedo_linear", albedo, "RGB", 0.0),
                                               ("normal", normal, ("N.X", "N.Y", "N.Z"), 0.0)):
        [path] = sorted(folder.glob(f"{prefix}_*.exr"))
        back = read_exr(path)
        got = np.stack([back[c] for c in "RGB"], -1)
        want = np.stack([expected[c] for c in names], -1)
        assert np.abs(got - want).max() <= tolerance, prefix
    assert got.min() < -0.5   # the normals' negative half is not clamped


def test_relight_from_an_environment_image(comfyui, comfyui_server, inputs):
    graph = {"load_albedo": load(inputs["albedo"]), "load_normal": load(inputs["normal"]),
             "load_sky": load(inputs["sky"]),
             "relight": {"class_type": "LumiXRelightEnvironment",
                         "inputs": {"albedo": ["load_albedo", 0], "normal": ["load_normal", 0],
                                    "environment_file": "none", "rotation": 30.0, "intensity": 1.5,
                                    "exposure": 0.0, "environment": ["load_sky", 0], "environment_is_srgb": True}},
             "save": {"class_type": "LumiXSaveEXR",
                      "inputs": {"images": ["relight", 1], "map": "irradiance", "precision": "float32",
                                 "depth_range": 10.0, "filename_prefix": "relight/irradiance"}}}
    comfyui.run(graph)
    [path] = sorted((comfyui_server.output_dir / "relight").glob("irradiance_*.exr"))
    back = read_exr(path)
    albedo, normal = (as_loaded(comfyui_server, inputs[n]) for n in ("albedo", "normal"))
    environment = load_environment(as_loaded(comfyui_server, inputs["sky"]), srgb=True)
    _, irradiance = relight(albedo, normal, (), ambient=(0, 0, 0), environment=environment, rotation=30.0,
                            environment_intensity=1.5)
    want = srgb_to_linear(irradiance[0].double()).numpy()
    assert np.abs(np.stack([back[c] for c in "RGB"], -1) - want).max() < 1e-5


@pytest.mark.parametrize("case, message", [
    ("fov", "fov must be a vertical field of view"),
    ("square_environment", "2:1"),
    ("constant_depth", "constant"),
])
def test_bad_input_is_named_and_leaves_no_file(comfyui, comfyui_server, inputs, case, message):
    before = set(pathlib.Path(comfyui_server.output_dir).rglob("*"))
    if case == "fov":
        graph = export_graph(inputs, fov=179.0)
        graph = {k: v for k, v in graph.items() if not k.startswith("exr_")}
    elif case == "constant_depth":
        flat = "lumix_export_flat.png"
        to_pil(torch.full((HEIGHT, WIDTH, 3), 0.5)).save(comfyui_server.input_dir / flat)
        graph = {"load": load(flat), "exr": {"class_type": "LumiXSaveEXR",
                                             "inputs": {"images": ["load", 0], "map": "depth", "precision": "half",
                                                        "depth_range": 10.0, "filename_prefix": "bad/depth"}}}
    else:
        graph = {"load_albedo": load(inputs["albedo"]), "load_normal": load(inputs["normal"]),
                 "load_sky": load(inputs["square"]),
                 "relight": {"class_type": "LumiXRelightEnvironment",
                             "inputs": {"albedo": ["load_albedo", 0], "normal": ["load_normal", 0],
                                        "environment_file": "none", "rotation": 0.0, "intensity": 1.0,
                                        "exposure": 0.0, "environment": ["load_sky", 0]}},
                 "save": {"class_type": "LumiXSaveEXR",
                          "inputs": {"images": ["relight", 0], "map": "color", "precision": "half",
                                     "depth_range": 10.0, "filename_prefix": "bad/color"}}}
    with pytest.raises(WorkflowFailed) as failure:
        comfyui.run(graph)
    assert message in failure.value.details.get("exception_message", ""), failure.value.details
    assert set(pathlib.Path(comfyui_server.output_dir).rglob("*")) == before


def test_loader_reports_blocks_without_adapters(comfyui, comfyui_server, tiny_models):
    name = "lumix_tiny_holes.safetensors"
    adapters = random_adapters(TINY_FLUX, double_ids=[1], single_ids=[0])
    write_adapters(comfyui_server.models_dir / "lumix" / name, adapters)
    graph = {"unet": {"class_type": "UNETLoader", "inputs": {"unet_name": tiny_models.flux,
                                                             "weight_dtype": "default"}},
             "lumix": {"class_type": "LumiXLoader", "inputs": {"model": ["unet", 0], "lumix_name": name,
                                                               "strength": 1.0, "qba": True}},
             "show": {"class_type": "PreviewAny", "inputs": {"source": ["lumix", 1]}}}
    entry = comfyui.run(graph)
    text = str(entry["outputs"]["show"])
    assert "no adapters for double_blocks 0 and single_blocks 1 (2 of 4 blocks)" in text, text
    assert "Query-Broadcast Attention still applies there" in text
    assert "no adapters for double_blocks 0" in comfyui_server.log_text()
