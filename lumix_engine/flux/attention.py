"""The attention kernel the LumiX blocks call, injectable.

Contract: q, k, v [B, H, S, Dh], already rotated; returns [B, S, H*Dh]. ComfyUI passes its
optimised attention (which takes the same heads-first layout with `skip_reshape`); the
default is torch's scaled_dot_product_attention.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

AttentionFn = Callable[..., torch.Tensor]


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   mask: Optional[torch.Tensor] = None, transformer_options: Any = None) -> torch.Tensor:
    """Default kernel: torch SDPA, heads merged back into the channel dim."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    batch, heads, length, head_dim = out.shape
    return out.transpose(1, 2).reshape(batch, length, heads * head_dim)
