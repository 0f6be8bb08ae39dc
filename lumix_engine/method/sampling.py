"""Sampling math shared by the ComfyUI sampler and the standalone pipeline: FLUX's rectified-flow schedule, Euler steps, true CFG, shared noise and held maps.

Pure functions: the published schedule (with its token-count quirk), the Euler flow step,
true classifier-free guidance, one shared noise per scene, and condition maps held at t = 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional, Sequence

import torch

from ..errors import InputError
from ..modalities import MAP_NAMES, NUM_MAPS, map_index

TokenCount = Literal["published", "true"]
Numerics = Literal["engine", "authors"]
NUMERICS = ("engine", "authors")
NEGATIVE_PROMPT = "blurry, low quality, artifacts, distorted, noisy, pixelated, jpeg artifacts"


@dataclass(frozen=True)
class Settings:
    """Published sampling settings (the authors' inference configs for text -> maps and image -> maps)."""
    steps: int = 50
    cfg: float = 3.0
    guidance: float = 3.5
    width: int = 512
    height: int = 512
    negative_prompt: str = NEGATIVE_PROMPT
    token_count: TokenCount = "published"


TEXT_TO_MAPS = Settings()
# Decomposition: guidance embedding 1.0 and no true CFG; the published runs use 1536 x 1152.
DECOMPOSITION = Settings(cfg=1.0, guidance=1.0, width=1536, height=1152, negative_prompt="")


AUTO = -1.0


def resolve_guidance(cfg: float, guidance: float, decomposing: bool) -> tuple[float, float]:
    """Replace AUTO (-1) by the published value: text -> maps uses cfg 3.0 and guidance 3.5,
    decomposition (any map given) cfg 1.0 (no true CFG) and guidance 1.0."""
    published = DECOMPOSITION if decomposing else TEXT_TO_MAPS
    cfg = published.cfg if cfg == AUTO else cfg
    guidance = published.guidance if guidance == AUTO else guidance
    if cfg < 0 or guidance < 0:
        raise InputError(f"cfg {cfg} and guidance {guidance} must be >= 0 (or -1 for the published default)")
    return cfg, guidance


def check_size(width: int, height: int, max_side: int = 4096) -> None:
    """FLUX latents are 1/8 of the image and packed 2 x 2, so sides must divide by 16."""
    for name, side in (("width", width), ("height", height)):
        if side <= 0 or side % 16:
            fixed = max(16, round(side / 16) * 16)
            raise InputError(f"{name} {side} is not a positive multiple of 16 (FLUX packs 2x2 latent pixels, and the "
                             f"VAE downsamples by 8); use {fixed}.")
        if side > max_side:
            raise InputError(f"{name} {side} exceeds {max_side}, beyond what FLUX.1 supports; use at most {max_side}.")


def check_steps(steps: int) -> None:
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}; the published setting is 50.")


def token_count(width: int, height: int, mode: TokenCount = "published") -> float:
    """The n in mu(n). 'published' reproduces the authors' scripts, (W//8)(H//8)//256 in
    integer division (16 at 512 x 512; 16, not 16.5, at 528 x 512); 'true' is the real image
    token count (W/16)(H/16) that FLUX's reference uses."""
    if mode == "published":
        return float((width // 8) * (height // 8) // 256)
    if mode == "true":
        return (width / 16) * (height / 16)
    raise InputError(f"token_count must be 'published' or 'true', got {mode!r}")


def mu_for_tokens(n: float, base_shift: float = 0.5, max_shift: float = 1.15) -> float:
    """mu linear in n through (256, 0.5) and (4096, 1.15), evaluated as slope * n + intercept
    (the authors' and BFL's order of operations, so the float64 value is theirs to the bit)."""
    slope = (max_shift - base_shift) / (4096 - 256)
    intercept = base_shift - slope * 256
    return slope * n + intercept


def time_shift(mu: float, t: torch.Tensor) -> torch.Tensor:
    """t' = e^mu / (e^mu + (1/t - 1)); t = 0 stays 0."""
    with torch.no_grad():
        return torch.where(t > 0, math.exp(mu) / (math.exp(mu) + (1 / t.clamp_min(1e-12) - 1)), torch.zeros_like(t))


def schedule(steps: int, width: int, height: int, mode: TokenCount = "published",
             dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Timesteps from 1 to 0 for `steps` Euler steps, [steps + 1] in `dtype`. float64 by
    default; float32 is the authors' scripts to the bit (a float32 linspace shifted in
    float32 arithmetic, as BFL's get_schedule computes it)."""
    check_steps(steps)
    t = torch.linspace(1, 0, steps + 1, dtype=dtype)
    return time_shift(mu_for_tokens(token_count(width, height, mode)), t)


def euler_step(x: torch.Tensor, velocity: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """x <- x + (t_next - t) v (rectified flow, t from 1 = noise to 0 = data)."""
    return x + (t_next - t) * velocity


def guided_velocity(positive: torch.Tensor, negative: torch.Tensor, scale: float) -> torch.Tensor:
    """True classifier-free guidance: v_neg + scale (v_pos - v_neg)."""
    return negative + scale * (positive - negative)


def shared_noise(scenes: int, shape: Sequence[int], seed: int | Sequence[int], dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """One Gaussian noise per scene, repeated for its five maps: [5 * scenes, *shape].

    Drawn on the CPU from `seed`, so the same seed gives the same noise on every device.
    `seed` as a sequence gives one seed per scene, each scene drawn from its own generator:
    scene k's noise is then what a one-scene run with seed[k] draws, whatever batch it is in.
    """
    if isinstance(seed, int):
        generator = torch.Generator("cpu").manual_seed(int(seed))
        per_scene = torch.randn((scenes, *shape), generator=generator, dtype=torch.float32)
    else:
        seeds = [int(s) for s in seed]
        if len(seeds) != scenes:
            raise InputError(f"{len(seeds)} seeds for {scenes} scenes; give one seed, or one per scene")
        per_scene = torch.cat([shared_noise(1, shape, s)[:1] for s in seeds])
    noise = per_scene.unsqueeze(1).expand(scenes, NUM_MAPS, *shape).reshape(scenes * NUM_MAPS, *shape)
    return noise.to(device=device, dtype=dtype)


def authors_noise(scenes: int, shape: Sequence[int], seed: int, dtype: torch.dtype,
                  device: torch.device | str) -> torch.Tensor:
    """One noise per scene as the authors' scripts draw it, repeated for its five maps:
    [5 * scenes, *shape] in `dtype` on `device`.

    Their scripts draw randn(1, *shape) directly in the model's dtype (bf16) with a
    generator on the model's device seeded with the seed, so the values depend on the
    device and dtype. Scene k uses seed + k (their scripts draw one scene per run, with
    `seed`), so scene 0 is the noise of their run with the same seed.
    """
    device = torch.device(device)
    per_scene = [torch.randn((1, *shape), generator=torch.Generator(device).manual_seed(int(seed) + k),
                             device=device, dtype=dtype) for k in range(scenes)]
    return torch.cat(per_scene).repeat_interleave(NUM_MAPS, dim=0)


@dataclass
class GivenMaps:
    """Maps supplied by the user (decomposition): held at t = 0 and never updated.

    `latents[name]` is [scenes, C, h, w] (the VAE latent of that map for every scene).
    """
    latents: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shapes = {tuple(v.shape) for v in self.latents.values()}
        if len(shapes) > 1:
            raise InputError(f"given maps have different latent shapes {sorted(shapes)}; encode them at one size")
        self.indices = sorted(map_index(name) for name in self.latents)
        if len(self.indices) == NUM_MAPS:
            raise InputError("all five maps are given, so there is nothing to generate; leave at least one out")

    @property
    def names(self) -> list[str]:
        return [MAP_NAMES[i] for i in self.indices]

    def __bool__(self) -> bool:
        return bool(self.indices)

    @property
    def scenes(self) -> int:
        return next(iter(self.latents.values())).shape[0] if self.latents else 0

    def mask(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """[batch] bool, True on the rows of given maps."""
        given = torch.zeros(NUM_MAPS, dtype=torch.bool)
        given[self.indices] = True
        return given.repeat(batch // NUM_MAPS).to(device)

    def hold(self, x: torch.Tensor, chunks: int = 1) -> torch.Tensor:
        """x with the given maps' rows replaced by their latents.

        `chunks` > 1 when x holds several guidance branches ([uncond scenes, cond scenes]),
        each laid out like one batch of the scenes.
        """
        if not self:
            return x
        scenes = x.shape[0] // (NUM_MAPS * chunks)
        if self.scenes != scenes or x.shape[0] != scenes * NUM_MAPS * chunks:
            raise InputError(f"{self.scenes} given image(s) per map but {scenes} scene(s); give one image per scene "
                             f"or set the scene count to {self.scenes}")
        out = x.clone().view(chunks, scenes, NUM_MAPS, *x.shape[1:])
        for name, latent in self.latents.items():
            if latent.shape[1:] != x.shape[1:]:
                raise InputError(f"the given {name} latent is {tuple(latent.shape[1:])}, the sampled latent is "
                                 f"{tuple(x.shape[1:])}; resize the {name} image to the generation size")
            out[:, :, map_index(name)] = latent.to(x)
        return out.view_as(x)

    def timesteps(self, t: float, batch: int, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Per-entry timesteps [batch]: t for generated maps, 0 for given ones."""
        steps = torch.full((batch,), float(t), device=device, dtype=dtype)
        return steps.masked_fill(self.mask(batch, device), 0.0) if self else steps


VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sample_euler(velocity: VelocityFn, noise: torch.Tensor, timesteps: torch.Tensor,
                 given: Optional[GivenMaps] = None,
                 callback: Optional[Callable[[int, torch.Tensor], None]] = None) -> torch.Tensor:
    """Integrate from noise (t = 1) to data (t = 0). `velocity(x, t_per_entry)` returns v.

    Given maps enter as their latents at t = 0 and are restored after every step, so their
    rows come out bit-identical. `callback(step, x)` may raise to interrupt; x is a fresh
    tensor each step, so an interrupted run leaves nothing half-updated behind.
    """
    given = given or GivenMaps()
    x = given.hold(noise)
    for step in range(len(timesteps) - 1):
        t, t_next = float(timesteps[step]), float(timesteps[step + 1])
        v = velocity(x, given.timesteps(t, x.shape[0], x.device, x.dtype))
        x = given.hold(euler_step(x, v, t, t_next))
        if callback is not None:
            callback(step, x)
    return x
