"""Batch settings: what decides a photo's maps, the working size a photo is decomposed at,
and the settings key a resumed run compares."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Optional

from ...errors import InputError
from ...intrinsics.upsample import METHODS
from ...method.resolution import DEFAULT_MEGAPIXELS, MAX_OUTPUT_MEGAPIXELS, check_megapixels, plan_photo
from ...method.sampling import DECOMPOSITION, check_size
from ...modalities import MAP_NAMES
from ..photo import check_ensemble_size

DEFAULT_MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class BatchSettings:
    """What decides a photo's maps (plus `batch_size`, which decides how photos are grouped).
    Unset sampling values are the published decomposition settings. Each photo is worked on
    at a size chosen from it (`megapixels`, aspect kept) and its maps come back at its own
    size, exactly as `decompose` and the ComfyUI node do (`apps.photo`); `width` and `height`
    together fix the working and output size instead (every photo resized to it)."""
    prompt: str = ""
    captions: bool = False
    seed: int = 0
    steps: Optional[int] = None
    cfg: Optional[float] = None
    guidance: Optional[float] = None
    width: Optional[int] = None
    height: Optional[int] = None
    negative_prompt: Optional[str] = None
    token_count: Optional[str] = None
    maps: tuple[str, ...] = MAP_NAMES
    batch_size: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    scores: bool = True
    megapixels: float = DEFAULT_MEGAPIXELS
    ensemble_size: int = 1
    upsample: str = "guided"
    max_output_megapixels: float = MAX_OUTPUT_MEGAPIXELS

    @property
    def fixed_size(self) -> Optional[tuple[int, int]]:
        return None if self.width is None else (self.width, self.height)

    def sampling(self) -> dict[str, Any]:
        """The sampling settings but the size (which each photo decides)."""
        values = asdict(DECOMPOSITION)
        values.update({k: getattr(self, k) for k in values if getattr(self, k, None) is not None})
        values.pop("width")
        values.pop("height")
        return values

    def sampling_overrides(self) -> dict[str, Any]:
        """The sampling arguments of `LumiXPipeline.decompose_prepared` (unset: published)."""
        return {k: getattr(self, k) for k in ("steps", "cfg", "guidance", "negative_prompt", "token_count")}

    def check(self) -> "BatchSettings":
        unknown = [name for name in self.maps if name not in MAP_NAMES]
        if unknown or not self.maps:
            raise InputError(f"--maps {','.join(self.maps)}: name some of {', '.join(MAP_NAMES)}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: give 1 or more scenes per forward")
        if (self.width is None) != (self.height is None):
            raise InputError("give --width and --height together (a fixed size), or neither (each photo's own size)")
        if self.fixed_size is not None:
            check_size(*self.fixed_size)
        check_megapixels(self.megapixels)
        check_ensemble_size(self.ensemble_size)
        if self.upsample not in METHODS:
            raise InputError(f"--upsample {self.upsample!r} is unknown; use one of {', '.join(METHODS)}")
        return self

    def record(self, models: dict[str, str]) -> dict[str, Any]:
        """Everything that decides the maps, as recorded in the manifest; its hash is the
        settings key a resumed run compares."""
        return {"mode": "decompose", "given": "color", "prompt": self.prompt, "captions": self.captions,
                "seed": self.seed, **self.sampling(), "maps": list(self.maps),
                "working_size": "fixed (width x height)" if self.fixed_size else "from the photo (megapixels)",
                "fixed_size": list(self.fixed_size) if self.fixed_size else None, "megapixels": self.megapixels,
                "ensemble_size": self.ensemble_size, "upsample": self.upsample,
                "max_output_megapixels": self.max_output_megapixels, "models": models}


def working_size(size: tuple[int, int], settings: BatchSettings) -> tuple[int, int]:
    """The (width, height) a photo of `size` (width, height) is decomposed at, by the rule of
    `decompose` (`method.resolution`), or the fixed size. The worker checks that the photo
    it decodes plans to the same size."""
    if settings.fixed_size is not None:
        return settings.fixed_size
    return plan_photo(size[0], size[1], settings.megapixels, settings.max_output_megapixels).working


def settings_key(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]
