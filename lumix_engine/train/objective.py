"""The rectified-flow objective (FLUX's, and LumiX's per the paper).

x_t = t * noise + (1 - t) * x0, with t in [0, 1] (1 = noise, 0 = data, as in sampling.py);
the model predicts the velocity v = noise - x0, so an Euler step x <- x + (t_next - t) v
moves toward the data. t is drawn from a logit-normal distribution (SD3 / FLUX training
practice), which spends most samples at mid noise levels.

LumiX batches are scene-major, five maps per scene. Training choices, matching
the published inference: ONE noise per scene, repeated for its five maps, and ONE timestep
per scene for all its generated maps. Maps held as conditions (decomposition,
Image -> maps) enter clean, at t = 0, and are left out of the loss.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..modalities import NUM_MAPS, QUERY_SOURCE


def logit_normal_timesteps(count: int, generator: torch.Generator, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    return torch.sigmoid(mean + std * torch.randn(count, generator=generator))


def noisy(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = t noise + (1 - t) x0, t per batch entry."""
    t = t.view(-1, *([1] * (x0.ndim - 1))).to(x0)
    return t * noise + (1 - t) * x0


def flow_loss(velocity: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error to v = noise - x0, averaged over the entries with weight 1."""
    per_entry = ((velocity.float() - (noise - x0).float()) ** 2).flatten(1).mean(1)
    if weight is None:
        return per_entry.mean()
    return (per_entry * weight).sum() / weight.sum().clamp_min(1.0)


@dataclass(frozen=True)
class ConditionPolicy:
    """Which maps of a training scene are held as clean conditions.

    With probability `color` only the color map is held (image -> the other four, the
    published decomposition); with probability `any_subset` a random non-empty proper
    subset (e.g. depth -> the rest); otherwise none (text -> five maps).
    """
    color: float = 0.35
    any_subset: float = 0.15

    def sample(self, scenes: int, generator: torch.Generator) -> torch.Tensor:
        """bool [scenes, 5], True = held at t = 0."""
        held = torch.zeros(scenes, NUM_MAPS, dtype=torch.bool)
        draw = torch.rand(scenes, generator=generator)
        subsets = torch.rand(scenes, NUM_MAPS, generator=generator) < 0.5
        for k in range(scenes):
            if draw[k] < self.color:
                held[k, QUERY_SOURCE] = True
            elif draw[k] < self.color + self.any_subset:
                held[k] = subsets[k]
                if held[k].all() or not held[k].any():
                    held[k] = False
                    held[k, QUERY_SOURCE] = True
        return held


def lumix_batch_loss(velocity_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor,
                     generator: torch.Generator, policy: ConditionPolicy = ConditionPolicy(),
                     shared: bool = True) -> torch.Tensor:
    """The LumiX training loss for x0 [5k, C, H, W] (scene-major latents of the five maps).

    `velocity_fn(x_t, t_per_entry)` runs the patched FLUX. shared=True: one noise and one
    timestep per scene (the published choice); False: every map its own (ablation (d)).
    """
    scenes = x0.shape[0] // NUM_MAPS
    shape = x0.shape[1:]
    if shared:
        noise = torch.randn((scenes, *shape), generator=generator).repeat_interleave(NUM_MAPS, 0)
        t = logit_normal_timesteps(scenes, generator).repeat_interleave(NUM_MAPS)
    else:
        noise = torch.randn((scenes * NUM_MAPS, *shape), generator=generator)
        t = logit_normal_timesteps(scenes * NUM_MAPS, generator)
    held = policy.sample(scenes, generator).reshape(-1)
    t = t.masked_fill(held, 0.0)
    noise, t = noise.to(x0), t.to(x0)
    velocity = velocity_fn(noisy(x0, noise, t), t)
    return flow_loss(velocity, x0, noise, (~held).to(x0.dtype))
