"""Batch settings: what decides a photo's maps, the working size a photo is decomposed at,
and the settings key a resumed run compares."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Optional

from ...errors import InputError
from ...method.sampling import DECOMPOSITION, Settings, check_size
from ...modalities import MAP_NAMES

DEFAULT_MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class BatchSettings:
    """What decides a photo's maps (plus `batch_size`, which decides how photos are grouped).
    Unset sampling values are the published decomposition settings."""
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

    def sampling(self) -> Settings:
        values = asdict(DECOMPOSITION)
        values.update({k: getattr(self, k) for k in values if getattr(self, k, None) is not None})
        return Settings(**values)

    def check(self) -> "BatchSettings":
        unknown = [name for name in self.maps if name not in MAP_NAMES]
        if unknown or not self.maps:
            raise InputError(f"--maps {','.join(self.maps)}: name some of {', '.join(MAP_NAMES)}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: give 1 or more scenes per forward")
        sampling = self.sampling()
        check_size(sampling.width, sampling.height)
        return self

    def record(self, models: dict[str, str]) -> dict[str, Any]:
        """Everything that decides the maps, as recorded in the manifest; its hash is the
        settings key a resumed run compares."""
        return {"mode": "decompose", "given": "color", "prompt": self.prompt, "captions": self.captions,
                "seed": self.seed, **asdict(self.sampling()), "maps": list(self.maps),
                "working_size": "fixed (width x height)", "models": models}


def working_size(size: tuple[int, int], settings: BatchSettings) -> tuple[int, int]:
    """The (width, height) a photo of `size` is decomposed at: the one place that decides it.
    Today the pipeline's fixed size (--width/--height, else the published 1536 x 1152)."""
    sampling = settings.sampling()
    return sampling.width, sampling.height


def settings_key(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]
