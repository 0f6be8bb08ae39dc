"""Run reports: a labelled contact sheet of map sets (an 8-bit preview) and the settings as
JSON. The maps themselves are written by `lumix_engine.image_io.write_maps`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from ..image_io import to_pil
from ..modalities import MAP_NAMES

LABEL_HEIGHT = 14


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
