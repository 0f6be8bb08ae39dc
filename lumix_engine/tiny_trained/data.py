"""Training and held-out scenes from the ground-truth renderer, as latents and captions.

Training scenes use seeds 0 .. n-1; held-out scenes (benchmarks, demo, tests) start at
HELDOUT_SEED_START, far from any training seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..intrinsics import render_scene
from ..modalities import MAP_NAMES
from .text import layout_caption

SIZE = 64
HELDOUT_SEED_START = 1_000_000


@dataclass
class SceneSet:
    """maps [N, 5, H, W, 3] images in the model's encodings (RenderedScene.images()), captions."""
    seeds: list[int]
    maps: torch.Tensor
    captions: list[str]


def render_scenes(seeds, size: int = SIZE) -> SceneSet:
    seeds = list(seeds)
    maps, captions = [], []
    for seed in seeds:
        rendered = render_scene(seed, size, size)
        images = rendered.images()
        maps.append(torch.stack([images[name][0] for name in MAP_NAMES]))
        captions.append(layout_caption(rendered.scene))
    return SceneSet(seeds, torch.stack(maps).float(), captions)


def heldout_seeds(count: int) -> range:
    return range(HELDOUT_SEED_START, HELDOUT_SEED_START + count)
