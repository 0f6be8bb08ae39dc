"""LumiXSampler: sample five maps per scene from one shared noise, optionally holding maps.

A declaration; the sampling it runs (ComfyUI's sampler with LumiX's schedule, shared noise
and held maps) is nodes/sampling_glue.py, shared with LumiX Decompose Photo.
"""
from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io

from ..lumix_engine.errors import InputError
from ..lumix_engine.method.sampling import AUTO, DECOMPOSITION, NUMERICS, TEXT_TO_MAPS, check_size
from ..lumix_engine.modalities import MAP_NAMES
from .sampling_glue import SCHEDULER_TOOLTIP, sample_maps, scheduler_names, unknown_sampler


class LumiXSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        map_inputs = [io.Image.Input(name, optional=True,
                                     tooltip=f"Optional {name} image(s), one per scene, at width x height: held "
                                             f"fixed (t = 0, never updated) while the other maps are generated.")
                      for name in MAP_NAMES]
        return io.Schema(
            node_id="LumiXSampler",
            display_name="LumiX Sampler",
            category="LumiX/sampling",
            description="Generate albedo, irradiance, color, depth and normal (5 latents per scene, in that order) "
                        "from one shared noise. Give any map (e.g. color = decomposition) to generate the others.",
            inputs=[
                io.Model.Input("model", tooltip="The MODEL from LumiXLoader."),
                io.Conditioning.Input("positive", tooltip="The prompt, used for all five maps."),
                io.Conditioning.Input("negative", tooltip=f"Negative prompt for true CFG (published: "
                                                          f"'{TEXT_TO_MAPS.negative_prompt}'). Unused when cfg is 1."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the one noise shared by the five maps of each scene."),
                io.Int.Input("steps", default=TEXT_TO_MAPS.steps, min=1, max=1000,
                             tooltip=f"Sampling steps (published: {TEXT_TO_MAPS.steps})."),
                io.Float.Input("cfg", default=AUTO, min=AUTO, max=30.0, step=0.1, round=0.01,
                               tooltip=f"True classifier-free guidance scale. -1 = published: {TEXT_TO_MAPS.cfg} "
                                       f"for text -> maps, {DECOMPOSITION.cfg} (off) when any map is given."),
                io.Float.Input("guidance", default=AUTO, min=AUTO, max=100.0, step=0.1, round=0.01,
                               tooltip=f"FLUX guidance embedding. -1 = published: {TEXT_TO_MAPS.guidance} for text "
                                       f"-> maps, {DECOMPOSITION.guidance} when any map is given. Overrides "
                                       f"FluxGuidance on the conditioning."),
                io.Int.Input("width", default=TEXT_TO_MAPS.width, min=16, max=4096, step=16,
                             tooltip=f"Width in pixels, a multiple of 16 (published: {TEXT_TO_MAPS.width})."),
                io.Int.Input("height", default=TEXT_TO_MAPS.height, min=16, max=4096, step=16,
                             tooltip=f"Height in pixels, a multiple of 16 (published: {TEXT_TO_MAPS.height})."),
                io.Int.Input("scenes", default=1, min=1, max=64, tooltip="Number of scenes; the batch holds 5 maps "
                                                                         "per scene."),
                io.Combo.Input("sampler_name", options=comfy.samplers.SAMPLER_NAMES, default="euler",
                               tooltip="ComfyUI sampler (published: euler)."),
                io.Combo.Input("scheduler", options=scheduler_names(), default="published",
                               tooltip=SCHEDULER_TOOLTIP),
                io.Combo.Input("numerics", options=list(NUMERICS), default="engine", optional=True,
                               tooltip="'engine': the noise is drawn on the CPU in float32 (same seed, same noise "
                                       "on every device). 'authors': drawn as the authors' scripts draw it (on "
                                       "the model's device, in its dtype, seed + k for scene k) with their float32 "
                                       "schedule, to start from their noise. The state, CFG and T5 padding stay "
                                       "ComfyUI's; the standalone pipeline reproduces those too."),
                io.Vae.Input("vae", optional=True, tooltip="FLUX VAE, needed only to encode given maps."),
                *map_inputs,
            ],
            outputs=[io.Latent.Output(tooltip="5 latents per scene: albedo, irradiance, color, depth, normal. "
                                              "VAEDecode, then SplitIntrinsics.")],
        )

    @classmethod
    def validate_inputs(cls, sampler_name, scheduler, width, height) -> bool | str:
        # ComfyUI (0.3.64) does not check the widgets' step in API mode: a width of 72 would
        # fail only at run time.
        unknown = unknown_sampler(sampler_name, scheduler)
        if unknown:
            return unknown
        try:
            check_size(width, height)
        except InputError as error:
            return str(error)
        return True

    @classmethod
    def execute(cls, model, positive, negative, seed, steps, cfg, guidance, width, height, scenes, sampler_name,
                scheduler, vae=None, numerics="engine", **maps) -> io.NodeOutput:
        images = {name: image for name, image in maps.items() if image is not None}
        return io.NodeOutput({"samples": sample_maps(model, positive, negative, seed, steps, cfg, guidance, width,
                                                     height, scenes, sampler_name, scheduler, vae, images,
                                                     numerics)})
