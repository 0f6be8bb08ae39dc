"""Photos of any size through the shipped image -> maps workflow in a real ComfyUI: the maps
come back at the photo's own size (odd, portrait, panorama, tiny, grey, RGBA), and bad
photos are refused with a message."""
import json
import pathlib

import numpy as np
import pytest
from comfyui_harness import WorkflowFailed
from PIL import Image
from test_shipped_workflows import ROOT, tiny_version

API = json.loads((ROOT / "workflows" / "api" / "lumix_image_to_maps.json").read_text())
TITLES = {node["_meta"]["title"]: node_id for node_id, node in API.items()}
PHOTOS = {"odd": ((667, 1001, 3), "RGB"), "portrait": ((1001, 667, 3), "RGB"), "panorama": ((100, 600, 3), "RGB"),
          "tiny": ((48, 64, 3), "RGB"), "grey": ((90, 120), "L"), "rgba": ((90, 120, 4), "RGBA")}


def _graph(tiny_models, photo: str, seeds: int = 1) -> dict:
    config = tiny_models.flux_config
    graph = tiny_version(API, tiny_models, (config.context_in_dim, config.vec_in_dim))
    graph[TITLES["Input image"]]["inputs"]["image"] = photo
    graph[TITLES["Decompose photo"]]["inputs"]["seeds"] = seeds
    return graph


@pytest.fixture(scope="module")
def photos(comfyui_server, tiny_models) -> pathlib.Path:
    rng = np.random.default_rng(3)
    for name, (shape, mode) in PHOTOS.items():
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(
            comfyui_server.input_dir / f"photo_{name}.png")
    Image.new("RGB", (900, 1)).save(comfyui_server.input_dir / "photo_strip.png")
    return comfyui_server.input_dir


@pytest.mark.parametrize("name", list(PHOTOS))
def test_the_shipped_workflow_returns_maps_at_the_photo_size(comfyui, tiny_models, photos, name):
    height, width = PHOTOS[name][0][:2]
    entry = comfyui.run(_graph(tiny_models, f"photo_{name}.png", seeds=2 if name == "odd" else 1), timeout_s=600)
    for map_name in ("albedo", "irradiance", "depth", "normal"):
        files = comfyui.output_files(entry, TITLES[f"Save {map_name}"])
        with Image.open(files[0]) as image:
            assert image.size == (width, height), (name, map_name)
    for map_name in ("depth", "normal"):
        with Image.open(comfyui.output_files(entry, TITLES[f"Save {map_name} 16-bit"])[0]) as image:
            assert image.size == (width, height)


def test_a_strip_is_refused_with_the_fix(comfyui, tiny_models, photos):
    with pytest.raises(WorkflowFailed, match="crop or pad"):
        comfyui.run(_graph(tiny_models, "photo_strip.png"), timeout_s=300)
