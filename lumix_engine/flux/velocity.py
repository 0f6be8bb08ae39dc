"""One call of a diffusers FluxTransformer2DModel on unpacked latents: the velocity field.

Latents [B, 16, h, w] are packed 2x2 into tokens [B, (h/2)(w/2), 64] with (0, row, col)
ids, the layout FLUX.1-dev was trained on; text ids are zero. The transformer runs in its
own dtype; the velocity comes back unpacked, in float32 unless `out_dtype` says otherwise
(None: the model's dtype, as the authors' scripts keep it). Sampling wraps this in no_grad,
training calls it with gradients.
"""
from __future__ import annotations

from typing import Optional

import torch

from .model import pack_latent, unpack_latent


def diffusers_flux_velocity(transformer: torch.nn.Module, latents: torch.Tensor, timesteps: torch.Tensor,
                            context: torch.Tensor, pooled: torch.Tensor, guidance: float,
                            out_dtype: Optional[torch.dtype] = torch.float32) -> torch.Tensor:
    """Velocity [B, 16, h, w] (float32 by default) of `latents` at `timesteps` [B] under text `context`
    [B, T, D_t5] and `pooled` [B, D_clip], with FLUX's guidance embedding set to `guidance`."""
    height, width = latents.shape[-2:]
    dtype = next(transformer.parameters()).dtype
    tokens, img_ids = pack_latent(latents.float())
    txt_ids = torch.zeros(context.shape[1], 3, device=latents.device)
    out = transformer(hidden_states=tokens.to(dtype), encoder_hidden_states=context.to(dtype),
                      pooled_projections=pooled.to(dtype), timestep=timesteps.to(dtype), img_ids=img_ids[0],
                      txt_ids=txt_ids,
                      guidance=torch.full((latents.shape[0],), float(guidance), device=latents.device, dtype=dtype),
                      return_dict=False)[0]
    return unpack_latent(out if out_dtype is None else out.to(out_dtype), height, width)
