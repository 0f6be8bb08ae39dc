"""Reading a linear layer's weights only where that is safe.

Skipping the discarded queries needs a slice of a fused projection's weight. That is only
done for plain float weights on the input's device and dtype; quantised (fp8, GGUF),
offloaded or hook-patched layers keep the general path, which calls the layer itself.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

LinearWeights = Callable[[nn.Module, torch.Tensor], Optional[tuple[torch.Tensor, Optional[torch.Tensor]]]]


def plain_linear_weights(layer: nn.Module, x: torch.Tensor) -> Optional[tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """(weight, bias) when `layer` is a plain Linear usable as is for input x, else None."""
    if not isinstance(layer, nn.Linear):
        return None
    # ComfyUI's cast ops and weight hooks (LoRA in low-VRAM mode) change the weight at call time.
    if getattr(layer, "comfy_cast_weights", False) or getattr(layer, "weight_function", None) \
            or getattr(layer, "bias_function", None):
        return None
    weight, bias = layer.weight, layer.bias
    for t in (weight, bias):
        if t is None:
            continue
        # Exact type check: tensor subclasses (GGUF, quantised) dequantise on use.
        if type(t) not in (torch.Tensor, nn.Parameter) or t.dtype != x.dtype or t.device != x.device:
            return None
    return weight, bias


def split_linear(layer: nn.Module, x: torch.Tensor, split: int, head_rows: slice | None,
                 weights: LinearWeights = plain_linear_weights) -> tuple[torch.Tensor, torch.Tensor]:
    """A fused projection's output, split at channel `split`, the head part for `head_rows` only.

    Returns (head [the batch rows `head_rows` picks, or B, L, split], tail [B, L, out - split]). With plain
    weights the head is only computed for `head_rows`; otherwise the layer runs whole.
    """
    plain = weights(layer, x) if head_rows is not None else None
    if plain is None:
        out = layer(x)
        head, tail = out[..., :split], out[..., split:]
        return (head if head_rows is None else head[head_rows]), tail
    weight, bias = plain
    head_bias = None if bias is None else bias[:split]
    tail_bias = None if bias is None else bias[split:]
    return F.linear(x[head_rows], weight[:split], head_bias), F.linear(x, weight[split:], tail_bias)
