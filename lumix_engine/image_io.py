"""Reading, resizing and writing images; the one place where files become tensors and back.

Images in the engine are float tensors [B, H, W, 3] in [0, 1] (ComfyUI's IMAGE layout).
Files are written to a temporary name and renamed, so an interrupted write never leaves a
half file under the final name.

Maps are written as 16-bit PNGs; run reports as a labelled contact sheet (an 8-bit
preview) and JSON. Pillow (checked on 13.0) reads 16-bit RGB PNGs but cannot write them (it has no 16-bit
RGB mode to save from), and ComfyUI core saves 8-bit only. A PNG is a signature plus
CRC-checked chunks around a zlib stream of filtered rows, so writing it directly with
zlib is short and exact: every value is round(x * 65535), big-endian, filter type 0.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from .errors import InputError
from .modalities import MAP_NAMES

ImageLike = Union[torch.Tensor, np.ndarray, "PIL.Image.Image", str, Path]  # noqa: F821

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
    data = encode_png16(image, text, compress_level)
    with atomic_path(path) as partial:
        partial.write_bytes(data)
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


@contextlib.contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """A temporary sibling of `path` to write to; renamed onto `path` only when the block
    ends without an exception, removed otherwise (rename within a folder is atomic)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def load_image(image: ImageLike) -> torch.Tensor:
    """Any image the user has -> float [B, H, W, 3] in [0, 1] on the CPU."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"image not found: {path}")
        try:
            return load_image_bytes(path.read_bytes())
        except (Image.UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as error:
            raise InputError(f"cannot read {path} as an image ({type(error).__name__}: {error}); give a PNG, JPEG, "
                             f"WebP or TIFF photo") from None
    if type(image).__module__.startswith("PIL"):
        return load_image(np.asarray(image.convert("RGB")))
    if isinstance(image, np.ndarray):
        scale = 255.0 if image.dtype == np.uint8 else 65535.0 if image.dtype == np.uint16 else 1.0
        image = torch.from_numpy(image.astype(np.float32) / scale)
    if not isinstance(image, torch.Tensor):
        raise InputError(f"cannot read an image from {type(image).__name__}; give a path, a PIL image, a numpy "
                         f"array or a float tensor [B, H, W, 3]")
    if not image.is_floating_point():
        image = image.float() / 255.0
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise InputError(f"an image must be [B, H, W, 3] (channels last) in [0, 1]; got shape {tuple(image.shape)}")
    if image.shape[-1] == 1:
        image = image.expand(-1, -1, -1, 3)
    bad = ~torch.isfinite(image)
    if bad.any():   # NaN or Inf would spread through the VAE into every map
        raise InputError(f"the image has {int(bad.any(-1).sum())} pixel(s) that are NaN or infinite; fix the node "
                         f"or file that made them (LumiX does not guess values for them)")
    return image[..., :3].float().clamp(0, 1).cpu()


def load_image_bytes(data: bytes) -> torch.Tensor:
    """The bytes of an image file (PNG, JPEG, ...) -> float [1, H, W, 3] in [0, 1]; 16-bit
    PNGs keep their 16 bits. Raises PIL's errors for data that is not a readable image."""
    if data[:8] == _SIGNATURE and _png_bit_depth(data) == 16:
        try:   # ours (filter type 0); Pillow would drop it to 8 bits
            return load_image(decode_png16(data))
        except (InputError, ValueError, TypeError, struct.error, zlib.error):
            pass   # filtered or damaged: Pillow reads it or names the problem
    with Image.open(io.BytesIO(data)) as opened:
        mode = "I;16" if opened.mode.startswith("I;16") else "RGB"
        array = np.asarray(opened.convert(mode) if mode == "RGB" else opened)
    if array.dtype == np.uint16 or mode == "I;16":
        array = np.repeat(array.astype(np.float32)[..., None] / 65535.0, 3, axis=-1)
    return load_image(array)


def _png_bit_depth(head: bytes) -> int:
    return head[24] if len(head) >= 25 and head[12:16] == b"IHDR" else 0


def resize_images(images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """[B, H, W, C] -> [B, height, width, C]: bilinear with antialiasing, so a downscale
    does not alias; unchanged when the size already matches."""
    if images.shape[1:3] == (height, width):
        return images
    resized = F.interpolate(images.permute(0, 3, 1, 2), size=(height, width), mode="bilinear", antialias=True,
                            align_corners=False)
    return resized.clamp(0, 1).permute(0, 2, 3, 1)


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
    """A run report (settings, scores) as indented JSON, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
