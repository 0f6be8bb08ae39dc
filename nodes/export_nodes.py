"""LumiX export nodes: float EXR files, linear float images for ComfyUI's own savers, a
relightable GLB mesh, and relighting from an environment map. Declarations plus one call
into lumix_engine each; the conventions are documented there (exr.py, mesh.py,
intrinsics/environment.py)."""
from __future__ import annotations

import os

import folder_paths
import torch
from comfy_api.latest import Types, io, ui

from ..lumix_engine.errors import InputError
from ..lumix_engine.formats.exr import CHANNELS, PRECISIONS, map_attributes, map_channels, write_exr
from ..lumix_engine.formats.hdr import load_environment
from ..lumix_engine.formats.mesh import (
    DEFAULT_EDGE_THRESHOLD,
    DEFAULT_FOV,
    DEFAULT_MAX_SIDE,
    SIZE_BUDGET_MB,
    depth_mesh,
    glb_bytes,
)
from ..lumix_engine.image_io import atomic_path
from ..lumix_engine.intrinsics import relight
from ..lumix_engine.intrinsics.depth import DEPTH_RANGE
from ..lumix_engine.intrinsics.environment import procedural_sky, sh9_coefficients
from .browser_maps import SH9_UI_KEY, preview_maps
from .comfy_glue import output_files
from .common_inputs import exposure_input, relight_inputs

MAP_KINDS = [*CHANNELS, "linear"]
MAP_TIP = ("Which map the images are: albedo / irradiance / color (sRGB-encoded, written scene-linear R, G, B), "
           "depth (near-white disparity, written as Z and disparity), normal (encoded, written as unit vectors "
           "N.X, N.Y, N.Z), or linear (already scene-linear, written as R, G, B unchanged).")
DEPTH_RANGE_TIP = ("Depth is relative: the nearest point is placed at distance 1 and the farthest at this value "
                   "(far / near). Larger = deeper scene.")
ENVIRONMENT_SUFFIXES = (".exr", ".hdr")


class LumiXSaveEXR(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXSaveEXR",
            display_name="LumiX Save EXR (float)",
            category="LumiX/io",
            description="Save maps as OpenEXR with values that mean something in a compositor: scene-linear colour, "
                        "depth as Z and disparity, normals as unit vectors. 32-bit float (exact) or half.",
            inputs=[
                io.Image.Input("images", tooltip="The maps to save, one file per image."),
                io.Combo.Input("map", options=MAP_KINDS, default="albedo", tooltip=MAP_TIP),
                io.Combo.Input("precision", options=list(PRECISIONS), default="float32",
                               tooltip="float32 keeps every value exactly; half (16-bit float) halves the size."),
                io.Float.Input("depth_range", default=DEPTH_RANGE, min=1.01, max=10000.0, step=0.1,
                               tooltip=DEPTH_RANGE_TIP + " Used for depth only."),
                io.String.Input("filename_prefix", default="LumiX/exr/map",
                                tooltip="File name prefix inside the output folder; may contain a subfolder."),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images, map, precision, depth_range, filename_prefix) -> io.NodeOutput:
        per_image = map_channels(map, images, depth_range=depth_range)   # checks everything before writing
        folder, names, subfolder = output_files(filename_prefix, len(per_image), "exr", images.shape[2],
                                                images.shape[1])
        for name, channels in zip(names, per_image):
            write_exr(os.path.join(folder, name), channels, precision=precision,
                      attributes=map_attributes(map, depth_range))
        listing = "\n".join(os.path.join(subfolder, name) for name in names)
        return io.NodeOutput(ui=ui.PreviewText(f"{map} -> {', '.join(sorted(per_image[0]))} ({precision}):\n{listing}"))


class LumiXLinearMaps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXLinearMaps",
            display_name="LumiX Maps to Linear Float",
            category="LumiX/maps",
            description="A map as an unclipped float IMAGE in physical units, for ComfyUI's Save Image (Advanced) "
                        "EXR with input_color_space = linear: colour maps scene-linear, depth as Z (1 = nearest), "
                        "normals as unit vectors in [-1, 1] (not clamped).",
            inputs=[
                io.Image.Input("images", tooltip="A LumiX map as it comes out of Split Intrinsics."),
                io.Combo.Input("map", options=list(CHANNELS), default="albedo", tooltip=MAP_TIP),
                io.Float.Input("depth_range", default=DEPTH_RANGE, min=1.01, max=10000.0, step=0.1,
                               tooltip=DEPTH_RANGE_TIP + " Used for depth only."),
            ],
            outputs=[io.Image.Output("linear", display_name="linear", tooltip="Float IMAGE, unclipped: R, G, B = the map's channels "
                                                       "(depth: Z in all three).")],
        )

    @classmethod
    def execute(cls, images, map, depth_range) -> io.NodeOutput:
        per_image = map_channels(map, images, depth_range=depth_range)
        names = CHANNELS[map][:1] * 3 if map == "depth" else CHANNELS[map]
        stacked = [torch.stack([torch.from_numpy(channels[c]) for c in names], dim=-1) for channels in per_image]
        return io.NodeOutput(torch.stack(stacked))


def _comfy_mesh(meshes, textures: torch.Tensor):
    """The core MESH of this ComfyUI: 0.29's Types.MESH (UVs and the albedo texture travel with
    it; per-item counts because faces differ per scene), else the vertices-and-faces MESH of
    0.3.64's 3D nodes, faces padded with degenerate triangles."""
    vertices = torch.stack([torch.from_numpy(m.vertices) for m in meshes])
    most = max(len(m.faces) for m in meshes)
    faces = torch.zeros(len(meshes), most, 3, dtype=torch.int64)
    for k, m in enumerate(meshes):
        faces[k, :len(m.faces)] = torch.from_numpy(m.faces)
    if hasattr(Types, "MESH"):
        return Types.MESH(vertices, faces, uvs=torch.stack([torch.from_numpy(m.uvs) for m in meshes]),
                          texture=textures[..., :3].clamp(0, 1),
                          vertex_counts=torch.tensor([len(m.vertices) for m in meshes]),
                          face_counts=torch.tensor([len(m.faces) for m in meshes]))
    from comfy_extras.nodes_hunyuan3d import MESH
    return MESH(vertices, faces)


class LumiXSaveMesh(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXSaveMesh",
            display_name="LumiX Save Mesh (GLB)",
            category="LumiX/io",
            description="A relightable 2.5D mesh from depth, albedo and normals: one GLB per scene, triangles cut at "
                        "depth jumps, albedo as base colour, LumiX normals as vertex normals and normal texture. "
                        f"Size budget {SIZE_BUDGET_MB:g} MB. Connect model_file to Preview 3D to look at it.",
            inputs=[
                io.Image.Input("depth", tooltip="Depth map, near = white (LumiX's depth output)."),
                io.Image.Input("albedo", tooltip="Albedo map, sRGB-encoded: the base-colour texture."),
                io.Image.Input("normal", tooltip="Normal map, OpenGL-encoded (LumiX's normal output)."),
                io.Float.Input("fov", default=DEFAULT_FOV, min=1.0, max=179.0, step=0.5,
                               tooltip="Vertical field of view of the camera in degrees, strictly between 1 and "
                                       "179. LumiX does not know it; 50 suits most photos."),
                io.Float.Input("depth_range", default=DEPTH_RANGE, min=1.01, max=10000.0, step=0.1,
                               tooltip=DEPTH_RANGE_TIP),
                io.Int.Input("max_side", default=DEFAULT_MAX_SIDE, min=2, max=4096,
                             tooltip="Vertex grid points on the longer side (the map's resolution at most). "
                                     "Textures keep full resolution."),
                io.Float.Input("edge_threshold", default=DEFAULT_EDGE_THRESHOLD, min=0.001, max=100.0, step=0.01,
                               tooltip="Relative depth jump (max / min - 1) over which a triangle is cut, so "
                                       "foreground and background do not join."),
                io.Float.Input("size_budget_mb", default=SIZE_BUDGET_MB, min=1.0, max=2000.0, step=1.0,
                               tooltip="Largest GLB allowed, MB; a bigger mesh is refused with the max_side to use."),
                io.String.Input("filename_prefix", default="3d/LumiX",
                                tooltip="File name prefix inside the output folder; may contain a subfolder."),
            ],
            outputs=[
                io.String.Output("model_file", display_name="model_file", tooltip="The first GLB, relative to the output folder: connect to "
                                                       "Preview 3D's model_file."),
                io.Mesh.Output("mesh", display_name="mesh", tooltip="The meshes as ComfyUI's MESH, for Save 3D Model / SaveGLB."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, depth, albedo, normal, fov, depth_range, max_side, edge_threshold, size_budget_mb,
                filename_prefix) -> io.NodeOutput:
        if not depth.shape[0] == albedo.shape[0] == normal.shape[0]:
            raise InputError(f"depth, albedo and normal must hold the same number of scenes; got {depth.shape[0]}, "
                             f"{albedo.shape[0]} and {normal.shape[0]}.")
        meshes, files = [], []
        for k in range(depth.shape[0]):   # every scene is built and checked before any file is written
            mesh = depth_mesh(depth[k:k + 1], normal[k:k + 1], fov=fov, depth_range=depth_range, max_side=max_side,
                              edge_threshold=edge_threshold)
            meshes.append(mesh)
            files.append(glb_bytes(mesh, albedo[k:k + 1], normal[k:k + 1], size_budget_mb=size_budget_mb))
        folder, names, subfolder = output_files(filename_prefix, len(files), "glb", depth.shape[2], depth.shape[1])
        for name, data in zip(names, files):
            with atomic_path(os.path.join(folder, name)) as partial:
                partial.write_bytes(data)
        model_file = f"{subfolder}/{names[0]}" if subfolder else names[0]
        results = [{"filename": name, "subfolder": subfolder, "type": "output"} for name in names]
        return io.NodeOutput(model_file, _comfy_mesh(meshes, albedo), ui={"3d": results})


def environment_files() -> list[str]:
    """The .exr and .hdr files in ComfyUI's input folder (environment maps to relight with)."""
    folder = folder_paths.get_input_directory()
    try:
        return sorted(name for name in os.listdir(folder) if name.lower().endswith(ENVIRONMENT_SUFFIXES))
    except OSError:
        return []


class LumiXRelightEnvironment(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXRelightEnvironment",
            display_name="LumiX Relight (environment map)",
            category="LumiX/maps",
            description="Relight albedo + normals with an equirectangular environment (.exr / .hdr in the input folder, "
                        "or an IMAGE): diffuse irradiance from 9 spherical-harmonic coefficients (Ramamoorthi & "
                        "Hanrahan 2001). No shadows.",
            inputs=[
                *relight_inputs(),
                io.Combo.Input("environment_file", options=["none", *environment_files()], default="none",
                               tooltip="A lat-long (2:1) HDR panorama (.exr or .hdr) in ComfyUI's input folder. 'none': "
                                       "the environment image input if connected, else a built-in procedural sky "
                                       "(blue sky, brown ground, a warm sun up and to the right)."),
                io.Float.Input("rotation", default=0.0, min=-360.0, max=360.0, step=1.0,
                               tooltip="Turn the environment about the vertical axis, degrees: +90 brings what "
                                       "was at the panorama's centre (in front of the camera) to the right."),
                io.Float.Input("intensity", default=1.0, min=0.0, max=100.0, step=0.05,
                               tooltip="Multiplier on the environment's radiance (a uniform environment of value 1 "
                                       "gives irradiance 1)."),
                exposure_input(),
                io.Image.Input("environment", optional=True,
                               tooltip="An equirectangular panorama as an IMAGE (2:1), used when environment_file "
                                       "is 'none'."),
                io.Boolean.Input("environment_is_srgb", default=True, optional=True,
                                 tooltip="On: the environment IMAGE is an sRGB-encoded picture (Load Image); off: "
                                         "it is already linear radiance."),
            ],
            outputs=[
                io.Image.Output("color", display_name="color", tooltip="The relit image, sRGB-encoded."),
                io.Image.Output("irradiance_used", display_name="irradiance",
                                tooltip="The environment's irradiance, sRGB-encoded (may exceed 1)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, environment_file) -> bool | str:
        if environment_file == "none" or environment_file in environment_files():
            return True
        return (f"environment_file {environment_file!r} is not an .exr / .hdr file in ComfyUI's input folder; put "
                f"the lat-long HDRI there and pick it, or choose 'none' and connect an IMAGE.")

    @classmethod
    def execute(cls, albedo, normal, environment_file, rotation, intensity, exposure, environment=None,
                environment_is_srgb=True) -> io.NodeOutput:
        if environment_file != "none":
            radiance = load_environment(os.path.join(folder_paths.get_input_directory(), environment_file))
        elif environment is not None:
            radiance = load_environment(environment, srgb=environment_is_srgb)
        else:
            radiance = procedural_sky(64)
        color, used = relight(albedo, normal, (), ambient=(0.0, 0.0, 0.0), exposure=exposure, environment=radiance,
                              rotation=rotation, environment_intensity=intensity)
        # The live editor (web/js/lumix_relight_editor.js) relights the maps in the browser from the
        # environment's 9 SH coefficients at rotation 0 (it turns the normals instead).
        ui = preview_maps({"albedo": albedo, "normal": normal})
        ui[SH9_UI_KEY] = [[float(v) for v in sh9_coefficients(radiance, 0.0).flatten()]]
        return io.NodeOutput(color, used, ui=ui)


NODES = [LumiXSaveEXR, LumiXLinearMaps, LumiXSaveMesh, LumiXRelightEnvironment]
