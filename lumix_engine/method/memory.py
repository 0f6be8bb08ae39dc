"""Will a working size fit the GPU? Answered from a simulation of the real sampling code.

`memory_table.json` holds, for FLUX.1-dev + LumiX (five maps, one scene, no CFG, one
denoising step through ComfyUI's own sampling path), the bytes resident on the GPU (the
FLUX weights as ComfyUI stores them, LumiX's cached adapter cores) and the activation peak
per image-token count. It is written by `python -m benchmarks.memory_simulation`, which
runs the real code under fake tensors on a fake CUDA device (docs/memory.md): re-run it
after changing the block math.

Between the simulated sizes the activations are interpolated linearly in the token count
(they grow about linearly: attention runs as flash attention, so no L x L matrix exists).
RESERVE_GB covers what the simulation does not see: the CUDA context, the allocator's
rounding and fragmentation, kernel workspaces and ComfyUI's own reserve.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Optional, Union

import torch

from .resolution import MAX_MEGAPIXELS, MIN_MEGAPIXELS, TOKEN, working_size

TABLE = Path(__file__).with_name("memory_table.json")
RESERVE_GB = 1.5
GB = 1e9
# Weight storage -> the simulated table it uses (fp16 stores as many bytes as bf16, and
# ComfyUI computes fp8 weights in bf16 like bf16 ones).
WEIGHT_KINDS = {torch.bfloat16: "bf16", torch.float16: "bf16", torch.float8_e4m3fn: "fp8", torch.float8_e5m2: "fp8",
                "bf16": "bf16", "fp16": "bf16", "fp8": "fp8"}


@lru_cache(maxsize=1)
def memory_table() -> dict:
    """{"weights_gb": {kind: GB}, "activations_gb": {kind: {tokens: GB}}} as simulated."""
    return json.loads(TABLE.read_text())


def weight_kind(weights_dtype: Union[str, torch.dtype]) -> Optional[str]:
    """"bf16" or "fp8" for the weight storages the table covers, else None (GGUF, fp32, ...)."""
    return WEIGHT_KINDS.get(weights_dtype)


def image_tokens(width: int, height: int) -> int:
    return (width // TOKEN) * (height // TOKEN)


def activations_gb(width: int, height: int, weights_dtype: Union[str, torch.dtype] = "bf16") -> float:
    """Peak activation memory of one step at width x height (GB), interpolated in tokens."""
    kind = weight_kind(weights_dtype) or "bf16"
    points = sorted((int(tokens), gb) for tokens, gb in memory_table()["activations_gb"][kind].items())
    tokens = image_tokens(width, height)
    if tokens < points[0][0]:  # below the table: the slope over its first stretch of 1.5x tokens
        (t0, a0), (t1, a1) = points[0], next((p for p in points if p[0] >= 1.5 * points[0][0]), points[-1])
    elif tokens >= points[-1][0]:  # above it: the slope over its last stretch
        (t0, a0), (t1, a1) = next((p for p in reversed(points) if p[0] <= points[-1][0] / 1.5), points[0]), points[-1]
    else:
        (t0, a0), (t1, a1) = next((points[i], points[i + 1]) for i in range(len(points) - 1)
                                  if points[i][0] <= tokens < points[i + 1][0])
    return a0 + (a1 - a0) * (tokens - t0) / (t1 - t0)


def resident_gb(weights_dtype: Union[str, torch.dtype]) -> float:
    """FLUX.1-dev's weights (plus LumiX's cached cores) on the GPU while sampling, GB."""
    return memory_table()["weights_gb"][weight_kind(weights_dtype) or "bf16"]


def largest_megapixels(free_bytes: int, weights_dtype: Union[str, torch.dtype], aspect: tuple[int, int] = (3, 2),
                       weights_resident: bool = True) -> Optional[float]:
    """The largest working budget (0.01 MP steps, within the photo path's bounds) whose step fits
    in `free_bytes`, the weights included or (weights_resident=False) streamed; None if none."""
    best = None
    budgets = [MIN_MEGAPIXELS, *(k / 100 for k in range(math.ceil(MIN_MEGAPIXELS * 100), round(MAX_MEGAPIXELS * 100) + 1))]
    for megapixels in budgets:
        width, height = working_size(aspect[0] * 100, aspect[1] * 100, megapixels)
        need = activations_gb(width, height, weights_dtype) + RESERVE_GB
        if weights_resident:
            need += resident_gb(weights_dtype)
        if need * GB <= free_bytes:
            best = megapixels
    return best


def fits(working: tuple[int, int], weights_dtype: Union[str, torch.dtype], free_bytes: Optional[int]) -> Optional[str]:
    """None if a step at `working` (width, height) fits a GPU with `free_bytes`, else a
    warning saying what will happen and what to change. Unknown weight storages (GGUF,
    fp32) or an unknown GPU size get no verdict (None)."""
    kind = weight_kind(weights_dtype)
    if kind is None or not free_bytes:
        return None
    width, height = working
    activations, weights = activations_gb(width, height, kind), resident_gb(kind)
    gpu = free_bytes / GB
    size = f"{width}x{height} ({width * height / 1e6:.2f} MP)"
    if activations + RESERVE_GB > gpu:
        smaller = largest_megapixels(free_bytes, kind, _aspect(width, height), weights_resident=False)
        fix = f"set megapixels to {smaller:.4g} or less" if smaller else "this GPU is too small for LumiX"
        return (f"memory: at {size} one sampling step needs about {activations:.1f} GB of activations, more than "
                f"this {gpu:.1f} GB GPU holds with {RESERVE_GB} GB reserved: it will run out of memory; {fix} "
                f"(simulated, docs/memory.md).")
    if weights + activations + RESERVE_GB > gpu:
        smaller = largest_megapixels(free_bytes, kind, _aspect(width, height))
        fix = f"megapixels {smaller:.4g} or less keeps them on the GPU" if smaller else \
            ("fp8 weights would take half the space" if kind == "bf16" else "a larger GPU would keep them there")
        return (f"memory: at {size} a step needs about {weights + activations:.1f} GB ({weights:.1f} GB of {kind} "
                f"FLUX weights + {activations:.1f} GB of activations) on a {gpu:.1f} GB GPU: ComfyUI will keep part "
                f"of the weights in system RAM and stream them, which is slower; {fix} (simulated, docs/memory.md).")
    return None


def _aspect(width: int, height: int) -> tuple[int, int]:
    divisor = math.gcd(width, height)
    return width // divisor, height // divisor
