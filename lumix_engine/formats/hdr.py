"""High-dynamic-range environment maps from files: OpenEXR and Radiance .hdr panoramas.

OpenEXR is read with the official bindings (`formats.exr`), Radiance RGBE with imagecodecs
(`rgbe_decode`: Bruce Walter's rgbe.c, flat and run-length-encoded scanlines). Two checks
stay here because the library does not make them: it decodes XYZ files (32-bit_rle_xyze)
as if they were RGB, and it has no header-only read, so the resolution line is read here to
refuse a huge or sideways panorama before it allocates the pixels.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Union

import numpy as np
import torch

from ..errors import InputError
from ..image_io import import_imagecodecs
from ..intrinsics.color_space import srgb_to_linear
from ..intrinsics.environment import check_environment
from .exr import read_exr

# 16384 x 16384: a 16K lat-long HDRI (16384 x 8192) fits twice; 3.2 GB as float RGB.
MAX_ENVIRONMENT_PIXELS = 16384 * 16384
_RESOLUTION = re.compile(rb"\n\n?([-+][XY]) (\d+) ([-+][XY]) (\d+)\n")


def read_radiance_hdr(path: Union[str, Path], max_pixels: int = MAX_ENVIRONMENT_PIXELS) -> np.ndarray:
    """A Radiance RGBE (.hdr) image -> float32 [H, W, 3], linear: value = m 2^(E - 136), 0
    where E = 0 (rgbe.c's decoding; Radiance's own adds half a step, m + 0.5, a difference
    of at most 0.4 %)."""
    path = Path(path)
    data = path.read_bytes()
    if not (data.startswith(b"#?RADIANCE") or data.startswith(b"#?RGBE")):
        raise InputError(f"{path.name} is not a Radiance .hdr file (it does not start with #?RADIANCE).")
    header_end = data.find(b"\n\n")
    if header_end < 0:
        raise InputError(f"{path.name}: the .hdr header does not end; the file is truncated.")
    if b"FORMAT=32-bit_rle_xyze" in data[:header_end]:
        raise InputError(f"{path.name} stores XYZ colour (32-bit_rle_xyze); convert it to RGB (rgbe) first.")
    size = _RESOLUTION.match(data, header_end)
    if size is None or size[1] != b"-Y" or size[3] != b"+X":
        line = data[header_end + 2:data.find(b"\n", header_end + 2)].decode("latin-1")
        raise InputError(f"{path.name}: resolution line {line!r} is not the standard '-Y H +X W'; re-save the "
                         f"panorama in the usual orientation.")
    height, width = int(size[2]), int(size[4])
    if width * height > max_pixels:
        raise InputError(f"{path.name} is {width} x {height} = {width * height / 1e6:.0f} MP, over the limit of "
                         f"{max_pixels / 1e6:.0f} MP for an environment map; downscale it first")
    codecs = import_imagecodecs()
    try:
        return np.asarray(codecs.rgbe_decode(data), dtype=np.float32)
    except (RuntimeError, ValueError) as error:
        raise InputError(f"{path.name}: the pixel data ends early or is corrupt ({error}).") from None


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
