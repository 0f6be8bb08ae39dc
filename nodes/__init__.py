"""ComfyUI nodes of ComfyUI-LumiX (V3 schema). Thin: every computation is in lumix_engine."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .comfy_glue import register_lumix_folder
from .export_nodes import NODES as EXPORT_NODES
from .intrinsics_nodes import NODES as INTRINSICS_NODES
from .loader import LumiXLoader
from .photo import LumiXDecomposePhoto
from .sampler import LumiXSampler
from .split import SplitIntrinsics

register_lumix_folder()


class LumiXExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [LumiXLoader, LumiXSampler, LumiXDecomposePhoto, SplitIntrinsics, *INTRINSICS_NODES, *EXPORT_NODES]


async def comfy_entrypoint() -> LumiXExtension:
    return LumiXExtension()
