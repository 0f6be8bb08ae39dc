"""LumiXSampler: sample five maps per scene from one shared noise, optionally holding maps.

Sampling itself is ComfyUI's (any sampler, progress, previews, interruption); LumiX adds
the schedule, the shared noise and, for decomposition, a model wrapper that feeds the given
maps' clean latents at t = 0 on every call, as the authors decompose.
"""
from __future__ import annotations

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import node_helpers
import torch
from comfy_api.latest import io

from ..lumix_engine.errors import InputError, ModelMismatchError
from ..lumix_engine.intrinsics.checks import as_image
from ..lumix_engine.method.patch import lumix_patches_in
from ..lumix_engine.method.sampling import (
    AUTO,
    DECOMPOSITION,
    NUMERICS,
    TEXT_TO_MAPS,
    GivenMaps,
    authors_noise,
    check_size,
    resolve_guidance,
    schedule,
    shared_noise,
)
from ..lumix_engine.modalities import MAP_NAMES, NUM_MAPS, scene_strip

SCHEDULES = ["published", "true_token_count"]


class HoldGivenMaps:
    """model_function_wrapper: given maps' rows get their clean latent and timestep 0."""

    def __init__(self, given: GivenMaps, previous=None) -> None:
        self.given, self.previous = given, previous

    def __deepcopy__(self, memo):
        return self

    def __call__(self, apply_model, args):
        x, sigma = args["input"], args["timestep"]
        chunks = len(args["cond_or_uncond"])
        x = self.given.hold(x, chunks)
        sigma = sigma.masked_fill(self.given.mask(x.shape[0], sigma.device), 0.0)
        if self.previous is not None:
            return self.previous(apply_model, {**args, "input": x, "timestep": sigma})
        return apply_model(x, sigma, **args["c"])


def encode_given_maps(model, vae, images: dict, width: int, height: int, scenes: int) -> tuple[GivenMaps, dict]:
    """VAE latents of the given maps: raw (for the output) and in the model's space."""
    if not images:
        return GivenMaps(), {}
    if vae is None:
        raise InputError(f"maps were given ({', '.join(images)}) but no VAE: connect the FLUX VAE (ae.safetensors) "
                         f"to encode them")
    raw, processed = {}, {}
    for name, image in images.items():
        image = as_image(image, f"the {name} image", expand_grey=True)
        if image.shape[1:3] != (height, width):
            raise InputError(f"the {name} image is {image.shape[2]}x{image.shape[1]} but the sampler is set to "
                             f"{width}x{height}: set width/height to the image size (a multiple of 16) or scale the "
                             f"image first (e.g. ImageScale)")
        if image.shape[0] != scenes:
            raise InputError(f"{image.shape[0]} {name} image(s) but scenes = {scenes}: give one image per scene or "
                             f"set scenes to {image.shape[0]}")
        raw[name] = vae.encode(image)
        processed[name] = model.model.process_latent_in(raw[name])
    return GivenMaps(processed), raw


def preview_callback(model, steps: int):
    """Progress, interruption and a preview of scene 0's five maps side by side."""
    previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
    pbar = comfy.utils.ProgressBar(steps)

    def callback(step, x0, x, total_steps):
        preview = previewer.decode_latent_to_preview_image("JPEG", scene_strip(x0)) if previewer else None
        pbar.update_absolute(step + 1, total_steps, preview)
    return callback


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
                io.Combo.Input("scheduler", options=SCHEDULES + list(comfy.samplers.SCHEDULER_NAMES),
                               default="published",
                               tooltip="'published' reproduces the authors' schedule (its token-count quirk, "
                                       "mu ~ 0.46 at 512x512); 'true_token_count' uses FLUX's real image token "
                                       "count; the others are ComfyUI's schedulers on the model's sampling."),
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


def unknown_sampler(sampler_name: str, scheduler: str) -> str | None:
    """ComfyUI (0.3.64) does not check V3 combo values in API mode: an unknown sampler would
    fail mid-queue with an AttributeError from k_diffusion. The message, or None if both are known."""
    for name, value, options in (("sampler_name", sampler_name, comfy.samplers.SAMPLER_NAMES),
                                 ("scheduler", scheduler, SCHEDULES + list(comfy.samplers.SCHEDULER_NAMES))):
        if value not in options:
            return f"{name} {value!r} is not one of {', '.join(map(str, options))}"
    return None


def check_patched(model) -> None:
    if not lumix_patches_in(model.model_options.get("transformer_options", {}).get("patches_replace")):
        raise ModelMismatchError("this MODEL is not patched by LumiX: connect the MODEL output of LumiXLoader")


def sample_maps(model, positive, negative, seed: int, steps: int, cfg: float, guidance: float, width: int,
                height: int, scenes: int, sampler_name: str, scheduler: str, vae, images: dict,
                numerics: str = "engine") -> torch.Tensor:
    """The LumiX sampling both sampler nodes share: latents [5 * scenes, C, height/8, width/8],
    given maps (images at width x height, one per scene) held at t = 0 and returned as encoded.
    numerics="authors" draws the noise and quantises the schedule as the authors' scripts do."""
    check_patched(model)
    check_size(width, height)
    if numerics not in NUMERICS:
        raise InputError(f"numerics {numerics!r} is unknown; use one of {', '.join(NUMERICS)}")
    cfg, guidance = resolve_guidance(cfg, guidance, decomposing=bool(images))
    given, raw_latents = encode_given_maps(model, vae, images, width, height, scenes)

    patched = model.clone()
    if given:
        previous = patched.model_options.get("model_function_wrapper")
        patched.set_model_unet_function_wrapper(HoldGivenMaps(given, previous))
    channels = model.get_model_object("latent_format").latent_channels
    shape = (channels, height // 8, width // 8)
    authors = numerics == "authors"
    if authors:
        # bf16 (or fp16) values are exact in float32, so ComfyUI starts from their very noise.
        noise = authors_noise(scenes, shape, seed, patched.model_dtype(), patched.load_device).float().cpu()
    else:
        noise = shared_noise(scenes, shape, seed)
    if scheduler in SCHEDULES:
        sigmas = schedule(steps, width, height, "published" if scheduler == "published" else "true",
                          dtype=torch.float32 if authors else torch.float64).float()
    else:
        sigmas = comfy.samplers.calculate_sigmas(patched.get_model_object("model_sampling"), scheduler, steps).cpu()
    positive, negative = (node_helpers.conditioning_set_values(c, {"guidance": guidance}) for c in (positive, negative))
    samples = comfy.sample.sample_custom(
        patched, noise, cfg, comfy.samplers.sampler_object(sampler_name), sigmas, positive, negative,
        torch.zeros((scenes * NUM_MAPS, *shape)), callback=preview_callback(patched, steps),
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    for name, latent in raw_latents.items():  # given maps come out exactly as they went in
        samples.view(scenes, NUM_MAPS, *shape)[:, MAP_NAMES.index(name)] = latent.to(samples)
    return samples
