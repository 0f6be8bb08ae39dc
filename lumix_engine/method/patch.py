"""Applying LumiX to a FLUX transformer, through block replacement.

ComfyUI's FLUX (and the plain-torch `flux.model.Flux` here) call a replaced block as
`patch(args, {"original_block": f})` with args img, txt, vec, pe, attn_mask,
transformer_options for double blocks (returning {"img", "txt"}) and img (= [txt; img]),
vec, pe, ... for single blocks (returning {"img"}). `block_patches` builds those patches;
`patch_diffusers` does the same for a diffusers `FluxTransformer2DModel` by overriding the
blocks' forwards. Neither touches the model's weights, and removing the patches restores it.
Block patches find their block on the model being sampled (`SampledModel`, `sampling`), so
a MODEL whose clones rebuild or replace the diffusion model stays correct.
"""
from __future__ import annotations

import inspect
import logging
import types
import weakref
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator, Optional

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
from .qba import AttentionHooks, lumix_double_block, lumix_single_block

PATCHED_MARK = "_lumix_patched"
REFERENCE_LATENTS_REFUSED = (
    "reference images reached the LumiX-patched model (FLUX.1 Kontext-style editing, e.g. a ReferenceLatent node on "
    "the conditioning). LumiX was trained on FLUX.1-dev without them: remove the reference from the conditioning and "
    "give the image to LumiXSampler as its `color` input instead.")
log = logging.getLogger(__name__)


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


# The diffusion model being sampled right now, in this thread / task (set by SampledModel).
_SAMPLED_MODEL: ContextVar[Optional[nn.Module]] = ContextVar("lumix_sampled_model", default=None)


@contextmanager
def sampling(model: nn.Module) -> Iterator[nn.Module]:
    """`with sampling(flux): ...`: LumiX patches called inside run the blocks of `flux`."""
    token = _SAMPLED_MODEL.set(model)
    try:
        yield model
    finally:
        _SAMPLED_MODEL.reset(token)


def _reference_latents(model: nn.Module, args: tuple, kwargs: dict) -> Any:
    """The `ref_latents` argument of a FLUX forward call, read through its signature."""
    if "ref_latents" in kwargs:
        return kwargs["ref_latents"]
    forward = getattr(model, "_forward", None) or getattr(model, "forward", None)
    try:
        bound = inspect.signature(forward).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return None
    return bound.arguments.get("ref_latents")


class SampledModel:
    """A diffusion-model wrapper (ComfyUI's `WrappersMP.DIFFUSION_MODEL` convention:
    `wrapper(executor, *args, **kwargs)`, `executor.class_obj` = the model being run) that
    makes LumiX's block patches resolve their blocks on that model at call time.

    A MODEL's patches travel with every clone, including clones that rebuild or replace the
    model (a torch.compile copy, one copy per GPU, model_override); looking the block up on the
    model that is actually running is what makes each of those run its own weights.
    """

    def __deepcopy__(self, memo: dict) -> "SampledModel":
        return self

    def __call__(self, executor: Any, *args: Any, **kwargs: Any) -> Any:
        model = executor.class_obj
        if _reference_latents(model, args, kwargs):
            raise ModelMismatchError(REFERENCE_LATENTS_REFUSED)
        with sampling(model):
            return executor(*args, **kwargs)


class _ProbeDone(Exception):
    """Raised by the probe's attn1_output_patch: nothing after that point needs to run."""


# {block class: (applies attn1_patch, applies attn1_output_patch)}, found once per class.
_STOCK_ATTENTION_PATCHES: dict[type, tuple[bool, bool]] = {}


def stock_attention_patches(block: nn.Module, kind: str, args: dict[str, Any]) -> tuple[bool, bool]:
    """Whether this block's own (stock) forward applies transformer_options["patches"]
    "attn1_patch" and "attn1_output_patch": found by running it, not by reading its code.

    The stock forward is called once per block class, under no_grad, on the first two tokens
    of the first sample of the current call (copies: the stock blocks update their inputs in
    place), with only two probe patches in its transformer_options; each probe records that it
    was called, and the output probe stops the forward there. ComfyUI 0.29's FLUX blocks call
    both; 0.3.64's call neither (README: Attention). An interrupt raised inside propagates and
    nothing is cached.
    """
    found = _STOCK_ATTENTION_PATCHES.get(type(block))
    if found is not None:
        return found
    seen = {"attn1_patch": False, "attn1_output_patch": False}

    def before(*_args: Any, **_kwargs: Any) -> dict:
        seen["attn1_patch"] = True
        return {}

    def after(*_args: Any, **_kwargs: Any) -> None:
        seen["attn1_output_patch"] = True
        raise _ProbeDone

    options = {"patches": {"attn1_patch": [before], "attn1_output_patch": [after]}}
    pe = args.get("pe")
    pe = None if pe is None else pe[:1, :, :2]
    vec = args["vec"][:1]
    forward = type(block).forward
    try:
        with torch.no_grad():
            if kind == DOUBLE:
                forward(block, args["img"][:1, :1].clone(), args["txt"][:1, :1].clone(), vec, pe,
                        transformer_options=options)
            else:
                forward(block, args["img"][:1, :2].clone(), vec, pe, transformer_options=options)
    except _ProbeDone:
        pass
    except torch.OutOfMemoryError:
        raise
    except (TypeError, ValueError, IndexError, RuntimeError) as error:
        raise ModelMismatchError(
            f"attention patches (transformer_options['patches'] attn1_patch / attn1_output_patch) reached a LumiX "
            f"block, but calling this ComfyUI's own {type(block).__name__} to see whether it applies them failed "
            f"({type(error).__name__}: {error}). Remove the node that adds attention patches, or update "
            f"ComfyUI-LumiX for this ComfyUI version.") from error
    found = (seen["attn1_patch"], seen["attn1_output_patch"])
    _STOCK_ATTENTION_PATCHES[type(block)] = found
    return found


class ComfyAttentionPatches:
    """A stock FLUX block's attention patches (`attn1_patch`, `attn1_output_patch` in
    transformer_options["patches"]), applied to a LumiX block as the stock block applies them.

    attn1_patch: p(q, k, v, pe=pe, attn_mask=mask, extra_options=...) -> dict that may replace
    any of q, k, v, pe, attn_mask (q, k before rope); attn1_output_patch: p(attn, extra_options).
    `extra_options` is a copy of transformer_options with `img_slice` = [text length, sequence
    length], as the stock double block sets it.
    """

    def __init__(self, before: list, after: list, options: dict, txt_len: Optional[int]) -> None:
        self.before_patches, self.after_patches = before, after
        self.options, self.txt_len = options, txt_len

    def _extra(self, length: int) -> dict:
        extra = dict(self.options)
        if self.txt_len is not None:
            extra["img_slice"] = [self.txt_len, length]
        return extra

    def before(self, q, k, v, rotary, mask):
        pe = None if rotary is None else rotary.pe
        extra = self._extra(q.shape[2])
        for patch in self.before_patches:
            out = patch(q, k, v, pe=pe, attn_mask=mask, extra_options=extra)
            q, k, v = out.get("q", q), out.get("k", k), out.get("v", v)
            pe, mask = out.get("pe", pe), out.get("attn_mask", mask)
        return q, k, v, (None if pe is None else BflRotary(pe)), mask

    def after(self, attn):
        extra = self._extra(attn.shape[1])
        for patch in self.after_patches:
            attn = patch(attn, extra)
        return attn

    @staticmethod
    def for_block(block: nn.Module, kind: str, args: dict[str, Any]) -> Optional[AttentionHooks]:
        """The hooks for one call of a block (`args`: the block-replacement arguments), or None."""
        options = args.get("transformer_options")
        patches = (options or {}).get("patches", {}) if isinstance(options, dict) else {}
        # Every block call comes here: the usual case (no attention patches) returns before any
        # look at the stock block.
        before, after = list(patches.get("attn1_patch", ())), list(patches.get("attn1_output_patch", ()))
        if not before and not after:
            return None
        applies_before, applies_after = stock_attention_patches(block, kind, args)
        before = before if applies_before else []
        after = after if applies_after else []
        if not before and not after:
            return None
        txt_len = args["txt"].shape[1] if kind == DOUBLE else None
        hooks = ComfyAttentionPatches(before, after, options, txt_len)
        return AttentionHooks(hooks.before if before else None, hooks.after if after else None)


class LumiXBlockPatch:
    """One block's replacement, in ComfyUI's `patches_replace["dit"]` calling convention.

    The block it runs is looked up at call time on the model being sampled (bound by
    `SampledModel` / `sampling`), so clones that rebuild the model run their own weights.
    Outside such a binding it falls back to the block it was made on, held weakly (the model
    owns it). Adapters are held by reference: deep copies (ComfyUI clones model_options at
    every MODEL node) return the same object.
    """

    def __init__(self, kind: str, index: int, block: nn.Module, adapters: LumiXAdapters, strength: float,
                 qba: bool, attention: AttentionFn, weights: LinearWeights) -> None:
        self.kind, self.index = kind, index
        self._block = weakref.ref(block)
        self.hidden_size, self.num_heads = block.hidden_size, block.num_heads
        self.adapters = adapters
        self.block_adapters = adapters.block(kind, index, strength, qba)
        self.attention = attention
        self.weights = weights

    def __deepcopy__(self, memo: dict) -> "LumiXBlockPatch":
        return self

    def block(self) -> nn.Module:
        """The block this patch runs now: on the model being sampled, else the one it was made on."""
        model = _SAMPLED_MODEL.get()
        if model is None:
            block = self._block()
            if block is None:
                raise ModelMismatchError("the FLUX model this LumiX patch was made for is gone and no model is being "
                                         "sampled through ComfyUI's wrappers; run LumiXLoader again")
            return block
        blocks = getattr(model, "double_blocks" if self.kind == DOUBLE else "single_blocks", None)
        block = blocks[self.index] if blocks is not None and self.index < len(blocks) else None
        if block is None or getattr(block, "hidden_size", None) != self.hidden_size or \
                getattr(block, "num_heads", None) != self.num_heads:
            found = "has no such block" if block is None else \
                f"has hidden {getattr(block, 'hidden_size', '?')}, {getattr(block, 'num_heads', '?')} heads there"
            raise ModelMismatchError(
                f"the model being sampled ({type(model).__name__}) {found}, but this LumiX patch was made for a FLUX "
                f"{self.kind.split('_')[0]} block {self.index} of hidden {self.hidden_size}, {self.num_heads} heads: a node between "
                f"LumiXLoader and the sampler replaced the model. Put LumiXLoader after that node.")
        return block

    def _layout(self, block: nn.Module):
        layout = BflDoubleBlock if self.kind == DOUBLE else BflSingleBlock
        return layout(block, self.weights)

    def __call__(self, args: dict[str, Any], extra: dict[str, Any]) -> dict[str, torch.Tensor]:
        pe = args.get("pe")
        rotary = None if pe is None else BflRotary(pe)
        options = args.get("transformer_options")
        if isinstance(options, dict) and options.get("reference_image_num_tokens"):
            raise ModelMismatchError(REFERENCE_LATENTS_REFUSED)
        block = self.block()
        hooks = ComfyAttentionPatches.for_block(block, self.kind, args)
        if self.kind == DOUBLE:
            img, txt = lumix_double_block(self._layout(block), self.block_adapters, args["img"], args["txt"],
                                          args["vec"], rotary, self.attention, args.get("attn_mask"), options, hooks)
            return {"img": img, "txt": txt}
        x = lumix_single_block(self._layout(block), self.block_adapters, args["img"], args["vec"], rotary,
                               self.attention, args.get("attn_mask"), options, hooks)
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
