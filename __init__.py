"""ComfyUI entry point of ComfyUI-LumiX.

ComfyUI imports this file as a package. Outside ComfyUI (plain Python, the tests, the
standalone pipeline) there is no `comfy_api`, and importing this file must still work,
so the node modules are only imported when ComfyUI is present.
"""
import importlib.util

if importlib.util.find_spec("comfy_api") is not None and __package__:
    from .nodes import comfy_entrypoint  # noqa: F401
