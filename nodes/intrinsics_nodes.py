"""LumiX map nodes: recompose, relight, material edit, coherence scores, depth / normal
conversion and a 16-bit PNG save. Declarations plus one call into lumix_engine.intrinsics
each; conventions and math are documented there (render.py, scores.py)."""
from __future__ import annotations

import json
import os

from comfy_api.latest import io, ui

from ..lumix_engine.image_io import save_png16
from ..lumix_engine.intrinsics import (
    Light,
    coherence_report,
    convert_convention,
    decode_normals,
    depth_to_image,
    encode_normals,
    material_edit,
    recompose,
    relight,
)
from ..lumix_engine.intrinsics.checks import parse_rgb
from ..lumix_engine.intrinsics.depth import NORMALIZATIONS, SOURCES
from ..lumix_engine.intrinsics.normals import CONVENTIONS
from .browser_maps import preview_maps
from .comfy_glue import output_files
from .common_inputs import exposure_input, relight_inputs


class LumiXRecompose(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Recompose",
            display_name="Recompose (albedo x irradiance)",
            category="LumiX/maps",
            description="color = albedo x irradiance in linear light, with exposure.",
            inputs=[
                io.Image.Input("albedo", tooltip="Albedo (diffuse reflectance) map, sRGB-encoded."),
                io.Image.Input("irradiance", tooltip="Irradiance (diffuse illumination) map, sRGB-encoded."),
                exposure_input(),
            ],
            # Every output names its display_name: ComfyUI before 0.7 labels an output without
            # one by its type ("IMAGE"), later versions by its id, and the shipped workflows
            # (which record the labels) must read the same in both.
            outputs=[io.Image.Output("color", display_name="color",
                                     tooltip="The recomposed image, sRGB-encoded, clipped to [0, 1].")],
        )

    @classmethod
    def execute(cls, albedo, irradiance, exposure) -> io.NodeOutput:
        return io.NodeOutput(recompose(albedo, irradiance, exposure=exposure))


class LumiXRelight(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXRelight",
            display_name="LumiX Relight",
            category="LumiX/maps",
            description="New irradiance from the normal map and a directional light plus ambient (or a given "
                        "irradiance), recomposed with the albedo. No shadows: a normal map does not say where "
                        "occluders are.",
            inputs=[
                *relight_inputs(),
                io.Float.Input("light_x", default=-0.5, min=-1.0, max=1.0, step=0.05,
                               tooltip="Direction TOWARD the light, camera space: +X is right."),
                io.Float.Input("light_y", default=0.7, min=-1.0, max=1.0, step=0.05,
                               tooltip="Direction toward the light: +Y is up."),
                io.Float.Input("light_z", default=0.5, min=-1.0, max=1.0, step=0.05,
                               tooltip="Direction toward the light: +Z is toward the viewer (front light)."),
                io.String.Input("light_color", default="#ffffff",
                                tooltip="Light colour: '#RRGGBB' (sRGB) or 'r, g, b' (linear)."),
                io.Float.Input("intensity", default=0.8, min=0.0, max=10.0, step=0.05,
                               tooltip="Light intensity (linear irradiance of a surface facing the light)."),
                io.Float.Input("ambient", default=0.15, min=0.0, max=2.0, step=0.01,
                               tooltip="Ambient irradiance added everywhere (linear, grey)."),
                exposure_input(),
                io.Image.Input("irradiance", optional=True,
                               tooltip="Optional irradiance map to use instead of the light above."),
            ],
            outputs=[
                io.Image.Output("color", display_name="color", tooltip="The relit image, sRGB-encoded."),
                io.Image.Output("irradiance_used", display_name="irradiance",
                                tooltip="The irradiance used, sRGB-encoded (may exceed 1)."),
            ],
        )

    @classmethod
    def execute(cls, albedo, normal, light_x, light_y, light_z, light_color, intensity, ambient, exposure,
                irradiance=None) -> io.NodeOutput:
        light = Light("directional", (light_x, light_y, light_z), parse_rgb(light_color), intensity)
        color, used = relight(albedo, normal, [light], ambient=(ambient,) * 3, irradiance=irradiance,
                              exposure=exposure)
        # The live editor (web/js/lumix_relight_editor.js) relights these in the browser.
        maps = preview_maps({"albedo": albedo, "normal": normal, "irradiance": irradiance})
        return io.NodeOutput(color, used, ui=maps)


class LumiXMaterialEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXMaterialEdit",
            display_name="LumiX Material Edit",
            category="LumiX/maps",
            description="Swap and/or tint the albedo (inside an optional mask), keep the lighting, recompose.",
            inputs=[
                io.Image.Input("albedo", tooltip="Albedo map, sRGB-encoded."),
                io.Image.Input("irradiance", tooltip="Irradiance map, sRGB-encoded; kept as is."),
                io.String.Input("tint", default="#ffffff",
                                tooltip="Albedo multiplier: '#RRGGBB' (sRGB) or 'r, g, b' (linear); white keeps it."),
                exposure_input(),
                io.Image.Input("new_albedo", optional=True,
                               tooltip="Optional replacement albedo (same size), tinted and used inside the mask."),
                io.Mask.Input("mask", optional=True, tooltip="Optional mask: 1 = edit, 0 = keep. Default: everywhere."),
            ],
            outputs=[
                io.Image.Output("color", display_name="color",
                                tooltip="The recomposed image with the new material, sRGB-encoded."),
                io.Image.Output("albedo_edited", display_name="albedo", tooltip="The edited albedo, sRGB-encoded."),
            ],
        )

    @classmethod
    def execute(cls, albedo, irradiance, tint, exposure, new_albedo=None, mask=None) -> io.NodeOutput:
        color, edited = material_edit(albedo, irradiance, new_albedo=new_albedo, tint=parse_rgb(tint),
                                      mask=mask, exposure=exposure)
        return io.NodeOutput(color, edited)


class LumiXCoherenceScores(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXCoherenceScores",
            display_name="LumiX Coherence Scores",
            category="LumiX/maps",
            description="Reference-free consistency checks of five maps: edge alignment with color, "
                        "recomposition error, normal-depth consistency. They catch copies of the image, "
                        "misaligned or swapped maps and texture leaking into geometry; they cannot tell a "
                        "right decomposition from some wrong ones built from the image alone, so they do "
                        "not measure accuracy (docs/coherence.md).",
            is_output_node=True,
            inputs=[
                io.Image.Input("albedo", tooltip="Albedo map, sRGB-encoded."),
                io.Image.Input("irradiance", tooltip="Irradiance map, sRGB-encoded."),
                io.Image.Input("color", tooltip="Color image, sRGB-encoded."),
                io.Image.Input("depth", tooltip="Depth image (near white unless switched below)."),
                io.Image.Input("normal", tooltip="Normal map, OpenGL-encoded."),
                io.Boolean.Input("depth_near_is_white", default=True,
                                 tooltip="On: near is white (disparity, LumiX and FLUX depth). Off: near is dark."),
            ],
            # Outputs carry display names: without one, ComfyUI 0.3.64 labels a V3 output with
            # its type, and four outputs would read STRING, FLOAT, FLOAT, FLOAT.
            outputs=[
                io.String.Output("report", display_name="report", tooltip="A short text report of all scores."),
                io.Float.Output("structural_alignment", display_name="structural_alignment",
                                tooltip="Edge alignment with color, 0..1, 1 best. A consistency check, not accuracy."),
                io.Float.Output("recomposition_rmse", display_name="recomposition_rmse",
                                tooltip="color vs albedo x irradiance, 0..1, 0 best."),
                io.Float.Output("normal_depth_error", display_name="normal_depth_error",
                                tooltip="Mean angle in degrees, 0..180, 0 best."),
            ],
        )

    @classmethod
    def execute(cls, albedo, irradiance, color, depth, normal, depth_near_is_white) -> io.NodeOutput:
        report = coherence_report(albedo, irradiance, color, depth, normal, depth_near_is_white=depth_near_is_white)
        # An output node, so it runs (and its report reaches /history) even with nothing wired to it.
        return io.NodeOutput(report.text, report.structural_alignment, report.recomposition_rmse,
                             report.normal_depth_error_degrees, ui=ui.PreviewText(report.text))


class LumiXDepthConvert(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXDepthConvert",
            display_name="LumiX Depth Convert",
            category="LumiX/maps",
            description="Normalised disparity with near = white, as FLUX depth control and ComfyUI geometry "
                        "nodes expect.",
            inputs=[
                io.Image.Input("depth", tooltip="Depth image (3 equal channels are averaged)."),
                io.Combo.Input("source", options=list(SOURCES), default="near_white",
                               tooltip="What the input is: metric distance, a near-white image or a near-dark image."),
                io.Combo.Input("normalization", options=list(NORMALIZATIONS), default="percentile",
                               tooltip="percentile: robust to outliers; minmax: exact extremes."),
                io.Float.Input("low_percentile", default=2.0, min=0.0, max=50.0, step=0.5,
                               tooltip="Percentile mapped to black (percentile normalisation only)."),
                io.Float.Input("high_percentile", default=98.0, min=50.0, max=100.0, step=0.5,
                               tooltip="Percentile mapped to white (percentile normalisation only)."),
                io.Boolean.Input("invert", default=False, tooltip="On: near = black (depth instead of disparity)."),
            ],
            outputs=[io.Image.Output("depth_image", display_name="depth", tooltip="Normalised depth image in [0, 1], 3 equal channels.")],
        )

    @classmethod
    def execute(cls, depth, source, normalization, low_percentile, high_percentile, invert) -> io.NodeOutput:
        return io.NodeOutput(depth_to_image(depth, source=source, normalization=normalization,
                                            low_percentile=low_percentile, high_percentile=high_percentile,
                                            invert_output=invert))


class LumiXNormalConvert(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXNormalConvert",
            display_name="LumiX Normal Convert",
            category="LumiX/maps",
            description="Re-normalise a normal map to unit length and convert OpenGL <-> DirectX (green flipped).",
            inputs=[
                io.Image.Input("normal", tooltip="Encoded normal map, [0, 1] = (n + 1) / 2."),
                io.Combo.Input("source", options=list(CONVENTIONS), default="opengl",
                               tooltip="Convention of the input. LumiX outputs OpenGL (green = up)."),
                io.Combo.Input("target", options=list(CONVENTIONS), default="opengl",
                               tooltip="Convention wanted: opengl (Blender, glTF) or directx (Unreal, Substance default)."),
            ],
            outputs=[io.Image.Output("normal_image", display_name="normal", tooltip="Unit-length encoded normal map in the target convention.")],
        )

    @classmethod
    def execute(cls, normal, source, target) -> io.NodeOutput:
        return io.NodeOutput(convert_convention(encode_normals(decode_normals(normal)), source, target))


class LumiXSaveImage16(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXSaveImage16",
            display_name="LumiX Save Image (16-bit PNG)",
            category="LumiX/io",
            description="Save images as 16-bit PNG (65536 levels per channel), so float maps keep their precision.",
            inputs=[
                io.Image.Input("images", tooltip="Images to save, float in [0, 1]."),
                io.String.Input("filename_prefix", default="LumiX/map",
                                tooltip="File name prefix inside the output folder; may contain a subfolder."),
            ],
            outputs=[],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images, filename_prefix) -> io.NodeOutput:
        folder, names, subfolder = output_files(filename_prefix, len(images), "png", images.shape[2], images.shape[1])
        text = {"prompt": json.dumps(cls.hidden.prompt)} if cls.hidden.prompt is not None else {}
        results = []
        for name, image in zip(names, images):
            save_png16(os.path.join(folder, name), image, text)
            results.append(ui.SavedResult(name, subfolder, io.FolderType.output))
        return io.NodeOutput(ui=ui.SavedImages(results))


NODES = [LumiXRecompose, LumiXRelight, LumiXMaterialEdit, LumiXCoherenceScores, LumiXDepthConvert,
         LumiXNormalConvert, LumiXSaveImage16]
