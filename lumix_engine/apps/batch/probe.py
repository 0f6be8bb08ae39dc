"""The size of a photo from its header, before anything is decoded: the one place the batch
probes a file (the planner, to group photos by working size; the worker, to refuse a file
over --max-pixels before decoding it)."""
from __future__ import annotations

import io
from pathlib import Path

from ...errors import InputError


def probe_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the header alone; refuses what is not an image or too large."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
    except UnidentifiedImageError:
        raise InputError("not an image Pillow can read (unknown or damaged format)") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"too large: {exc}") from None
    if width * height > max_pixels:
        raise InputError(f"too large: {width} x {height} = {width * height / 1e6:.1f} MP, over the limit of "
                         f"{max_pixels / 1e6:.1f} MP; downscale it or raise --max-pixels")
    return width, height


def probe_file(path: Path, max_pixels: int) -> tuple[int, int]:
    """Size from the file's first bytes; a header too long for them is read from the whole file."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    try:
        return probe_size(head, max_pixels)
    except InputError as exc:
        if str(exc).startswith("too large"):
            raise
        return probe_size(path.read_bytes(), max_pixels)
