"""Reading, resizing and writing images; the one place where files become tensors and back.

Images in the engine are float tensors [B, H, W, 3] in [0, 1] (ComfyUI's IMAGE layout).
Files are written to a temporary name and renamed, so an interrupted write never leaves a
half file under the final name.

Reading (`load_image`, `load_image_bytes`, `probe_image`): one loader for the pipeline, the
CLI and batch, so one file gives one tensor everywhere, the one ComfyUI's LoadImage gives:
- the size is read from the header first (`probe_image`) and an image over `max_pixels`
  (default MAX_IMAGE_PIXELS) is refused before a pixel is decoded: a 30000 x 30000 PNG
  is a few MB of zlib that would inflate to 5 GB;
- the EXIF orientation is applied as ComfyUI's LoadImage applies it (Pillow's
  `ImageOps.exif_transpose`, all eight orientations);
- 8-bit files (grey, grey + alpha, RGB, RGBA and palette PNGs, JPEG incl. CMYK, WebP,
  TIFF, ...) are decoded by Pillow exactly as LoadImage does: `convert("RGB")` / 255
  (alpha dropped, not composited), and Pillow's 32-bit 'I' mode scaled by 1/255 as LoadImage
  scales it;
- 16-bit PNGs and TIFFs keep their 16 bits (value / 65535). Pillow (checked on 13.0) reads
  them to 8 bits (RGB, grey + alpha) or, for 16-bit grey, to a mode that LoadImage's
  `convert("RGB")` clips; so their samples come from `imagecodecs` (Christoph Gohlke's
  maintained wheels of libpng and libtiff), while Pillow still reads the header and the
  EXIF orientation. ComfyUI 0.29 decodes these files with PyAV at full depth too, so both
  give the same values to float rounding; ComfyUI 0.3.64 gives the 8-bit truncation.

Writing: maps are written as 16-bit PNGs by `encode_png16`, a short stdlib-zlib encoder kept
on purpose (see its docstring); run reports as a labelled contact sheet (an 8-bit preview)
and JSON.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .errors import InputError, LumiXError
from .modalities import MAP_NAMES

ImageLike = Union[torch.Tensor, np.ndarray, "PIL.Image.Image", str, Path]  # noqa: F821

# Above this an image is refused from its header (64 MP: a 9248 x 6936 camera frame fits;
# as float RGB it takes 768 MB before any map is made). Raise it per call (`max_pixels`) or
# on the command line (--max-pixels).
MAX_IMAGE_PIXELS = 64_000_000

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 3: 2, 4: 6}   # channels -> PNG colour type (grey, RGB, RGBA)
_ORIENTATION = 0x0112               # the EXIF tag
# EXIF orientation -> the array operation of Pillow's Image.transpose that
# ImageOps.exif_transpose applies for it (2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM,
# 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90), on [H, W, ...] arrays.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
# What decoders raise on a truncated or damaged file (imagecodecs' errors are RuntimeErrors).
_DECODE_ERRORS = (OSError, ValueError, RuntimeError, SyntaxError, EOFError, IndexError, TypeError, struct.error,
                  zlib.error)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png16(image: torch.Tensor, text: dict[str, str] | None = None, compress_level: int = 6) -> bytes:
    """PNG bytes for one image [H, W, C] (C = 1, 3 or 4) in [0, 1]; values are clipped.

    Every value is round(x * 65535), big-endian, filter type 0, in one IDAT. Written here with
    zlib rather than by a library because the maps' bytes are part of the contract (batch
    resumes and `--verify` compare hashes; the byte-identity record of every release compares
    files): libpng, which imagecodecs and OpenImageIO wrap, splits the data into 8 KiB IDAT
    chunks and picks row filters adaptively, so its files decode to the same values but are
    not the same bytes. Pillow cannot write 16-bit RGB at all (it has no such mode). Any PNG
    reader decodes these files (imagecodecs does in the tests)."""
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
    """A PNG's samples as stored, [H, W, C] (uint16 for a 16-bit PNG, e.g. one written by
    encode_png16), decoded by libpng through imagecodecs."""
    if not data.startswith(_SIGNATURE):
        raise InputError("not a PNG file (the signature is missing).")
    try:
        samples = import_imagecodecs().png_decode(data)
    except _DECODE_ERRORS as error:
        raise InputError(f"cannot decode the PNG ({type(error).__name__}: {error}); the file is truncated or "
                         f"damaged") from None
    return samples if samples.ndim == 3 else samples[..., None]


def import_imagecodecs() -> Any:
    """The imagecodecs module, or an error that says how to install it."""
    try:
        import imagecodecs
    except ImportError:
        raise LumiXError("16-bit PNG and TIFF files are read with the imagecodecs package, which is not "
                         "installed: pip install imagecodecs (it is in LumiX's requirements.txt)") from None
    return imagecodecs


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


def _open(source: Union[bytes, Path], name: str) -> Image.Image:
    """Pillow's lazy open: reads the header only. The pixel limit is ours (`probe_image`
    names the size and what to do), so Pillow's own is stepped around: past twice
    Image.MAX_IMAGE_PIXELS its open raises before the size can be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            except Image.DecompressionBombError:
                return _open_without_pillows_limit(source)
    except (UnidentifiedImageError, *_DECODE_ERRORS) as error:
        raise InputError(f"cannot read {name} as an image ({type(error).__name__}: {error}); give a PNG, JPEG, "
                         f"WebP or TIFF photo") from None


def _open_without_pillows_limit(source: Union[bytes, Path]) -> Image.Image:
    """Image.open's own search through Pillow's registered formats (Image.ID, Image.OPEN),
    without its pixel check. A path is opened by the image, which closes it with itself."""
    Image.init()
    if isinstance(source, bytes):
        prefix = source[:16]
    else:
        with open(source, "rb") as handle:
            prefix = handle.read(16)
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        found = accept(prefix) if accept else True
        if found and not isinstance(found, str):
            try:
                return factory(io.BytesIO(source), "") if isinstance(source, bytes) else factory(str(source),
                                                                                               str(source))
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue
    raise UnidentifiedImageError("no Pillow format reads this header")


def _header_orientation(opened: Image.Image) -> int:
    """The EXIF orientation (1 to 8) from what Pillow read at open, decoding no pixels. A
    PNG's eXIf chunk is seen only before the image data, where the PNG specification puts
    it: Pillow's getexif would decode the whole image to look behind it (`_decode` does, as
    LoadImage does, so a PNG with its eXIf after the data is probed unturned, loaded turned)."""
    try:
        if opened.format == "PNG":
            raw = opened.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = opened.getexif()
        orientation = int(exif.get(_ORIENTATION, 1))
    except _DECODE_ERRORS:
        return 1   # a damaged EXIF block: read as no orientation; decoding will name the damage if it matters
    return orientation if orientation in _ORIENT else 1


def probe_image(source: Union[bytes, str, Path], max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """(width, height) of an image as `load_image` returns it (EXIF orientation applied),
    from its header alone: refuses what is not an image, or has more than `max_pixels`
    pixels, before any pixel is decoded (a decompression bomb costs a few KB of memory)."""
    name = "the image" if isinstance(source, (bytes, bytearray)) else str(source)
    source = bytes(source) if isinstance(source, bytearray) else source if isinstance(source, bytes) else Path(source)
    with _open(source, name) as opened:
        width, height = opened.size
        orientation = _header_orientation(opened)
    if width * height > max_pixels:
        raise InputError(f"{name} is {width} x {height} = {width * height / 1e6:.1f} MP, over the limit of "
                         f"{max_pixels / 1e6:.1f} MP (refused from its header, before decoding): downscale it "
                         f"first, or raise the limit (--max-pixels on the command line, max_pixels= in Python)")
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def load_image(image: ImageLike, max_pixels: int = MAX_IMAGE_PIXELS) -> torch.Tensor:
    """Any image the user has -> float [B, H, W, 3] in [0, 1] on the CPU. Files are read as
    ComfyUI's LoadImage reads them (module docstring); `max_pixels` limits files only."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"image not found: {path}")
        probe_image(path, max_pixels)   # header only: a bomb is refused before its bytes are read
        try:
            data = path.read_bytes()
        except OSError as error:
            raise InputError(f"cannot read {path} ({type(error).__name__}: {error})") from None
        return load_image_bytes(data, max_pixels, name=str(path))
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


def load_image_bytes(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS, name: str = "the image") -> torch.Tensor:
    """The bytes of an image file (PNG, JPEG, WebP, TIFF, ...) -> float [1, H, W, 3] in [0, 1],
    as ComfyUI's LoadImage reads it (module docstring); 16-bit PNGs and TIFFs keep their 16
    bits. Raises InputError for what is not a readable image or has more than `max_pixels`."""
    probe_image(data, max_pixels)
    with _open(data, name) as opened:
        try:
            array = _decode(opened, data)
        except _DECODE_ERRORS as error:
            if isinstance(error, LumiXError):
                raise
            raise InputError(f"cannot decode {name} ({type(error).__name__}: {error}); the file is truncated or "
                             f"damaged: export it again") from None
    return load_image(array)


def _decode(opened: Image.Image, data: bytes) -> np.ndarray:
    """uint8 or uint16 [H, W, 3], or [H, W, 1] grey, with the orientation applied."""
    if _sixteen_bit(opened, data):
        codecs = import_imagecodecs()
        samples = codecs.png_decode(data) if opened.format == "PNG" else codecs.tiff_decode(data)
        samples = samples[..., None] if samples.ndim == 2 else samples
        # grey + alpha -> grey; RGBA -> RGB (alpha dropped, as convert("RGB") drops it)
        samples = samples[..., :1] if samples.shape[-1] == 2 else samples[..., :3]
        orientation = opened.getexif().get(_ORIENTATION, 1)   # as exif_transpose reads it
        orient = _ORIENT.get(orientation)
        return np.ascontiguousarray(orient(samples) if orient else samples)
    image = ImageOps.exif_transpose(opened)
    if image.mode.startswith("I;16"):   # 16-bit grey from another format (PGM, ...): keep 16 bits
        return np.asarray(image).astype(np.uint16)[..., None]
    if image.mode == "I":   # 32-bit integers: LoadImage's scaling, so both give one answer
        image = image.point(lambda value: value * (1 / 255))
    return np.asarray(image.convert("RGB"))


def _as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _sixteen_bit(opened: Image.Image, data: bytes) -> bool:
    if opened.format == "PNG":
        return len(data) > 24 and data[12:16] == b"IHDR" and data[24] == 16
    if opened.format == "TIFF":
        bits, kind = opened.tag_v2.get(258, 8), opened.tag_v2.get(339, 1)   # BitsPerSample, SampleFormat
        return 16 in _as_tuple(bits) and set(_as_tuple(kind)) == {1}   # unsigned integers
    return False


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
