"""LumiX engine: Query-Broadcast Attention and Tensor LoRA on FLUX, in plain torch.

Nothing in this package imports ComfyUI; the ComfyUI nodes are thin adapters over it.

    from lumix_engine import load_adapters, block_patches, patch_diffusers
    adapters = load_adapters("models/lumix/lumix.safetensors")
    patches = block_patches(flux_bfl_model, adapters)        # ComfyUI-convention block patches
    unpatch = patch_diffusers(diffusers_transformer, adapters)  # diffusers FluxTransformer2DModel
    pipe = LumiXPipeline.from_files(models="ComfyUI/models")    # standalone text -> maps, image -> maps

`LumiXPipeline` and `LumiXMaps` are imported on first use: they pull in diffusers and
transformers, which the ComfyUI nodes never need.
"""
from .errors import BatchLayoutError, CheckpointError, InputError, LumiXError, ModelMismatchError
from .method.adapters import LumiXAdapters, new_adapters
from .method.checkpoint import inspect_checkpoint, load_adapters, save_adapters
from .method.patch import block_patches, check_model, patch_diffusers, patched_diffusers
from .modalities import MAP_NAMES, NUM_MAPS, QUERY_SOURCE

__version__ = "0.2.0"   # the release in pyproject.toml and CHANGELOG.md

_LAZY = {"LumiXPipeline": "apps.pipeline", "LumiXMaps": "apps.pipeline"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LumiXAdapters", "new_adapters", "inspect_checkpoint", "load_adapters", "save_adapters",
    "BatchLayoutError", "CheckpointError", "InputError", "LumiXError", "ModelMismatchError",
    "MAP_NAMES", "NUM_MAPS", "QUERY_SOURCE", "block_patches", "check_model", "patch_diffusers", "patched_diffusers",
    "LumiXPipeline", "LumiXMaps",
]
