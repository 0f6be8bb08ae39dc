"""Named post-processing steps for decoded maps, and the steps each numerics mode applies.

The VAE decodes every map as an RGB image, so a generated map holds its convention only
approximately: the three channels of a depth map differ a little, and a decoded normal
2 rgb - 1 is not unit length. Two steps make the conventions hold exactly:

- `grey_depth`: the depth map's three channels replaced by their mean (depth is one value
  per pixel, near-white disparity; tools read a single channel);
- `unit_normals`: every decoded normal rescaled to unit length and encoded again as
  (n + 1) / 2; a zero vector (no direction) becomes +Z, facing the viewer.

They run in one place, `apps.photo.finish_photos`, which the node, the pipeline, the CLI and
batch share; the node's `info` output, the CLI's output and `settings["postprocess"]` name
the steps that ran. Defaults: numerics="engine" applies both (`ENGINE_STEPS`), so its maps
obey their conventions; numerics="authors" applies none, so a single run returns the maps
exactly as decoded, which is what the authors' decomposition script returns for the same
seed. Given maps are never post-processed: they come back as given.

Two other stages shape the maps and are not steps here: an ensemble's combination
(`intrinsics.ensemble`) makes depth grey and normals unit by construction, and upsampling to
the photo's size (`intrinsics.upsample`, when the working size differs from it) interpolates
normals as directions, so they come back unit length whatever the steps.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional

import torch

from ..errors import InputError
from .normals import decode_normals, encode_normals


def grey_depth(depth: torch.Tensor) -> torch.Tensor:
    """Depth image [B, H, W, 3] -> its channel mean in all three channels."""
    return depth.mean(-1, keepdim=True).expand_as(depth).contiguous()


def unit_normals(normal: torch.Tensor) -> torch.Tensor:
    """OpenGL-encoded normal image [B, H, W, 3] -> the same directions at unit length, encoded."""
    return encode_normals(decode_normals(normal)).to(normal.dtype)


# step name -> (the map it changes, the function); the order here is the order they run in.
STEPS: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "grey_depth": ("depth", grey_depth),
    "unit_normals": ("normal", unit_normals),
}
ENGINE_STEPS: tuple[str, ...] = ("grey_depth", "unit_normals")
AUTHORS_STEPS: tuple[str, ...] = ()
NONE = "none"


def default_steps(numerics: str) -> tuple[str, ...]:
    """The steps a numerics mode applies unless told otherwise."""
    return AUTHORS_STEPS if numerics == "authors" else ENGINE_STEPS


def check_steps(steps: Optional[Iterable[str] | str], numerics: str = "engine") -> tuple[str, ...]:
    """Step names in their running order, without repeats. None: the mode's default; a
    string: comma-separated names, or "none"."""
    if steps is None:
        return default_steps(numerics)
    if isinstance(steps, str):
        steps = [] if steps.strip() == NONE else [part.strip() for part in steps.split(",") if part.strip()]
    steps = list(steps)
    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        raise InputError(f"post-processing step(s) {unknown} unknown; use any of {', '.join(STEPS)}, or "
                         f"'{NONE}' for the maps exactly as decoded")
    return tuple(step for step in STEPS if step in steps)


def steps_for(steps: Iterable[str], free_maps: Iterable[str]) -> tuple[str, ...]:
    """The steps that change one of `free_maps` (a given map is never post-processed, so its
    step does not run and is not reported)."""
    free = set(free_maps)
    return tuple(step for step in check_steps(tuple(steps)) if STEPS[step][0] in free)


def apply_steps(maps: Mapping[str, torch.Tensor], steps: Iterable[str]) -> dict[str, torch.Tensor]:
    """{name: image} -> the same with each step applied to its map (maps without a step, or
    absent from `maps`, pass through untouched)."""
    out = dict(maps)
    for step in check_steps(tuple(steps)):
        name, function = STEPS[step]
        if name in out:
            out[name] = function(out[name])
    return out


def describe_steps(steps: Iterable[str]) -> str:
    """One phrase for logs, the node's info and the CLI."""
    steps = tuple(steps)
    return f"post-processing: {', '.join(steps)}" if steps else "post-processing: none (maps as decoded)"
