"""Reading a linear layer's weights only where that is safe, and giving them back.

Skipping the discarded queries needs a slice of a fused projection's weight, so the layer's
weight has to be read outside its own forward. Two kinds of layer allow that:

- plain float weights already on the input's device and dtype (read as they are);
- layers whose host framework casts weights through a known protocol (ComfyUI's
  `cast_bias_weight`): fp8 storage, low-VRAM offloading, weight hooks, dynamic VRAM. A cast
  may pin memory or borrow an offload stream, so every weight read is a *lease*: the caller
  computes with it and then releases it, also when the computation fails.

Anything else (GGUF, scaled fp8, custom ops with their own forward) keeps the general path,
which calls the layer itself. A layer that takes the cast path but answers in a way this
module does not know raises ModelMismatchError instead of a tuple-unpacking error.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelMismatchError


def _nothing_to_release() -> None:
    return None


@dataclass
class WeightLease:
    """A layer's weight and bias, usable until `release()` is called (exactly once)."""
    weight: torch.Tensor
    bias: Optional[torch.Tensor]
    release: Callable[[], None] = _nothing_to_release


# A weight accessor: the layer's lease for input x, or None when the layer must be called whole.
LinearWeights = Callable[[nn.Module, torch.Tensor], Optional[WeightLease]]


def plain_linear_weights(layer: nn.Module, x: torch.Tensor) -> Optional[WeightLease]:
    """A lease on `layer`'s own tensors when it is a plain Linear usable as is for input x, else None."""
    if not isinstance(layer, nn.Linear):
        return None
    # The weight is read as it is exactly when the layer's own forward would use it as it is.
    # ComfyUI's ops state when theirs does not: `forward` casts whenever comfy_cast_weights is
    # set or weight_function / bias_function hold hooks (fp8 storage, offloading, LoRA in
    # low-VRAM mode). Dynamic VRAM sets comfy_cast_weights on every layer it manages, so its
    # layers take that route too.
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
    return WeightLease(weight, bias)


class CastProtocolWeights:
    """Weight access through a host's cast function, as its own Linear forward does it.

    `cast(layer, x)` is the host's cast (ComfyUI: `comfy.ops.cast_bias_weight`). Its protocol
    is read from its signature, never from a version number:

    - with an `offloadable` parameter, `cast(layer, x, offloadable=True)` returns
      (weight, bias, offload) and `uncast(layer, weight, bias, offload)` must run after the
      last use: it unpins dynamic-VRAM pages and hands the offload stream back. Called without
      `offloadable` (the legacy mode) such a cast pins pages that nothing ever unpins.
    - without it, `cast(layer, x)` returns (weight, bias) and there is nothing to release.

    Only layers that are instances of `cast_op` and whose class still has one of
    `plain_forwards` under its name (ComfyUI: `forward_comfy_cast_weights` of its plain
    Linear, i.e. "cast, then F.linear") take this path: any other op computes
    something else with its weights (fp8 matmuls, quantised kernels, GGUF dequantisation)
    and is called whole.
    """

    def __init__(self, cast: Callable[..., Any], uncast: Optional[Callable[..., Any]], cast_op: type,
                 plain_forwards: Iterable[Callable[..., Any]]) -> None:
        self.cast, self.uncast, self.cast_op = cast, uncast, cast_op
        self.plain_forwards = tuple(plain_forwards)
        try:
            parameters = inspect.signature(cast).parameters
        except (TypeError, ValueError):  # a builtin or C function: no signature to read
            parameters = {}
        self.offloadable = "offloadable" in parameters
        if self.offloadable and not callable(uncast):
            raise ModelMismatchError(
                f"{getattr(cast, '__qualname__', cast)} takes `offloadable` (it can pin and offload weights) but no "
                f"matching uncast function was found, so weights LumiX reads would stay pinned. Update ComfyUI-LumiX "
                f"for this ComfyUI version.")

    def __deepcopy__(self, memo: dict) -> "CastProtocolWeights":
        return self

    def takes_cast_path(self, layer: nn.Module) -> bool:
        if not isinstance(layer, self.cast_op):
            return False
        if not any(getattr(type(layer), known.__name__, None) is known for known in self.plain_forwards):
            return False
        weight = getattr(layer, "weight", None)
        bias = getattr(layer, "bias", None)
        # Tensor subclasses (quantised weights) dequantise in ways a slice would not see.
        return type(weight) in (torch.Tensor, nn.Parameter) and (bias is None or type(bias) in (torch.Tensor, nn.Parameter))

    def __call__(self, layer: nn.Module, x: torch.Tensor) -> Optional[WeightLease]:
        plain = plain_linear_weights(layer, x)
        if plain is not None or not self.takes_cast_path(layer):
            return plain
        if self.offloadable:
            result = self.cast(layer, x, offloadable=True)
            weight, bias, offload = self._unpack(layer, result, 3)
            uncast = self.uncast

            def release() -> None:
                uncast(layer, weight, bias, offload)
            lease = WeightLease(weight, bias, release)
        else:
            weight, bias = self._unpack(layer, self.cast(layer, x), 2)
            lease = WeightLease(weight, bias)
        try:
            self._check(layer, lease, x)
        except ModelMismatchError:
            lease.release()
            raise
        return lease

    def _unpack(self, layer: nn.Module, result: Any, expected: int) -> tuple:
        if isinstance(result, tuple) and len(result) == expected:
            return result
        mode = "offloadable=True" if self.offloadable else "its legacy two-value mode"
        got = f"{len(result)} values" if isinstance(result, tuple) else type(result).__name__
        # A lease that cannot be released would leak pins; releasing what came back is not
        # possible without knowing its shape, so say what happened instead.
        raise ModelMismatchError(
            f"the cast function of {type(layer).__name__} ({getattr(self.cast, '__qualname__', self.cast)}) called in "
            f"{mode} returned {got}, expected {expected}: this ComfyUI casts weights in a way this LumiX version does "
            f"not know. Update ComfyUI-LumiX.")

    @staticmethod
    def _check(layer: nn.Module, lease: WeightLease, x: torch.Tensor) -> None:
        expected = (getattr(layer, "out_features", None), getattr(layer, "in_features", None))
        weight = lease.weight
        if not isinstance(weight, torch.Tensor) or weight.ndim != 2 or \
                (None not in expected and tuple(weight.shape) != expected):
            raise ModelMismatchError(
                f"the cast of {type(layer).__name__} gave a weight of shape "
                f"{tuple(getattr(weight, 'shape', ()))}, not {expected}: a custom op changed how this layer's weight "
                f"is stored. LumiX cannot slice it; update ComfyUI-LumiX or load the model without that op.")
        if weight.device != x.device or weight.dtype != x.dtype:
            raise ModelMismatchError(
                f"the cast of {type(layer).__name__} gave a {weight.dtype} weight on {weight.device} for a "
                f"{x.dtype} input on {x.device}: a custom op casts to another device or dtype than its input's. "
                f"Update ComfyUI-LumiX or load the model without that op.")


def split_linear(layer: nn.Module, x: torch.Tensor, split: int, head_rows: slice | None,
                 weights: LinearWeights = plain_linear_weights) -> tuple[torch.Tensor, torch.Tensor]:
    """A fused projection's output, split at channel `split`, the head part for `head_rows` only.

    Returns (head [the batch rows `head_rows` picks, or B, L, split], tail [B, L, out - split]). With a
    weight lease the head is only computed for `head_rows`, and the lease is released before
    returning (also on error); otherwise the layer runs whole.
    """
    lease = weights(layer, x) if head_rows is not None else None
    if lease is None:
        out = layer(x)
        head, tail = out[..., :split], out[..., split:]
        return (head if head_rows is None else head[head_rows]), tail
    try:
        weight, bias = lease.weight, lease.bias
        head_bias = None if bias is None else bias[:split]
        tail_bias = None if bias is None else bias[split:]
        return F.linear(x[head_rows], weight[:split], head_bias), F.linear(x, weight[split:], tail_bias)
    finally:
        lease.release()
