"""Maps made at the working size, brought back to the photo's full size with its detail.

Two ideas, both guided by the full-resolution photo:

- Local linear detail transfer (the upsampling form of the guided filter: He, Sun and Tang,
  "Guided Image Filtering", ECCV 2010 / TPAMI 2013; He and Sun, "Fast Guided Filter", 2015).
  At the working size, in the 3 x 3 window around each working pixel k, the map M is fitted
  as a linear function of the photo I (linear light, 3 channels) by ridge regression:
      A_k = (cov_k(I, I) + epsilon Id)^-1 cov_k(I, M)          (a 3-vector per map channel)
  and at every full-size pixel p
      M(p) = up(M)(p) + sum_j up(A)_j(p) (I_j(p) - up(I~)_j(p))
  with up() torch's bilinear resampling and I~ the photo brought down to the working size.
  Why this model: a camera pixel on an object's edge holds both sides, mixed by coverage,
  in the photo and in every map alike (the maps of a renderer's AOVs, or of a model that
  learnt them, are coverage-weighted too). Across a two-sided edge the map is then exactly
  linear in the photo, at every scale, so the transfer restores the edge's antialiased
  profile at the photo's sharpness, which neither bilinear (too soft) nor a joint bilateral
  filter (it picks one side per pixel) can. Where the photo varies but the map does not (a
  texture under a flat normal, printed text on a lit wall) the fitted slope is ~0 and no
  texture leaks in; where the photo is flat the detail term is ~0 and the result is
  bilinear, which is exact on ramps (a tilted floor's disparity). Per map (FITS): epsilon,
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

How it runs: the regression is solved at the working size for all guided channels at once
(per pixel, a 3 x 3 Cholesky factorisation per epsilon, then three multiply-adds per slope),
then the full-size output is made in bands of output rows (BAND_PIXELS): torch's bilinear
pass along the rows once per image over the stacked maps, slopes and working-size photo
(channels last), then per band the vertical blend, a multiply-add with the photo's detail,
and the per-map finish (recomposition, renormalised normals). Everything runs on the maps'
device, in float32 (float64 only when the maps are float64 on a device that has it, never on
MPS). Memory is the working-size stack (at the photo's width after the row pass) plus one
band's temporaries, so a 24 MP photo stays under 4 GB extra.
Long runs call `progress(done_rows, total_rows)` and `check_interrupt()` (which raises to
stop) once per band; the engine never imports ComfyUI, the node passes
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

from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Optional, Sequence

import torch
import torch.nn.functional as F

from ..errors import InputError
from .color_space import linear_to_srgb, srgb_to_linear
from .normals import decode_normals, encode_normals

Method = Literal["guided", "bilinear"]
METHODS = ("guided", "bilinear")
Progress = Callable[[int, int], None]
CheckInterrupt = Callable[[], None]



@dataclass(frozen=True)
class Fit:
    """How one map is fitted to the photo: epsilon, the smallest trusted photo contrast
    (variance, linear light); radius, working pixels each side of the window; detrend, fit
    a plane in position alongside the photo, so that a ramp (a tilted floor's depth) is
    not mistaken for a response to the texture on it."""
    epsilon: float
    radius: int = 1
    detrend: bool = False


FITS = {"irradiance": Fit(3e-6), "normal": Fit(3e-6), "depth": Fit(3e-5, 2, True), "other": Fit(1e-5)}
_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))   # the distinct entries of a 3 x 3 symmetric matrix
DARK_LOW, DARK_HIGH = 0.005, 0.02   # linear irradiance: below LOW the albedo is the model's, above HIGH the ratio's
ALBEDO_FLOOR = 1e-4                  # keeps log(albedo) finite in the dark blend
BAND_PIXELS = 1 << 20                # output pixels per band: ~0.4 GB of temporaries (few, large tensor ops)


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


def _window_sum_rows(padded: torch.Tensor, radius: int, height: int) -> torch.Tensor:
    """Sums of 2 radius + 1 consecutive rows: [.., height + 2 radius, W] -> [.., height, W]."""
    out = padded[..., 0:height, :].clone()
    for offset in range(1, 2 * radius + 1):
        out += padded[..., offset:offset + height, :]
    return out


def _window_sum_columns(padded: torch.Tensor, radius: int, width: int) -> torch.Tensor:
    """Sums of 2 radius + 1 consecutive columns: [.., H, width + 2 radius] -> [.., H, width]."""
    out = padded[..., :, 0:width].clone()
    for offset in range(1, 2 * radius + 1):
        out += padded[..., :, offset:offset + width]
    return out


def _window_mean(values: torch.Tensor, radius: int) -> torch.Tensor:
    """[B, C, h, w] -> the mean over each (2 radius + 1)^2 window, borders replicated; by
    shifted sums, one axis then the other (avg_pool2d is several times slower on CPUs)."""
    height, width = values.shape[-2:]
    padded = F.pad(values, (radius,) * 4, mode="replicate")
    rows = _window_sum_rows(padded, radius, height)                                        # [.., h, w + 2 r]
    return _window_sum_columns(rows, radius, width).div_((2 * radius + 1) ** 2)


def _offsets(length: int, radius: int, like: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Along one axis of `length` pixels: for each window slot, the offset from the window's
    centre to the pixel it reads (clamped at the borders, as the replicated values are),
    [length] each; and their mean and variance over the window, [length] each. Clamped
    offsets keep a ramp exactly linear in them at the borders too."""
    centre = torch.arange(length, device=like.device, dtype=like.dtype)
    slots = [(centre + o).clamp(0, length - 1) - centre for o in range(-radius, radius + 1)]
    mean = sum(slots) / len(slots)
    variance = sum(slot * slot for slot in slots) / len(slots) - mean * mean
    return slots, mean, variance


def _offset_covariances(values: torch.Tensor, mean: torch.Tensor, radius: int
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """[B, C, h, w] values and their window mean -> their window covariances with the
    horizontal and the vertical offset (borders replicated, offsets clamped: _offsets), and
    the offsets' variances, [w] and [h, 1]."""
    height, width = values.shape[-2:]
    padded = F.pad(values, (radius,) * 4, mode="replicate")
    x_slots, x_mean, x_variance = _offsets(width, radius, values)
    y_slots, y_mean, y_variance = _offsets(height, radius, values)
    across = sum(slot * padded[..., :, i:i + width] for i, slot in enumerate(x_slots))          # [.., h + 2r, w]
    down = sum(slot[:, None] * padded[..., i:i + height, :] for i, slot in enumerate(y_slots))  # [.., h, w + 2r]
    size = 2 * radius + 1
    gx = _window_sum_rows(across, radius, height).div_(size * size)
    gy = _window_sum_columns(down, radius, width).div_(size * size)
    return gx - mean * x_mean, gy - mean * y_mean[:, None], x_variance, y_variance[:, None]


def _cholesky_3x3(xx, xy, xz, yy, yz, zz, epsilon: float) -> tuple[torch.Tensor, ...]:
    """Lower Cholesky factor (l11, l21, l31, l22, l32, l33) of the symmetric
    [[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]] + epsilon Id per pixel. Cholesky rather than
    the cofactor inverse: at an edge the photo's covariance is nearly rank one, and the
    cofactors then cancel to nothing in float32 while Cholesky's pivots stay accurate. Each
    pivot of a covariance plus epsilon Id is at least epsilon, which the clamps enforce
    against rounding."""
    l11 = (xx + epsilon).clamp_min(epsilon).sqrt()
    l21, l31 = xy / l11, xz / l11
    l22 = (yy + epsilon - l21 * l21).clamp_min(epsilon).sqrt()
    l32 = (yz - l31 * l21) / l22
    l33 = (zz + epsilon - l31 * l31 - l32 * l32).clamp_min(epsilon).sqrt()
    return l11, l21, l31, l22, l32, l33


def _inverse_from_cholesky(factor: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The six distinct entries (xx, xy, xz, yy, yz, zz) of (L L^T)^-1 = L^-T L^-1, from
    the Cholesky factor L (each entry one tensor): one inverse per pixel, then every map
    channel costs three multiply-adds per slope."""
    l11, l21, l31, l22, l32, l33 = factor
    m11, m22, m33 = 1 / l11, 1 / l22, 1 / l33
    m21 = -l21 * m11 * m22
    m32 = -l32 * m22 * m33
    m31 = -(l31 * m11 + l32 * m21) * m33
    return (m11 * m11 + m21 * m21 + m31 * m31, m21 * m22 + m31 * m32, m31 * m33,
            m22 * m22 + m32 * m32, m32 * m33, m33 * m33)


def _guide_moments(guide_low: torch.Tensor, fit: Fit) -> dict[str, torch.Tensor]:
    """The photo's window statistics for one window shape: mean [B, 3, h, w], covariance as
    the six distinct entries [B, 6, h, w], and (detrended) its offset covariances."""
    mean = _window_mean(guide_low, fit.radius)
    products = torch.stack([guide_low[:, i] * guide_low[:, j] for i, j in _PAIRS], 1)
    covariance = _window_mean(products, fit.radius) - torch.stack([mean[:, i] * mean[:, j] for i, j in _PAIRS], 1)
    moments = {"mean": mean, "covariance": covariance}
    if fit.detrend:
        gx, gy, x_variance, y_variance = _offset_covariances(guide_low, mean, fit.radius)
        moments["covariance"] = covariance - torch.stack([gx[:, i] * gx[:, j] / x_variance + gy[:, i] * gy[:, j] / y_variance
                                                          for i, j in _PAIRS], 1)
        moments["gx"], moments["gy"] = gx / x_variance, gy / y_variance
    return moments


def local_linear_slopes(low: torch.Tensor, guide_low: torch.Tensor, fits: Sequence[Fit],
                        sizes: Sequence[int]) -> torch.Tensor:
    """The ridge-regression slopes of the module docstring: maps low [B, C, h, w] (groups of
    `sizes` channels, one Fit each) on the working-size photo guide_low [B, 3, h, w]
    -> A [B, 3, C, h, w] (A[:, j, c]: the change of channel c per unit of photo channel j)."""
    if guide_low.shape[1] != 3:
        raise InputError(f"local_linear_slopes: the guide needs 3 channels, got {guide_low.shape[1]}")
    slopes = low.new_empty(low.shape[0], 3, *low.shape[1:])
    moments: dict[tuple[int, bool], dict[str, torch.Tensor]] = {}
    inverses: dict[Fit, tuple[torch.Tensor, ...]] = {}   # maps with the same fit share one (irradiance, normals)
    start = 0
    for size, fit in zip(sizes, fits):
        key = (fit.radius, fit.detrend)
        if key not in moments:
            moments[key] = _guide_moments(guide_low, fit)
        guide = moments[key]
        group = low[:, start:start + size]
        batch, height, width = group.shape[0], *group.shape[-2:]
        means = _window_mean(torch.cat([group, (guide_low[:, :, None] * group[:, None]).flatten(1, 2)], 1), fit.radius)
        cross = means[:, size:].view(batch, 3, size, height, width)
        cross -= guide["mean"][:, :, None] * means[:, None, :size]                        # [B, 3, c, h, w]
        if fit.detrend:
            gx, gy, _, _ = _offset_covariances(group, means[:, :size], fit.radius)
            cross -= guide["gx"][:, :, None] * gx[:, None] + guide["gy"][:, :, None] * gy[:, None]
        if fit not in inverses:
            inverses[fit] = tuple(entry[:, None] for entry in _inverse_from_cholesky(
                _cholesky_3x3(*guide["covariance"].unbind(1), fit.epsilon)))
        xx, xy, xz, yy, yz, zz = inverses[fit]
        for j, row in enumerate(((xx, xy, xz), (xy, yy, yz), (xz, yz, zz))):
            target = slopes[:, j, start:start + size]
            torch.mul(row[0], cross[:, 0], out=target)
            target.addcmul_(row[1], cross[:, 1]).addcmul_(row[2], cross[:, 2])
        start += size
    return slopes


@dataclass(frozen=True)
class _Axis:
    """Where the output pixels of one axis sample the working grid for torch's bilinear
    (computed in float64 on the CPU, so that rounding is the same on every device and
    dtype, then moved)."""
    near: torch.Tensor    # [n] long: the lower sample
    far: torch.Tensor     # [n] long: the upper sample
    frac: torch.Tensor    # [n, 1]: weight of `far`
    near_host: torch.Tensor
    far_host: torch.Tensor


def _axis(full: int, low: int, device: torch.device, dtype: torch.dtype) -> _Axis:
    output = torch.arange(full, dtype=torch.float64, device="cpu")
    # torch's bilinear (align_corners=False): source = (out + 0.5) * low / full - 0.5, floored at 0.
    source = ((output + 0.5) * (low / full) - 0.5).clamp_min(0)
    near = source.floor().long().clamp(max=low - 1)
    far = (near + 1).clamp(max=low - 1)
    return _Axis(near.to(device), far.to(device), (source - near)[:, None].to(device, dtype), near, far)


def _horizontal_pass(low: torch.Tensor, width: int) -> torch.Tensor:
    """Channels-last [h, w, C] -> [h, width, C]: torch's bilinear along the rows only. In
    the channels-last layout (strides as torch makes them, which a plain permute of an
    [h, w, C] tensor is not, hence [None] before the permute) torch's kernel is many times
    faster, and the rows then gather as contiguous blocks for the vertical pass."""
    source = low[None].permute(0, 3, 1, 2)                                                # [1, C, h, w], channels last
    return F.interpolate(source, size=(low.shape[0], width), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)


def _vertical_band(horizontal: torch.Tensor, rows: slice, ay: _Axis, buffers: dict[str, torch.Tensor]
                   ) -> torch.Tensor:
    """[h, W, C] after the horizontal pass -> the bilinear values [R, W, C] of output rows
    `rows`, written into `buffers` (made at the first band and reused by the next: a fresh
    block of this size costs more in page faults than the arithmetic done in it)."""
    count = rows.stop - rows.start
    if "top" not in buffers:
        buffers["top"] = horizontal.new_empty((count,) + horizontal.shape[1:])
        buffers["bottom"] = torch.empty_like(buffers["top"])
    top, bottom = buffers["top"][:count], buffers["bottom"][:count]
    torch.index_select(horizontal, 0, ay.near[rows], out=top)
    torch.index_select(horizontal, 0, ay.far[rows], out=bottom)
    return top.lerp_(bottom, ay.frac[rows, :, None])


def guided_bands(low: torch.Tensor, guide: torch.Tensor, fits: Sequence[Optional[Fit]],
                 sizes: Optional[Sequence[int]] = None, *,
                 progress: Optional[Progress] = None, check_interrupt: Optional[CheckInterrupt] = None,
                 band_pixels: Optional[int] = None) -> Iterator[tuple[int, slice, torch.Tensor, torch.Tensor]]:
    """Upsampling of the stacked maps low [B, C, h, w] (on its device, in its dtype) guided by
    the photo in linear light guide [B, H, W, 3] (any device), band by band of output rows.

    sizes: the channels of each map in the stack (default: one map of all C channels);
    fits: one per map, or None for a map resampled plainly (bilinear, or antialiased
    when shrinking). The maps with a fit must come first. Yields (image index, rows,
    values [R, W, C], the photo's band [R, W, 3]) on low's device; `values` lives in a
    buffer that the next band overwrites, so use or copy it before asking for the next."""
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
    count = sum(sizes[i] for i in guided) if enlarging else 0
    guide_low = resize_linear(guide.to(device, dtype).permute(0, 3, 1, 2), height_low, width_low)
    if count:
        slopes = local_linear_slopes(low[:, :count], guide_low, [fits[i] for i in guided], [sizes[i] for i in guided])
        stack = torch.cat([low, slopes.flatten(1, 2), guide_low], 1)                        # [B, C + 3 G + 3, h, w]
    else:
        stack = low
    # Smaller than the working size on an axis (a small photo): the antialiased resize, whole.
    if height < height_low or width < width_low:
        shrunk, stack = _hwc(resize_linear(stack, height, width)), None
    else:
        shrunk, stack = None, stack.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
    ay = _axis(height, height_low, device, dtype)
    rows_per_band = max(1, (band_pixels or BAND_PIXELS) // width)
    buffers: dict[str, torch.Tensor] = {}
    for b in range(batch):
        horizontal = _horizontal_pass(stack[b], width) if shrunk is None else None
        for top in range(0, height, rows_per_band):
            if check_interrupt is not None:
                check_interrupt()
            rows = slice(top, min(top + rows_per_band, height))
            photo = guide[b, rows].to(device, dtype)                                       # [R, W, 3]
            resampled = _vertical_band(horizontal, rows, ay, buffers) if shrunk is None else shrunk[b, rows]
            values = resampled[..., :channels]
            if count:
                band_slopes = resampled[..., channels:channels + 3 * count]                 # [R, W, 3 G]
                detail = photo - resampled[..., channels + 3 * count:]                      # [R, W, 3]
                if "transfer" not in buffers:
                    buffers["transfer"] = photo.new_empty(photo.shape[:2] + (count,))
                transfer = torch.mul(band_slopes[..., :count], detail[..., 0:1], out=buffers["transfer"][:len(photo)])
                transfer.addcmul_(band_slopes[..., count:2 * count], detail[..., 1:2])
                transfer.addcmul_(band_slopes[..., 2 * count:], detail[..., 2:3])
                values[..., :count] += transfer
            if progress is not None:
                progress(b * height + rows.stop, batch * height)
            yield b, rows, values, photo


def local_linear_upsample(low: torch.Tensor, guide: torch.Tensor, fits: Fit | Sequence[Fit],
                          sizes: Optional[Sequence[int]] = None, **options) -> torch.Tensor:
    """Maps [B, C, h, w] + the photo in linear light [B, H, W, 3] -> [B, C, H, W] by local
    linear detail transfer (module docstring), in compute_dtype (float64 stays float64 on
    the CPU). Several maps in one stack: `sizes` their channel counts and `fits` one per map."""
    low = low.to(compute_dtype(low.device, low.dtype))
    fits = [fits] if isinstance(fits, Fit) else list(fits)
    out = low.new_empty(low.shape[:2] + guide.shape[1:3])
    for b, rows, values, _ in guided_bands(low, guide, fits, sizes, **options):
        out[b, :, rows] = values.permute(2, 0, 1)
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


def _bilinear_maps(maps: dict[str, torch.Tensor], height: int, width: int) -> dict[str, torch.Tensor]:
    out = {}
    for name, low in maps.items():
        if name == "normal":
            up = resize_linear(_chw(decode_normals(low)), height, width)
            out[name] = encode_normals(F.normalize(_hwc(up), dim=-1, eps=1e-8))
        else:
            out[name] = _hwc(resize_linear(_chw(low), height, width)).clamp(0, 1)
    return out


def _encode_unit(vectors: torch.Tensor) -> torch.Tensor:
    """[R, W, 3] vectors -> the normal image [R, W, 3] in [0, 1] of their unit directions
    (+Z, facing the viewer, where a vector has no length), as encode_normals does."""
    length = vectors.square().sum(-1, keepdim=True).sqrt_()
    unit = torch.where(length > 1e-8, vectors / length.clamp_min(1e-8),
                       torch.tensor([0.0, 0.0, 1.0], dtype=vectors.dtype, device=vectors.device))
    return unit.add_(1).mul_(0.5)


def _dark_albedo_blend(albedo: torch.Tensor, irradiance: torch.Tensor, model_albedo: torch.Tensor,
                       photo_linear: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the irradiance [R, W, 3] is near black, the model's albedo (linear) in place of
    photo / irradiance, blended in log space, and the irradiance made photo / albedo there
    (module docstring). Changes only the pixels darker than DARK_HIGH."""
    level = irradiance.amax(-1)
    dark = (level < DARK_HIGH).flatten().nonzero()[:, 0]
    if not len(dark):
        return albedo, irradiance
    flat = [t.reshape(-1, 3) for t in (albedo, irradiance, model_albedo, photo_linear)]
    ratio, model, photo = (t[dark] for t in (flat[0], flat[2], flat[3]))
    weight = ((DARK_HIGH - level.flatten()[dark, None]) / (DARK_HIGH - DARK_LOW)).clamp_(0, 1)
    blended = torch.exp(torch.lerp(ratio.clamp_min(ALBEDO_FLOOR).log(), model.clamp(ALBEDO_FLOOR, 1).log(), weight))
    blended = torch.maximum(blended, photo).clamp_(ALBEDO_FLOOR, 1)
    flat[0][dark], flat[1][dark] = blended, photo / blended
    return flat[0].view_as(albedo), flat[1].view_as(irradiance)


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

    def prepared(image: torch.Tensor) -> torch.Tensor:
        return _chw(image.to(device, dtype))

    # 1. The stacked channels [B, C, h, w], with a Fit per map (None: resampled plainly).
    recomposing = recompose and "albedo" in maps and "irradiance" in maps
    groups: dict[str, torch.Tensor] = {}
    fits: dict[str, Optional[Fit]] = {}
    if recomposing:
        irradiance_low = srgb_to_linear(prepared(maps["irradiance"]))
        groups["irradiance"], fits["irradiance"] = irradiance_low, FITS["irradiance"]
        # Always carried, never decided from the data: a photo must get the same maps alone
        # and in a batch (whose other photos would otherwise switch the dark blend on).
        groups["model_albedo"], fits["model_albedo"] = srgb_to_linear(prepared(maps["albedo"])), None
    for name, low in maps.items():
        if name == "normal":
            groups[name], fits[name] = prepared(decode_normals(low)), FITS["normal"]
        elif name == "depth":
            # A grey depth image (ComfyUI's IMAGE has 3 channels) is upsampled once.
            grey = low.shape[-1] == 3 and torch.equal(low[..., 0], low[..., 1]) and torch.equal(low[..., 0], low[..., 2])
            groups[name], fits[name] = prepared(low[..., :1] if grey else low), FITS["depth"]
        elif name in ("albedo", "irradiance", "color") and not recomposing:
            groups[name], fits[name] = prepared(low), FITS["other"]
    names = sorted(groups, key=lambda name: fits[name] is None)   # guided maps first (guided_bands adds in place)
    sizes = [groups[name].shape[1] for name in names]

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
    stack = torch.cat([groups[name] for name in names], 1)
    for b, rows, values, photo_linear in guided_bands(stack, srgb_to_linear(photo), [fits[name] for name in names],
                                                      sizes, progress=progress, check_interrupt=check_interrupt,
                                                      band_pixels=band_pixels):
        band = dict(zip(names, values.split(sizes, -1)))                              # {name: [R, W, c]}
        finished: dict[str, torch.Tensor] = {}
        if recomposing:
            irradiance = torch.maximum(band.pop("irradiance").clamp(0, 1), photo_linear)
            albedo = photo_linear / irradiance.clamp_min(1e-12)   # irradiance >= photo: albedo <= 1
            if "model_albedo" in band:
                albedo, irradiance = _dark_albedo_blend(albedo, irradiance, band.pop("model_albedo"), photo_linear)
            finished["albedo"], finished["irradiance"] = linear_to_srgb(albedo), linear_to_srgb(irradiance)
        for name, values_of_map in band.items():
            if name == "normal":
                finished[name] = _encode_unit(values_of_map)
            else:
                finished[name] = values_of_map.clamp(0, 1)
        for name, values_of_map in finished.items():
            out[name][b, rows] = values_of_map.to(out[name].device, out[name].dtype)
    return {name: out[name] for name in maps}
