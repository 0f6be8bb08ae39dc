"""Float OpenEXR files of the maps, in the units compositing and 3D tools expect.

Written and read with the official OpenEXR Python bindings (PyPI `OpenEXR`, the
Academy Software Foundation's own package), ZIP compression, which is lossless: a
float32 file holds exactly the float32 values given. Channel layout per map:

| map | channels | values |
|---|---|---|
| albedo, irradiance, color | R, G, B | scene-linear Rec.709 (the sRGB curve undone) |
| depth | Z, disparity | Z: distance along the view axis in units of the nearest point: exactly 1 at the nearest pixel, exactly `depth_range` at the farthest (each map is stretched to that span, `intrinsics.depth.distance_from_disparity`); disparity: the map as given (1 = near) |
| normal | N.X, N.Y, N.Z | unit vectors in [-1, 1], camera space: +X right, +Y up, +Z toward the viewer |

R, G, B and Z are the names Nuke, Blender and After Effects pick up without a shuffle;
N.X / N.Y / N.Z form one layer "N" with three components.

Header attributes say what the values mean, so a compositor need not guess: `lumixMap` (the
map), and for depth `lumixDepthNear` (1), `lumixDepthFar` (`depth_range`) and
`lumixDepthUnits`. LumiX depth is relative: to get scene units, multiply Z by the real
distance of the nearest point.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Union

import numpy as np
import torch

from ..devices import to_float64
from ..errors import InputError
from ..image_io import atomic_path
from ..intrinsics.checks import as_depth, as_image
from ..intrinsics.color_space import srgb_to_linear
from ..intrinsics.depth import DEPTH_RANGE, check_disparity, distance_from_disparity
from ..intrinsics.normals import unit_normals

PRECISIONS = ("float32", "half")
LINEAR_MAPS = ("albedo", "irradiance", "color")
CHANNELS: dict[str, tuple[str, ...]] = {
    **{name: ("R", "G", "B") for name in LINEAR_MAPS},
    "depth": ("Z", "disparity"),
    "normal": ("N.X", "N.Y", "N.Z"),
}


def _numpy(values: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(values.detach().to("cpu", torch.float32).numpy())


def map_channels(name: str, images: torch.Tensor, *, depth_range: float = DEPTH_RANGE) -> list[dict[str, np.ndarray]]:
    """One map batch [B, H, W, 3] as LumiX outputs it -> per image {channel: float32 [H, W]}.

    name is one of albedo, irradiance, color, depth, normal (see the table above), or
    "linear" for an image that is already scene-linear (written as R, G, B unchanged).
    """
    if name in LINEAR_MAPS or name == "linear":
        values = as_image(images, name)
        linear = values if name == "linear" else srgb_to_linear(to_float64(values, "cpu"))
        return [{c: _numpy(image[..., k]) for k, c in enumerate("RGB")} for image in linear]
    if name == "depth":
        disparity = check_disparity(as_depth(images, "depth"), "depth")
        depth = distance_from_disparity(to_float64(disparity, "cpu"), depth_range)
        return [{"Z": _numpy(z), "disparity": _numpy(d)} for z, d in zip(depth, disparity)]
    if name == "normal":
        unit = unit_normals(to_float64(images, "cpu") if images.is_floating_point() else images, "normal")
        return [{c: _numpy(n[..., k]) for k, c in enumerate(CHANNELS["normal"])} for n in unit]
    raise InputError(f"no EXR layout for map {name!r}; use one of {', '.join([*CHANNELS, 'linear'])}.")


DEPTH_UNITS = "distance along the view axis in units of the nearest point (relative depth)"


def map_attributes(name: str, depth_range: float = DEPTH_RANGE) -> dict[str, str]:
    """The header attributes of one map's EXR: which map, and for depth what Z means."""
    attributes = {"lumixMap": name}
    if name == "depth":
        attributes.update(lumixDepthNear="1", lumixDepthFar=f"{depth_range:g}", lumixDepthUnits=DEPTH_UNITS)
    return attributes


def write_exr(path: Union[str, Path], channels: Mapping[str, np.ndarray], *, precision: str = "float32",
              attributes: Mapping[str, str] | None = None) -> Path:
    """Write {channel name: [H, W] array} as one scanline EXR (ZIP); returns the path.

    precision 'float32' keeps every value bit for bit; 'half' stores IEEE binary16 (about
    3 significant digits, range up to 65504), half the size. String attributes go into the
    header. The file appears under its name only once it is complete.
    """
    import OpenEXR  # imported here: only the EXR paths need the dependency

    if precision not in PRECISIONS:
        raise InputError(f"EXR precision {precision!r} is unknown; use one of {PRECISIONS}.")
    if not channels:
        raise InputError("an EXR needs at least one channel.")
    dtype = np.float32 if precision == "float32" else np.float16
    shapes = {name: np.shape(values) for name, values in channels.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 2:
        raise InputError(f"EXR channels must be 2-D arrays of one size; got {shapes}.")
    arrays = {name: np.ascontiguousarray(np.asarray(values, dtype=dtype)) for name, values in channels.items()}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **(attributes or {})}
    path = Path(path)
    with atomic_path(path) as partial:
        with OpenEXR.File(header, arrays) as exr:
            exr.write(str(partial))
    return path


def read_exr(path: Union[str, Path]) -> dict[str, np.ndarray]:
    """{channel name: [H, W] array} of a scanline or tiled EXR, in the file's precision."""
    import OpenEXR

    path = Path(path)
    if not path.is_file():
        raise InputError(f"EXR file not found: {path}")
    if not OpenEXR.isOpenExrFile(str(path)):
        raise InputError(f"{path} is not an OpenEXR file (its magic number is missing).")
    with OpenEXR.File(str(path), separate_channels=True) as exr:
        return {name: np.array(channel.pixels) for name, channel in exr.channels().items()}


def write_maps_exr(maps: Mapping[str, torch.Tensor], out_dir: Path, prefix: str = "", *,
                   precision: str = "float32", depth_range: float = DEPTH_RANGE) -> list[Path]:
    """{map name: [scenes, H, W, 3]} -> `{prefix}{name}.exr` (one scene) or `{prefix}{name}_{k}.exr`.
    Every map is converted (and checked) before the first file is written."""
    converted = {name: map_channels(name, images, depth_range=depth_range) for name, images in maps.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, per_image in converted.items():
        for k, channels in enumerate(per_image):
            path = out_dir / (f"{prefix}{name}.exr" if len(per_image) == 1 else f"{prefix}{name}_{k}.exr")
            written.append(write_exr(path, channels, precision=precision,
                                     attributes=map_attributes(name, depth_range)))
    return written
