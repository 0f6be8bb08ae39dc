"""The LumiX sampling both sampler nodes share (LumiX Sampler, LumiX Decompose Photo).

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

from ..lumix_engine.errors import InputError, ModelMismatchError
from ..lumix_engine.intrinsics.checks import as_image
from ..lumix_engine.method.patch import lumix_patches_in
from ..lumix_engine.method.sampling import (
    NUMERICS,
    GivenMaps,
    authors_noise,
    check_size,
    resolve_guidance,
    schedule,
    shared_noise,
)
from ..lumix_engine.modalities import MAP_NAMES, NUM_MAPS, scene_strip

# The schedulers LumiX adds to ComfyUI's, each with the engine's token count it samples with
# (`token_count` in the Python API, `--token-count` on the CLI: "published" | "true").
# "true_token_count" is the value workflows saved since 0.1.0 hold; ComfyUI refuses a combo
# value it does not offer, so the name stays (CHANGELOG: combo options are only added).
SCHEDULE_TOKEN_COUNT = {"published": "published", "true_token_count": "true"}
SCHEDULES = list(SCHEDULE_TOKEN_COUNT)
SCHEDULER_TOOLTIP = ("'published' reproduces the authors' schedule (token count 'published': their token-count "
                     "quirk, mu ~ 0.46 at 512x512); 'true_token_count' is the same schedule with FLUX's real image "
                     "token count (token count 'true' in the Python API and on the CLI); the others are ComfyUI's "
                     "schedulers on the model's sampling.")


def scheduler_names() -> list[str]:
    """The scheduler combo's options: LumiX's two, then ComfyUI's own."""
    return SCHEDULES + list(comfy.samplers.SCHEDULER_NAMES)


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


def unknown_sampler(sampler_name: str, scheduler: str) -> str | None:
    """ComfyUI (0.3.64) does not check V3 combo values in API mode: an unknown sampler would
    fail mid-queue with an AttributeError from k_diffusion. The message, or None if both are known."""
    for name, value, options in (("sampler_name", sampler_name, comfy.samplers.SAMPLER_NAMES),
                                 ("scheduler", scheduler, scheduler_names())):
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
    if scheduler in SCHEDULE_TOKEN_COUNT:
        sigmas = schedule(steps, width, height, SCHEDULE_TOKEN_COUNT[scheduler],
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
