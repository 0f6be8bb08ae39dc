"""The size of a photo from its header, before anything is decoded: the one place the batch
probes a file (the planner, to group photos by working size; the worker, to refuse a file
over --max-pixels before decoding it). It is the image loader's own probe, so a photo is
sized as `decompose` loads it (EXIF orientation applied) and a bomb is refused the same way."""
from __future__ import annotations

from pathlib import Path

from ...image_io import probe_image


def probe_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the header alone; refuses what is not an image or too large."""
    return probe_image(data, max_pixels)


def probe_file(path: Path, max_pixels: int) -> tuple[int, int]:
    """(width, height) of the file at `path` from its header alone."""
    return probe_image(Path(path), max_pixels)
