"""The shipped tiny LumiX (lumix_engine/assets/tiny_lumix, a TOY) behind the photo path of
`decompose` and `batch` (`--tiny`): anyone can try the whole path (working size from the
photo, ensembles, upsampling, maps at the photo's size, the batch manifest) on a fresh
machine with no download.

It is a toy: trained at 64 x 64 on procedural renders only (its MODEL_CARD.md), with its
own latent mapping in place of the FLUX VAE and its own text encoder. The photo path works
at 256 x 256 or more (`method.resolution.MIN_MEGAPIXELS`), four times the side it was
trained at, so its maps show the machinery, not LumiX's quality. Every output says so.

`TinyPhotoPipeline` is a `LumiXPipeline` whose model-facing steps (encode, noise, sample,
decode) are the tiny model's; the photo steps around them (`decompose`,
`decompose_prepared`, `apps.photo`) are the pipeline's own, so the path is the same code.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from ..errors import InputError
from ..method.resolution import MIN_MEGAPIXELS
from ..method.sampling import GivenMaps, Settings, check_size, schedule, shared_noise
from ..modalities import broadcast_to_scene
from ..tiny_trained.model import ASSETS, TinyLumiX
from ..tiny_trained.showcase import STEPS
from .pipeline import LumiXPipeline, StepCallback

TOY_LABEL = ("TOY MODEL: the shipped tiny LumiX (64x64, trained on procedural renders only), not the published "
             "LumiX; its maps show the photo path, not LumiX's quality")
DEFAULT_MEGAPIXELS = MIN_MEGAPIXELS   # the nearest the photo path comes to its 64 x 64 training size


class TinyPhotoPipeline(LumiXPipeline):
    """`decompose` (and the batch's `decompose_prepared`) on the shipped tiny model, CPU."""

    def __init__(self, model: TinyLumiX, progress: bool = True, source: Union[str, Path] = ASSETS) -> None:
        # Not LumiXPipeline.__init__: there is no diffusers transformer, VAE or T5 to place.
        self.model = model
        self.device, self.dtype, self.numerics, self.strength = torch.device("cpu"), torch.float32, "engine", 1.0
        self.progress = progress
        self.source = str(source)
        self._unpatch = None

    @classmethod
    def load(cls, folder: Union[str, Path] = ASSETS, progress: bool = True) -> "TinyPhotoPipeline":
        return cls(TinyLumiX.load(folder), progress=progress, source=folder)

    def generate(self, *args: Any, **kwargs: Any):
        raise InputError("the tiny model is offered for decomposition only (--tiny with decompose or batch); "
                         "`python -m lumix_engine demo` shows its text -> maps")

    def _settings(self, defaults: Settings, **overrides: Any) -> Settings:
        if overrides.get("cfg") not in (None, 1.0):
            raise InputError("the tiny model has no classifier-free guidance: leave --cfg unset (or 1)")
        values = asdict(replace(defaults, steps=STEPS, cfg=1.0))
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = Settings(**values)
        check_size(settings.width, settings.height)
        return settings

    def _record(self, mode: str, settings: Settings, **extra: Any) -> dict[str, Any]:
        return {"mode": mode, **extra, **asdict(settings), "dtype": "float32", "device": "cpu",
                "model": "tiny", "lumix": self.source, "note": TOY_LABEL}

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.base.codec.encode(images.float())

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model.base.codec.decode(latent[None]) for latent in latents])

    def _noise(self, scenes: int, settings: Settings, seed: Union[int, Sequence[int]]) -> torch.Tensor:
        # The tiny codec downsamples by 4 (the FLUX VAE by 8): 16 channels at H/4 x W/4.
        return shared_noise(scenes, (16, settings.height // 4, settings.width // 4), seed)

    @torch.no_grad()
    def _sample(self, prompts: Sequence[str], settings: Settings, noise: torch.Tensor, given: GivenMaps,
                callback: Optional[StepCallback]) -> torch.Tensor:
        base = self.model.base
        context, pooled = base.encode_prompts(list(prompts))
        context, pooled = broadcast_to_scene(context), broadcast_to_scene(pooled)

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return base.velocity(x, t, context, pooled, self.model.patches)

        return self._euler(velocity, noise, schedule(settings.steps, settings.width, settings.height), given,
                           settings.steps, callback)
