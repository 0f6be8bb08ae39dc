"""Maps made at the working size, brought back to the photo's full size with its detail.

Two ideas, both guided by the full-resolution photo:

- Local linear detail transfer (the upsampling form of the guided filter: He, Sun and Tang,
  "Guided Image Filtering", ECCV 2010 / TPAMI 2013; He and Sun, "Fast Guided Filter", 2015).
  At the working size, in the 3 x 3 window around each working pixel k, the map M is fitted
  as a linear function of the photo I (linear light, 3 channels) by ridge regression:
      A_k = (cov_k(I, I) + epsilon Id)^-1 cov_k(I, M)          (a 3-vector per map channel)
  with the intercept b_k = M_k - A_k . I~_k (the local model exact at the working pixel
  itself), and at every full-size pixel p the local models, bilinearly blended, evaluated at
  the full-size photo:
      M(p) = up(b)(p) + sum_j up(A)_j(p) I_j(p)
  with up() torch's bilinear resampling and I~ the photo brought down to the working size.
  Why this model: a camera pixel on an object's edge holds both sides, mixed by coverage,
  in the photo and in every map alike (the maps of a renderer's AOVs, or of a model that
  learnt them, are coverage-weighted too). Across a two-sided edge the map is then exactly
  linear in the photo, at every scale, so the transfer restores the edge's antialiased
  profile at the photo's sharpness, which neither bilinear (too soft) nor a joint bilateral
  filter (it picks one side per pixel) can. Where the photo varies but the map does not (a
  texture under a flat normal, printed text on a lit wall) the fitted slope is ~0 and no
  texture leaks in; where the photo is as smooth as the working grid, I ~ up(I~) and the
  result is bilinear, which is exact on ramps (a tilted floor's disparity). Per map (FITS): epsilon,
  in linear-light units squared, the smallest photo contrast trusted to carry a map's edge;
  the window; and for depth, a plane in position fitted alongside the photo, so that a ramp
  under a texture is not read as a response to the texture. Used for irradiance (linear
  light), depth and normals (decoded vectors).

- Exact recomposition: albedo = photo / irradiance in linear light, so that albedo x
  irradiance is the full-resolution photo exactly (to float precision before the output
  quantisation), and all texture finer than the working size lands in the albedo, where it
  belongs. Irradiance is raised to at least the photo's value per channel so that the albedo
  stays <= 1. Where the irradiance is near black the ratio means nothing (0 / 0 in a black
  shadow): there the albedo blends, in log space, into the bilinear albedo of the model
  (fully below DARK_LOW, not at all above DARK_HIGH), and the irradiance becomes
  photo / albedo, so the photo is still recomposed exactly.

How it runs (local_linear.py has the fit): the output is made a few rows at a time
(CHUNK_PIXELS), and the working-size fits tile by tile (SLOPE_TILE_ROWS working rows) as the
output rows reach them, so that no per-pixel quantity is ever held for the whole image and
each step's temporaries stay in the processor's cache. Per tile: the window sums, a 3 x 3
Cholesky factorisation per epsilon and pixel, the slopes and intercepts, written channels
last into one block with the maps resampled plainly. Per chunk: torch's bilinear of that
block (the two working rows each output row needs, blended, then its channels-last kernel
along the rows), the models evaluated at the photo (three multiply-adds), and the per-map
finish (recomposition, renormalised normals) written straight into the outputs. Everything
runs on the maps' device, in float32 (float64 only when the maps are float64 on a device
that has it, never on MPS). Memory is the outputs, the photo in linear light and the
working-size maps, plus blocks of a few tens of MB, so a 24 MP photo stays under 4 GB extra.
Long runs call `progress(done_rows, total_rows)` and `check_interrupt()` (which raises to
stop) once per band of BAND_PIXELS output pixels; the engine never imports ComfyUI, the node passes
comfy.utils.ProgressBar.update_absolute and
comfy.model_management.throw_exception_if_processing_interrupted.

Written in plain torch rather than with kornia: kornia's guided_blur filters an input that
already has the guide's size, while here the map exists only at the working size (joint
*upsampling*), and kornia would add kornia-rs, a compiled dependency. The plain float64
reference of these sums is in tests/upsample_reference.py; the constants were chosen on two
Mitsuba renders (benchmarks/upsampling_mitsuba.py: poster and desk, 2048x1152) and checked
on the others.

Images are [B, H, W, C] floats in [0, 1] (ComfyUI's IMAGE layout), sRGB-encoded for
albedo, irradiance and the photo, as everywhere in lumix_engine.intrinsics.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Optional, Sequence

import torch
import torch.nn.functional as F

from ..errors import InputError
from .color_space import linear_to_srgb, srgb_to_linear
from .local_linear import FITS, SLOPE_TILE_ROWS, Fit, Scratch, slope_tiles
from .normals import decode_normals, encode_normals

Method = Literal["guided", "bilinear"]
METHODS = ("guided", "bilinear")
Progress = Callable[[int, int], None]
CheckInterrupt = Callable[[], None]

DARK_LOW, DARK_HIGH = 0.005, 0.02   # linear irradiance: below LOW the albedo is the model's, above HIGH the ratio's
ALBEDO_FLOOR = 1e-4                  # keeps log(albedo) finite in the dark blend
BAND_PIXELS = 1 << 20                # output pixels between progress reports and interrupt checks
CHUNK_PIXELS = 1 << 16               # output pixels resampled and finished at once (measured: 2^13 to 2^17)


def compute_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """float64 where the maps are float64 and the device has it (not MPS); else float32."""
    return torch.float64 if dtype == torch.float64 and torch.device(device).type != "mps" else torch.float32


def _chw(image: torch.Tensor) -> torch.Tensor:
    return image.permute(0, 3, 1, 2)


def _hwc(image: torch.Tensor) -> torch.Tensor:
    return image.permute(0, 2, 3, 1)


def resize_linear(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, C, h, w] -> [B, C, height, width]: bilinear, antialiased when shrinking."""
    if image.shape[-2:] == (height, width):
        return image
    shrinking = height < image.shape[-2] or width < image.shape[-1]
    return F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking)


@dataclass(frozen=True)
class _Axis:
    """Where the output rows sample the working rows for torch's bilinear (computed in
    float64 on the CPU, so that rounding is the same on every device and dtype, then moved)."""
    near: torch.Tensor       # [n] long: the lower sample
    far: torch.Tensor        # [n] long: the upper sample
    frac: torch.Tensor       # [n, 1, 1]: weight of `far`
    near_host: torch.Tensor  # `near` on the CPU, to find where a tile's output rows end


def _axis(full: int, low: int, device: torch.device, dtype: torch.dtype) -> _Axis:
    output = torch.arange(full, dtype=torch.float64, device="cpu")
    # torch's bilinear (align_corners=False): source = (out + 0.5) * low / full - 0.5, floored at 0.
    source = ((output + 0.5) * (low / full) - 0.5).clamp_min(0)
    near = source.floor().long().clamp(max=low - 1)
    far = (near + 1).clamp(max=low - 1)
    return _Axis(near.to(device), far.to(device), (source - near).to(device, dtype)[:, None, None], near)


def _fit_blocks(low: torch.Tensor, guide_low: torch.Tensor, fits: Sequence[Fit], sizes: Sequence[int],
                scratch: Scratch) -> Iterator[tuple[int, int, torch.Tensor]]:
    """One image's working-size quantities that are resampled, channels last, tile by tile:
    yields (first row, end of the tile's own rows, block [n, w, C + 3 G + 3]): the maps low
    [h, w, C] (the G guided channels first), the slopes of the guided ones (photo channel
    major, made here) and the working-size photo guide_low [h, w, 3], so that all are
    resampled at once. A block holds one row more than its own (the next tile's first), so
    that every output row finds both of its samples in one."""
    height, width, channels = low.shape
    count = sum(sizes)
    for rows, slopes in slope_tiles(_chw(low[None, ..., :count]), _chw(guide_low[None]), fits, sizes,
                                    SLOPE_TILE_ROWS, overlap=1):
        # One concatenation of contiguous parts: several times faster than copies into a
        # block's channel slices, whose few channels per pixel the copy loops one by one.
        slopes_last = scratch("slopes last", rows.stop - rows.start, width, 3 * count)
        slopes_last.copy_(slopes[0].flatten(0, 1).permute(1, 2, 0))
        block = torch.cat([low[rows], slopes_last, guide_low[rows]], -1,
                          out=scratch("fit block", rows.stop - rows.start, width, channels + 3 * count + 3))
        yield rows.start, min(rows.start + SLOPE_TILE_ROWS, height), block


def _resampled_rows(source: torch.Tensor, top: int, rows: slice, ay: _Axis, width: int, scratch: Scratch,
                    name: str) -> torch.Tensor:
    """Working rows from `top` [n, w, C] -> torch's bilinear values [R, width, C] of output
    rows `rows` (in scratch block `name`): the two working rows each output row needs,
    blended, then resampled along the rows by torch's channels-last kernel (an [R, w, C]
    block seen as [1, C, R, w] has channels-last strides, many times faster than channels
    first)."""
    count, channels = rows.stop - rows.start, source.shape[-1]
    blended = torch.index_select(source, 0, ay.near[rows] - top, out=scratch(name + " near", count, *source.shape[1:]))
    far = torch.index_select(source, 0, ay.far[rows] - top, out=scratch(name + " far", count, *source.shape[1:]))
    blended.lerp_(far, ay.frac[rows])
    if source.shape[1] == width:
        return blended
    out = scratch(name, count, width, channels)
    torch.ops.aten.upsample_bilinear2d.out(_chw(blended[None]), [count, width], False, None, None, out=_chw(out[None]))
    return out


def guided_bands(low: torch.Tensor, guide: torch.Tensor, fits: Sequence[Optional[Fit]],
                 sizes: Optional[Sequence[int]] = None, *,
                 progress: Optional[Progress] = None, check_interrupt: Optional[CheckInterrupt] = None,
                 band_pixels: Optional[int] = None
                 ) -> Iterator[tuple[int, slice, list[torch.Tensor], torch.Tensor]]:
    """Upsampling of the stacked maps low [B, C, h, w] (on its device, in its dtype) guided by
    the photo in linear light guide [B, H, W, 3] (any device), a few output rows at a time.

    sizes: the channels of each map in the stack (default: one map of all C channels);
    fits: one per map, or None for a map resampled plainly (bilinear, or antialiased
    when shrinking). The maps with a fit must come first. Yields (image index, rows,
    [values [R, W, c] per map], the photo's rows [R, W, 3]) on low's device, at most
    CHUNK_PIXELS at a time; the values may be changed in place, and live in blocks that the
    next chunk overwrites. check_interrupt() before and progress(done_rows, total_rows)
    after each band of band_pixels output pixels.

    The slopes are fitted tile by tile (local_linear.slope_tiles) as the output rows reach
    them, so that they are never held for the whole image; the maps, their slopes and the
    working-size photo are resampled together from one channels-last block per tile (low is
    best given with channels-last strides, as upsample_maps makes it). Memory is the output
    plus blocks of a few tens of MB."""
    batch, channels, height_low, width_low = low.shape
    height, width = guide.shape[1:3]
    device, dtype = low.device, low.dtype
    sizes = list(sizes) if sizes is not None else [channels]
    if sum(sizes) != channels or len(fits) != len(sizes):
        raise InputError(f"guided_bands: {len(fits)} fits for maps of {sizes} channels; the stack has {channels}")
    guided = [i for i, fit in enumerate(fits) if fit is not None]
    if guided != list(range(len(guided))):
        raise InputError("guided_bands: put the maps with a fit before those resampled plainly")
    # Not larger than the working size on both axes: no detail finer than the maps to restore.
    enlarging = not (height <= height_low and width <= width_low)
    fitted = len(guided) if enlarging else 0                        # maps upsampled by detail transfer
    count = sum(sizes[:fitted])
    maps_low = _hwc(low).contiguous()                                                      # [B, h, w, C]
    guide_low = _hwc(resize_linear(_chw(guide.to(device, dtype)), height_low, width_low)).contiguous() if count else None
    scratch = Scratch(low)

    def fit_blocks(b: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        return _fit_blocks(maps_low[b], guide_low[b], [fits[i] for i in guided], sizes[:fitted], scratch)

    # Smaller than the working size on an axis (a small photo): the antialiased resize of the
    # stacked blocks, whole.
    shrunk = None
    if height < height_low or width < width_low:
        if count:
            whole = low.new_empty(batch, height_low, width_low, channels + 3 * count + 3)
            for b in range(batch):
                for top, end, block in fit_blocks(b):
                    whole[b, top:end] = block[:end - top]
        else:
            whole = maps_low
        shrunk = _hwc(resize_linear(_chw(whole), height, width))
    ay = _axis(height, height_low, device, dtype)
    rows_per_band = max(1, (band_pixels or BAND_PIXELS) // width)
    rows_per_chunk = max(1, min(rows_per_band, CHUNK_PIXELS // width))
    for b in range(batch):
        blocks = fit_blocks(b) if count and shrunk is None else None
        top, tile_end, block = 0, (0 if blocks is not None else height), None
        for band in range(0, height, rows_per_band):
            if check_interrupt is not None:
                check_interrupt()
            band_end = min(band + rows_per_band, height)
            first = band
            while first < band_end:
                while first >= tile_end:   # the next tile holds this output row's models
                    top, end, block = next(blocks)
                    tile_end = int(torch.searchsorted(ay.near_host, end)) if end < height_low else height
                rows = slice(first, min(first + rows_per_chunk, band_end, tile_end))
                first = rows.stop
                photo = guide[b, rows].to(device, dtype)                                   # [R, W, 3]
                if shrunk is not None:
                    resampled = shrunk[b, rows]
                elif count:
                    resampled = _resampled_rows(block, top, rows, ay, width, scratch, "stack")
                else:
                    resampled = _resampled_rows(maps_low[b], 0, rows, ay, width, scratch, "stack")
                yield b, rows, _transferred(resampled, photo, sizes, fitted, scratch), photo
            if progress is not None:
                progress(b * height + band_end, batch * height)


def _transferred(resampled: torch.Tensor, photo: torch.Tensor, sizes: Sequence[int], fitted: int,
                 scratch: Scratch) -> list[torch.Tensor]:
    """Per map, its values [R, W, c] from the resampled stack [R, W, C + 3 G + 3] (maps,
    slopes, working-size photo): the first `fitted` maps with the photo's detail transferred,
    up(M) + sum_j up(A)_j (I_j - up(I~)_j), all in one product; the others as resampled."""
    channels, count = sum(sizes), sum(sizes[:fitted])
    pieces = []
    if count:
        detail = torch.sub(photo, resampled[..., channels + 3 * count:], out=scratch("detail", *photo.shape))
        slopes = resampled[..., channels:channels + 3 * count]
        transferred = torch.addcmul(resampled[..., :count], slopes[..., :count], detail[..., 0:1],
                                    out=scratch("transferred", *photo.shape[:2], count))
        for j in (1, 2):
            transferred.addcmul_(slopes[..., j * count:(j + 1) * count], detail[..., j:j + 1])
        pieces += list(transferred.split(sizes[:fitted], -1))
    return pieces + list(resampled[..., count:channels].split(sizes[fitted:], -1))


def local_linear_upsample(low: torch.Tensor, guide: torch.Tensor, fits: Fit | Sequence[Fit],
                          sizes: Optional[Sequence[int]] = None, **options) -> torch.Tensor:
    """Maps [B, C, h, w] + the photo in linear light [B, H, W, 3] -> [B, C, H, W] by local
    linear detail transfer (module docstring), in compute_dtype (float64 stays float64 on
    the CPU). Several maps in one stack: `sizes` their channel counts and `fits` one per map."""
    low = low.to(compute_dtype(low.device, low.dtype))
    fits = [fits] if isinstance(fits, Fit) else list(fits)
    out = low.new_empty(low.shape[:2] + guide.shape[1:3])
    for b, rows, values, _ in guided_bands(low, guide, fits, sizes, **options):
        out[b, :, rows] = torch.cat(values, -1).permute(2, 0, 1)
    return out


def _check(low: torch.Tensor, photo: torch.Tensor, name: str) -> None:
    if low.ndim != 4 or photo.ndim != 4 or low.shape[0] != photo.shape[0]:
        raise InputError(f"{name}: maps [B, h, w, C] and the photo [B, H, W, 3] need the same batch; got "
                         f"{tuple(low.shape)} and {tuple(photo.shape)}")
    if photo.shape[-1] != 3:
        raise InputError(f"{name}: the guiding photo needs 3 channels (RGB), got {photo.shape[-1]}; "
                         f"convert a grey or RGBA image to RGB first")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise InputError(f"upsampling method {method!r} is unknown; use one of {', '.join(METHODS)}")


def upsample_map(low: torch.Tensor, photo: torch.Tensor, method: Method = "guided",
                 fit: Fit = FITS["other"]) -> torch.Tensor:
    """A map [B, h, w, C] in [0, 1] -> [B, H, W, C] at the photo's size, guided by the photo
    (sRGB [B, H, W, 3]) or plain bilinear. For depth images and anything without a
    unit-length constraint; normals: `upsample_normals`."""
    _check(low, photo, "upsample_map")
    _check_method(method)
    height, width = photo.shape[1:3]
    if method == "bilinear":
        return _hwc(resize_linear(_chw(low), height, width)).clamp(0, 1)
    guide = srgb_to_linear(photo.to(low.device))
    return _hwc(local_linear_upsample(_chw(low), guide, fit)).clamp(0, 1).to(low.dtype)


def upsample_normals(low: torch.Tensor, photo: torch.Tensor, method: Method = "guided") -> torch.Tensor:
    """OpenGL-encoded normal image [B, h, w, 3] -> [B, H, W, 3]: the decoded vectors are
    upsampled (guided or bilinear) and renormalised to unit length, then encoded."""
    return upsample_maps({"normal": low}, photo, method)["normal"]


def upsample_albedo_irradiance(albedo: torch.Tensor, irradiance: torch.Tensor, photo: torch.Tensor,
                               method: Method = "guided") -> tuple[torch.Tensor, torch.Tensor]:
    """Working-size albedo and irradiance (sRGB) + the full-size photo -> both at full size
    (guided: by exact recomposition, see upsample_maps; bilinear: both resized plainly, the
    baseline, which does not recompose the photo)."""
    out = upsample_maps({"albedo": albedo, "irradiance": irradiance}, photo, method)
    return out["albedo"], out["irradiance"]


def _unchanged(image: torch.Tensor) -> torch.Tensor:
    return image


def _row_chunks(height: int, width: int) -> Iterator[slice]:
    """Rows of an image in chunks of about CHUNK_PIXELS pixels: a per-pixel step done chunk
    by chunk runs in the processor's cache, several times faster than over a whole image."""
    rows = max(1, CHUNK_PIXELS // width)
    return (slice(top, min(top + rows, height)) for top in range(0, height, rows))


def _linear_light(image: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """An sRGB image [B, H, W, C] in linear light, on `device` in `dtype`, made chunk by chunk."""
    out = torch.empty(image.shape, device=device, dtype=dtype)
    for rows in _row_chunks(*image.shape[1:3]):
        srgb_to_linear(image[:, rows].to(device, dtype), out=out[:, rows])
    return out


def _bilinear_maps(maps: dict[str, torch.Tensor], height: int, width: int) -> dict[str, torch.Tensor]:
    out = {}
    for name, low in maps.items():
        if name == "normal":
            up = resize_linear(_chw(decode_normals(low)), height, width)
            out[name] = encode_normals(F.normalize(_hwc(up), dim=-1, eps=1e-8))
        else:
            out[name] = _hwc(resize_linear(_chw(low), height, width)).clamp(0, 1)
    return out


def _store(finish: Callable[..., torch.Tensor], values: torch.Tensor, target: torch.Tensor) -> None:
    """finish(values) written into target: directly where it has values' device and dtype
    (no copy; a grey depth made once is repeated to RGB on the way), else converted."""
    if values.shape[-1] == 1 and target.shape[-1] == 3:
        values = values.expand(target.shape)
    if target.device == values.device and target.dtype == values.dtype and target.is_contiguous():
        finish(values, out=target)
    else:
        target.copy_(finish(values))


def _clamp_unit(values: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    return torch.clamp(values, 0, 1, out=out)


def _encode_unit(vectors: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """[R, W, 3] vectors -> the normal image [R, W, 3] in [0, 1] of their unit directions
    (+Z, facing the viewer, where a vector has no length), as encode_normals does."""
    length = torch.linalg.vector_norm(vectors, dim=-1, keepdim=True)
    half_inverse = length.clamp_min(1e-8).reciprocal_().mul_(0.5)
    encoded = torch.addcmul(torch.tensor(0.5, dtype=vectors.dtype, device=vectors.device), vectors, half_inverse)
    facing = torch.tensor([0.5, 0.5, 1.0], dtype=vectors.dtype, device=vectors.device)
    return torch.where(length > 1e-8, encoded, facing, out=encoded if out is None else out)


def _dark_albedo_blend(albedo: torch.Tensor, irradiance: torch.Tensor,
                       model_albedo: Callable[[torch.Tensor], torch.Tensor], photo_linear: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the irradiance [R, W, 3] is near black, the model's albedo (linear; model_albedo
    gives it [k, 3] at the given flat pixel indices) in place of photo / irradiance, blended in
    log space, and the irradiance made photo / albedo there (module docstring). Changes only
    the pixels darker than DARK_HIGH."""
    level = irradiance.amax(-1)
    dark = (level < DARK_HIGH).flatten().nonzero()[:, 0]
    if not len(dark):
        return albedo, irradiance
    flat = [t.reshape(-1, 3) for t in (albedo, irradiance, photo_linear)]
    ratio, photo = flat[0][dark], flat[2][dark]
    weight = ((DARK_HIGH - level.flatten()[dark, None]) / (DARK_HIGH - DARK_LOW)).clamp_(0, 1)
    model = model_albedo(dark).clamp(ALBEDO_FLOOR, 1)
    blended = torch.exp(torch.lerp(ratio.clamp_min(ALBEDO_FLOOR).log(), model.log(), weight))
    blended = torch.maximum(blended, photo).clamp_(ALBEDO_FLOOR, 1)
    flat[0][dark], flat[1][dark] = blended, photo / blended
    return flat[0].view_as(albedo), flat[1].view_as(irradiance)


def _bilinear_at(low: torch.Tensor, ay: _Axis, ax: _Axis, rows: slice, width: int, pixels: torch.Tensor
                 ) -> torch.Tensor:
    """torch's bilinear of one image low [h, w, C] at some output pixels (flat indices into
    output rows `rows` of `width` pixels) -> [k, C]: the model's albedo is needed only where
    the irradiance is near black, so it is not resampled for the whole photo."""
    ys, xs = pixels // width + rows.start, pixels % width
    y0, y1, fy, x0, x1, fx = ay.near[ys], ay.far[ys], ay.frac.view(-1)[ys, None], ax.near[xs], ax.far[xs], ax.frac.view(-1)[xs, None]
    return torch.lerp(torch.lerp(low[y0, x0], low[y0, x1], fx), torch.lerp(low[y1, x0], low[y1, x1], fx), fy)


def upsample_maps(maps: dict[str, torch.Tensor], photo: torch.Tensor, method: Method = "guided",
                  recompose: bool = True, *, device: Optional[torch.device | str] = None,
                  progress: Optional[Progress] = None, check_interrupt: Optional[CheckInterrupt] = None,
                  band_pixels: Optional[int] = None) -> dict[str, torch.Tensor]:
    """{name: working-size map [B, h, w, 3]} -> the same maps at the photo's size [B, H, W, 3].

    guided, recompose=True: irradiance (linear light) upsampled by local linear detail
    transfer, raised to at least the photo (so albedo <= 1), and albedo = photo / irradiance
    in linear light, so that albedo x irradiance = photo exactly; near black irradiance the
    model's albedo takes over (module docstring). Depth and normals (decoded, renormalised)
    by detail transfer; color is the photo itself; any other map (an uncertainty) bilinear.
    recompose=False: `photo` is only a guide (e.g. a given depth image, not a color photo),
    so albedo, irradiance and color are each upsampled by detail transfer.
    bilinear: every map resized plainly (the baseline; it does not recompose the photo).

    device: where the arithmetic runs (default: the maps' device; put them where the model
    is); outputs are on the photo's device. progress(done_rows, total_rows) and
    check_interrupt() are called once per band of band_pixels output pixels (module docstring)."""
    _check_method(method)
    for name, low in maps.items():
        _check(low, photo, name)
    height, width = photo.shape[1:3]
    if method == "bilinear":
        return _bilinear_maps(maps, height, width)
    device = torch.device(device) if device is not None else next(iter(maps.values())).device
    dtype = compute_dtype(device, next(iter(maps.values())).dtype)
    maps_height, maps_width = next(iter(maps.values())).shape[1:3]

    # 1. The stacked channels [B, h, w, C], each map with the step that prepares it and a Fit
    #    (None: resampled plainly).
    recomposing = recompose and "albedo" in maps and "irradiance" in maps
    groups: dict[str, tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], Optional[Fit]]] = {}
    shrinking = height < maps_height or width < maps_width
    if recomposing:
        groups["irradiance"] = (maps["irradiance"], srgb_to_linear, FITS["irradiance"])
        if shrinking:   # resized with the others (antialiased), whole
            groups["model_albedo"] = (maps["albedo"], srgb_to_linear, None)
    for name, low in maps.items():
        if name == "normal":
            groups[name] = (low, decode_normals, FITS["normal"])
        elif name == "depth":
            # A grey depth image (ComfyUI's IMAGE has 3 channels) is upsampled once.
            grey = low.shape[-1] == 3 and torch.equal(low[..., 0], low[..., 1]) and torch.equal(low[..., 0], low[..., 2])
            groups[name] = (low[..., :1] if grey else low, _unchanged, FITS["depth"])
        elif name in ("albedo", "irradiance", "color") and not recomposing:
            groups[name] = (low, _unchanged, FITS["other"])
    # Guided maps first (as guided_bands wants them), those sharing a window next to each other
    # (one slice of the stack per window, not a gather).
    names = sorted(groups, key=lambda name: (groups[name][2] is None, groups[name][2] and
                                             (groups[name][2].radius, groups[name][2].detrend)))
    sizes = [groups[name][0].shape[-1] for name in names]

    # 2. Outputs, filled band by band.
    out: dict[str, torch.Tensor] = {}
    for name, low in maps.items():
        if name == "color" and recomposing:
            out[name] = photo
        elif name in groups or (recomposing and name in ("albedo", "irradiance")):
            out[name] = torch.empty(low.shape[0], height, width, low.shape[-1], dtype=low.dtype, device=photo.device)
        else:
            out[name] = upsample_map(low, photo, "bilinear")
    if not names:
        return out
    first = groups[names[0]][0]
    # Channels last, as the maps come: filled without transposing, and read so by the resampling.
    stack = torch.empty(*first.shape[:3], sum(sizes), device=device, dtype=dtype)
    for b in range(first.shape[0]):
        for rows in _row_chunks(first.shape[1], first.shape[2]):
            parts = [prepare(low[b:b + 1, rows].to(device, dtype)) for low, prepare, _ in map(groups.get, names)]
            torch.cat(parts, -1, out=stack[b:b + 1, rows])
    photo_linear = _linear_light(photo, device, dtype)
    if recomposing and not shrinking:
        # The model's albedo at the pixels where the dark fallback needs it, sampled as
        # bilinear would; per pixel, so a photo gets the same maps alone and in a batch.
        albedo_low = _linear_light(maps["albedo"], device, dtype)
        ay, ax = _axis(height, maps_height, device, dtype), _axis(width, maps_width, device, dtype)
    for b, rows, values, photo_rows in guided_bands(_chw(stack), photo_linear, [groups[name][2] for name in names], sizes,
                                                    progress=progress, check_interrupt=check_interrupt,
                                                    band_pixels=band_pixels):
        band = dict(zip(names, values))                                               # {name: [R, W, c]}
        targets = {name: image[b, rows] for name, image in out.items()}
        if recomposing:
            irradiance = torch.maximum(band.pop("irradiance").clamp(0, 1), photo_rows)
            albedo = photo_rows / irradiance.clamp_min(1e-12)   # irradiance >= photo: albedo <= 1
            if shrinking:
                model = functools.partial(torch.index_select, band.pop("model_albedo").reshape(-1, 3), 0)
            else:
                model = functools.partial(_bilinear_at, albedo_low[b], ay, ax, rows, width)
            albedo, irradiance = _dark_albedo_blend(albedo, irradiance, model, photo_rows)
            _store(linear_to_srgb, albedo, targets["albedo"])
            _store(linear_to_srgb, irradiance, targets["irradiance"])
        for name, values_of_map in band.items():
            _store(_encode_unit if name == "normal" else _clamp_unit, values_of_map, targets[name])
    return {name: out[name] for name in maps}
