"""The ridge-regression fit behind guided upsampling (upsample.py's docstring): at each
working pixel k, the map M as a linear function of the photo I in the window around k,
    A_k = (cov_k(I, I) + epsilon Id)^-1 cov_k(I, M),
for every guided map channel at once, on the working grid.

How it runs: tile by tile of SLOPE_TILE_ROWS working rows. A tile reads its rows plus a halo
of the widest window's radius (the image's borders replicated), so its statistics are the
same as over the whole image, bit for bit, while its temporaries (tens of MB at most, reused
from tile to tile) stay in the processor's caches, where the many elementwise steps of the
fit run several times faster than over whole images. Window sums are shifted adds, one axis
then the other, over one buffer that holds every quantity sharing a window (photo, maps,
photo products, photo x map products), so each window shape is summed once. The 3 x 3
solve is a Cholesky factor and its inverse per pixel, shared by the maps with the same
epsilon. SLOPE_TILE_ROWS was measured (16 to 1088 rows, 4 MP photo, 1 and 2 threads).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from ..errors import InputError


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
SLOPE_TILE_ROWS = 128  # working rows per tile: ~0.8 MB per channel at 1632 wide
_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))   # the distinct entries of a 3 x 3 symmetric matrix


class Scratch:
    """Blocks reused from tile to tile (and chunk to chunk), by name: a fresh block of a few
    MB costs more in page faults than the arithmetic done in it, and the allocator returns
    such blocks to the system when they are freed."""

    def __init__(self, like: torch.Tensor) -> None:
        self._like, self._blocks = like, {}

    def __call__(self, name: str, *shape: int) -> torch.Tensor:
        size = math.prod(shape)
        block = self._blocks.get(name)
        if block is None or block.numel() < size:
            block = self._blocks[name] = self._like.new_empty(size)
        return block[:size].view(shape)


def _window_sum(values: torch.Tensor, size: int, axis: int, out: torch.Tensor) -> torch.Tensor:
    """Sums of `size` consecutive entries along `axis` (-2: rows, -1: columns):
    [.., length + size - 1, ..] -> out [.., length, ..]."""
    length = out.shape[axis]
    if size == 1:
        return out.copy_(values.narrow(axis, 0, length))
    torch.add(values.narrow(axis, 0, length), values.narrow(axis, 1, length), out=out)
    for offset in range(2, size):
        out += values.narrow(axis, offset, length)
    return out


def _window_mean(padded: torch.Tensor, radius: int, scratch: Scratch, name: str) -> torch.Tensor:
    """[.., n + 2 radius, w + 2 radius] -> the mean over each (2 radius + 1)^2 window,
    [.., n, w] (in scratch block `name`)."""
    size = 2 * radius + 1
    *lead, rows, width = padded.shape
    rows, width = rows - 2 * radius, width - 2 * radius
    vertical = _window_sum(padded, size, -2, scratch(name + " rows", *lead, rows, width + 2 * radius))
    return _window_sum(vertical, size, -1, scratch(name, *lead, rows, width)).div_(size * size)


def _offsets(positions: torch.Tensor, length: int, radius: int) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Along one axis of `length` pixels, at `positions` [n]: for each window slot, the
    offset from the window's centre to the pixel it reads (clamped at the image's borders,
    as the replicated values are), [n] each; and their mean and variance over the window.
    Clamped offsets keep a ramp exactly linear in them at the borders too."""
    slots = [(positions + o).clamp(0, length - 1) - positions for o in range(-radius, radius + 1)]
    mean = sum(slots) / len(slots)
    variance = sum(slot * slot for slot in slots) / len(slots) - mean * mean
    return slots, mean, variance


def _offset_sum(padded: torch.Tensor, slots: list[torch.Tensor], axis: int, out: torch.Tensor) -> torch.Tensor:
    """sum_i slots[i] x padded shifted by i along `axis` (-1: columns, -2: rows) -> out. Away
    from the image's borders slot i is i - r, so the sum is r differences of the pixels
    either side, weighted k = 1..r; only the outputs whose slots are clamped (the first and
    last r columns, or rows at the image's top and bottom) are summed slot by slot."""
    radius, length = len(slots) // 2, out.shape[axis]

    def shifted(start: int, stop: int, offset: int) -> torch.Tensor:
        return padded.narrow(axis, start + offset, stop - start)
    torch.sub(shifted(0, length, radius + 1), shifted(0, length, radius - 1), out=out)
    for k in range(2, radius + 1):
        out.add_(shifted(0, length, radius + k), alpha=k).sub_(shifted(0, length, radius - k), alpha=k)
    expected = torch.arange(-radius, radius + 1, dtype=slots[0].dtype, device=slots[0].device)
    clamped = (torch.stack(slots, 1) != expected).any(1).nonzero()[:, 0].tolist()
    for start, stop in _runs(clamped):
        region = out.narrow(axis, start, stop - start)
        shape = [1] * out.ndim
        shape[axis] = stop - start
        region.copy_(slots[0][start:stop].view(shape) * shifted(start, stop, 0))
        for i, slot in enumerate(slots[1:], 1):
            region.addcmul_(slot[start:stop].view(shape), shifted(start, stop, i))
    return out


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Sorted indices -> the (start, stop) of each run of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for index in indices:
        if runs and runs[-1][1] == index:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def _offset_covariances(padded: torch.Tensor, mean: torch.Tensor, radius: int, rows: torch.Tensor, height: int,
                        scratch: Scratch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Values padded by `radius` [.., n + 2r, w + 2r] (working rows `rows` [n] of an image of
    `height` rows) and their window mean [.., n, w] -> their window covariances with the
    horizontal and the vertical offset, and the offsets' variances, [w] and [n, 1]."""
    *lead, n, width = mean.shape
    size = 2 * radius + 1
    x_slots, x_mean, x_variance = _offsets(torch.arange(width, device=padded.device, dtype=padded.dtype), width, radius)
    y_slots, y_mean, y_variance = _offsets(rows.to(padded.dtype), height, radius)
    across = _offset_sum(padded, x_slots, -1, scratch("across", *lead, n + 2 * radius, width))
    down = _offset_sum(padded, y_slots, -2, scratch("down", *lead, n, width + 2 * radius))
    gx = _window_sum(across, size, -2, scratch("gx", *lead, n, width)).div_(size * size)
    gy = _window_sum(down, size, -1, scratch("gy", *lead, n, width)).div_(size * size)
    # The offsets' window means are 0 but where they are clamped.
    for start, stop in _runs(x_mean.nonzero()[:, 0].tolist()):
        gx[..., start:stop].sub_(mean[..., start:stop] * x_mean[start:stop])
    for start, stop in _runs(y_mean.nonzero()[:, 0].tolist()):
        gy[..., start:stop, :].sub_(mean[..., start:stop, :] * y_mean[start:stop, None])
    return gx, gy, x_variance, y_variance[:, None]


def _cholesky_3x3(xx, xy, xz, yy, yz, zz, epsilon: float) -> tuple[torch.Tensor, ...]:
    """Lower Cholesky factor (l11, l21, l31, l22, l32, l33) of the symmetric
    [[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]] + epsilon Id per pixel. Cholesky rather than
    the cofactor inverse: at an edge the photo's covariance is nearly rank one, and the
    cofactors then cancel to nothing in float32 while Cholesky's pivots stay accurate. Each
    pivot of a covariance plus epsilon Id is at least epsilon, which the clamps enforce
    against rounding."""
    l11 = (xx + epsilon).clamp_min_(epsilon).sqrt_()
    l21, l31 = xy / l11, xz / l11
    l22 = (yy + epsilon - l21 * l21).clamp_min_(epsilon).sqrt_()
    l32 = (yz - l31 * l21).div_(l22)
    l33 = (zz + epsilon - l31 * l31 - l32 * l32).clamp_min_(epsilon).sqrt_()
    return l11, l21, l31, l22, l32, l33


def _inverse_from_cholesky(factor: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The six distinct entries (xx, xy, xz, yy, yz, zz) of (L L^T)^-1 = L^-T L^-1, from
    the Cholesky factor L (each entry one tensor): one inverse per pixel, then every map
    channel costs three multiply-adds per slope."""
    l11, l21, l31, l22, l32, l33 = factor
    m11, m22, m33 = l11.reciprocal(), l22.reciprocal(), l33.reciprocal()
    m21 = -l21 * m11 * m22
    m32 = -l32 * m22 * m33
    m31 = -(l31 * m11 + l32 * m21) * m33
    return (m11 * m11 + m21 * m21 + m31 * m31, m21 * m22 + m31 * m32, m31 * m33,
            m22 * m22 + m32 * m32, m32 * m33, m33 * m33)


@dataclass(frozen=True)
class _Window:
    """The maps that share one window shape (radius, detrend), so share its statistics."""
    radius: int
    detrend: bool
    channels: list[int]                                 # their channels in the stack
    maps: list[tuple[float, slice, slice]]              # per map: epsilon, channels here, channels in the stack


def _windows(fits: Sequence[Fit], sizes: Sequence[int]) -> list[_Window]:
    windows: dict[tuple[int, bool], _Window] = {}
    start = 0
    for fit, size in zip(fits, sizes):
        window = windows.setdefault((fit.radius, fit.detrend), _Window(fit.radius, fit.detrend, [], []))
        here = len(window.channels)
        window.channels.extend(range(start, start + size))
        window.maps.append((fit.epsilon, slice(here, here + size), slice(start, start + size)))
        start += size
    return list(windows.values())


def _padded_rows(image: torch.Tensor, top: int, bottom: int, halo: int, out: torch.Tensor) -> torch.Tensor:
    """Rows top..bottom-1 of image [B, C, h, w] with `halo` more on every side, read from
    the image where it has them and replicated beyond its borders, into out
    [B, C, bottom - top + 2 halo, w + 2 halo]."""
    height, width = image.shape[-2:]
    low, high = max(0, top - halo), min(height, bottom + halo)
    first, last = halo - (top - low), halo - (top - low) + high - low      # the rows read from the image
    columns = slice(halo, halo + width)
    out[..., first:last, columns] = image[..., low:high, :]
    out[..., :first, columns] = out[..., first:first + 1, columns]
    out[..., last:, columns] = out[..., last - 1:last, columns]
    out[..., :halo] = out[..., halo:halo + 1]
    out[..., halo + width:] = out[..., halo + width - 1:halo + width]
    return out


def _fit_tile(maps: torch.Tensor, guide: torch.Tensor, window: _Window, rows: torch.Tensor, height: int,
              out: torch.Tensor, scratch: Scratch) -> None:
    """One window shape on one tile: maps [B, c, n + 2r, w + 2r] and the photo [B, 3, ..]
    padded by the window's radius -> the slopes of each map written into out [B, 3, C, n, w]."""
    batch, count = maps.shape[0], maps.shape[1]
    r = window.radius
    # Every quantity the window averages, in one block: photo, map, photo products, photo x map.
    values = scratch("values", batch, 9 + 4 * count, *maps.shape[-2:])
    values[:, 0:3], values[:, 3:3 + count] = guide, maps
    for k, (i, j) in enumerate(_PAIRS):
        torch.mul(guide[:, i], guide[:, j], out=values[:, 3 + count + k])
    torch.mul(guide[:, :, None], maps[:, None], out=values[:, 9 + count:].unflatten(1, (3, count)))
    means = _window_mean(values, r, scratch, "means")
    photo_mean, map_mean = means[:, 0:3], means[:, 3:3 + count]
    covariance = means[:, 3 + count:9 + count]
    for k, (i, j) in enumerate(_PAIRS):
        covariance[:, k].addcmul_(photo_mean[:, i], photo_mean[:, j], value=-1)
    cross = means[:, 9 + count:].unflatten(1, (3, count))
    for j in range(3):
        cross[:, j].addcmul_(photo_mean[:, j:j + 1], map_mean, value=-1)
    if window.detrend:
        gx, gy, x_variance, y_variance = _offset_covariances(values[:, :3 + count], means[:, :3 + count], r, rows,
                                                             height, scratch)
        photo_gx, photo_gy = gx[:, :3] / x_variance, gy[:, :3] / y_variance
        for k, (i, j) in enumerate(_PAIRS):
            covariance[:, k].addcmul_(photo_gx[:, i], gx[:, j], value=-1).addcmul_(photo_gy[:, i], gy[:, j], value=-1)
        for j in range(3):
            cross[:, j].addcmul_(photo_gx[:, j:j + 1], gx[:, 3:], value=-1).addcmul_(photo_gy[:, j:j + 1], gy[:, 3:],
                                                                                     value=-1)
    inverses: dict[float, tuple[torch.Tensor, ...]] = {}   # maps with the same epsilon share one (irradiance, normals)
    for epsilon, here, there in window.maps:
        if epsilon not in inverses:
            inverses[epsilon] = tuple(entry[:, None] for entry in _inverse_from_cholesky(
                _cholesky_3x3(*covariance.unbind(1), epsilon)))
        xx, xy, xz, yy, yz, zz = inverses[epsilon]
        response = cross[:, :, here]                                                       # [B, 3, c, n, w]
        for j, row in enumerate(((xx, xy, xz), (xy, yy, yz), (xz, yz, zz))):
            target = out[:, j, there]
            torch.mul(row[0], response[:, 0], out=target)
            target.addcmul_(row[1], response[:, 1]).addcmul_(row[2], response[:, 2])


def slope_tiles(low: torch.Tensor, guide_low: torch.Tensor, fits: Sequence[Fit], sizes: Sequence[int],
                tile_rows: int = SLOPE_TILE_ROWS, overlap: int = 0) -> Iterator[tuple[slice, torch.Tensor]]:
    """The ridge-regression slopes of maps low [B, C, h, w] (groups of `sizes` channels, one
    Fit each) on the working-size photo guide_low [B, 3, h, w], tile by tile: yields (working
    rows, A [B, 3, C, n, w]) (A[:, j, c]: the change of channel c per unit of photo channel j),
    A in a block that the next tile overwrites. Tiles start every tile_rows rows and hold
    `overlap` rows more (the first of the next tile) where the image has them."""
    if guide_low.shape[1] != 3:
        raise InputError(f"slope_tiles: the guide needs 3 channels, got {guide_low.shape[1]}")
    windows = _windows(fits, sizes)
    halo = max(window.radius for window in windows)
    batch, channels, height, width = low.shape
    scratch = Scratch(low)
    for top in range(0, height, tile_rows):
        bottom = min(top + tile_rows + overlap, height)
        rows = torch.arange(top, bottom, device=low.device)
        padded = (bottom - top + 2 * halo, width + 2 * halo)
        maps = _padded_rows(low, top, bottom, halo, scratch("maps", batch, channels, *padded))
        guide = _padded_rows(guide_low, top, bottom, halo, scratch("guide", batch, 3, *padded))
        slopes = scratch("slopes", batch, 3, channels, bottom - top, width)
        for window in windows:
            crop = (Ellipsis, slice(halo - window.radius, padded[0] - halo + window.radius),
                    slice(halo - window.radius, padded[1] - halo + window.radius))
            own = window.channels
            window_maps = maps[:, own[0]:own[-1] + 1] if own == list(range(own[0], own[-1] + 1)) else maps[:, own]
            _fit_tile(window_maps[crop], guide[crop], window, rows, height, slopes, scratch)
        yield slice(top, bottom), slopes
