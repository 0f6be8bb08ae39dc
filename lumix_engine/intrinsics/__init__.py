"""Intrinsic maps people can use: conventions, recomposition, relighting, coherence scores
and a procedural ground-truth renderer. Pure torch/numpy, no ComfyUI.

Images are ComfyUI-style channels-last float tensors [B, H, W, C] in [0, 1], kept in
float end to end. Conventions are stated once, in conventions.py.
"""
from .color_space import linear_to_srgb, srgb_to_linear
from .conventions import Light, PinholeCamera
from .depth import depth_to_disparity, depth_to_image, invert, normalize_per_image
from .normals import (
                      convert_convention,
                      decode_normals,
                      depth_gradients,
                      encode_normals,
                      normalize_normals,
                      normals_from_depth,
)
from .recompose import irradiance_from_lights, linear_product, material_edit, recompose, relight, residual
from .render import RenderedScene, SceneDescription, SceneObject, make_scene, render, render_scene
from .scores import CoherenceReport, coherence_report

__all__ = [
    "linear_to_srgb", "srgb_to_linear",
    "depth_to_disparity", "depth_to_image", "invert", "normalize_per_image",
    "convert_convention", "decode_normals", "depth_gradients", "encode_normals", "normalize_normals",
    "normals_from_depth",
    "irradiance_from_lights", "linear_product", "material_edit", "recompose", "relight", "residual",
    "Light", "PinholeCamera", "RenderedScene", "SceneDescription", "SceneObject", "make_scene", "render",
    "render_scene",
    "CoherenceReport", "coherence_report",
]
