"""The few ComfyUI internals the engine is handed: attention kernel, weight access, folder.

Everything here is ComfyUI-specific glue; the math stays in lumix_engine.
"""
from __future__ import annotations

import os

import comfy.ops
import folder_paths
import torch

from ..lumix_engine.flux.linear import plain_linear_weights

LUMIX_FOLDER = "lumix"


def register_lumix_folder() -> None:
    """models/lumix, added after any user entries (extra_model_paths.yaml is read before
    custom nodes load); only .safetensors is listed, since pickles are never loaded."""
    folder_paths.add_model_folder_path(LUMIX_FOLDER, os.path.join(folder_paths.models_dir, LUMIX_FOLDER))
    paths, _ = folder_paths.folder_names_and_paths[LUMIX_FOLDER]
    folder_paths.folder_names_and_paths[LUMIX_FOLDER] = (paths, {".safetensors"})


def comfy_attention(q, k, v, mask=None, transformer_options=None):
    """The kernel ComfyUI's own FLUX uses (looked up per call, so attention patches apply)."""
    import comfy.ldm.flux.math as flux_math
    return flux_math.optimized_attention(q, k, v, q.shape[1], skip_reshape=True, mask=mask,
                                         transformer_options=transformer_options or {})


_PLAIN_CAST = comfy.ops.disable_weight_init.Linear.forward_comfy_cast_weights


def comfy_linear_weights(layer, x):
    """Weights for the query-skipping path: plain ones, or ones ComfyUI casts the ordinary way
    (fp8 storage, offloading, LoRA weight hooks). Scaled-fp8, GGUF and other custom ops keep
    the general path, which calls the layer itself."""
    plain = plain_linear_weights(layer, x)
    if plain is not None:
        return plain
    if isinstance(layer, comfy.ops.CastWeightBiasOp) and type(layer).forward_comfy_cast_weights is _PLAIN_CAST \
            and type(layer.weight) in (torch.Tensor, torch.nn.Parameter):
        return comfy.ops.cast_bias_weight(layer, x)
    return None
