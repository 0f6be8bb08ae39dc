"""Input checks shared by the intrinsics functions.

Images follow ComfyUI's IMAGE convention: channels-last float tensors [B, H, W, C] in
[0, 1]. Depth is accepted as [B, H, W], [B, H, W, 1] or [B, H, W, 3] (a depth image
decoded from a VAE has three nearly equal channels; their mean is used). Every error
names the problem and the fix, raised as `InputError`.
"""
from __future__ import annotations

import math
import re

import torch

from ..errors import InputError
from .color_space import srgb_to_linear


def as_image(image: torch.Tensor, name: str, channels: int = 3, expand_grey: bool = False) -> torch.Tensor:
    """Check that `image` is a float [B, H, W, channels] tensor; return it unchanged.

    A 4-channel (RGBA) image is cut to RGB when 3 channels are wanted, because that is
    what a user loading a PNG with alpha means. With `expand_grey`, a 1-channel image (a
    grey depth map from another node) is repeated to RGB instead of refused.
    """
    if not isinstance(image, torch.Tensor):
        raise InputError(f"{name} must be a torch tensor [B, H, W, {channels}], got {type(image).__name__}.")
    if image.ndim == 3 and channels == 3 and image.shape[-1] == 3:
        raise InputError(
            f"{name} has shape {tuple(image.shape)}, a single image without a batch axis; "
            f"add one with image.unsqueeze(0) to get [1, H, W, 3]."
        )
    if image.ndim != 4:
        raise InputError(
            f"{name} must be channels-last [B, H, W, {channels}] (ComfyUI IMAGE); got shape "
            f"{tuple(image.shape)}. Permute channels-first tensors with .permute(0, 2, 3, 1)."
        )
    if not image.is_floating_point():
        raise InputError(
            f"{name} has dtype {image.dtype}; LumiX keeps maps in float end to end. "
            f"Convert with image.float() / 255 for 8-bit data."
        )
    found = image.shape[-1]
    if found == channels:
        return image
    if channels == 3 and found == 4:
        return image[..., :3]
    if channels == 3 and found == 1:
        if expand_grey:
            return image.expand(*image.shape[:3], 3)
        raise InputError(
            f"{name} has 1 channel but 3 are needed (an RGB image). If it is a grey map, "
            f"repeat it with image.expand(-1, -1, -1, 3) or connect an RGB image."
        )
    raise InputError(f"{name} has {found} channels in its last axis; {channels} are needed ([B, H, W, {channels}]).")


def as_depth(depth: torch.Tensor, name: str = "depth") -> torch.Tensor:
    """Return depth as [B, H, W], accepting [B,H,W], [B,H,W,1] and [B,H,W,3]."""
    if not isinstance(depth, torch.Tensor) or not depth.is_floating_point():
        raise InputError(f"{name} must be a float torch tensor [B, H, W] or [B, H, W, 1|3].")
    if depth.ndim == 3:
        return depth
    if depth.ndim == 4 and depth.shape[-1] == 1:
        return depth[..., 0]
    if depth.ndim == 4 and depth.shape[-1] in (3, 4):
        # A depth image decoded from a VAE has three nearly equal channels: average them
        # rather than pick one, which halves the decoder's per-channel noise.
        return depth[..., :3].mean(dim=-1)
    raise InputError(
        f"{name} has shape {tuple(depth.shape)}; depth must be [B, H, W], [B, H, W, 1] or "
        f"[B, H, W, 3] (three equal channels)."
    )


def same_size(**maps: torch.Tensor) -> tuple[int, int, int]:
    """Check that all maps share batch, height and width; return (B, H, W)."""
    sizes = {name: tuple(m.shape[:3]) for name, m in maps.items() if m is not None}
    distinct = set(sizes.values())
    if len(distinct) > 1:
        listing = ", ".join(f"{name} {b}x{h}x{w}" for name, (b, h, w) in sizes.items())
        raise InputError(
            f"the maps must be pixel-aligned (same batch, height, width); got {listing} (B x H x W). "
            f"Resize them to one size (e.g. with an Upscale Image node) before connecting."
        )
    return next(iter(distinct))


# Decimal numbers and plain hex digits only, as the relight editor reads them: float() also
# takes 'nan', 'inf' and '1_0', and int(.., 16) takes '+f' and '_'.
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def parse_rgb(text: str) -> tuple[float, float, float]:
    """A colour from a node's text field: '#RRGGBB' (sRGB, returned linear) or three
    numbers 'r, g, b' (taken as linear multipliers as given)."""
    cleaned = text.strip()
    if cleaned.startswith("#") and len(cleaned) == 7 and set(cleaned[1:]) <= _HEX_DIGITS:
        encoded = [int(cleaned[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        return tuple(float(v) for v in srgb_to_linear(torch.tensor(encoded, dtype=torch.float64)))
    parts = [p for p in cleaned.replace(",", " ").split() if p]
    values = tuple(float(p) for p in parts) if all(_DECIMAL.fullmatch(p) for p in parts) else ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values) or min(values) < 0:
        raise InputError(
            f"colour {text!r} is not understood; write '#RRGGBB' (e.g. #ffcc88) or three non-negative "
            f"numbers 'r, g, b' (e.g. 1.0, 0.8, 0.5)."
        )
    return values
