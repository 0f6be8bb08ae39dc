"""Writing maps to disk: one PNG per map and scene, a labelled contact sheet, the settings.

Maps are written as 16-bit PNGs (`intrinsics.png16`: 65536 levels, no 8-bit banding in
depth and irradiance); the contact sheet, a preview, is 8-bit.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..image_io import save_png16
from ..modalities import MAP_NAMES

LABEL_HEIGHT = 14


def to_pil(image: torch.Tensor) -> Image.Image:
    """One float image [H, W, 3] (or [1, H, W, 3]) in [0, 1] -> an 8-bit RGB PIL image."""
    if image.ndim == 4:
        image = image[0]
    array = (image.detach().float().cpu().clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(array, mode="RGB")


def write_maps(maps: Mapping[str, torch.Tensor], out_dir: Path, prefix: str = "") -> list[Path]:
    """{name: [scenes, H, W, 3]} -> 16-bit `{prefix}{name}.png` (one scene) or `{prefix}{name}_{k}.png`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, images in maps.items():
        for k, image in enumerate(images):
            path = out_dir / (f"{prefix}{name}.png" if len(images) == 1 else f"{prefix}{name}_{k}.png")
            save_png16(path, image.detach().float().cpu().clamp(0, 1), text={"lumix_map": name})
            written.append(path)
    return written


def contact_sheet(rows: Sequence[tuple[str, Sequence[tuple[str, torch.Tensor]]]], cell: int = 160) -> Image.Image:
    """A grid with one labelled row per entry of `rows`: (row title, [(cell label, image)])."""
    font = ImageFont.load_default()
    columns = max(len(cells) for _, cells in rows)
    row_height = 2 * LABEL_HEIGHT + cell
    sheet = Image.new("RGB", (columns * cell, len(rows) * row_height), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, (title, cells) in enumerate(rows):
        top = r * row_height
        draw.text((4, top + 1), title, fill=(255, 220, 120), font=font)
        for c, (label, image) in enumerate(cells):
            draw.text((c * cell + 4, top + LABEL_HEIGHT + 1), label, fill=(230, 230, 230), font=font)
            sheet.paste(to_pil(image).resize((cell, cell), Image.Resampling.BILINEAR),
                        (c * cell, top + 2 * LABEL_HEIGHT))
    return sheet


def maps_rows(title: str, maps: Mapping[str, torch.Tensor]) -> list[tuple[str, list[tuple[str, torch.Tensor]]]]:
    """Contact-sheet rows of a map set, one row per scene."""
    scenes = next(iter(maps.values())).shape[0]
    return [(title if scenes == 1 else f"{title}, scene {k}", [(name, maps[name][k]) for name in MAP_NAMES
                                                               if name in maps]) for k in range(scenes)]


def write_json(data: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
