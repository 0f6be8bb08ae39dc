"""What the maps viewer (web/js/lumix_maps_viewer.js) reads: each scene's maps as one raw
float32 file in ComfyUI's temp folder, and the node's UI entry that names it.

Raw floats, not PNG: the viewer's hover readout shows linear albedo, distance and normals,
and an 8-bit preview would round depth to 1/255 of its range. The file holds the maps exactly
as the node outputs them (float32, little-endian, [map][row][column][r, g, b]); a map larger
than `max_side` is decimated by a whole stride (file pixel (x, y) is map pixel (s x, s y)),
never averaged, so every value the readout shows is a real pixel of the map. ComfyUI's /view
serves the file as application/octet-stream on both supported trees. The depth range of the
whole map (min and max of its disparity, the three channels averaged as `as_depth` does) goes
into the entry, so that the viewer computes distance as `distance_from_disparity` does.

ComfyUI clears its temp folder on start; the node's saved outputs are not touched."""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..lumix_engine.intrinsics.checks import as_depth
from ..lumix_engine.intrinsics.depth import DEPTH_RANGE
from ..lumix_engine.modalities import MAP_NAMES
from .temp_files import comfy_temp_folder, new_run_token

UI_KEY = "lumix_maps"     # the key of the node's UI output the viewer reads
MAX_SIDE = 512            # 512 x 512 x 5 maps x 3 floats = 15.7 MB per scene at most
LAYOUT = "float32 little-endian [map][row][column][rgb]"


def stride_for(width: int, height: int, max_side: int = MAX_SIDE) -> int:
    """The whole-pixel stride that brings the longer side to at most `max_side`."""
    return max(1, math.ceil(max(width, height) / max_side))


def write_viewer_maps(maps: Mapping[str, torch.Tensor], folder: Path, *, subfolder: str = "",
                      folder_type: str = "temp", max_side: int = MAX_SIDE) -> list[dict]:
    """{map: IMAGE [B, H, W, 3]} (pixel-aligned, any of the five maps, in MAP_NAMES order) ->
    one raw file per scene under `folder` / `subfolder`, and one UI entry per scene naming
    it, its size and stride, the maps it holds, and the depth range for distances."""
    names = [name for name in MAP_NAMES if name in maps]
    first = maps[names[0]]
    scenes, height, width = first.shape[0], first.shape[1], first.shape[2]
    stride = stride_for(width, height, max_side)
    target = Path(folder) / subfolder
    token = new_run_token(target)
    entries = []
    for scene in range(scenes):
        planes = [maps[name][scene, ::stride, ::stride, :3].detach().to("cpu", torch.float32) for name in names]
        data = np.ascontiguousarray(torch.stack(planes).numpy(), dtype="<f4")
        filename = f"lumix_maps_{token}_{scene:03}.bin"
        (target / filename).write_bytes(data.tobytes())
        entry = {"file": {"filename": filename, "subfolder": subfolder, "type": folder_type},
                 "scene": scene, "scenes": scenes, "maps": names, "layout": LAYOUT,
                 "width": int(data.shape[2]), "height": int(data.shape[1]),
                 "source_width": int(width), "source_height": int(height), "stride": stride}
        if "depth" in maps:
            disparity = as_depth(maps["depth"][scene:scene + 1, ..., :3].detach().to("cpu", torch.float32))
            entry["depth"] = {"low": float(disparity.min()), "high": float(disparity.max()), "range": DEPTH_RANGE}
        entries.append(entry)
    return entries


def viewer_ui(maps: Mapping[str, torch.Tensor]) -> dict:
    """The node's UI output: {UI_KEY: [one entry per scene]}, files in ComfyUI's temp folder."""
    return {UI_KEY: write_viewer_maps(maps, comfy_temp_folder())}
