"""Maps for the browser: small 8-bit PNGs in ComfyUI's temp folder, announced in a node's UI
output so a frontend extension can fetch them through `/view` and draw them itself (the live
relight editors; the maps viewer reads raw float files instead: viewer_maps.py).

The PNGs are lossless: the browser decodes exactly the 8-bit values PIL reads back from the
file, so a test can run the Python maths on the same pixels the page shows. Only the first image of a
batch is sent (the editors show one scene); `batch` in each entry says how many there were.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..lumix_engine.image_io import resize_images, to_pil
from .temp_files import comfy_temp_folder, new_run_token
from .viewer_maps import UI_KEY  # the same UI output key the extensions read

SH9_UI_KEY = "lumix_sh9"       # an environment's 9 x 3 SH coefficients (LumiX Relight Environment)
SUBFOLDER = "lumix_maps"       # under ComfyUI's temp folder (emptied when ComfyUI starts)
DEFAULT_MAX_SIDE = 512


def preview_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is at most `max_side`, aspect kept, never upscaled."""
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def write_preview_pngs(named_maps: dict[str, torch.Tensor], max_side: int, folder: Path) -> list[dict]:
    """Write the first image of each [B, H, W, 3] map, downscaled (antialiased bilinear) to
    `preview_size`, as an 8-bit PNG in `folder`; one entry per map, in the order given."""
    run = new_run_token(folder)
    entries = []
    for name, images in named_maps.items():
        batch, height, width = images.shape[:3]
        size = preview_size(width, height, max_side)
        small = resize_images(images[:1, ..., :3].float(), *size).cpu()   # resized where the map is
        filename = f"{run}_{name}.png"
        # compress_level 1: these files live for one session; speed matters more than size.
        to_pil(small[0]).save(folder / filename, compress_level=1)
        entries.append({"map": name, "filename": filename, "width": size[0], "height": size[1],
                        "full_width": width, "full_height": height, "batch": batch})
    return entries


def preview_maps(named_maps: dict[str, torch.Tensor], max_side: int = DEFAULT_MAX_SIDE) -> dict[str, list[dict]]:
    """The UI dict of a node that shows `named_maps` in the browser: {"lumix_maps": [{map,
    filename, subfolder, type, width, height, full_width, full_height, batch}, ...]}, the files
    written to ComfyUI's temp folder (fetch each with /view?filename=&subfolder=&type=)."""
    folder = comfy_temp_folder() / SUBFOLDER
    entries = write_preview_pngs({k: v for k, v in named_maps.items() if v is not None}, max_side, folder)
    return {UI_KEY: [{**entry, "subfolder": SUBFOLDER, "type": "temp"} for entry in entries]}
