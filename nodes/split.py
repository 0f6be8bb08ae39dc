"""SplitIntrinsics: a decoded batch of 5 maps per scene -> one IMAGE output per map."""
from __future__ import annotations

from comfy_api.latest import io

from ..lumix_engine.modalities import MAP_NAMES, split_maps
from .viewer_maps import viewer_ui


class SplitIntrinsics(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SplitIntrinsics",
            display_name="Split Intrinsics",
            category="LumiX/maps",
            description="Split LumiX's decoded images (5 per scene: albedo, irradiance, color, depth, normal) into "
                        "one batch per map.",
            inputs=[io.Image.Input("images", tooltip="Decoded LumiXSampler output: 5 images per scene, in the order "
                                                     "albedo, irradiance, color, depth, normal.")],
            outputs=[io.Image.Output(name, display_name=name, tooltip=f"The {name} map of every scene.")
                     for name in MAP_NAMES],
        )

    @classmethod
    def execute(cls, images) -> io.NodeOutput:
        maps = split_maps(images)
        return io.NodeOutput(*(maps[name] for name in MAP_NAMES), ui=viewer_ui(maps))
