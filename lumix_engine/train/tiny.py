"""Training the tiny LumiX from nothing: data, latent mapping, base (text -> color), adapters.

    python -m lumix_engine.train tiny --out lumix_engine/assets/tiny_lumix

1. Render `scenes` training scenes at 64 x 64 (seeds 0..scenes-1) with layout captions.
2. Fit the linear latent mapping (tiny_trained/latent.py) on the first renders, encode every map.
3. Stage 1, the base: text encoder + tiny FLUX trained together as text -> color with the
   rectified-flow objective, guidance embedding fed a constant 1.0, captions dropped 10%.
   The stage-1 base is saved in the work folder: the ablation's frozen base.
4. Stage 1b, the learned decoder (latent.DeblockingDecoder) on noisy latents of all maps.
5. Stage 2, LumiX: QBA + Tensor LoRA trained on 5-map batches (one noise and one timestep
   per scene; some maps held clean at t = 0, see objective.ConditionPolicy: color in 75 %
   of scenes, `held_color`, because decomposition is what the tiny model is judged on),
   through the engine's own `block_patches`. The paper freezes FLUX; the tiny recipe also
   fine-tunes the tiny base at a quarter of the adapters' rate (`adapter_base_lr`; 0 freezes
   it, as the ablation does), because a base that has only seen color images leaves the
   adapters alone with everything a 12B base brings from pretraining.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from ..method.adapters import LumiXAdapters, new_adapters
from ..method.patch import block_patches
from ..modalities import NUM_MAPS, QUERY_SOURCE, broadcast_to_scene
from ..tiny_trained.data import SceneSet, render_scenes
from ..tiny_trained.latent import DeblockingDecoder
from ..tiny_trained.model import VARIANTS, TinyBase, TinyConfig, Variant, save_base, save_model
from ..tiny_trained.text import tokenize
from .loop import LoopConfig, Trainer
from .objective import ConditionPolicy, flow_loss, logit_normal_timesteps, lumix_batch_loss, noisy

log = logging.getLogger(__name__)
CAPTION_DROPOUT = 0.1


@dataclass
class TinyData:
    latents: torch.Tensor   # [N, 5, 16, h, w]
    ids: torch.Tensor       # [N, T] caption token ids

    def batch(self, scenes: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(len(self.ids), (scenes,), generator=generator)
        ids = self.ids[index].clone()
        dropped = torch.rand(scenes, generator=generator) < CAPTION_DROPOUT
        ids[dropped] = 0   # an empty caption: all padding
        return self.latents[index], ids


def prepare_data(base: TinyBase, scenes: SceneSet, fit_codec: bool = True, fit_count: int = 300) -> TinyData:
    if fit_codec:
        base.codec.fit(scenes.maps[:fit_count].flatten(0, 1))
    with torch.no_grad():
        latents = torch.stack([base.codec.encode(scenes.maps[:, m]) for m in range(NUM_MAPS)], dim=1)
    return TinyData(latents, tokenize(base.tokenizer, scenes.captions))


def base_loss_fn(base: TinyBase, data: TinyData, batch: int):
    """Stage 1: text -> color."""
    def loss(generator: torch.Generator) -> torch.Tensor:
        latents, ids = data.batch(batch, generator)
        x0 = latents[:, QUERY_SOURCE]
        noise = torch.randn(x0.shape, generator=generator)
        t = logit_normal_timesteps(batch, generator)
        context, pooled = base.text(ids)
        return flow_loss(base.velocity(noisy(x0, noise, t), t, context, pooled), x0, noise)
    return loss


def keep_per_map(adapters: LumiXAdapters) -> None:
    """Make every Tensor LoRA a plain per-map LoRA: G1[i, j] = 0 for j != i, kept at zero by
    masking its gradient, so map i's adapter reads map i only (ablations (c), (d)). The file
    layout is unchanged: a per-map LoRA is the Tensor LoRA with a diagonal G1."""
    for name, p in adapters.named_parameters():
        if name.endswith("G1"):
            eye = torch.eye(p.shape[0], dtype=p.dtype)[:, :, None]
            with torch.no_grad():
                p.mul_(eye)
            p.register_hook(lambda grad, eye=eye: grad * eye)


TEXT_ONLY = ConditionPolicy(color=0.0, any_subset=0.0)


def adapter_loss_fn(base: TinyBase, adapters: LumiXAdapters, variant: Variant, data: TinyData, scenes: int,
                    held: ConditionPolicy = ConditionPolicy()):
    """Stage 2: the five maps with the adapters patched in. `held` says which maps are held
    clean; a variant trained without held maps ignores it."""
    patches = block_patches(base.flux, adapters, qba=variant.qba)
    policy = held if variant.held_maps_in_training else TEXT_ONLY

    def loss(generator: torch.Generator) -> torch.Tensor:
        latents, ids = data.batch(scenes, generator)
        with torch.no_grad():
            context, pooled = base.text(ids)
        context, pooled = broadcast_to_scene(context), broadcast_to_scene(pooled)
        return lumix_batch_loss(lambda x, t: base.velocity(x, t, context, pooled, patches), latents.flatten(0, 1),
                                generator, policy, shared=variant.shared_noise)
    return loss


@dataclass
class TinyRecipe:
    """Everything the shipped weights depend on (recorded in the model card)."""
    scenes: int = 3000
    base_steps: int = 1000
    base_batch: int = 32
    base_lr: float = 1e-3
    adapter_steps: int = 2000
    adapter_scenes: int = 6
    adapter_lr: float = 2e-3
    adapter_final_lr: float = 0.0   # fraction of adapter_lr reached by a cosine decay (1.0: constant)
    adapter_base_lr: float = 0.25   # > 0: the base transformer is fine-tuned in stage 2 at this fraction of adapter_lr
    held_color: float = 0.75        # share of stage-2 scenes holding the color map (decomposition); v2: 0.35
    held_subset: float = 0.1        # share holding a random subset of maps (v2: 0.15); the rest: text -> maps
    rank: int = 16
    hidden: int = 96
    decoder_steps: int = 600        # 0: linear decoding only; else train latent.DeblockingDecoder
    decoder_batch: int = 32
    decoder_lr: float = 2e-3
    decoder_noise: float = 0.3      # latent noise levels drawn from [0, decoder_noise]
    seed: int = 0


def train_decoder(base: TinyBase, scenes: SceneSet, recipe: TinyRecipe, folder: Path) -> None:
    """Give the fitted latent mapping its learned decoder (latent.DeblockingDecoder) and train
    it on maps of every kind, the linear encoder frozen."""
    codec = base.codec
    torch.manual_seed(recipe.seed + 2)
    codec.learned = DeblockingDecoder(codec.block)
    base.config.learned_decoder = True
    images = scenes.maps.flatten(0, 1)

    def loss(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(images), (recipe.decoder_batch,), generator=generator)
        return codec.decoder_loss(images[index], recipe.decoder_noise, generator)

    Trainer(codec.learned, loss, LoopConfig(recipe.decoder_steps, lr=recipe.decoder_lr, warmup=30, seed=recipe.seed,
                                            final_lr_fraction=0.0), folder / "stage1b_decoder").run()
    codec.learned.requires_grad_(False).eval()


def train_base(recipe: TinyRecipe, folder: Path, scenes: Optional[SceneSet] = None) -> tuple[TinyBase, TinyData]:
    torch.manual_seed(recipe.seed)
    from ..tiny_trained.model import tiny_flux_config
    config = TinyConfig(flux=asdict(tiny_flux_config(hidden=recipe.hidden)), rank=recipe.rank)
    base = TinyBase(config)
    started = time.perf_counter()
    scenes = scenes or render_scenes(range(recipe.scenes))
    data = prepare_data(base, scenes)
    log.info("rendered and encoded %d scenes in %.0f s", len(scenes.seeds), time.perf_counter() - started)
    base.codec.requires_grad_(False)
    trainer = Trainer(base, base_loss_fn(base, data, recipe.base_batch),
                      LoopConfig(recipe.base_steps, lr=recipe.base_lr, warmup=100, seed=recipe.seed),
                      folder / "stage1_base")
    trainer.run()
    save_base(base, folder)   # the stage-1 base alone (text -> color): the ablation's frozen base
    if recipe.decoder_steps:
        train_decoder(base, scenes, recipe, folder)
    return base.eval(), data


def train_adapters(base: TinyBase, data: TinyData, recipe: TinyRecipe, variant: Variant, folder: Path,
                   save_to: Optional[Path] = None) -> LumiXAdapters:
    base.requires_grad_(False).eval()
    torch.manual_seed(recipe.seed + 1)
    adapters = new_adapters(base.flux.config.hidden_size, base.flux.config.depth,
                            base.flux.config.depth_single_blocks, rank=recipe.rank)
    if not variant.cross_map:
        keep_per_map(adapters)
    trained = torch.nn.ModuleDict({"adapters": adapters})
    if recipe.adapter_base_lr:
        # The tiny base has only ever seen color images (FLUX.1-dev has seen depth-, normal- and
        # albedo-like pictures among billions), so it may adapt too, slower than the adapters.
        base.flux.requires_grad_(True)
        trained["flux"] = base.flux
    trainer = Trainer(trained, adapter_loss_fn(base, adapters, variant, data, recipe.adapter_scenes,
                                               ConditionPolicy(recipe.held_color, recipe.held_subset)),
                      LoopConfig(recipe.adapter_steps, lr=recipe.adapter_lr, warmup=30, seed=recipe.seed + 1,
                                 final_lr_fraction=recipe.adapter_final_lr),
                      folder / f"stage2_adapters_{variant.name}", lr_scales={"flux.": recipe.adapter_base_lr})
    trainer.run()
    base.requires_grad_(False)
    adapters.requires_grad_(False)
    if save_to is not None:
        base.config.variant = asdict(variant)
        save_model(base, adapters, save_to)
    return adapters


def variant(name: str) -> Variant:
    return VARIANTS[name]
