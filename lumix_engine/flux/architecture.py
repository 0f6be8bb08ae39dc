"""Recognising a FLUX transformer in either layout, and refusing what is not one."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import ModelMismatchError

BFL, DIFFUSERS = "bfl", "diffusers"


@dataclass(frozen=True)
class FluxArchitecture:
    layout: str
    hidden_size: int
    num_heads: int
    double_blocks: nn.ModuleList
    single_blocks: nn.ModuleList
    guidance_embed: bool

    @property
    def name(self) -> str:
        return (f"the {self.layout.upper() if self.layout == BFL else self.layout} FLUX model (hidden {self.hidden_size}, "
                f"{len(self.double_blocks)} double + {len(self.single_blocks)} single blocks)")


def describe_flux(model: nn.Module) -> FluxArchitecture:
    """Layout, width, heads and blocks of a FLUX transformer; ModelMismatchError otherwise."""
    if hasattr(model, "double_blocks") and hasattr(model, "single_blocks"):
        blocks = model.double_blocks, model.single_blocks
        if not len(blocks[0]) or not hasattr(blocks[0][0], "img_attn"):
            raise _not_flux(model)
        first = blocks[0][0]
        guidance = _has_module(model, "guidance_in")
        return FluxArchitecture(BFL, first.hidden_size, first.num_heads, *blocks, guidance)
    if hasattr(model, "transformer_blocks") and hasattr(model, "single_transformer_blocks"):
        blocks = model.transformer_blocks, model.single_transformer_blocks
        if not len(blocks[0]) or not hasattr(blocks[0][0], "norm1_context"):
            raise _not_flux(model)
        attn = blocks[0][0].attn
        guidance = _has_module(getattr(model, "time_text_embed", None), "guidance_embedder")
        return FluxArchitecture(DIFFUSERS, attn.heads * attn.head_dim, attn.heads, *blocks, guidance)
    raise _not_flux(model)


def require_guidance(arch: FluxArchitecture) -> None:
    """LumiX was trained on FLUX.1-dev, which has a guidance embedding; schnell has none."""
    if not arch.guidance_embed:
        raise ModelMismatchError(
            f"{arch.name} has no guidance embedding: it looks like FLUX.1-schnell (or another distilled FLUX). "
            f"LumiX was trained on FLUX.1-dev; load flux1-dev.safetensors instead.")


def _has_module(model: nn.Module | None, name: str) -> bool:
    module = getattr(model, name, None)
    return isinstance(module, nn.Module) and not isinstance(module, nn.Identity)


def _not_flux(model: nn.Module) -> ModelMismatchError:
    return ModelMismatchError(
        f"LumiX needs a FLUX.1-dev transformer, got {type(model).__name__}, which has no FLUX double/single blocks "
        f"(an SD1.5/SDXL UNet or another architecture?). Load flux1-dev.safetensors with a diffusion-model loader.")
