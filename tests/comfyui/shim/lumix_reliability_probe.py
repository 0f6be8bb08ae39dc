"""Test-only ComfyUI node for tests/comfyui/test_reliability.py. Never shipped.

`LumiXReliabilityProbe` takes a MODEL and reports, as UI output (JSON in /history):
the LumiX patches and other patch state on that MODEL, the size of the pack's shared
adapter cache (`nodes.loader.ADAPTERS`) and how many LumiXAdapters objects are alive in
the process. It always re-executes (IS_CHANGED is NaN), so every prompt gets a fresh report.
"""
import gc
import json
import sys


def _module(suffix: str, attribute: str):
    for name, module in list(sys.modules.items()):
        if name.endswith(suffix) and hasattr(module, attribute):
            return module
    raise RuntimeError(f"no loaded module ends with {suffix!r} (is ComfyUI-LumiX loaded?)")


class LumiXReliabilityProbe:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "tag": ("STRING", {"default": ""})}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "probe"
    CATEGORY = "LumiX/testing"

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def probe(self, model, tag):
        loader = _module(".nodes.loader", "ADAPTERS")
        patch = _module("lumix_engine.method.patch", "lumix_patches_in")
        options = model.model_options
        transformer_options = options.get("transformer_options", {})
        replace = transformer_options.get("patches_replace", {})
        diffusion_model = model.get_model_object("diffusion_model")
        overridden_forwards = sum(1 for m in diffusion_model.modules() if "forward" in vars(m) or hasattr(m, "_lumix"))
        gc.collect()
        report = {
            "tag": tag,
            "lumix_patches": len(patch.lumix_patches_in(replace)),
            "dit_patches": len(replace.get("dit", {})),
            "model_function_wrapper": options.get("model_function_wrapper") is not None,
            "weight_patches": len(getattr(model, "patches", {})),
            "object_patches": len(getattr(model, "object_patches", {})),
            "wrappers": sum(len(v) for v in getattr(model, "wrappers", {}).values()),
            "overridden_forwards": overridden_forwards,
            "adapter_cache_entries": len(loader.ADAPTERS),
            "live_lumix_adapters": sum(1 for o in gc.get_objects() if type(o).__name__ == "LumiXAdapters"),
        }
        return {"ui": {"probe": [json.dumps(report)]}}


NODE_CLASS_MAPPINGS = {"LumiXReliabilityProbe": LumiXReliabilityProbe}
