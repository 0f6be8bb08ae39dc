"""The tiny models the real-ComfyUI tests put in a models folder, and the API-format graphs
(POST /prompt bodies) that use them."""
from __future__ import annotations

import dataclasses
import pathlib

from lumix_engine.flux.model import FluxConfig
from lumix_engine.tiny_random import TINY_FLUX, random_adapters, write_adapters, write_bfl_flux, write_taesd_vae


@dataclasses.dataclass(frozen=True)
class TinyModelNames:
    """File names as ComfyUI's loaders list them (relative to their model folder)."""
    flux: str
    vae: str
    lumix: str
    lumix_zero: str
    flux_config: FluxConfig


def write_tiny_models(models_dir: pathlib.Path, config: FluxConfig = TINY_FLUX) -> TinyModelNames:
    """Tiny random FLUX (BFL layout), TAESD-layout VAE and LumiX checkpoints (random, and a
    G3 = 0 no-op) under `models_dir`, as ComfyUI's loaders list them."""
    names = TinyModelNames(flux="lumix_tiny_flux.safetensors", vae="lumix_tiny_vae.safetensors",
                           lumix="lumix_tiny.safetensors", lumix_zero="lumix_tiny_zero.safetensors",
                           flux_config=config)
    for folder in ("diffusion_models", "vae", "lumix"):
        (models_dir / folder).mkdir(parents=True, exist_ok=True)
    write_bfl_flux(models_dir / "diffusion_models" / names.flux, config)
    write_taesd_vae(models_dir / "vae" / names.vae)
    write_adapters(models_dir / "lumix" / names.lumix, random_adapters(config, rank=2, seed=2))
    # G3 = 0: the no-op adapter of a fresh training run.
    write_adapters(models_dir / "lumix" / names.lumix_zero, random_adapters(config, rank=2, seed=2, g3_std=0.0))
    return names


def conditioning_node(models: TinyModelNames, seed: int, guidance: float = 3.5, tokens: int = 8) -> dict:
    return {"class_type": "LumiXTestConditioning",
            "inputs": {"seed": seed, "tokens": tokens, "guidance": guidance,
                       "context_dim": models.flux_config.context_in_dim,
                       "pooled_dim": models.flux_config.vec_in_dim}}


def core_flux_graph(models: TinyModelNames, seed: int = 0, steps: int = 2, cfg: float = 1.0,
                    width: int = 64, height: int = 64, batch_size: int = 1,
                    prefix: str = "lumix_smoke") -> dict:
    """UNETLoader -> KSampler (test conditioning) -> VAEDecode -> SaveImage, core nodes only."""
    return {
        "unet": {"class_type": "UNETLoader",
                 "inputs": {"unet_name": models.flux, "weight_dtype": "default"}},
        "positive": conditioning_node(models, seed=1),
        "negative": conditioning_node(models, seed=2),
        "latent": {"class_type": "EmptySD3LatentImage",
                   "inputs": {"width": width, "height": height, "batch_size": batch_size}},
        "sampler": {"class_type": "KSampler",
                    "inputs": {"model": ["unet", 0], "positive": ["positive", 0],
                               "negative": ["negative", 0], "latent_image": ["latent", 0],
                               "seed": seed, "steps": steps, "cfg": cfg,
                               "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": models.vae}},
        "decode": {"class_type": "VAEDecode",
                   "inputs": {"samples": ["sampler", 0], "vae": ["vae", 0]}},
        "save": {"class_type": "SaveImage",
                 "inputs": {"images": ["decode", 0], "filename_prefix": prefix}},
    }


def lumix_graph(models: TinyModelNames, seed: int = 0, steps: int = 2, cfg: float = -1.0, guidance: float = -1.0,
                width: int = 64, height: int = 64, scenes: int = 1, strength: float = 1.0, qba: bool = True,
                lumix: str | None = None, scheduler: str = "published", sampler: str = "euler",
                given: dict[str, str] | None = None, prefix: str = "lumix", numerics: str | None = None) -> dict:
    """UNETLoader -> LumiXLoader -> LumiXSampler -> SaveLatent, VAEDecode -> SplitIntrinsics -> 5 x SaveImage.

    `given` maps a map name to an input-folder image file (decomposition)."""
    graph = {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": models.flux, "weight_dtype": "default"}},
        "lumix": {"class_type": "LumiXLoader", "inputs": {"model": ["unet", 0], "lumix_name": lumix or models.lumix,
                                                          "strength": strength, "qba": qba}},
        "positive": conditioning_node(models, seed=1),
        "negative": conditioning_node(models, seed=2),
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": models.vae}},
        "sampler": {"class_type": "LumiXSampler",
                    "inputs": {"model": ["lumix", 0], "positive": ["positive", 0], "negative": ["negative", 0],
                               "seed": seed, "steps": steps, "cfg": cfg, "guidance": guidance, "width": width,
                               "height": height, "scenes": scenes, "sampler_name": sampler,
                               "scheduler": scheduler, **({"numerics": numerics} if numerics else {})}},
        "save_latent": {"class_type": "SaveLatent",
                        "inputs": {"samples": ["sampler", 0], "filename_prefix": f"latents/{prefix}"}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sampler", 0], "vae": ["vae", 0]}},
        "split": {"class_type": "SplitIntrinsics", "inputs": {"images": ["decode", 0]}},
    }
    for index, name in enumerate(("albedo", "irradiance", "color", "depth", "normal")):
        graph[f"save_{name}"] = {"class_type": "SaveImage",
                                 "inputs": {"images": ["split", index], "filename_prefix": f"{prefix}_{name}"}}
    if given:
        graph["sampler"]["inputs"]["vae"] = ["vae", 0]
        for name, filename in given.items():
            graph[f"load_{name}"] = {"class_type": "LoadImage", "inputs": {"image": filename}}
            graph["sampler"]["inputs"][name] = [f"load_{name}", 0]
    return graph
