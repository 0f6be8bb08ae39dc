"""ComfyUI entry point of ComfyUI-LumiX.

ComfyUI imports this file as a package. Outside ComfyUI (plain Python, the tests, the
standalone pipeline) there is no `comfy_api`, and importing this file must still work,
so the node modules are only imported when ComfyUI is present.

WEB_DIRECTORY is served by ComfyUI at /extensions/<this folder's name>/; the frontend's
node help panel reads `docs/<node id>.md` there (or `docs/<node id>/<locale>.md` first).
It is a plain path, harmless outside ComfyUI.
"""
import importlib.util

WEB_DIRECTORY = "./web"

if importlib.util.find_spec("comfy_api") is not None and __package__:
    from .nodes import comfy_entrypoint  # noqa: F401
