"""Where float64 arithmetic can run: the one place that knows which devices lack float64.

Apple's MPS backend has no float64: creating a float64 tensor there, or casting to it, raises
"Cannot convert a MPS Tensor to float64 dtype". The engine keeps a few computations in
float64 on purpose (rope angles, SH projections, unit normals for export, small least-squares
fits) so that every device gives the same numbers as the CPU. For a tensor on a device
without float64, that work runs on the CPU instead, and results that go back to the device
come back in float32 (the highest precision it holds). CUDA and the CPU keep float64 where
the tensor is.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

DEVICES_WITHOUT_FLOAT64 = frozenset({"mps"})

Device = Union[str, torch.device]


def has_float64(device: Device) -> bool:
    """Whether tensors of dtype float64 can live on `device`."""
    return torch.device(device).type not in DEVICES_WITHOUT_FLOAT64


def float64_device(device: Device) -> torch.device:
    """`device` itself where it holds float64, else the CPU."""
    device = torch.device(device)
    return device if has_float64(device) else torch.device("cpu")


def to_float64(tensor: torch.Tensor, device: Optional[Device] = None) -> torch.Tensor:
    """`tensor` in float64 on `device` (default: its own), or on the CPU where that device
    lacks float64. Moved first and cast after, so such a device never holds the float64 copy."""
    target = float64_device(tensor.device if device is None else device)
    return tensor.to(target).to(torch.float64)


def to_device(tensor: torch.Tensor, device: Device) -> torch.Tensor:
    """A (float64) result moved to `device`: float64 kept where the device holds it, float32 there otherwise."""
    if tensor.dtype == torch.float64 and not has_float64(device):
        tensor = tensor.float()   # cast where it is, then move: the device never sees float64
    return tensor.to(torch.device(device))
