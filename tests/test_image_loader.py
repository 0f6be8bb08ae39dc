"""The one image loader (image_io.load_image / load_image_bytes / probe_image) on real files
made here: every colour type and bit depth, EXIF orientations, CMYK JPEG, WebP, TIFF, damaged
files and a decompression bomb.

The reference for 8-bit files is ComfyUI's LoadImage restated (`comfyui_load_image`, from
comfyui 0.3.64 nodes.py and the Pillow branch of 0.29.0): the same file must give the same
tensor, bit for bit. 16-bit files are checked against the samples written, value / 65535.
tests/comfyui/test_load_image_parity.py runs the real LoadImage of both trees on such files.
"""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from lumix_engine.errors import InputError
from lumix_engine.image_io import (
    MAX_IMAGE_PIXELS,
    decode_png16,
    encode_png16,
    load_image,
    load_image_bytes,
    probe_image,
)

REPO = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(7)
HEIGHT, WIDTH = 37, 53   # odd and unequal: a transposed result cannot pass by symmetry


def comfyui_load_image(path: Path) -> np.ndarray:
    """ComfyUI LoadImage's image for a one-frame file: exif_transpose, 'I' scaled by 1/255,
    convert("RGB"), / 255 in float32 ([H, W, 3])."""
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
        if image.mode == "I":
            image = image.point(lambda i: i * (1 / 255))
        return np.array(image.convert("RGB")).astype(np.float32) / 255.0


def loaded(path: Path) -> np.ndarray:
    image = load_image(path)
    assert image.dtype == torch.float32 and image.shape[0] == 1 and image.shape[-1] == 3
    return image[0].numpy()


def noise(*shape: int, dtype=np.uint8) -> np.ndarray:
    return RNG.integers(0, np.iinfo(dtype).max + 1, (HEIGHT, WIDTH, *shape), dtype=dtype)


def with_exif(png: bytes, orientation: int) -> bytes:
    """A PNG with an eXIf chunk (orientation tag) right after IHDR, where the PNG
    specification puts it."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = exif.tobytes()
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def zero_png16(width: int, height: int, rows_per_block: int = 100) -> bytes:
    """A real 16-bit RGB PNG of zeros, made in well under a second whatever its size: the zlib
    stream of a block of zero rows after a full flush is the same bytes every time, so it is
    repeated instead of compressed again; an empty final block and the Adler-32 of n zeros
    ((n mod 65521) << 16 | 1) close it. 30000 x 30000 -> 5 MB that inflate to 5.4 GB."""
    row = 1 + width * 3 * 2
    assert height % rows_per_block == 0
    block = bytes(row * rows_per_block)
    deflate = zlib.compressobj(9)
    first = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    unit = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH) == unit
    total = height * row
    stream = first + unit * (height // rows_per_block - 1) + b"\x03\x00" + struct.pack(">I", (total % 65521) << 16 | 1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


# -- 8-bit files: the tensor ComfyUI's LoadImage gives -----------------------------------------

def _palette(transparency: bool) -> Image.Image:
    image = Image.fromarray(RNG.integers(0, 6, (HEIGHT, WIDTH), dtype=np.uint8), "P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 250, 250, 10, 9, 9, 9, 128, 64, 32])
    if transparency:
        image.info["transparency"] = 2
    return image


EIGHT_BIT = {
    "grey.png": lambda: Image.fromarray(noise(), "L"),
    "grey_alpha.png": lambda: Image.fromarray(noise(2), "LA"),
    "rgb.png": lambda: Image.fromarray(noise(3), "RGB"),
    "rgba.png": lambda: Image.fromarray(noise(4), "RGBA"),
    "palette.png": lambda: _palette(False),
    "palette_transparent.png": lambda: _palette(True),
    "bilevel.png": lambda: Image.fromarray(noise() > 127),
    "rgb.jpg": lambda: Image.fromarray(noise(3), "RGB"),
    "grey.jpg": lambda: Image.fromarray(noise(), "L"),
    "cmyk.jpg": lambda: Image.fromarray(noise(4), "CMYK"),
    "rgb_lossy.webp": lambda: Image.fromarray(noise(3), "RGB"),
    "rgba_lossless.webp": lambda: Image.fromarray(noise(4), "RGBA"),
    "rgb.tif": lambda: Image.fromarray(noise(3), "RGB"),
    "rgba_deflate.tif": lambda: Image.fromarray(noise(4), "RGBA"),
    "int32.tif": lambda: Image.fromarray(RNG.integers(0, 70000, (HEIGHT, WIDTH), dtype=np.int32), "I"),
}
SAVE_OPTIONS = {"rgba_lossless.webp": {"lossless": True}, "rgba_deflate.tif": {"compression": "tiff_adobe_deflate"},
                "palette_transparent.png": {"transparency": 2}}


@pytest.mark.parametrize("name", sorted(EIGHT_BIT))
def test_8_bit_files_give_comfyuis_loadimage_tensor_bit_for_bit(tmp_path, name):
    path = tmp_path / name
    EIGHT_BIT[name]().save(path, **SAVE_OPTIONS.get(name, {}))
    with Image.open(path) as opened:
        assert opened.format in ("PNG", "JPEG", "WEBP", "TIFF")
        mode = opened.mode
    expected = comfyui_load_image(path)
    assert expected.shape == (HEIGHT, WIDTH, 3) and expected.std() > 0.05, (name, mode)
    assert np.array_equal(loaded(path), expected), (name, mode)
    assert np.array_equal(load_image_bytes(path.read_bytes())[0].numpy(), expected)
    assert probe_image(path) == probe_image(path.read_bytes()) == (WIDTH, HEIGHT)


def test_cmyk_jpeg_is_converted_as_pillow_converts_it_not_read_as_four_channels(tmp_path):
    cmyk = np.zeros((8, 8, 4), np.uint8)
    cmyk[..., 0] = 255   # full cyan, no black
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "cyan.jpg", quality=100)
    red, green, blue = loaded(tmp_path / "cyan.jpg").reshape(-1, 3).mean(0)
    assert red < 0.05 and green > 0.95 and blue > 0.95


# -- EXIF orientation --------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_of_a_jpeg_is_applied_as_exif_transpose_applies_it(tmp_path, orientation):
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    ramp = np.stack([x * 4, y * 6, 255 - x * 2], -1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"phone_{orientation}.jpg"
    Image.fromarray(ramp).save(path, exif=exif, quality=95)
    upright = (HEIGHT, WIDTH) if orientation < 5 else (WIDTH, HEIGHT)
    got = loaded(path)
    assert got.shape[:2] == upright and probe_image(path) == upright[::-1]
    assert np.array_equal(got, comfyui_load_image(path))
    if orientation in (6, 8):   # the photo turned, not only re-shaped (the pixels are the same JPEG's)
        Image.fromarray(ramp).save(tmp_path / "plain.jpg", quality=95)
        plain = loaded(tmp_path / "plain.jpg")
        turned = np.rot90(plain, -1 if orientation == 6 else 1)   # 6: turn clockwise; 8: counter-clockwise
        assert np.array_equal(got, turned)


@pytest.mark.parametrize("orientation", [3, 5, 6, 7, 8])
def test_exif_orientation_of_a_16_bit_png_is_applied_at_16_bits(tmp_path, orientation):
    samples = noise(3, dtype=np.uint16)
    data = with_exif(encode_png16(torch.from_numpy(samples / 65535.0)), orientation)
    (tmp_path / "turned16.png").write_bytes(data)
    method = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}[orientation]
    # Pillow turns each 16-bit channel (mode I;16) the way exif_transpose turns the photo
    expected = np.stack([np.asarray(Image.fromarray(samples[..., c]).transpose(method)) for c in range(3)], -1)
    assert np.array_equal(loaded(tmp_path / "turned16.png"), expected.astype(np.float32) / 65535.0)
    assert probe_image(data) == expected.shape[1::-1]
    # the 8-bit view ComfyUI 0.3.64 has of it is the same picture
    assert np.abs(loaded(tmp_path / "turned16.png") - comfyui_load_image(tmp_path / "turned16.png")).max() <= 1 / 255


# -- 16-bit files: every sample kept ----------------------------------------------------------

SIXTEEN_BIT_PNG = {"grey": (), "grey_alpha": (2,), "rgb": (3,), "rgba": (4,)}


def _rgb(samples: np.ndarray) -> np.ndarray:
    grey = samples.ndim == 2 or samples.shape[-1] <= 2
    channels = samples if samples.ndim == 3 else samples[..., None]
    return np.repeat(channels[..., :1], 3, -1) if grey else channels[..., :3]


@pytest.mark.parametrize("kind", sorted(SIXTEEN_BIT_PNG))
def test_16_bit_pngs_of_every_colour_type_keep_16_bits(tmp_path, kind):
    samples = noise(*SIXTEEN_BIT_PNG[kind], dtype=np.uint16)
    # libpng's encoder (adaptive row filters), so filtered files are read too
    data = imagecodecs.png_encode(np.ascontiguousarray(samples), level=9)
    assert data[24] == 16 and data[25] == {"grey": 0, "grey_alpha": 4, "rgb": 2, "rgba": 6}[kind]
    (tmp_path / f"{kind}16.png").write_bytes(data)
    expected = _rgb(samples).astype(np.float32) / 65535.0
    assert np.array_equal(loaded(tmp_path / f"{kind}16.png"), expected)
    assert len(np.unique(loaded(tmp_path / f"{kind}16.png"))) > 256   # not an 8-bit reading
    if kind != "grey":   # Pillow's 8-bit view (LoadImage in 0.3.64) is the top byte of the same picture
        assert np.abs(loaded(tmp_path / f"{kind}16.png") - comfyui_load_image(tmp_path / f"{kind}16.png")).max() \
            <= 1 / 255


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_maps_written_by_encode_png16_read_back_exactly(tmp_path, channels):
    values = torch.rand(HEIGHT, WIDTH, channels, dtype=torch.float64)
    data = encode_png16(values, text={"lumix_map": "albedo"})
    stored = decode_png16(data)
    assert stored.dtype == np.uint16 and stored.shape == (HEIGHT, WIDTH, channels)
    assert np.array_equal(stored, np.round(values.numpy() * 65535).astype(np.uint16))
    with Image.open(io.BytesIO(data)) as opened:   # an independent reader agrees on the 8-bit view
        assert opened.size == (WIDTH, HEIGHT) and opened.text == {"lumix_map": "albedo"}
    assert np.array_equal(load_image_bytes(data)[0].numpy(), _rgb(stored).astype(np.float32) / 65535.0)


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_tiffs_keep_16_bits(tmp_path, channels):
    samples = noise(channels, dtype=np.uint16)[..., :channels]
    samples = samples[..., 0] if channels == 1 else samples
    (tmp_path / "scan16.tif").write_bytes(imagecodecs.tiff_encode(np.ascontiguousarray(samples)))
    assert np.array_equal(loaded(tmp_path / "scan16.tif"), _rgb(samples).astype(np.float32) / 65535.0)
    assert probe_image(tmp_path / "scan16.tif") == (WIDTH, HEIGHT)


# -- damaged files, non-images, bombs ----------------------------------------------------------

@pytest.mark.parametrize("name", ["photo.jpg", "photo.png", "photo16.png", "photo.webp", "photo.tif"])
def test_a_truncated_file_is_an_input_error_that_says_so(tmp_path, name):
    path = tmp_path / name
    if name == "photo16.png":
        path.write_bytes(imagecodecs.png_encode(noise(3, dtype=np.uint16)))
    else:
        Image.fromarray(noise(3)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(InputError, match="truncated|damaged|cannot read"):
        load_image(path)


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    (tmp_path / "notes.png").write_text("shopping list")
    with pytest.raises(InputError, match="cannot read .*notes.png as an image"):
        load_image(tmp_path / "notes.png")
    with pytest.raises(InputError, match="cannot read the image"):
        probe_image(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_zero_png16_makes_a_valid_png():
    data = zero_png16(64, 300)
    samples = imagecodecs.png_decode(data)
    assert samples.shape == (300, 64, 3) and samples.dtype == np.uint16 and not samples.any()
    assert len(zero_png16(30000, 30000)) < 6_000_000


def test_the_limit_is_checked_from_the_header_and_can_be_raised(tmp_path):
    Image.fromarray(noise(3)).save(tmp_path / "small.png")
    with pytest.raises(InputError, match=r"53 x 37 = 0.0 MP, over the limit of 0.0 MP .*--max-pixels"):
        load_image(tmp_path / "small.png", max_pixels=1000)
    assert load_image(tmp_path / "small.png", max_pixels=WIDTH * HEIGHT).shape == (1, HEIGHT, WIDTH, 3)
    assert MAX_IMAGE_PIXELS == 64_000_000


def test_pillows_own_pixel_limit_does_not_stand_in_for_ours(tmp_path, monkeypatch):
    Image.fromarray(noise(3)).save(tmp_path / "photo.png")
    expected = comfyui_load_image(tmp_path / "photo.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)   # Pillow raises above 200 pixels now
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "photo.png")
    assert np.array_equal(loaded(tmp_path / "photo.png"), expected)
    assert probe_image(tmp_path / "photo.png") == (WIDTH, HEIGHT)
    with pytest.raises(InputError, match=r"53 x 37 = 0.0 MP, over the limit"):
        probe_image(tmp_path / "photo.png", max_pixels=1000)
    with pytest.raises(InputError, match=r"53 x 37 = 0.0 MP, over the limit"):
        probe_image((tmp_path / "photo.png").read_bytes(), max_pixels=1000)


BOMB_SCRIPT = """
import json, sys, tracemalloc
try:
    import resource   # POSIX only; tracemalloc below works everywhere
except ImportError:
    resource = None
from pathlib import Path
from lumix_engine.errors import InputError
from lumix_engine.image_io import load_image, load_image_bytes, probe_image
path = Path(sys.argv[1])
data = path.read_bytes()
tracemalloc.start()
messages = []
for attempt in (lambda: load_image(path), lambda: load_image_bytes(data), lambda: probe_image(path)):
    try:
        attempt()
        messages.append(None)
    except InputError as error:
        messages.append(str(error))
peak = tracemalloc.get_traced_memory()[1]
# This process's own peak resident memory. Linux keeps ru_maxrss across exec, so it would
# report the parent test runner's peak; VmHWM belongs to this process's memory map alone.
status = Path("/proc/self/status")
if status.is_file():
    line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
    rss = int(line.split()[1]) * 1024
else:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if resource else None   # macOS: bytes
print(json.dumps({"messages": messages, "traced_peak": peak, "max_rss": rss}))
"""


def test_a_30000_x_30000_16_bit_png_bomb_is_refused_from_its_header_under_1_gb(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(zero_png16(30000, 30000))
    run = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, str(bomb)], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    for message in report["messages"]:
        assert message and "30000 x 30000 = 900.0 MP, over the limit of 64.0 MP" in message
        assert "downscale it first" in message and "--max-pixels" in message
    assert report["traced_peak"] < 64 * 2**20, report   # Python and numpy allocations after import
    if report["max_rss"] is not None:
        assert report["max_rss"] < 2**30, report        # the whole process, torch included
