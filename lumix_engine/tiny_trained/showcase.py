"""The demo's trained-model part: the shipped tiny LumiX generates five maps from a prompt
and decomposes a held-out render, with the exact ground truth beside its outputs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from ..intrinsics import render_scene
from ..modalities import MAP_NAMES
from .data import HELDOUT_SEED_START
from .metrics import coherence_per_scene, decomposition_errors
from .model import ASSETS, TinyLumiX
from .text import layout_caption, unknown_words

STEPS = 10


@dataclass
class Showcase:
    prompt: str
    generated: dict[str, torch.Tensor]
    heldout_caption: str
    heldout_truth: dict[str, torch.Tensor]
    decomposed: dict[str, torch.Tensor]
    scores: dict[str, dict[str, float]]
    lines: list[str] = field(default_factory=list)


def run_showcase(prompt: Optional[str] = None, seed: int = 0, steps: int = STEPS,
                 folder: Path = ASSETS) -> Showcase:
    model = TinyLumiX.load(folder)
    heldout = render_scene(HELDOUT_SEED_START + seed, model.base.config.size, model.base.config.size)
    caption = layout_caption(heldout.scene)
    prompt = prompt or layout_caption(render_scene(HELDOUT_SEED_START + seed + 1, 16, 16).scene)
    generated = model.generate(prompt, seed=seed, steps=steps)
    truth = {name: image.float() for name, image in heldout.images().items()}
    decomposed = model.decompose(truth["color"], caption, seed=seed, steps=steps)
    generation = {k: round(float(v[0]), 4) for k, v in coherence_per_scene(generated).items()}
    errors = decomposition_errors(decomposed, truth["albedo"], truth["irradiance"], heldout.depth.float(),
                                  heldout.normal.float())
    decomposition = {k: round(float(v[0]), 4) for k, v in errors.items()}
    lines = [f"text -> five maps ({model.base.config.size}x{model.base.config.size}, {steps} Euler steps, one shared "
             f"noise): \"{prompt}\""]
    unknown = unknown_words(model.base.tokenizer, prompt)
    if unknown:
        lines.append(f"  note: words the tiny model never saw are ignored: {', '.join(unknown)}")
    lines.append("  coherence: " + ", ".join(f"{k} {v}" for k, v in generation.items()))
    lines.append(f"decomposition of a held-out render (seed {HELDOUT_SEED_START + seed}, never trained on), color "
                 f"given, caption \"{caption}\"")
    lines.append("  errors vs exact ground truth: " + ", ".join(f"{k} {v}" for k, v in decomposition.items()))
    return Showcase(prompt, generated, caption, truth, decomposed,
                    {"generation": generation, "decomposition": decomposition}, lines)


def showcase_rows(show: Showcase):
    from ..image_io import maps_rows
    return (maps_rows("TRAINED tiny LumiX: text -> maps", show.generated)
            + maps_rows("held-out render: exact ground truth", show.heldout_truth)
            + maps_rows("TRAINED tiny LumiX: decomposition of that render's color", show.decomposed))


__all__ = ["Showcase", "run_showcase", "showcase_rows", "MAP_NAMES"]
