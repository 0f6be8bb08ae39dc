"""Inputs several LumiX nodes declare alike (the relighting nodes of intrinsics_nodes.py and
export_nodes.py), written once."""
from __future__ import annotations

from comfy_api.latest import io

EXPOSURE_TIP = "Exposure in photographic stops: +1 doubles the light, -1 halves it."


def relight_inputs() -> list:
    """The inputs every relighting node starts with: the albedo and the normal map."""
    return [io.Image.Input("albedo", tooltip="Albedo map, sRGB-encoded."),
            io.Image.Input("normal", tooltip="Normal map, OpenGL-encoded (green = +Y, blue toward the viewer).")]


def exposure_input() -> io.Float.Input:
    return io.Float.Input("exposure", default=0.0, min=-10.0, max=10.0, step=0.1, tooltip=EXPOSURE_TIP)
