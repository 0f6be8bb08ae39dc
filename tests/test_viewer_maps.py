"""The maps viewer's files (nodes/viewer_maps.py): the raw float32 file holds the maps' own
values at the pixels the entry says, and the readout's conversions (web/js/viewer/readout.js)
have a float64 reference here that the browser test (tests/comfyui/test_maps_viewer.py)
compares the page against.

nodes/ is a ComfyUI package (its __init__ imports comfy_api), so the module is loaded the way
test_package.py loads the pack: as a submodule of a package that is not ComfyUI's."""
from __future__ import annotations

import importlib
import pathlib
import sys
import types

import numpy as np
import pytest
import torch

from lumix_engine.intrinsics.color_space import srgb_to_linear
from lumix_engine.intrinsics.depth import DEPTH_RANGE, distance_from_disparity
from lumix_engine.intrinsics.normals import decode_normals
from lumix_engine.modalities import MAP_NAMES

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "lumix_viewer_maps_pack"


@pytest.fixture(scope="module")
def viewer_maps():
    pack = types.ModuleType(PACKAGE)
    pack.__path__ = [str(ROOT)]
    nodes = types.ModuleType(f"{PACKAGE}.nodes")   # without nodes/__init__.py, which needs ComfyUI
    nodes.__path__ = [str(ROOT / "nodes")]
    sys.modules.update({PACKAGE: pack, f"{PACKAGE}.nodes": nodes})
    try:
        yield importlib.import_module(f"{PACKAGE}.nodes.viewer_maps")
    finally:
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def random_maps(scenes: int, height: int, width: int, seed: int = 0, names=MAP_NAMES) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    maps = {name: torch.rand(scenes, height, width, 3, generator=generator) for name in names}
    if "depth" in maps:   # VAE-decoded depth: three nearly equal channels
        grey = torch.rand(scenes, height, width, 1, generator=generator)
        maps["depth"] = (grey + 0.01 * torch.rand(scenes, height, width, 3, generator=generator)).clamp(0, 1)
    return maps


def read_scene(folder: pathlib.Path, entry: dict) -> np.ndarray:
    raw = (folder / entry["file"]["subfolder"] / entry["file"]["filename"]).read_bytes()
    return np.frombuffer(raw, dtype="<f4").reshape(len(entry["maps"]), entry["height"], entry["width"], 3)


# --- float64 references of what the readout shows (the page is compared against these) ---

def srgb_decode64(encoded: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1, in float64."""
    encoded = np.maximum(np.asarray(encoded, np.float64), 0.0)
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


def normal64(encoded: np.ndarray) -> np.ndarray:
    vector = 2.0 * np.asarray(encoded, np.float64) - 1.0
    length = np.linalg.norm(vector, axis=-1, keepdims=True)
    return np.where(length > 1e-8, vector / np.maximum(length, 1e-8), np.array([0.0, 0.0, 1.0]))


def distance64(disparity: np.ndarray, low: float, high: float, depth_range: float) -> np.ndarray:
    t = np.clip((np.asarray(disparity, np.float64) - low) / (high - low), 0.0, 1.0)
    return 1.0 / (t + (1.0 - t) / depth_range)


def readout64(pixel: dict[str, np.ndarray], depth: dict) -> dict:
    """What the viewer shows for one pixel: {map: stored rgb} -> the readout's numbers."""
    disparity = float(np.mean(np.asarray(pixel["depth"], np.float64)))
    return {"albedo_linear": srgb_decode64(pixel["albedo"]), "irradiance_linear": srgb_decode64(pixel["irradiance"]),
            "color_linear": srgb_decode64(pixel["color"]), "disparity": disparity,
            "distance": float(distance64(disparity, depth["low"], depth["high"], depth["range"])),
            "normal": normal64(pixel["normal"])}


def test_the_file_holds_each_scene_s_maps_exactly(viewer_maps, tmp_path):
    maps = random_maps(3, 20, 28)
    entries = viewer_maps.write_viewer_maps(maps, tmp_path, subfolder="viewer")
    assert [e["scene"] for e in entries] == [0, 1, 2] and {e["scenes"] for e in entries} == {3}
    assert len({e["file"]["filename"] for e in entries}) == 3
    for entry in entries:
        assert entry["maps"] == list(MAP_NAMES) and entry["stride"] == 1
        assert (entry["width"], entry["height"]) == (28, 20) == (entry["source_width"], entry["source_height"])
        assert entry["file"] == {"filename": entry["file"]["filename"], "subfolder": "viewer", "type": "temp"}
        data = read_scene(tmp_path, entry)
        for index, name in enumerate(MAP_NAMES):
            np.testing.assert_array_equal(data[index], maps[name][entry["scene"]].numpy())   # bit for bit


def test_large_maps_are_decimated_by_a_whole_stride_never_averaged(viewer_maps, tmp_path):
    maps = random_maps(1, 70, 130, seed=1)
    [entry] = viewer_maps.write_viewer_maps(maps, tmp_path, max_side=32)
    stride = entry["stride"]
    assert stride == 5 == viewer_maps.stride_for(130, 70, 32)   # ceil(130 / 32)
    assert (entry["width"], entry["height"], entry["source_width"], entry["source_height"]) == (26, 14, 130, 70)
    data = read_scene(tmp_path, entry)
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = int(rng.integers(entry["width"])), int(rng.integers(entry["height"]))
        for index, name in enumerate(MAP_NAMES):
            np.testing.assert_array_equal(data[index, y, x], maps[name][0, stride * y, stride * x].numpy())


def test_the_depth_range_is_the_whole_map_s_and_distances_match_the_pack(viewer_maps, tmp_path):
    """The entry's low/high are of the full-size map (not the decimated file), so the
    readout's distance equals distance_from_disparity at every pixel of the file."""
    maps = random_maps(2, 90, 60, seed=2)
    entries = viewer_maps.write_viewer_maps(maps, tmp_path, max_side=40)
    pack = distance_from_disparity(maps["depth"].double().mean(dim=-1))
    for entry in entries:
        scene, stride, depth = entry["scene"], entry["stride"], entry["depth"]
        disparity = maps["depth"][scene].double().mean(dim=-1)
        assert depth["range"] == DEPTH_RANGE
        assert depth["low"] == pytest.approx(float(disparity.min()), abs=1e-7)
        assert depth["high"] == pytest.approx(float(disparity.max()), abs=1e-7)
        data = read_scene(tmp_path, entry)
        mine = distance64(data[MAP_NAMES.index("depth")].astype(np.float64).mean(axis=-1), **depth_args(depth))
        np.testing.assert_allclose(mine, pack[scene, ::stride, ::stride].numpy(), rtol=2e-6)


def depth_args(depth: dict) -> dict:
    return {"low": depth["low"], "high": depth["high"], "depth_range": depth["range"]}


def test_the_readout_references_agree_with_the_pack_s_conversions(viewer_maps, tmp_path):
    """The float64 references the browser test uses are the pack's own maths (sRGB decode,
    normal decoding, OpenGL axes), so the page is checked against the pack's conventions."""
    maps = random_maps(1, 16, 16, seed=3)
    maps["normal"][0, 0, 0] = 0.5   # a zero vector: +Z, facing the viewer, as decode_normals does
    [entry] = viewer_maps.write_viewer_maps(maps, tmp_path)
    data = read_scene(tmp_path, entry)
    for y, x in [(0, 0), (3, 11), (15, 15)]:
        pixel = {name: data[index, y, x] for index, name in enumerate(MAP_NAMES)}
        values = readout64(pixel, entry["depth"])
        for name in ("albedo", "irradiance", "color"):
            np.testing.assert_allclose(values[f"{name}_linear"],
                                       srgb_to_linear(maps[name][0, y, x].double()).numpy(), rtol=1e-12)
        np.testing.assert_allclose(values["normal"], decode_normals(maps["normal"][:, y:y + 1, x:x + 1].double())
                                   [0, 0, 0].numpy(), atol=1e-12)
    assert readout64({**pixel, "normal": np.array([0.5, 0.5, 0.5])}, entry["depth"])["normal"].tolist() == [0, 0, 1]


def test_photo_maps_without_every_map_and_sizes_that_differ(viewer_maps, tmp_path):
    """A subset of the maps (any LumiX node's outputs) keeps MAP_NAMES order; no depth -> no range."""
    maps = random_maps(1, 12, 40, seed=4, names=("normal", "albedo"))
    [entry] = viewer_maps.write_viewer_maps(maps, tmp_path)
    assert entry["maps"] == ["albedo", "normal"] and "depth" not in entry
    data = read_scene(tmp_path, entry)
    np.testing.assert_array_equal(data[1], maps["normal"][0].numpy())


def test_writing_leaves_the_node_s_outputs_untouched(viewer_maps, tmp_path):
    """The node returns the same tensors it hands the writer: they must come back bit for bit
    (the saved outputs of a workflow do not change with the viewer)."""
    maps = random_maps(2, 30, 20, seed=5)
    before = {name: image.clone() for name, image in maps.items()}
    viewer_maps.write_viewer_maps(maps, tmp_path, max_side=8)
    for name in maps:
        assert torch.equal(maps[name], before[name]) and maps[name].dtype == torch.float32


def test_half_precision_maps_are_written_as_their_float32_values(viewer_maps, tmp_path):
    maps = {name: image.to(torch.bfloat16) for name, image in random_maps(1, 10, 12, seed=6).items()}
    [entry] = viewer_maps.write_viewer_maps(maps, tmp_path)
    data = read_scene(tmp_path, entry)
    for index, name in enumerate(MAP_NAMES):
        np.testing.assert_array_equal(data[index], maps[name][0].float().numpy())
