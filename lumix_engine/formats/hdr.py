"""High-dynamic-range environment maps from files: OpenEXR and Radiance .hdr panoramas.

OpenEXR is read with the official bindings (`formats.exr`); the Radiance RGBE format has
no maintained reader among this pack's dependencies and is small and fully specified, so
it is decoded here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import torch

from ..errors import InputError
from ..intrinsics.color_space import srgb_to_linear
from ..intrinsics.environment import check_environment
from .exr import read_exr


def read_radiance_hdr(path: Union[str, Path]) -> np.ndarray:
    """A Radiance RGBE (.hdr) image -> float32 [H, W, 3], linear, as Radiance decodes it.

    The format (Greg Ward, Graphics Gems II, "Real pixels"): a text header ending in an
    empty line (FORMAT=32-bit_rle_rgbe), a resolution line "-Y H +X W" (rows top to bottom),
    then one scanline per row of 4-byte pixels R, G, B, E, value = (m + 0.5) 2^(E - 136),
    0 where E = 0. A scanline of width 8..32767 may be run-length encoded per channel: it
    starts with 2, 2 and the width, then each channel is runs (a count c > 128 repeats the
    next byte c - 128 times) and literal stretches (c <= 128 bytes follow).
    """
    path = Path(path)
    data = path.read_bytes()
    if not (data.startswith(b"#?RADIANCE") or data.startswith(b"#?RGBE")):
        raise InputError(f"{path.name} is not a Radiance .hdr file (it does not start with #?RADIANCE).")
    end = data.find(b"\n\n")
    if end < 0:
        raise InputError(f"{path.name}: the .hdr header does not end; the file is truncated.")
    header = data[:end].decode("latin-1")
    if "FORMAT=32-bit_rle_xyze" in header:
        raise InputError(f"{path.name} stores XYZ colour (32-bit_rle_xyze); convert it to RGB (rgbe) first.")
    line_end = data.find(b"\n", end + 2)
    size = data[end + 2:line_end].decode("latin-1").split()
    if len(size) != 4 or size[0] != "-Y" or size[2] != "+X":
        raise InputError(f"{path.name}: resolution line {' '.join(size)!r} is not the standard '-Y H +X W'; "
                         f"re-save the panorama in the usual orientation.")
    height, width = int(size[1]), int(size[3])
    stream, position = memoryview(data), line_end + 1
    rgbe = np.empty((height, width, 4), dtype=np.uint8)
    try:
        for row in range(height):
            head = bytes(stream[position:position + 4])
            if 8 <= width <= 32767 and head[:2] == b"\x02\x02" and (head[2] << 8 | head[3]) == width:
                position += 4
                for channel in range(4):
                    column = 0
                    while column < width:
                        count = stream[position]
                        position += 1
                        if count > 128:
                            count -= 128
                            rgbe[row, column:column + count, channel] = stream[position]
                            position += 1
                        else:
                            rgbe[row, column:column + count, channel] = np.frombuffer(
                                stream[position:position + count], dtype=np.uint8)
                            position += count
                        column += count
            else:
                rgbe[row] = np.frombuffer(stream[position:position + 4 * width], dtype=np.uint8).reshape(width, 4)
                position += 4 * width
    except (IndexError, ValueError):
        raise InputError(f"{path.name}: the pixel data ends early or is corrupt (row {row} of {height}).") from None
    exponent = rgbe[..., 3].astype(np.int32)
    scale = np.where(exponent > 0, np.ldexp(1.0, exponent - 136), 0.0)
    return ((rgbe[..., :3].astype(np.float64) + 0.5) * scale[..., None]).astype(np.float32)


def load_environment(source: Union[str, Path, torch.Tensor], *, srgb: bool = False) -> torch.Tensor:
    """An environment map as linear radiance [H, W, 3] (float32), checked.

    source: an OpenEXR (R, G, B channels) or Radiance .hdr file, scene-linear, or an image tensor
    [1, H, W, 3] / [H, W, 3]: taken as linear unless srgb=True (an 8-bit panorama loaded
    as a ComfyUI IMAGE is sRGB-encoded, so its curve is undone first).
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix.lower() == ".hdr":
            return check_environment(torch.from_numpy(read_radiance_hdr(path)))
        if path.suffix.lower() != ".exr":
            raise InputError(f"environment file {path.name}: HDR panoramas are read from OpenEXR (.exr) or "
                             f"Radiance (.hdr) files; load an 8-bit panorama as an image instead.")
        channels = read_exr(path)
        missing = [c for c in "RGB" if c not in channels]
        if missing:
            raise InputError(f"environment file {path.name} has no {', '.join(missing)} channel(s) (it has "
                             f"{', '.join(sorted(channels))}); give an RGB lat-long EXR.")
        source = torch.from_numpy(np.stack([channels[c].astype(np.float32) for c in "RGB"], axis=-1))
    elif srgb:
        source = srgb_to_linear(check_environment(source.float()))
    return check_environment(source.float())
