"""The working resolution for a photo of any size, and the size its maps come back at.

FLUX works on 16 x 16-pixel tokens (the VAE downsamples by 8 and the transformer packs
2 x 2 latent pixels), and its quality and cost depend on the token count, not on the
photo's size. So a photo is decomposed at a working size chosen from it, and its maps are
brought back to the photo's own pixel size afterwards:

- the aspect is kept: width / height of the working size is the photo's, up to rounding
  each side to a multiple of 16 (a stretch of at most 8 / side, under 1 % at the default
  budget, undone exactly when the maps are resized back; nothing is cropped);
- the area is the megapixel budget, for small photos too (a 64 x 48 photo is worked on at
  the budget and its maps are downsampled back): the model only knows scenes at the scale
  it was trained on, and a 4 x 3-token image has no room for a scene;
- DEFAULT_MEGAPIXELS is the authors' decomposition size (1536 x 1152 = 1.77 MP);
  MAX_MEGAPIXELS = 3.4 MP is the largest budget that fits a 24 GB GPU with fp8 FLUX in the
  memory simulation of the real sampling code (docs/memory.md, method/memory.py), and stays
  within twice the area FLUX.1 was trained at (about 2 MP);
- sides stay within FLUX's 4096-pixel limit; panoramas up to MAX_ASPECT : 1 keep their
  aspect, longer strips are refused (a 1-pixel-high strip has no second dimension to work
  on: crop or pad it to at most 8 : 1);
- photos above MAX_OUTPUT_MEGAPIXELS (24 MP, a 6000 x 4000 camera) come back downscaled to
  that area, aspect kept, with a warning in the plan: at full size the guided upsampling of
  five float maps would need several GB per map (a 12000 x 9000 photo is 1.3 GB per
  float32 map), enough to take a shared server down.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import InputError

TOKEN = 16                                # pixels per FLUX token side (VAE 8 x packing 2)
DEFAULT_MEGAPIXELS = 1536 * 1152 / 1e6    # 1.769472, the published decomposition size
MAX_MEGAPIXELS = 3.4
MIN_MEGAPIXELS = 0.0625                   # 256 x 256: 256 tokens, the fewest FLUX's schedule is defined for
MAX_SIDE = 4096
MAX_ASPECT = 8.0
MIN_PHOTO_SIDE = 8
MAX_OUTPUT_MEGAPIXELS = 24.0


@dataclass(frozen=True)
class PhotoPlan:
    """Sizes for one photo: `photo` as given, `working` (multiples of 16, what FLUX sees),
    `output` (what the maps come back at: the photo's size unless it was above the cap).
    All (width, height)."""
    photo: tuple[int, int]
    working: tuple[int, int]
    output: tuple[int, int]
    megapixels: float
    warnings: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        return {"photo_size": list(self.photo), "working_size": list(self.working), "output_size": list(self.output),
                "megapixels": self.megapixels, "warnings": list(self.warnings)}


def check_megapixels(megapixels: float) -> float:
    """The budget as a float in [MIN_MEGAPIXELS, MAX_MEGAPIXELS], or a clear error."""
    if not isinstance(megapixels, (int, float)) or not math.isfinite(megapixels):
        raise InputError(f"megapixels must be a number, got {megapixels!r}")
    if not MIN_MEGAPIXELS <= megapixels <= MAX_MEGAPIXELS:
        raise InputError(f"megapixels {megapixels} is outside [{MIN_MEGAPIXELS}, {MAX_MEGAPIXELS}]: the default "
                         f"{DEFAULT_MEGAPIXELS:.2f} is the published 1536x1152; above {MAX_MEGAPIXELS} FLUX leaves the "
                         f"sizes it was trained at and a 24 GB GPU runs out of memory")
    return float(megapixels)


def check_photo_size(width: int, height: int) -> None:
    """A photo the working-size rule can handle, or an error saying what to do."""
    if min(width, height) < MIN_PHOTO_SIDE:
        raise InputError(f"the photo is {width}x{height} pixels; both sides must be at least {MIN_PHOTO_SIDE} "
                         f"(a strip this thin has no scene to decompose): crop or pad it")
    aspect = max(width, height) / min(width, height)
    if aspect > MAX_ASPECT:
        raise InputError(f"the photo is {width}x{height}, an aspect of {aspect:.1f}:1; at most {MAX_ASPECT:g}:1 is "
                         f"decomposed as one image (FLUX would see a strip {TOKEN} pixels high): crop it into parts "
                         f"of at most {MAX_ASPECT:g}:1, or pad it")


def _round_side(side: float) -> int:
    return max(TOKEN, int(round(side / TOKEN)) * TOKEN)


def working_size(width: int, height: int, megapixels: float = DEFAULT_MEGAPIXELS) -> tuple[int, int]:
    """(width, height) in multiples of 16 with the photo's aspect and an area of `megapixels`
    (before rounding), each side at most MAX_SIDE."""
    check_photo_size(width, height)
    megapixels = check_megapixels(megapixels)
    scale = math.sqrt(megapixels * 1e6 / (width * height))
    scale = min(scale, MAX_SIDE / max(width, height))
    return _round_side(width * scale), _round_side(height * scale)


def output_size(width: int, height: int, max_megapixels: float = MAX_OUTPUT_MEGAPIXELS) -> tuple[int, int]:
    """The photo's own size, or, above `max_megapixels`, the same aspect at that area."""
    if width * height <= max_megapixels * 1e6:
        return width, height
    scale = math.sqrt(max_megapixels * 1e6 / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def plan_photo(width: int, height: int, megapixels: float = DEFAULT_MEGAPIXELS,
               max_output_megapixels: float = MAX_OUTPUT_MEGAPIXELS) -> PhotoPlan:
    """Working and output sizes for a width x height photo (see the module docstring)."""
    working = working_size(width, height, megapixels)
    output = output_size(width, height, max_output_megapixels)
    warnings = ()
    if output != (width, height):
        warnings = (f"the photo is {width}x{height} ({width * height / 1e6:.0f} MP), above the "
                    f"{max_output_megapixels:g} MP output limit: its maps come back at {output[0]}x{output[1]} "
                    f"(aspect kept). Raise max_output_megapixels if the memory is there.",)
    return PhotoPlan((width, height), working, output, float(megapixels), warnings)
