"""The few ComfyUI internals the engine is handed: attention kernel, weight access, folders
(the models/lumix folder, and output file names as ComfyUI's own savers make them).

Everything here is ComfyUI-specific glue; the math stays in lumix_engine.
"""
from __future__ import annotations

import os
from typing import Optional

import comfy.model_management
import comfy.ops
import folder_paths

from ..lumix_engine.flux.linear import CastProtocolWeights

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


def comfy_cast_weights() -> CastProtocolWeights:
    """Weights for the query-skipping path: plain ones, or ones ComfyUI casts the ordinary way
    (fp8 storage, offloading, LoRA weight hooks, dynamic VRAM), through this ComfyUI's own
    cast_bias_weight and, where it has one, uncast_bias_weight. Layers with another forward
    (scaled fp8, mixed precision, GGUF and other custom ops) keep the general path, which calls
    the layer itself."""
    return CastProtocolWeights(comfy.ops.cast_bias_weight, getattr(comfy.ops, "uncast_bias_weight", None),
                               comfy.ops.CastWeightBiasOp,
                               (comfy.ops.disable_weight_init.Linear.forward_comfy_cast_weights,))


def output_files(prefix: str, count: int, extension: str, width: int, height: int) -> tuple[str, list[str], str]:
    """(folder, [file names], subfolder) for `count` files under ComfyUI's output folder, named
    as ComfyUI's own savers name them: `<prefix>_<counter:05>_.<extension>`, %batch_num% filled
    in, the counter continuing after the files already there."""
    folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
        prefix, folder_paths.get_output_directory(), width, height)
    names = [f"{filename.replace('%batch_num%', str(k))}_{counter + k:05}_.{extension}" for k in range(count)]
    return folder, names, subfolder


def gpu_memory_bytes(model) -> Optional[int]:
    """Total memory of the CUDA GPU the MODEL samples on; None elsewhere (CPU, MPS, ...), where
    the simulated table (docs/memory.md) does not apply."""
    device = getattr(model, "load_device", None)
    if getattr(device, "type", None) != "cuda":
        return None
    return int(comfy.model_management.get_total_memory(device))


def upsampling_hooks() -> dict:
    """Where the photo upsampling runs and how it reports: on ComfyUI's torch device (the
    GPU the model samples on), with a progress bar and ComfyUI's cancel honoured between bands."""
    import comfy.utils
    bar = comfy.utils.ProgressBar(100)
    return {"device": comfy.model_management.get_torch_device(),
            "progress": lambda done, total: bar.update_absolute(round(100 * done / max(total, 1)), 100),
            "check_interrupt": comfy.model_management.throw_exception_if_processing_interrupted}
