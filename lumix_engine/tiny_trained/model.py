"""The tiny LumiX: a FLUX-layout base (text -> color), its encoders, and LumiX adapters.

Files (one folder, see `lumix_engine/assets/tiny_lumix/MODEL_CARD.md`):
- `base.safetensors`: `flux.*` (BFL key names, `load_flux` reads them), `text.*` (the text
  encoder), `codec.*` (the linear latent mapping and its learned decoder);
- `lumix.safetensors`: the adapters, in exactly the published checkpoint layout;
- `tokenizer.json`, `config.json`.
Sampling is the engine's: `sampling.schedule`, `sampling.shared_noise`, `GivenMaps`,
`sample_euler`, with the adapters applied through `block_patches`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
from safetensors.torch import load_file, save_file

from ..flux.model import Flux, FluxConfig
from ..method.adapters import LumiXAdapters
from ..method.checkpoint import load_adapters, save_adapters
from ..method.patch import block_patches
from ..method.sampling import GivenMaps, sample_euler, schedule, shared_noise
from ..modalities import MAP_NAMES, NUM_MAPS, broadcast_to_scene, join_maps, split_maps
from .latent import BlockPCACodec
from .text import MAX_TOKENS, TinyTextEncoder, build_tokenizer, tokenize

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "tiny_lumix"
GUIDANCE = 1.0   # the tiny base is trained with a constant guidance embedding input


def tiny_flux_config(hidden: int = 96, heads: int = 4, depth: int = 2, single: int = 2, text_dim: int = 64) -> FluxConfig:
    from ..flux.model import default_axes_dim
    return FluxConfig(in_channels=64, out_channels=64, vec_in_dim=text_dim, context_in_dim=text_dim,
                      hidden_size=hidden, num_heads=heads, depth=depth, depth_single_blocks=single,
                      axes_dim=default_axes_dim(hidden // heads), guidance_embed=True)


@dataclass
class Variant:
    """How the adapters are trained and used (the ablations of evaluation/tiny_ablation.py).

    qba: query broadcast from the color map. cross_map: Tensor LoRA reads every map (False:
    G1 kept diagonal, a plain per-map LoRA). shared_noise: one noise and one timestep per
    scene (False: each map is its own generation, with its own noise and timestep).
    held_maps_in_training: some training scenes hold maps clean at t = 0 (objective.
    ConditionPolicy); False trains on text -> five maps only, so any decomposition it does
    is zero-shot, the setting in which the paper credits QBA.
    """
    name: str = "a"
    qba: bool = True
    cross_map: bool = True
    shared_noise: bool = True
    held_maps_in_training: bool = True


VARIANTS = {
    "a": Variant("a", qba=True, cross_map=True, shared_noise=True),
    "b": Variant("b", qba=False, cross_map=True, shared_noise=True),
    "c": Variant("c", qba=True, cross_map=False, shared_noise=True),
    "d": Variant("d", qba=False, cross_map=False, shared_noise=False),
    "e": Variant("e", qba=True, cross_map=True, shared_noise=True, held_maps_in_training=False),
    "f": Variant("f", qba=False, cross_map=True, shared_noise=True, held_maps_in_training=False),
}


@dataclass
class TinyConfig:
    flux: dict = field(default_factory=lambda: asdict(tiny_flux_config()))
    text_dim: int = 64
    max_tokens: int = MAX_TOKENS
    vocab_size: int = 0
    size: int = 64
    rank: int = 8
    variant: dict = field(default_factory=lambda: asdict(VARIANTS["a"]))
    learned_decoder: bool = False   # latent.DeblockingDecoder after the linear decoding

    @property
    def flux_config(self) -> FluxConfig:
        return FluxConfig(**self.flux)


class TinyBase(torch.nn.Module):
    """Text encoder + FLUX + latent mapping. `velocity` is FLUX's forward on latents."""

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = build_tokenizer(config.max_tokens)
        config.vocab_size = config.vocab_size or self.tokenizer.get_vocab_size()
        self.text = TinyTextEncoder(config.vocab_size, config.text_dim, config.text_dim, config.max_tokens)
        self.flux = Flux(config.flux_config)
        self.codec = BlockPCACodec(learned_decoder=config.learned_decoder)

    def encode_prompts(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.text(tokenize(self.tokenizer, list(prompts)))

    def velocity(self, latents: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor,
                 patches: Optional[dict] = None) -> torch.Tensor:
        options = {"patches_replace": {"dit": patches}} if patches else None
        guidance = torch.full((latents.shape[0],), GUIDANCE, dtype=latents.dtype)
        return self.flux.forward_latent(latents, timesteps, context, pooled, guidance, options)


class TinyLumiX:
    """The shipped model: generate five maps from a prompt, or decompose an image."""

    def __init__(self, base: TinyBase, adapters: LumiXAdapters, variant: Variant = VARIANTS["a"]) -> None:
        self.base, self.adapters, self.variant = base.eval().requires_grad_(False), adapters, variant
        self.adapters.requires_grad_(False)
        self.patches = block_patches(base.flux, adapters, qba=variant.qba)

    @classmethod
    def load(cls, folder: Path | str = ASSETS) -> "TinyLumiX":
        folder = Path(folder)
        base = load_base(folder)
        config = base.config
        return cls(base, load_adapters(folder / "lumix.safetensors"), Variant(**config.variant))

    def _noise(self, scenes: int, seed: int) -> torch.Tensor:
        shape = (16, self.base.config.size // 4, self.base.config.size // 4)
        if self.variant.shared_noise:
            return shared_noise(scenes, shape, seed)
        generator = torch.Generator().manual_seed(int(seed))
        return torch.randn((scenes * NUM_MAPS, *shape), generator=generator)

    @torch.no_grad()
    def sample(self, prompts: Sequence[str], seed: int = 0, steps: int = 10,
               given: Optional[dict[str, torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        """Five maps per prompt, {name: [k, H, W, 3]}. `given` {name: images [k, H, W, 3]}
        are held at t = 0 (decomposition)."""
        context, pooled = self.base.encode_prompts(prompts)
        context, pooled = broadcast_to_scene(context), broadcast_to_scene(pooled)
        held = GivenMaps({name: self.base.codec.encode(image) for name, image in (given or {}).items()})
        size = self.base.config.size

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.base.velocity(x, t, context, pooled, self.patches)

        latents = sample_euler(velocity, self._noise(len(prompts), seed), schedule(steps, size, size), held)
        maps = split_maps(self.base.codec.decode(latents))
        for name, image in (given or {}).items():
            maps[name] = image   # a given map is returned as given, not through the codec
        return maps

    def generate(self, prompts: Sequence[str] | str, seed: int = 0, steps: int = 10) -> dict[str, torch.Tensor]:
        return self.sample([prompts] if isinstance(prompts, str) else prompts, seed, steps)

    def decompose(self, color: torch.Tensor, prompts: Sequence[str] | str, seed: int = 0,
                  steps: int = 10) -> dict[str, torch.Tensor]:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        return self.sample(prompts, seed, steps, given={"color": color})


def save_base(base: TinyBase, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"flux.{k}": v for k, v in base.flux.state_dict().items()}
    tensors.update({f"text.{k}": v for k, v in base.text.state_dict().items()})
    tensors.update({f"codec.{k}": v for k, v in base.codec.state_dict().items()})
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(folder / "base.safetensors"))
    base.tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "config.json").write_text(json.dumps(asdict(base.config), indent=1) + "\n")


def load_base(folder: Path) -> TinyBase:
    config = TinyConfig(**json.loads((folder / "config.json").read_text()))
    base = TinyBase(config)
    state = load_file(str(folder / "base.safetensors"))
    for prefix, module in (("flux.", base.flux), ("text.", base.text), ("codec.", base.codec)):
        module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    return base.eval()


def save_model(base: TinyBase, adapters: LumiXAdapters, folder: Path) -> None:
    save_base(base, folder)
    save_adapters(adapters, folder / "lumix.safetensors")


__all__ = ["TinyBase", "TinyLumiX", "TinyConfig", "Variant", "VARIANTS", "ASSETS", "save_model", "load_base",
           "save_base", "tiny_flux_config", "join_maps", "MAP_NAMES"]
