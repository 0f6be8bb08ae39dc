"""Maps made at the working size, brought back to the photo's full size with its detail.

Two ideas, both guided by the full-resolution photo:

- Joint bilateral upsampling (Kopf, Cohen, Lischinski and Uyttendaele, "Joint Bilateral
  Upsampling", SIGGRAPH 2007): every full-size pixel p is a weighted mean of the working-size
  samples q in the (2 RADIUS + 1)^2 window around p's nearest sample, weight
  = exp(-|p - q|^2 / 2 sigma_s^2) (distance in working pixels)
  x (exp(-|I(p) - I~(q)|^2 / 2 sigma_r^2) + 1e-6) (I the sRGB photo, I~ the photo at the
  working size; the floor keeps a pixel whose colour matches no sample a spatial mean).
  Across an object's edge the samples of the other side have another colour and drop out,
  so the map's edge comes back at the photo's sharpness; a texture the map does not have (a
  checkered floor under a flat normal) cannot leak in, because a weighted mean of equal
  values is that value. The weights are not linear in position, so on a smooth ramp (a
  tilted floor's depth) bilinear is exact and this is not: per map the result is blended
  with bilinear by how far the map itself is from a plane around the pixel (its largest
  |second difference| over the 3 x 3 working pixels and its channels, bilinearly
  upsampled: joint bilateral above tau, bilinear below tau / 4, linear in between). Used for depth,
  normals, and irradiance in log space.

- Exact recomposition: irradiance is smooth, so its upsampling is trusted, and the albedo
  is then defined as photo / irradiance in linear light. albedo x irradiance is the
  full-resolution photo exactly (to float precision before the output quantisation), and all
  texture finer than the working size lands in the albedo, where it belongs. Irradiance is
  raised to at least the photo's value per channel so that the albedo stays <= 1.

How it runs: all guided maps share one set of weights (they depend on the photo and the
positions only), so their channels are stacked and upsampled together, in bands of output
rows (BAND_PIXELS), on the maps' device, in float32 (float64 only when the maps are float64
on a device that has it, never on MPS). Per band everything is whole-tensor work: bilinear
by two gathers, the joint bilateral term only at the pixels whose blend needs it, all taps
of all those pixels at once, then the per-map finish (exp, recomposition, renormalised
normals) written into the outputs. Memory is the outputs plus one band's temporaries, so a
24 MP photo stays far under 4 GB extra. Long runs call `progress(done_rows, total_rows)` and
`check_interrupt()` (which raises to stop) once per band; the engine never imports ComfyUI,
the node passes comfy.utils.ProgressBar.update_absolute and
comfy.model_management.throw_exception_if_processing_interrupted.

Written in plain torch rather than with kornia: kornia's joint_bilateral_blur and
guided_blur filter an input that already has the guide's size, while here the map exists
only at the working size (joint *upsampling*), and kornia would add kornia-rs, a compiled
dependency. The plain float64 reference of these sums is in tests/upsample_reference.py.

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

# RADIUS and SIGMA_RANGE chosen on one Mitsuba render (benchmarks/upsampling_mitsuba.py, poster 2048x1152).
RADIUS = 1            # working pixels each side: a 3 x 3 neighbourhood
SIGMA_SPACE = 0.7     # working pixels
SIGMA_RANGE = 0.02    # sRGB units of the photo
TAU = {"depth": 0.2, "normal": 0.4, "log_irradiance": 0.5, "other": 0.2}   # map change for full joint bilateral
RANGE_FLOOR = 1e-6    # added to the range weight
LOG_OFFSET = 1e-4     # irradiance is upsampled as log(linear + LOG_OFFSET)
DARK = 1e-6           # linear irradiance below which photo / irradiance is not trusted
BAND_PIXELS = 1 << 18   # output pixels per band: ~0.5 GB of temporaries at most with 15 channels


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


def _dilate(values: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> the largest value over each 3 x 3 neighbourhood (clipped at the
    border), by shifted maxima (max_pool2d is several times slower on CPUs)."""
    height, width = values.shape[-2:]
    padded = F.pad(values, (1, 1, 1, 1), mode="replicate")
    rows = torch.maximum(torch.maximum(padded[..., :width], padded[..., 1:width + 1]), padded[..., 2:])
    return torch.maximum(torch.maximum(rows[..., :height, :], rows[..., 1:height + 1, :]), rows[..., 2:, :])


def local_change(low: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> [B, C, h, w]: how far the map is from a plane around each pixel: the
    largest |second difference| (x or y, borders replicated) over its 3 x 3 neighbourhood,
    per channel. A step of height s gives s next to it; a ramp, however steep, gives 0,
    which is where bilinear is exact."""
    padded = F.pad(low, (1, 1, 1, 1), mode="replicate")
    centre = padded[..., 1:-1, 1:-1]
    across = (padded[..., 1:-1, :-2] + padded[..., 1:-1, 2:] - 2 * centre).abs()
    down = (padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1] - 2 * centre).abs()
    return _dilate(torch.maximum(across, down))


def _group_change(low: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """[B, C, h, w] -> [B, M, h, w]: local_change, the largest over each map's channels."""
    return torch.cat([local_change(group).amax(1, keepdim=True) for group in low.split(list(sizes), 1)], 1)


@dataclass(frozen=True)
class _Axis:
    """Where the output pixels of one axis sample the working grid (computed in float64 on
    the CPU, so that rounding is the same on every device and dtype, then moved)."""
    near: torch.Tensor    # [n] long: bilinear's lower sample (also kept on the CPU as near_host)
    far: torch.Tensor     # [n] long: bilinear's upper sample
    frac: torch.Tensor    # [n, 1]: bilinear weight of `far`
    taps: torch.Tensor    # [n, K] long: joint bilateral window, clamped to the grid
    space: torch.Tensor   # [n, K]: exp(-(tap - position)^2 / 2 sigma_s^2)
    near_host: torch.Tensor
    far_host: torch.Tensor


def _axis(full: int, low: int, radius: int, sigma_space: float, device: torch.device, dtype: torch.dtype) -> _Axis:
    output = torch.arange(full, dtype=torch.float64, device="cpu")
    # torch's bilinear (align_corners=False): source = (out + 0.5) * low / full - 0.5, floored at 0.
    source = ((output + 0.5) * (low / full) - 0.5).clamp_min(0)
    near = source.floor().long().clamp(max=low - 1)
    far = (near + 1).clamp(max=low - 1)
    position = (output + 0.5) * low / full - 0.5
    offsets = torch.arange(-radius, radius + 1, device="cpu")
    taps = (position.round().long()[:, None] + offsets).clamp(0, low - 1)
    space = torch.exp(-(taps - position[:, None]) ** 2 / (2 * sigma_space ** 2))
    return _Axis(near.to(device), far.to(device), (source - near)[:, None].to(device, dtype), taps.to(device),
                 space.to(device, dtype), near, far)


def _bilinear_band(low: torch.Tensor, rows: slice, ay: _Axis, width: int) -> torch.Tensor:
    """[C, h, w] -> bilinear values [C, R, W] of the output rows `rows`: torch's horizontal
    pass on the few working rows they need, then the vertical blend of two of those rows."""
    first, last = int(ay.near_host[rows.start]), int(ay.far_host[rows.stop - 1]) + 1
    horizontal = F.interpolate(low[None, :, first:last], size=(last - first, width), mode="bilinear",
                               align_corners=False)[0]                                     # [C, r, W]
    top, bottom = horizontal.index_select(1, ay.near[rows] - first), horizontal.index_select(1, ay.far[rows] - first)
    return torch.lerp(top, bottom, ay.frac[rows])


def _bilateral_at(table: torch.Tensor, channels: int, guide: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                  ay: _Axis, ax: _Axis, width_low: int, sigma_range: float) -> torch.Tensor:
    """Joint bilateral values [N, C] at N output pixels (rows ys, columns xs [N]).
    table: [h * w, C + G], per working pixel the map's channels then the working-size
    photo's; guide: the full-size photo at those pixels [N, G]."""
    index = (ay.taps[ys][:, :, None] * width_low + ax.taps[xs][:, None, :]).flatten()   # [N * K * K]
    samples = table.index_select(0, index).view(len(ys), -1, table.shape[1])           # [N, K * K, C + G]
    difference = (samples[..., channels:] - guide[:, None, :]).square_().sum(-1)       # [N, K * K]
    weight = torch.exp_(difference.mul_(-0.5 / sigma_range ** 2)).add_(RANGE_FLOOR)
    weight *= (ay.space[ys][:, :, None] * ax.space[xs][:, None, :]).flatten(1)
    total = torch.bmm(weight[:, None, :], samples)[:, 0, :channels]                    # [N, C]
    return total / weight.sum(1, keepdim=True)


def guided_bands(low: torch.Tensor, guide: torch.Tensor, tau: Optional[Sequence[float]],
                 sizes: Optional[Sequence[int]] = None, *, radius: int = RADIUS,
                 sigma_space: float = SIGMA_SPACE, sigma_range: float = SIGMA_RANGE,
                 progress: Optional[Progress] = None, check_interrupt: Optional[CheckInterrupt] = None,
                 band_pixels: Optional[int] = None) -> Iterator[tuple[int, slice, torch.Tensor, torch.Tensor]]:
    """Edge-aware upsampling of the stacked maps low [B, C, h, w] (on its device, in
    compute_dtype) guided by the photo [B, G, H, W] (any device), band by band of output rows.

    sizes: the channels of each map in the stack (default: one map of all C channels); tau:
    one per map: joint bilateral where the map changes by tau or more (its largest change
    over its channels), bilinear below tau / 4 (module docstring); None: joint bilateral
    everywhere. Yields (image index, rows, values [C, R, W], the photo's band [G, R, W]) on
    low's device."""
    batch, channels, height_low, width_low = low.shape
    height, width = guide.shape[-2:]
    device, dtype = low.device, low.dtype
    ay, ax = (_axis(height, height_low, radius, sigma_space, device, dtype),
              _axis(width, width_low, radius, sigma_space, device, dtype))
    guide_low = resize_linear(guide.to(device, dtype), height_low, width_low)
    if tau is not None:
        sizes = list(sizes) if sizes is not None else [channels]
        tau = torch.as_tensor(tau, dtype=dtype, device=device).reshape(-1, 1, 1)
        if sum(sizes) != channels or len(tau) != len(sizes):
            raise InputError(f"guided_bands: {len(tau)} tau for maps of {sizes} channels; the stack has {channels}")
        repeats = torch.tensor(sizes, device=device)
        low_and_change = torch.cat([low, _group_change(low, sizes)], 1)
        # Smaller than the working size on an axis (a small photo): the antialiased resize, whole;
        # on both axes, only that (the photo has no detail finer than the maps to restore).
        shrunk = resize_linear(low_and_change, height, width) if height < height_low or width < width_low else None
        only_shrinking = height <= height_low and width <= width_low
    rows_per_band = max(1, (band_pixels or BAND_PIXELS) // width)
    for b in range(batch):
        table = torch.cat([low[b], guide_low[b]]).flatten(1).T.contiguous()               # [h * w, C + G]
        for top in range(0, height, rows_per_band):
            if check_interrupt is not None:
                check_interrupt()
            rows = slice(top, min(top + rows_per_band, height))
            photo = guide[b, :, rows].to(device, dtype)                                    # [G, R, W]
            if tau is None:
                values, blend = None, None
                needed = torch.ones(photo.shape[1:], dtype=torch.bool, device=device)
            else:
                bilinear = (_bilinear_band(low_and_change[b], rows, ay, width) if shrunk is None
                            else shrunk[b, :, rows].clone())
                values, change = bilinear[:channels], bilinear[channels:]
                blend = ((change / tau - 0.25) / 0.75).clamp_(0, 1)                         # [M, R, W]
                needed = (blend > 0).any(0) if not only_shrinking else torch.zeros_like(blend[0], dtype=torch.bool)
            pixels = needed.flatten().nonzero()[:, 0]
            if len(pixels):
                ys, xs = pixels // width + top, pixels % width
                bilateral = _bilateral_at(table, channels, photo.flatten(1)[:, pixels].T, ys, xs, ay, ax,
                                          width_low, sigma_range).T                         # [C, N]
                if values is None:
                    values = bilateral.reshape(channels, *photo.shape[1:])
                else:
                    flat = values.reshape(channels, -1)   # a copy where the gathers left another layout
                    weight = blend.flatten(1)[:, pixels].repeat_interleave(repeats, 0)       # [C, N]
                    flat[:, pixels] = torch.lerp(flat[:, pixels], bilateral, weight)
                    values = flat.view_as(values)
            if progress is not None:
                progress(b * height + rows.stop, batch * height)
            yield b, rows, values, photo


def _assemble(low: torch.Tensor, guide: torch.Tensor, tau: Optional[Sequence[float]],
              sizes: Optional[Sequence[int]] = None, **options) -> torch.Tensor:
    """All bands of guided_bands in one [B, C, H, W] tensor on low's device."""
    out = low.new_empty(low.shape[:2] + guide.shape[-2:])
    for b, rows, values, _ in guided_bands(low, guide, tau, sizes, **options):
        out[b, :, rows] = values
    return out


def joint_bilateral_upsample(low: torch.Tensor, guide: torch.Tensor, radius: int = RADIUS,
                             sigma_space: float = SIGMA_SPACE, sigma_range: float = SIGMA_RANGE) -> torch.Tensor:
    """Map [B, C, h, w] + guide [B, G, H, W] -> [B, C, H, W]: joint bilateral everywhere
    (formula in the module docstring), in low's dtype (float64 stays float64 on the CPU)."""
    low = low.to(compute_dtype(low.device, low.dtype))
    return _assemble(low, guide, None, radius=radius, sigma_space=sigma_space, sigma_range=sigma_range)


def edge_aware_upsample(low: torch.Tensor, guide: torch.Tensor, tau: float | Sequence[float],
                        sizes: Optional[Sequence[int]] = None, **options) -> torch.Tensor:
    """Joint bilateral where the map changes by tau or more around a pixel (the largest
    change over its channels), bilinear where it changes by less than tau / 4 (flat, or a
    smooth ramp), blended linearly in between (module docstring). [B, C, h, w] + guide
    [B, G, H, W] -> [B, C, H, W]. Several maps in one stack: `sizes` their channel counts and
    `tau` one per map."""
    low = low.to(compute_dtype(low.device, low.dtype))
    tau = [float(tau)] if isinstance(tau, (int, float)) else [float(t) for t in tau]
    return _assemble(low, guide, tau, sizes, **options)


def _check(low: torch.Tensor, photo: torch.Tensor, name: str) -> None:
    if low.ndim != 4 or photo.ndim != 4 or low.shape[0] != photo.shape[0]:
        raise InputError(f"{name}: maps [B, h, w, C] and the photo [B, H, W, 3] need the same batch; got "
                         f"{tuple(low.shape)} and {tuple(photo.shape)}")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise InputError(f"upsampling method {method!r} is unknown; use one of {', '.join(METHODS)}")


def upsample_map(low: torch.Tensor, photo: torch.Tensor, method: Method = "guided", tau: float = TAU["other"]
                 ) -> torch.Tensor:
    """A map [B, h, w, C] in [0, 1] -> [B, H, W, C] at the photo's size, edge-aware guided by
    the photo (or plain bilinear). For depth images and anything without a unit-length
    constraint; normals: `upsample_normals`."""
    _check(low, photo, "upsample_map")
    _check_method(method)
    height, width = photo.shape[1:3]
    if method == "bilinear":
        return _hwc(resize_linear(_chw(low), height, width)).clamp(0, 1)
    return _hwc(edge_aware_upsample(_chw(low), _chw(photo), tau)).clamp(0, 1).to(low.dtype)


def upsample_normals(low: torch.Tensor, photo: torch.Tensor, method: Method = "guided") -> torch.Tensor:
    """OpenGL-encoded normal image [B, h, w, 3] -> [B, H, W, 3]: the decoded vectors are
    upsampled (edge-aware or bilinear) and renormalised to unit length, then encoded."""
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
    """[3, R, W] vectors -> the normal image [3, R, W] in [0, 1] of their unit directions
    (+Z, facing the viewer, where a vector has no length), as encode_normals does; summed
    over the leading axis, several times faster than a norm over the trailing one."""
    length = vectors.square().sum(0, keepdim=True).sqrt_()
    unit = torch.where(length > 1e-8, vectors / length.clamp_min(1e-8),
                       torch.tensor([0.0, 0.0, 1.0], dtype=vectors.dtype, device=vectors.device)[:, None, None])
    return unit.add_(1).mul_(0.5)


def upsample_maps(maps: dict[str, torch.Tensor], photo: torch.Tensor, method: Method = "guided",
                  recompose: bool = True, *, device: Optional[torch.device | str] = None,
                  progress: Optional[Progress] = None, check_interrupt: Optional[CheckInterrupt] = None,
                  band_pixels: Optional[int] = None) -> dict[str, torch.Tensor]:
    """{name: working-size map [B, h, w, 3]} -> the same maps at the photo's size [B, H, W, 3].

    guided, recompose=True: log irradiance upsampled edge-aware, raised to at least the
    photo (so albedo <= 1), and albedo = photo / irradiance in linear light, so that albedo
    x irradiance = photo exactly; where the irradiance is darker than DARK the ratio means
    nothing and the edge-aware upsampled albedo is kept. Depth guided; normals guided and
    renormalised; color is the photo itself; any other map (an uncertainty) bilinear.
    recompose=False: `photo` is only a guide (e.g. a given depth image, not a color photo),
    so albedo, irradiance and color are each guided-upsampled.
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

    # 1. The guided channels, stacked: [B, C, h, w] and their tau.
    recomposing = recompose and "albedo" in maps and "irradiance" in maps
    groups: dict[str, torch.Tensor] = {}
    taus: dict[str, float] = {}
    if recomposing:
        irradiance_low = srgb_to_linear(prepared(maps["irradiance"]))
        groups["log_irradiance"], taus["log_irradiance"] = torch.log(irradiance_low + LOG_OFFSET), TAU["log_irradiance"]
        # A weighted mean of logs is at least their minimum: only a map with dark pixels needs the fallback.
        if bool((irradiance_low <= DARK).any()):
            groups["albedo"], taus["albedo"] = prepared(maps["albedo"]), TAU["other"]
    for name, low in maps.items():
        if name == "normal":
            groups[name], taus[name] = prepared(decode_normals(low)), TAU["normal"]
        elif name == "depth" or (name in ("albedo", "irradiance", "color") and not recomposing):
            groups[name], taus[name] = prepared(low), TAU["depth" if name == "depth" else "other"]
    names = list(groups)
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
    for b, rows, values, band_photo in guided_bands(stack, _chw(photo), [taus[name] for name in names], sizes,
                                                    progress=progress,
                                                    check_interrupt=check_interrupt, band_pixels=band_pixels):
        band = dict(zip(names, values.split(sizes)))                                  # {name: [c, R, W]}
        finished: dict[str, torch.Tensor] = {}
        if recomposing:
            photo_linear = srgb_to_linear(band_photo)
            irradiance = (torch.exp(band.pop("log_irradiance")) - LOG_OFFSET).clamp_(0, 1)
            irradiance = torch.maximum(irradiance, photo_linear)
            albedo = photo_linear / irradiance.clamp_min(DARK)
            if "albedo" in band:
                albedo = torch.where(irradiance <= DARK, srgb_to_linear(band.pop("albedo").clamp(0, 1)), albedo)
            finished["albedo"], finished["irradiance"] = linear_to_srgb(albedo.clamp_(0, 1)), linear_to_srgb(irradiance)
        for name, values_of_map in band.items():
            if name == "normal":
                finished[name] = _encode_unit(values_of_map)
            else:
                finished[name] = values_of_map.clamp(0, 1)
        for name, values_of_map in finished.items():
            out[name][b, rows] = values_of_map.permute(1, 2, 0).to(out[name].device, out[name].dtype)
    return {name: out[name] for name in maps}
