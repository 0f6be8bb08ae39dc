"""Applying LumiX to a FLUX transformer, through block replacement.

ComfyUI's FLUX (and `flux_model.Flux` here) call a replaced block as
`patch(args, {"original_block": f})` with args img, txt, vec, pe, attn_mask,
transformer_options for double blocks (returning {"img", "txt"}) and img (= [txt; img]),
vec, pe, ... for single blocks (returning {"img"}). `block_patches` builds those patches;
`patch_diffusers` does the same for a diffusers `FluxTransformer2DModel` by overriding the
blocks' forwards. Neither touches the model's weights, and removing the patches restores it.
"""
from __future__ import annotations

import logging
import types
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..errors import ModelMismatchError
from ..flux.architecture import BFL, DIFFUSERS, FluxArchitecture, describe_flux, require_guidance
from ..flux.attention import AttentionFn, sdpa_attention
from ..flux.linear import LinearWeights, plain_linear_weights
from ..flux.rotary import BflRotary, DiffusersRotary
from .adapters import DOUBLE, SINGLE, LumiXAdapters
from .layouts.bfl import BflDoubleBlock, BflSingleBlock
from .layouts.diffusers import DiffusersDoubleBlock, DiffusersSingleBlock
from .qba import lumix_double_block, lumix_single_block

PATCHED_MARK = "_lumix_patched"
log = logging.getLogger("lumix_engine")


def check_model(model: nn.Module, adapters: LumiXAdapters, require_dev: bool = True,
                qba: bool = True) -> FluxArchitecture:
    """The model's architecture after checking the checkpoint fits it (clear errors otherwise);
    blocks the checkpoint has no adapters for are logged as a warning."""
    arch = describe_flux(model)
    if require_dev:
        require_guidance(arch)
    adapters.check_fits(arch.hidden_size, arch.num_heads, len(arch.double_blocks), len(arch.single_blocks),
                        arch.name)
    if any(adapters.missing_blocks(len(arch.double_blocks), len(arch.single_blocks)).values()):
        log.warning(adapters.coverage_report(len(arch.double_blocks), len(arch.single_blocks), qba))
    return arch


class LumiXBlockPatch:
    """One block's replacement, in ComfyUI's `patches_replace["dit"]` calling convention.

    Holds the block weakly (the model owns it) and the adapters by reference: deep copies
    (ComfyUI clones model_options at every MODEL node) return the same object.
    """

    def __init__(self, kind: str, index: int, block: nn.Module, adapters: LumiXAdapters, strength: float,
                 qba: bool, attention: AttentionFn, weights: LinearWeights) -> None:
        self.kind, self.index = kind, index
        self._block = weakref.ref(block)
        self.adapters = adapters
        self.block_adapters = adapters.block(kind, index, strength, qba)
        self.attention = attention
        self.weights = weights

    def __deepcopy__(self, memo: dict) -> "LumiXBlockPatch":
        return self

    def _layout(self):
        block = self._block()
        if block is None:
            raise ModelMismatchError("the FLUX model this LumiX patch was made for is gone; run LumiXLoader again")
        layout = BflDoubleBlock if self.kind == DOUBLE else BflSingleBlock
        return layout(block, self.weights)

    def __call__(self, args: dict[str, Any], extra: dict[str, Any]) -> dict[str, torch.Tensor]:
        pe = args.get("pe")
        rotary = None if pe is None else BflRotary(pe)
        options = args.get("transformer_options")
        if self.kind == DOUBLE:
            img, txt = lumix_double_block(self._layout(), self.block_adapters, args["img"], args["txt"], args["vec"],
                                          rotary, self.attention, args.get("attn_mask"), options)
            return {"img": img, "txt": txt}
        x = lumix_single_block(self._layout(), self.block_adapters, args["img"], args["vec"], rotary,
                               self.attention, args.get("attn_mask"), options)
        return {"img": x}


def lumix_patches_in(patches_replace: dict | None) -> list[LumiXBlockPatch]:
    """The LumiX patches among a model's `transformer_options["patches_replace"]`."""
    dit = (patches_replace or {}).get("dit", {})
    return [p for p in dit.values() if isinstance(p, LumiXBlockPatch)]


def without_lumix(patches_replace: dict | None) -> dict:
    """patches_replace with LumiX's block patches removed (other packs' patches kept)."""
    out = dict(patches_replace or {})
    if "dit" in out:
        out["dit"] = {k: p for k, p in out["dit"].items() if not isinstance(p, LumiXBlockPatch)}
    return out


def block_patches(model: nn.Module, adapters: LumiXAdapters, strength: float = 1.0, qba: bool = True,
                  attention: AttentionFn = sdpa_attention, weights: LinearWeights = plain_linear_weights,
                  require_dev: bool = True) -> dict[tuple[str, int], LumiXBlockPatch]:
    """Patches for every block of a BFL-layout FLUX: {("double_block", i): patch, ...}.

    With qba=True every block is patched (QBA applies everywhere); with qba=False only the
    blocks the checkpoint adapts. Keys are ComfyUI's ("double_block" | "single_block", i).
    """
    arch = check_model(model, adapters, require_dev, qba)
    if arch.layout != BFL:
        raise ModelMismatchError(f"block_patches needs the BFL layout (ComfyUI / flux1-dev.safetensors); "
                                 f"{arch.name} is in the {arch.layout} layout: use patch_diffusers.")
    patches = {}
    for kind, blocks, key in ((DOUBLE, arch.double_blocks, "double_block"), (SINGLE, arch.single_blocks, "single_block")):
        for index, block in enumerate(blocks):
            if qba or adapters.processor(kind, index) is not None:
                patches[(key, index)] = LumiXBlockPatch(kind, index, block, adapters, strength, qba, attention, weights)
    return patches


def _diffusers_double_forward(self, hidden_states, encoder_hidden_states, temb, image_rotary_emb=None,
                              joint_attention_kwargs=None):
    state = self._lumix
    rotary = None if image_rotary_emb is None else DiffusersRotary(*image_rotary_emb)
    img, txt = lumix_double_block(DiffusersDoubleBlock(self, state["weights"]), state["adapters"], hidden_states,
                                  encoder_hidden_states, temb, rotary, state["attention"])
    return txt, img


def _diffusers_single_forward(self, hidden_states, encoder_hidden_states, temb, image_rotary_emb=None,
                              joint_attention_kwargs=None):
    state = self._lumix
    rotary = None if image_rotary_emb is None else DiffusersRotary(*image_rotary_emb)
    text_length = encoder_hidden_states.shape[1]
    x = lumix_single_block(DiffusersSingleBlock(self, state["weights"]), state["adapters"],
                           torch.cat((encoder_hidden_states, hidden_states), dim=1), temb, rotary, state["attention"])
    return x[:, :text_length], x[:, text_length:]


def patch_diffusers(transformer: nn.Module, adapters: LumiXAdapters, strength: float = 1.0, qba: bool = True,
                    attention: AttentionFn = sdpa_attention, weights: LinearWeights = plain_linear_weights,
                    require_dev: bool = True) -> Callable[[], None]:
    """Patch a diffusers FluxTransformer2DModel in place; returns a function that unpatches it."""
    arch = check_model(transformer, adapters, require_dev, qba)
    if arch.layout != DIFFUSERS:
        raise ModelMismatchError(f"patch_diffusers needs a diffusers FluxTransformer2DModel; {arch.name} is in the "
                                 f"{arch.layout} layout: use block_patches.")
    if getattr(transformer, PATCHED_MARK, False):
        raise ModelMismatchError("this transformer is already patched by LumiX; unpatch it first")
    patched = []
    for kind, blocks, forward in ((DOUBLE, arch.double_blocks, _diffusers_double_forward),
                                  (SINGLE, arch.single_blocks, _diffusers_single_forward)):
        for index, block in enumerate(blocks):
            if qba or adapters.processor(kind, index) is not None:
                block._lumix = {"adapters": adapters.block(kind, index, strength, qba), "attention": attention,
                                "weights": weights}
                block.forward = types.MethodType(forward, block)
                patched.append(block)
    setattr(transformer, PATCHED_MARK, True)

    def unpatch() -> None:
        for block in patched:
            del block.forward
            del block._lumix
        setattr(transformer, PATCHED_MARK, False)
    return unpatch


@contextmanager
def patched_diffusers(transformer: nn.Module, adapters: LumiXAdapters, **options: Any) -> Iterator[nn.Module]:
    """`with patched_diffusers(transformer, adapters): ...` -- unpatched on exit, even on error."""
    unpatch = patch_diffusers(transformer, adapters, **options)
    try:
        yield transformer
    finally:
        unpatch()
