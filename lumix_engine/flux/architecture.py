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


# FLUX.1-dev packs 2x2 latent pixels of 16 channels into one 64-wide image token; models
# that concatenate conditioning channels to it (Fill, Depth, Canny) have a wider img_in.
FLUX1_TOKEN_WIDTH = 64


def describe_flux(model: nn.Module) -> FluxArchitecture:
    """Layout, width, heads and blocks of a FLUX transformer; ModelMismatchError otherwise.

    FLUX-family models LumiX was not trained on (FLUX.2, Chroma, FLUX.1 Fill / Depth / Canny)
    are refused here by name, before their widths or block counts could be compared.
    """
    refuse_other_flux_family(model)
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


def other_flux_family(model: nn.Module) -> str | None:
    """The name of a FLUX-family model that is not FLUX.1-dev (or schnell), read from its structure; else None."""
    if _has_module(model, "distilled_guidance_layer"):
        # Chroma replaces FLUX's per-block modulation with one "approximator" network.
        return "Chroma (a FLUX.1-schnell derivative with a distilled guidance layer)"
    if getattr(getattr(model, "params", None), "global_modulation", False) or \
            _has_module(model, "double_stream_modulation_img") or _has_module(model, "double_stream_modulation"):
        # FLUX.2 modulates all blocks from shared layers instead of one per block.
        return "FLUX.2 (shared modulation for all blocks)"
    blocks = getattr(model, "double_blocks", None)
    if blocks is not None and len(blocks) and hasattr(blocks[0], "img_attn") and not _has_module(blocks[0], "img_mod"):
        return "a FLUX-family model whose blocks have no modulation of their own (FLUX.2 or Chroma style)"
    token_in = getattr(model, "img_in", None) or getattr(model, "x_embedder", None)
    width = getattr(token_in, "in_features", FLUX1_TOKEN_WIDTH)
    if hasattr(model, "double_blocks") or hasattr(model, "transformer_blocks"):
        if width != FLUX1_TOKEN_WIDTH:
            return (f"a FLUX.1 variant with extra input channels (image tokens of width {width}, not "
                    f"{FLUX1_TOKEN_WIDTH}: FLUX.1 Fill, Depth or Canny)")
    return None


def refuse_other_flux_family(model: nn.Module) -> None:
    name = other_flux_family(model)
    if name is not None:
        raise ModelMismatchError(
            f"this MODEL is {name}. LumiX was trained on FLUX.1-dev and its adapters only fit FLUX.1-dev's blocks; "
            f"load flux1-dev.safetensors (bf16, fp8 or GGUF) for LumiX and use {name.split(' (')[0]} in a separate "
            f"branch of the workflow.")


def _has_module(model: nn.Module | None, name: str) -> bool:
    module = getattr(model, name, None)
    return isinstance(module, nn.Module) and not isinstance(module, nn.Identity)


def _not_flux(model: nn.Module) -> ModelMismatchError:
    return ModelMismatchError(
        f"LumiX needs a FLUX.1-dev transformer, got {type(model).__name__}, which has no FLUX double/single blocks "
        f"(an SD1.5/SDXL UNet or another architecture?). Load flux1-dev.safetensors with a diffusion-model loader.")
