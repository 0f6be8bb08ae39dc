"""16-bit PNG writing, so float maps leave the graph without 8-bit banding.

Pillow (checked on 13.0) reads 16-bit RGB PNGs but cannot write them (it has no 16-bit
RGB mode to save from), and ComfyUI core saves 8-bit only. A PNG is a signature plus
CRC-checked chunks around a zlib stream of filtered rows, so writing it directly with
zlib is short and exact: every value is round(x * 65535), big-endian, filter type 0.
Float EXR is not written: it needs OpenEXR or imageio, a new dependency.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from .errors import InputError

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 3: 2, 4: 6}   # channels -> PNG colour type (grey, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png16(image: torch.Tensor, text: dict[str, str] | None = None, compress_level: int = 6) -> bytes:
    """PNG bytes for one image [H, W, C] (C = 1, 3 or 4) in [0, 1]; values are clipped."""
    if image.ndim != 3 or image.shape[-1] not in _COLOR_TYPES:
        raise InputError(
            f"a 16-bit PNG needs one image [H, W, 1|3|4]; got shape {tuple(image.shape)}. "
            f"Save a batch one image at a time."
        )
    height, width, channels = image.shape
    values = np.round(image.detach().cpu().double().clamp(0, 1).numpy() * 65535).astype(">u2")
    rows = values.reshape(height, width * channels)
    # Each scanline starts with its filter type byte (0 = none).
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rows.view(np.uint8)], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 16, _COLOR_TYPES[channels], 0, 0, 0)
    chunks = [_chunk(b"IHDR", header)]
    for key, value in (text or {}).items():
        chunks.append(_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1", "replace")))
    chunks += [_chunk(b"IDAT", zlib.compress(raw, compress_level)), _chunk(b"IEND", b"")]
    return _SIGNATURE + b"".join(chunks)


def save_png16(path: str | Path, image: torch.Tensor, text: dict[str, str] | None = None,
               compress_level: int = 6) -> Path:
    """Write one image [H, W, C] in [0, 1] as a 16-bit PNG; returns the path."""
    path = Path(path)
    path.write_bytes(encode_png16(image, text, compress_level))
    return path


def decode_png16(data: bytes) -> np.ndarray:
    """Read back a PNG written by encode_png16 (filter type 0 only): uint16 [H, W, C]."""
    if not data.startswith(_SIGNATURE):
        raise InputError("not a PNG file (the signature is missing).")
    position, header, stream = len(_SIGNATURE), None, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            stream += body
        position += 12 + length
    width, height, depth, color_type = header[0], header[1], header[2], header[3]
    channels = {v: k for k, v in _COLOR_TYPES.items()}[color_type]
    if depth != 16:
        raise InputError(f"decode_png16 reads 16-bit PNGs only; this one has {depth} bits.")
    rows = np.frombuffer(zlib.decompress(stream), dtype=np.uint8).reshape(height, 1 + width * channels * 2)
    if rows[:, 0].any():
        raise InputError("decode_png16 reads unfiltered PNGs (as written by encode_png16) only.")
    return rows[:, 1:].copy().view(">u2").reshape(height, width, channels).astype(np.uint16)
