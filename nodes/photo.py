"""LumiXDecomposePhoto: a photo of any size -> albedo, irradiance, depth and normal at its
own size, optionally as an ensemble with uncertainty maps. Thin: the sizes, the ensemble,
the post-processing and the upsampling are lumix_engine.apps.photo; the sampling is
LumiXSampler's (sampling_glue.py).

The input `seeds` keeps its name, which saved workflows store; it is shown as
`ensemble_size`, the name the Python API and the CLI use."""
from __future__ import annotations

import logging

import comfy.samplers
from comfy_api.latest import io

from ..lumix_engine.apps.photo import MAX_ENSEMBLE_SIZE, describe, finish_photos, prepare_photos
from ..lumix_engine.intrinsics.ensemble import UNCERTAINTY_SUFFIX
from ..lumix_engine.intrinsics.upsample import METHODS
from ..lumix_engine.method.memory import fits
from ..lumix_engine.method.resolution import (
    DEFAULT_MEGAPIXELS,
    MAX_MEGAPIXELS,
    MAX_OUTPUT_MEGAPIXELS,
    MIN_MEGAPIXELS,
)
from ..lumix_engine.method.sampling import AUTO
from ..lumix_engine.modalities import split_maps
from .comfy_glue import gpu_memory_bytes, upsampling_hooks
from .sampling_glue import sample_maps, scheduler_names, unknown_sampler
from .viewer_maps import viewer_ui

OUTPUT_MAPS = ("albedo", "irradiance", "depth", "normal")
log = logging.getLogger(__name__)


class LumiXDecomposePhoto(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXDecomposePhoto",
            display_name="LumiX Decompose Photo (any size)",
            category="LumiX/sampling",
            description="A photo of any size and aspect -> albedo, irradiance, depth and normal at the photo's own "
                        "pixel size. Worked on at a size chosen from the photo (aspect kept, sides multiples of 16, "
                        "the megapixel budget), brought back edge-aware and guided by the photo, so that albedo x "
                        "irradiance recomposes it exactly. Nothing is cropped. Depth is made grey and normals unit "
                        "length (named in 'info'). ensemble_size > 1: an ensemble with uncertainty maps.",
            inputs=[
                io.Model.Input("model", tooltip="The MODEL from LumiXLoader."),
                io.Conditioning.Input("positive", tooltip="A caption of the photo (the published runs use one); "
                                                          "no negative prompt: decomposition runs without CFG."),
                io.Vae.Input("vae", tooltip="The FLUX VAE (ae.safetensors): encodes the photo, decodes the maps."),
                io.Image.Input("image", tooltip="The photo(s), any size; a batch must share one size. Grey and "
                                                "RGBA are fine (alpha is ignored)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the noise; an ensemble draws one noise per run from it."),
                io.Int.Input("steps", default=50, min=1, max=1000, tooltip="Sampling steps (published: 50)."),
                io.Float.Input("megapixels", default=round(DEFAULT_MEGAPIXELS, 2), min=MIN_MEGAPIXELS,
                               max=MAX_MEGAPIXELS, step=0.01,
                               tooltip=f"Working area: the photo is worked on at this many megapixels, aspect kept "
                                       f"(published 1536x1152 = 1.77; at most {MAX_MEGAPIXELS}, which fits a 24 GB "
                                       f"GPU with fp8 FLUX, simulated: docs/memory.md). The maps come back at the photo's own size anyway."),
                io.Int.Input("seeds", display_name="ensemble_size", default=1, min=1, max=MAX_ENSEMBLE_SIZE,
                             tooltip="Ensemble size: N runs with different noise, combined per map (depth aligned "
                                     "by scale and shift, normals averaged and renormalised, albedo and irradiance "
                                     "in linear light), with uncertainty maps. 1 = a single run. Costs N times the "
                                     "sampling. (Stored as 'seeds' in workflows and the API.)"),
                io.Combo.Input("upsample", options=list(METHODS), default="guided",
                               tooltip="Working size -> photo size: 'guided' = the photo's detail transferred to "
                                       "each map by a local linear fit (edges come back sharp and antialiased), "
                                       "with albedo = photo / irradiance, so they recompose the photo exactly; "
                                       "'bilinear' = plain resizing."),
                io.Combo.Input("sampler_name", options=comfy.samplers.SAMPLER_NAMES, default="euler",
                               tooltip="ComfyUI sampler (published: euler)."),
                io.Combo.Input("scheduler", options=scheduler_names(), default="published",
                               tooltip="As in LumiX Sampler ('published' = the authors' schedule; "
                                       "'true_token_count' = the same with FLUX's real token count)."),
                io.Float.Input("max_output_megapixels", default=MAX_OUTPUT_MEGAPIXELS, min=1.0, max=200.0, step=1.0,
                               tooltip="Larger photos come back downscaled to this area (aspect kept), with a "
                                       "warning in 'info' and the console: a 100 MP photo's float maps would need "
                                       "GBs each."),
            ],
            outputs=[
                *(io.Image.Output(name, display_name=name, tooltip=f"The {name} map at the photo's size.")
                  for name in OUTPUT_MAPS),
                *(io.Image.Output(name + UNCERTAINTY_SUFFIX, display_name=name + UNCERTAINTY_SUFFIX,
                                  tooltip=f"Spread of the {name} across the ensemble's runs (grey, 0 = all agree; "
                                          f"normals: mean angle / 90 degrees). Black when ensemble_size = 1.")
                  for name in OUTPUT_MAPS),
                io.String.Output("info", display_name="info", tooltip="Photo, working and output sizes, the ensemble size, the post-processing "
                                         "steps applied (grey_depth, unit_normals), and any warning."),
            ],
        )

    @classmethod
    def validate_inputs(cls, sampler_name, scheduler) -> bool | str:
        return unknown_sampler(sampler_name, scheduler) or True

    @classmethod
    def execute(cls, model, positive, vae, image, seed, steps, megapixels, seeds, upsample, sampler_name, scheduler,
                max_output_megapixels) -> io.NodeOutput:
        prepared = prepare_photos({"color": image}, megapixels, seeds, max_output_megapixels)   # seeds = ensemble_size
        info = describe(prepared, upsample)
        memory = fits(prepared.plan.working, model.model_dtype(), gpu_memory_bytes(model))
        info = f"{info}; {memory}" if memory else info
        log.info("LumiX: %s", info)
        width, height = prepared.plan.working
        # No CFG for decomposition (published), so the negative is never evaluated.
        samples = sample_maps(model, positive, positive, seed, steps, AUTO, AUTO, width, height, prepared.scenes,
                              sampler_name, scheduler, vae, prepared.working)
        decoded = split_maps(vae.decode(samples)[..., :3].float().cpu())
        maps, uncertainty = finish_photos(decoded, prepared, upsample, **upsampling_hooks())
        return io.NodeOutput(*(maps[name] for name in OUTPUT_MAPS),
                             *(uncertainty[name + UNCERTAINTY_SUFFIX] for name in OUTPUT_MAPS), info,
                             ui=viewer_ui(maps))   # the five maps (color = the photo) for the maps viewer
