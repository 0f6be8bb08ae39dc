"""A photo of any size -> maps at its own size: the steps around the sampler, shared by the
standalone pipeline, the command line and the ComfyUI node (which only sample in between).

1. `prepare_photos`: read and check the photo(s) (finite values, size, aspect), plan the
   working size (`method.resolution`), resize to it; every run of an ensemble is one more
   scene with the same photo (`ensemble_size` runs per photo). The post-processing steps
   are checked here too, before any model runs.
2. the caller samples and decodes the maps at the working size;
3. `finish_photos`: combine the runs of each photo (`intrinsics.ensemble`; one run is
   returned as decoded), apply the named post-processing steps (`intrinsics.postprocess`:
   the one place they run) and bring maps and uncertainties to the output size
   (`intrinsics.upsample`, guided by the photo).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Union

import torch

from ..errors import InputError
from ..image_io import ImageLike, load_image, resize_images
from ..intrinsics.ensemble import UNCERTAINTY_SUFFIX, combine_ensemble
from ..intrinsics.postprocess import ENGINE_STEPS, apply_steps, check_steps, describe_steps, steps_for
from ..intrinsics.upsample import METHODS, CheckInterrupt, Method, Progress, upsample_map, upsample_maps
from ..method.resolution import DEFAULT_MEGAPIXELS, MAX_OUTPUT_MEGAPIXELS, PhotoPlan, plan_photo
from ..modalities import MAP_NAMES, map_index

log = logging.getLogger(__name__)
MAX_ENSEMBLE_SIZE = 16


@dataclass
class PreparedPhotos:
    """`given` {map: images at the output size [B, H, W, 3]}; `working` {map: the same at the
    working size, each photo repeated `ensemble_size` times, scene-major [B * ensemble_size,
    h, w, 3]}; `postprocess` the post-processing steps `finish_photos` applies."""
    given: dict[str, torch.Tensor]
    working: dict[str, torch.Tensor]
    plan: PhotoPlan
    ensemble_size: int
    postprocess: tuple[str, ...] = ENGINE_STEPS

    @property
    def photos(self) -> int:
        return next(iter(self.given.values())).shape[0]

    @property
    def scenes(self) -> int:
        return self.photos * self.ensemble_size


def check_ensemble_size(ensemble_size: int) -> int:
    if isinstance(ensemble_size, bool) or not isinstance(ensemble_size, int) \
            or not 1 <= ensemble_size <= MAX_ENSEMBLE_SIZE:
        raise InputError(f"ensemble_size (runs per photo) must be an integer from 1 to {MAX_ENSEMBLE_SIZE}, got "
                         f"{ensemble_size!r}; 1 = no ensemble, Marigold's default is 10")
    return ensemble_size


def prepare_photos(given: Mapping[str, ImageLike], megapixels: float = DEFAULT_MEGAPIXELS, ensemble_size: int = 1,
                   max_output_megapixels: float = MAX_OUTPUT_MEGAPIXELS,
                   size: Optional[tuple[int, int]] = None,
                   postprocess: Union[Iterable[str], str, None] = ENGINE_STEPS) -> PreparedPhotos:
    """Load the given map(s) (a photo as "color", or others), plan and resize (module docstring).

    `size` (width, height): work at exactly that size and return the maps at it too (the
    photo is resized to it, as a fixed-size sampler does), instead of the photo's own size.
    `postprocess`: step names of `intrinsics.postprocess`, a comma-separated string of
    them or "none" (the maps as decoded, as with the authors' numerics); None or left out:
    the engine's steps. Callers with a numerics mode pass `default_steps(numerics)`."""
    if not given:
        raise InputError("decomposition needs at least one given map (a photo as 'color')")
    ensemble_size = check_ensemble_size(ensemble_size)
    postprocess = steps_for(check_steps(postprocess), (name for name in MAP_NAMES if name not in given))
    images = {name: load_image(value) for name, value in given.items()}
    for name in images:
        map_index(name)
    first_name, first = next(iter(images.items()))
    for name, image in images.items():
        if image.shape != first.shape:
            raise InputError(f"the {name} image is {tuple(image.shape)} but the {first_name} image is "
                             f"{tuple(first.shape)} ([B, H, W, 3]); give every map at one size and batch")
    plan = plan_photo(first.shape[2], first.shape[1], megapixels, max_output_megapixels)
    if size is not None:
        plan = PhotoPlan(plan.photo, tuple(size), tuple(size), plan.megapixels)
    for warning in plan.warnings:
        log.warning(warning)
    output = {name: resize_images(image, *plan.output) for name, image in images.items()}
    working = {name: resize_images(image, *plan.working).repeat_interleave(ensemble_size, 0)
               for name, image in images.items()}
    return PreparedPhotos(output, working, plan, ensemble_size, postprocess)


def finish_photos(decoded: Mapping[str, torch.Tensor], prepared: PreparedPhotos, method: Method = "guided", *,
                  device: Optional[torch.device | str] = None, progress: Optional[Progress] = None,
                  check_interrupt: Optional[CheckInterrupt] = None
                  ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Decoded maps at the working size {name: [B * ensemble_size, h, w, 3]} -> ({name:
    [B, H, W, 3]} at the output size; {name: uncertainty [B, H, W, 3]} for the maps that were
    not given).

    One run per photo comes back as decoded except for `prepared.postprocess`; an ensemble
    is combined per map first. Given maps come back as given. With the photo given as
    color, albedo x irradiance recomposes it exactly; otherwise the first given map guides
    the upsampling. device, progress and check_interrupt go to `upsample_maps` (where it
    runs; ComfyUI's progress bar and interrupt)."""
    if method not in METHODS:
        raise InputError(f"upsample {method!r} is unknown; use one of {', '.join(METHODS)}")
    combined, spread = combine_ensemble(dict(decoded), prepared.ensemble_size)
    guide_name = "color" if "color" in prepared.given else next(iter(prepared.given))
    guide = prepared.given[guide_name]
    free = apply_steps({name: image for name, image in combined.items() if name not in prepared.given},
                       prepared.postprocess)
    if prepared.plan.working != prepared.plan.output:
        free = upsample_maps(free, guide, method, recompose=guide_name == "color", device=device, progress=progress,
                             check_interrupt=check_interrupt)
    height, width = guide.shape[1:3]
    uncertainty = {name + UNCERTAINTY_SUFFIX: upsample_map(spread[name], guide, "bilinear")
                   if spread[name].shape[1:3] != (height, width) else spread[name]
                   for name in free}
    maps = {name: prepared.given.get(name, free.get(name)) for name in decoded}
    return maps, uncertainty


def describe(prepared: PreparedPhotos, method: Optional[str] = None) -> str:
    """One line for logs and the node's info output."""
    plan = prepared.plan
    text = (f"photo {plan.photo[0]}x{plan.photo[1]} -> working {plan.working[0]}x{plan.working[1]} "
            f"({plan.megapixels:.2f} MP budget) -> maps {plan.output[0]}x{plan.output[1]}")
    if method:
        text += f", {method} upsampling"
    if prepared.ensemble_size > 1:
        text += f", ensemble_size {prepared.ensemble_size} (runs per photo, combined per map)"
    text += f", {describe_steps(prepared.postprocess)}"
    return "; ".join([text, *plan.warnings])
