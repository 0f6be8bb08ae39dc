"""LumiXPipeline: text -> five maps, and image -> the other maps, outside ComfyUI.

Built from the ecosystem's own parts: a diffusers `FluxTransformer2DModel` patched in
place by `patch_diffusers`, a diffusers `AutoencoderKL`, and transformers' CLIP-L and
T5-XXL encoders. The sampling is the engine's (`method/sampling.py`, the authors' published
settings), so the ComfyUI nodes and this pipeline integrate the same equations.

    from lumix_engine import LumiXPipeline
    pipe = LumiXPipeline.from_files(flux_dir="models/FLUX.1-dev", lumix="models/lumix/lumix.safetensors")
    maps = pipe.generate("a red chair in a sunlit room", seed=7)
    maps.albedo   # [1, 512, 512, 3] float in [0, 1]
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import torch

from ..errors import InputError, ModelMismatchError
from ..flux.velocity import diffusers_flux_velocity
from ..formats.exr import write_maps_exr
from ..image_io import ImageLike, write_maps
from ..intrinsics.depth import DEPTH_RANGE
from ..intrinsics.postprocess import check_steps
from ..method.adapters import LumiXAdapters
from ..method.checkpoint import load_adapters
from ..method.patch import patch_diffusers
from ..method.resolution import DEFAULT_MEGAPIXELS, MAX_OUTPUT_MEGAPIXELS
from ..method.sampling import (
    DECOMPOSITION,
    NUMERICS,
    TEXT_TO_MAPS,
    GivenMaps,
    Numerics,
    Settings,
    authors_noise,
    check_size,
    guided_velocity,
    sample_euler,
    schedule,
    shared_noise,
)
from ..modalities import MAP_NAMES, NUM_MAPS, map_index, split_maps
from .loading import ModelFiles, load_text_encoders, load_transformer, load_vae
from .photo import PreparedPhotos, finish_photos, prepare_photos

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
StepCallback = Callable[[int, int, torch.Tensor], None]


@dataclass
class LumiXMaps:
    """The five maps of every scene, as float images [scenes, H, W, 3] in [0, 1].

    albedo, irradiance and color are sRGB-encoded images, depth is near-white disparity,
    normal is an OpenGL-encoded normal image (conventions: `lumix_engine.intrinsics`).
    `latents` holds the final FLUX latents [5 * scenes, 16, H/8, W/8], scene-major in map
    order; `settings` everything needed to run it again (decompose: with the post-processing
    steps applied, `settings["postprocess"]`). `uncertainty` (decompose): `{name}_uncertainty`
    grey images, the spread of an ensemble's runs (zero for one run).
    """
    albedo: torch.Tensor
    irradiance: torch.Tensor
    color: torch.Tensor
    depth: torch.Tensor
    normal: torch.Tensor
    settings: dict[str, Any] = field(default_factory=dict)
    latents: Optional[torch.Tensor] = None
    uncertainty: dict[str, torch.Tensor] = field(default_factory=dict)

    def as_dict(self) -> dict[str, torch.Tensor]:
        """{name: image} in map order."""
        return {name: getattr(self, name) for name in MAP_NAMES}

    @property
    def scenes(self) -> int:
        return self.color.shape[0]

    def save(self, out_dir: Union[str, Path], format: str = "png", *, precision: str = "float32",
             depth_range: float = DEPTH_RANGE) -> list[Path]:
        """Write the maps: 16-bit PNGs as the model outputs them, or float EXRs in physical
        units (scene-linear colour, Z and disparity, unit normals; see lumix_engine.formats.exr)."""
        if format == "png":
            return write_maps(self.as_dict(), Path(out_dir))
        if format == "exr":
            return write_maps_exr(self.as_dict(), Path(out_dir), precision=precision, depth_range=depth_range)
        raise InputError(f"map format {format!r} is unknown; use 'png' (16-bit) or 'exr' (float).")

    def save_meshes(self, out_dir: Union[str, Path], **options: Any) -> list[Path]:
        """One relightable GLB per scene, `mesh.glb` or `mesh_{k}.glb` (options: see
        lumix_engine.formats.mesh.write_glb: fov, depth_range, max_side, edge_threshold, size_budget_mb)."""
        from ..formats.mesh import write_glb
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / ("mesh.glb" if self.scenes == 1 else f"mesh_{k}.glb") for k in range(self.scenes)]
        for k, path in enumerate(paths):
            write_glb(path, self.depth[k:k + 1], self.albedo[k:k + 1], self.normal[k:k + 1], **options)
        return paths


def resolve_dtype(dtype: Union[str, torch.dtype, None], device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise InputError(f"dtype {dtype!r} is unknown; use one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


class LumiXPipeline:
    """FLUX.1-dev + LumiX: `generate` (text -> maps) and `decompose` (image(s) -> the other maps).

    `numerics` chooses how the arithmetic around the transformer is done:
    - "engine" (default): noise drawn on the CPU in float32 (the same seed gives the same
      noise on every device), the latent state and the CFG combination in float32, the VAE
      in the pipeline's dtype, T5 padded to at most the tokenizer's length;
    - "authors": as the authors' inference scripts (MIT, github.com/xhanxu/LumiX, eval/):
      noise drawn with a generator on the model's device directly in the model's dtype, the
      state kept and CFG combined in the model's dtype (so per-entry timesteps are rounded
      to it too), the schedule in float32, the VAE in float32, T5 padded to 512 tokens.
      Use it to compare outputs with theirs seed for seed. (Their decomposition samples the
      VAE posterior with an unseeded generator, which no seed reproduces; both modes use
      the posterior mode.) `decompose` then applies no post-processing by default, so one
      run returns the maps as decoded, as their decomposition script does.
    """

    def __init__(self, transformer: torch.nn.Module, vae: torch.nn.Module, text_encoder: torch.nn.Module,
                 tokenizer: Any, text_encoder_2: torch.nn.Module, tokenizer_2: Any, adapters: LumiXAdapters, *,
                 device: Union[str, torch.device, None] = None, dtype: Union[str, torch.dtype, None] = None,
                 offload_text_encoders: bool = False, progress: bool = True, strength: float = 1.0,
                 max_sequence_length: int = 512, clip_max_length: int = 77, numerics: Numerics = "engine") -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = resolve_dtype(dtype, self.device)
        if numerics not in NUMERICS:
            raise InputError(f"numerics {numerics!r} is unknown; use one of {', '.join(NUMERICS)}")
        self.numerics = numerics
        self.offload_text_encoders = offload_text_encoders
        self.progress = progress
        self.max_sequence_length, self.clip_max_length = max_sequence_length, clip_max_length
        self.tokenizer, self.tokenizer_2 = tokenizer, tokenizer_2
        self.transformer = _place(transformer, self.device, self.dtype)
        self.vae = _place(vae, self.device, torch.float32 if numerics == "authors" else self.dtype)
        encoders_at = torch.device("cpu") if offload_text_encoders else self.device
        self.text_encoder = _place(text_encoder, encoders_at, self.dtype)
        self.text_encoder_2 = _place(text_encoder_2, encoders_at, self.dtype)
        latent_channels = self.vae.config.latent_channels
        if self.transformer.config.in_channels != 4 * latent_channels:
            raise ModelMismatchError(f"the transformer takes {self.transformer.config.in_channels} channels per token, "
                                     f"the VAE gives {latent_channels}-channel latents packed 2x2 = "
                                     f"{4 * latent_channels}; use the FLUX.1-dev VAE (ae.safetensors)")
        self.latent_channels = latent_channels
        self.adapters = adapters.to(self.device)
        self.strength = strength
        self._unpatch = patch_diffusers(self.transformer, self.adapters, strength=strength)

    @classmethod
    def from_files(cls, files: Union[ModelFiles, Mapping[str, Any], None] = None, *,
                   device: Union[str, torch.device, None] = None, dtype: Union[str, torch.dtype, None] = None,
                   offload_text_encoders: bool = False, progress: bool = True, strength: float = 1.0,
                   max_sequence_length: int = 512, numerics: Numerics = "engine",
                   **paths: Any) -> "LumiXPipeline":
        """Load from local files only (see `ModelFiles`); `paths` are ModelFiles fields.

        Every missing file is reported at once, with where to put it and where to get it,
        before anything loads.
        """
        if isinstance(files, ModelFiles):
            files = {f.name: getattr(files, f.name) for f in fields(files)}
        files = ModelFiles.from_mapping({**dict(files or {}), **paths})
        files = files.check()
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch_dtype = resolve_dtype(dtype, target)
        adapters = load_adapters(files.lumix)
        transformer = load_transformer(files, torch_dtype)
        vae = load_vae(files, torch_dtype)
        clip, clip_tokenizer, t5, t5_tokenizer = load_text_encoders(files, torch_dtype)
        return cls(transformer, vae, clip, clip_tokenizer, t5, t5_tokenizer, adapters, device=target,
                   dtype=torch_dtype, offload_text_encoders=offload_text_encoders, progress=progress,
                   strength=strength, max_sequence_length=max_sequence_length, numerics=numerics)

    def close(self) -> None:
        """Remove the LumiX patch from the transformer (it is plain FLUX.1-dev again)."""
        if self._unpatch is not None:
            self._unpatch()
            self._unpatch = None

    # -- text -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _text_encoders_on_device(self) -> Iterator[None]:
        if not self.offload_text_encoders:
            yield
            return
        self.text_encoder.to(self.device)
        self.text_encoder_2.to(self.device)
        try:
            yield
        finally:
            self.text_encoder.to("cpu")
            self.text_encoder_2.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    @torch.no_grad()
    def encode_prompt(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(T5 context [B, T, 4096], CLIP pooled vector [B, 768]), as FLUX.1-dev is conditioned.

        Both tokenizers pad to their full length (CLIP 77, T5 512 for FLUX.1-dev, or less if a
        tokenizer says so, except with authors' numerics) and no attention mask is used, as in
        BFL's reference and diffusers' FluxPipeline.
        """
        prompts = list(prompts)
        with self._text_encoders_on_device():
            at = self.text_encoder.device
            clip_ids = self.tokenizer(prompts, padding="max_length", max_length=self.clip_max_length,
                                      truncation=True, return_tensors="pt").input_ids
            pooled = self.text_encoder(clip_ids.to(at)).pooler_output
            t5_length = self.max_sequence_length
            if self.numerics == "engine":
                t5_length = min(t5_length, self.tokenizer_2.model_max_length)
            t5_ids = self.tokenizer_2(prompts, padding="max_length", max_length=t5_length,
                                      truncation=True, return_tensors="pt").input_ids
            context = self.text_encoder_2(t5_ids.to(at)).last_hidden_state
        return context.to(self.device, self.dtype), pooled.to(self.device, self.dtype)

    def _conditioning(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per batch entry (scene-major, the same prompt for the five maps of a scene)."""
        unique = list(dict.fromkeys(prompts))
        context, pooled = self.encode_prompt(unique)
        rows = torch.tensor([unique.index(p) for p in prompts for _ in range(NUM_MAPS)], device=self.device)
        return context[rows], pooled[rows]

    # -- latents ----------------------------------------------------------------------
    def _vae_factors(self) -> tuple[float, float]:
        return float(self.vae.config.scaling_factor), float(self.vae.config.shift_factor or 0.0)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, H, W, 3] in [0, 1] -> FLUX latents [B, 16, H/8, W/8] float32:
        (mode of the VAE posterior - shift) * scale. The mode, not a sample, so that a given
        map is one fixed latent."""
        scale, shift = self._vae_factors()
        latents = []
        for image in images:
            pixels = (image.permute(2, 0, 1)[None] * 2 - 1).to(self.device, self.vae.dtype)
            latents.append(self.vae.encode(pixels).latent_dist.mode().float())
        return (torch.cat(latents) - shift) * scale

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """FLUX latents [B, 16, h, w] -> images [B, 8h, 8w, 3] float32 in [0, 1] on the CPU,
        one at a time so that large sizes fit: image = (decoded + 1) / 2 clamped."""
        scale, shift = self._vae_factors()
        images = []
        for latent in latents:
            decoded = self.vae.decode((latent[None].float() / scale + shift).to(self.vae.dtype)).sample
            images.append(((decoded.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu())
        return torch.cat(images)

    # -- the model --------------------------------------------------------------------
    def velocity(self, latents: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                 pooled: torch.Tensor, guidance: float) -> torch.Tensor:
        """The LumiX transformer on unpacked latents [B, 16, h, w] -> velocity, float32 (in
        the model's dtype with authors' numerics). B is a whole number of scenes."""
        with torch.no_grad():
            return diffusers_flux_velocity(self.transformer, latents, timesteps, context, pooled, guidance,
                                           out_dtype=None if self.numerics == "authors" else torch.float32)

    def _noise(self, scenes: int, settings: Settings, seed: Union[int, Sequence[int]]) -> torch.Tensor:
        """The starting noise of `scenes` scenes at the settings' size, drawn as the numerics say."""
        latent_shape = (self.latent_channels, settings.height // 8, settings.width // 8)
        if self.numerics == "authors":
            return authors_noise(scenes, latent_shape, seed, self.dtype, self.device)
        return shared_noise(scenes, latent_shape, seed, dtype=torch.float32, device=self.device)

    def _sample(self, prompts: Sequence[str], settings: Settings, noise: torch.Tensor,
                given: GivenMaps, callback: Optional[StepCallback]) -> torch.Tensor:
        scenes = len(prompts)
        context, pooled = self._conditioning(prompts)
        true_cfg = settings.cfg != 1.0
        if true_cfg:
            # One batch: [negative scenes..., positive scenes...], each chunk scene-major .
            negative_context, negative_pooled = self._conditioning([settings.negative_prompt] * scenes)
            context, pooled = torch.cat([negative_context, context]), torch.cat([negative_pooled, pooled])

        authors = self.numerics == "authors"

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if not true_cfg:
                return self.velocity(x, t, context, pooled, settings.guidance)
            if authors:   # their scripts: two calls, positive then negative
                half = len(context) // 2
                positive = self.velocity(x, t, context[half:], pooled[half:], settings.guidance)
                negative = self.velocity(x, t, context[:half], pooled[:half], settings.guidance)
            else:
                negative, positive = self.velocity(torch.cat([x, x]), torch.cat([t, t]), context, pooled,
                                                   settings.guidance).chunk(2)
            return guided_velocity(positive, negative, settings.cfg)

        if authors:
            timesteps = schedule(settings.steps, settings.width, settings.height, settings.token_count,
                                 dtype=torch.float32)
        else:
            timesteps = schedule(settings.steps, settings.width, settings.height, settings.token_count)
        given = GivenMaps({name: latent.to(self.device) for name, latent in given.latents.items()})
        return self._euler(velocity, noise, timesteps, given, settings.steps, callback)

    def _euler(self, velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], noise: torch.Tensor,
               timesteps: torch.Tensor, given: GivenMaps, steps: int,
               callback: Optional[StepCallback]) -> torch.Tensor:
        """The Euler loop with the progress bar and the caller's per-step callback."""
        progress = progress_bar(steps, self.progress)

        def on_step(step: int, x: torch.Tensor) -> None:
            progress.update(1)
            if callback is not None:
                callback(step, steps, x)

        try:
            return sample_euler(velocity, noise, timesteps, given, on_step)
        finally:
            progress.close()

    def _maps(self, latents: torch.Tensor, settings: dict[str, Any]) -> LumiXMaps:
        maps = split_maps(self.decode_latents(latents))
        return LumiXMaps(**{name: image.contiguous() for name, image in maps.items()},
                         settings=settings, latents=latents.cpu())

    def _settings(self, defaults: Settings, **overrides: Any) -> Settings:
        values = asdict(defaults)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = Settings(**values)
        check_size(settings.width, settings.height)
        return settings

    def _record(self, mode: str, settings: Settings, **extra: Any) -> dict[str, Any]:
        return {"mode": mode, **extra, **asdict(settings), "dtype": str(self.dtype).replace("torch.", ""),
                "device": str(self.device), "lumix": getattr(self.adapters, "source", "<in memory>"),
                "strength": self.strength, "numerics": self.numerics}

    # -- public API -------------------------------------------------------------------
    def generate(self, prompt: Union[str, Sequence[str]], seed: int = 0, steps: Optional[int] = None,
                 cfg: Optional[float] = None, guidance: Optional[float] = None, width: Optional[int] = None,
                 height: Optional[int] = None, scenes: Optional[int] = None, negative_prompt: Optional[str] = None,
                 token_count: Optional[str] = None, callback: Optional[StepCallback] = None) -> LumiXMaps:
        """Text -> the five maps of `scenes` scenes with the published settings.

        Unset arguments take the published settings (`sampling.TEXT_TO_MAPS`): 50 steps,
        true CFG 3.0 with the published negative prompt, guidance 3.5, 512 x 512, the
        authors' token count for the schedule. `prompt` is one string for every scene or
        one per scene. One noise per scene (drawn on the CPU from `seed`) for its five maps.
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        scenes = scenes or len(prompts)
        if len(prompts) == 1:
            prompts = prompts * scenes
        if len(prompts) != scenes or scenes < 1:
            raise InputError(f"{len(prompts)} prompts for {scenes} scenes; give one prompt, or one per scene")
        settings = self._settings(TEXT_TO_MAPS, steps=steps, cfg=cfg, guidance=guidance, width=width, height=height,
                                  negative_prompt=negative_prompt, token_count=token_count)
        latents = self._sample(prompts, settings, self._noise(scenes, settings, seed), GivenMaps(), callback)
        return self._maps(latents, self._record("generate", settings, prompt=prompts, seed=seed, scenes=scenes))

    def decompose(self, image: Optional[ImageLike] = None, prompt: Union[str, Sequence[str]] = "",
                  given: Union[str, Sequence[str], Mapping[str, ImageLike]] = "color",
                  seed: Union[int, Sequence[int]] = 0,
                  steps: Optional[int] = None, cfg: Optional[float] = None, guidance: Optional[float] = None,
                  width: Optional[int] = None, height: Optional[int] = None, negative_prompt: Optional[str] = None,
                  token_count: Optional[str] = None, callback: Optional[StepCallback] = None,
                  megapixels: Optional[float] = None, ensemble_size: int = 1, upsample: str = "guided",
                  max_output_megapixels: float = MAX_OUTPUT_MEGAPIXELS,
                  postprocess: Union[Sequence[str], str, None] = None, *, seeds: Optional[int] = None) -> LumiXMaps:
        """Image(s) of any size -> the other maps at the image's own size as the authors decompose: given maps held at t = 0.

        `given` names the map that `image` is (default "color": decompose a photo), or maps
        names to images, e.g. {"depth": depth_image} or {"color": photo, "normal": normals}.
        Each given map enters as its VAE latent, is held at t = 0 and comes back unchanged.
        A batch of B images is B scenes. Unset arguments take the published decomposition
        settings (`sampling.DECOMPOSITION`: guidance 1.0, no true CFG). The published runs
        use a caption of the image as the prompt.

        Size: the model works at a size chosen from the image (`method.resolution`: aspect
        kept, sides multiples of 16, `megapixels` of area, default the published 1536 x 1152)
        and the maps are brought back to the image's size, edge-aware and guided by it, with
        albedo x irradiance = the photo exactly (`intrinsics.upsample`; upsample="bilinear"
        for plain resizing). Images above `max_output_megapixels` come back downscaled, with
        a warning in the log and in settings["warnings"]. width and height together fix
        the working and output size instead (the image is resized to it).

        ensemble_size: N > 1 runs an ensemble, N scenes per image from one noise draw each,
        combined per map (`intrinsics.ensemble`); `uncertainty` holds the spread per map.
        (`seeds=N` is the deprecated name of `ensemble_size=N`.)

        postprocess: the named steps of `intrinsics.postprocess` applied to the maps that were
        not given (a list of names, a comma-separated string, or "none"). Left out: the
        numerics mode's default, ("grey_depth", "unit_normals") with numerics="engine" and
        none with numerics="authors", so that one run then returns the maps exactly as
        decoded, as the authors' decomposition script does. The steps applied are in
        settings["postprocess"].

        `seed` is one seed for the batch, or one per image (each image then gets the noise a
        one-image run with its seed draws; an ensemble's runs of that image use seed, seed + 1, ...).
        """
        if isinstance(given, Mapping):
            if image is not None:
                raise InputError("give either `image` with `given` naming its map, or `given` as {map: image}, "
                                 "not both")
            images = dict(given)
        else:
            names = [given] if isinstance(given, str) else list(given)
            if len(names) != 1 or image is None:
                raise InputError(f"`image` is one map; name it with given='color' (or 'depth', ...). For several "
                                 f"given maps pass given={{'color': image, 'depth': depth_image}}; got {names}")
            images = {names[0]: image}
        if (width is None) != (height is None):
            raise InputError("give width and height together (a fixed size), or neither (the image's own size)")
        if seeds is not None:
            if ensemble_size != 1 and ensemble_size != seeds:
                raise InputError(f"ensemble_size={ensemble_size} and seeds={seeds} disagree; seeds is the old name "
                                 f"of ensemble_size, give ensemble_size only")
            warnings.warn("decompose(seeds=N) is deprecated; use ensemble_size=N", DeprecationWarning, stacklevel=2)
            ensemble_size = seeds
        prepared = prepare_photos(images, DEFAULT_MEGAPIXELS if megapixels is None else megapixels, ensemble_size,
                                  max_output_megapixels, None if width is None else (width, height),
                                  check_steps(postprocess, self.numerics))
        prompts = [prompt] * prepared.photos if isinstance(prompt, str) else list(prompt)
        if len(prompts) != prepared.photos:
            raise InputError(f"{len(prompts)} prompts for {prepared.photos} images; give one prompt, or one per image")
        if not isinstance(seed, int):
            seed = [int(s) + k for s in seed for k in range(prepared.ensemble_size)]
        return self.decompose_prepared([prepared], [prompts], [seed], steps=steps, cfg=cfg, guidance=guidance,
                                       negative_prompt=negative_prompt, token_count=token_count, callback=callback,
                                       upsample=upsample)[0]

    def decompose_prepared(self, prepared: Sequence[PreparedPhotos], prompts: Sequence[Sequence[str]],
                           seeds: Sequence[Union[int, Sequence[int]]], steps: Optional[int] = None,
                           cfg: Optional[float] = None, guidance: Optional[float] = None,
                           negative_prompt: Optional[str] = None, token_count: Optional[str] = None,
                           callback: Optional[StepCallback] = None, upsample: str = "guided") -> list[LumiXMaps]:
        """Several prepared photo sets (`apps.photo.prepare_photos`) of one working size in one
        forward: each set gets the noise its own `decompose` call draws from its seed (one seed
        per set, or one per scene), its prompts, and its maps at its own output size. Batch
        runs use it to put photos of different sizes but one working size in one batch."""
        working = {tuple(p.plan.working) for p in prepared}
        if len(working) != 1 or len(prompts) != len(prepared) or len(seeds) != len(prepared):
            raise InputError(f"decompose_prepared needs photo sets of one working size, each with its prompts and "
                             f"seed; got working sizes {sorted(working)}, {len(prompts)} prompt lists and "
                             f"{len(seeds)} seeds for {len(prepared)} sets")
        names = [list(p.working) for p in prepared]
        if any(n != names[0] for n in names):
            raise InputError(f"every photo set must give the same maps; got {names}")
        (width, height), = working
        settings = self._settings(DECOMPOSITION, steps=steps, cfg=cfg, guidance=guidance, width=width,
                                  height=height, negative_prompt=negative_prompt, token_count=token_count)
        runs, latents, noise = [], {name: [] for name in names[0]}, []
        for photos, texts, seed in zip(prepared, prompts, seeds):
            ensemble = photos.ensemble_size
            if len(texts) != photos.photos:
                raise InputError(f"{len(texts)} prompts for {photos.photos} images; give one per image")
            runs += [text for text in texts for _ in range(ensemble)]
            # One VAE encoding per photo; its runs share it (they differ only by their noise).
            for name, pictures in photos.working.items():
                latents[name].append(self.encode_images(pictures[::ensemble]).repeat_interleave(ensemble, 0))
            noise.append(self._noise(photos.scenes, settings, seed))
        sampled = self._sample(runs, settings, torch.cat(noise), GivenMaps({name: torch.cat(parts) for name, parts
                                                                            in latents.items()}), callback)
        decoded = split_maps(self.decode_latents(sampled))
        results, start = [], 0
        for photos, texts, seed in zip(prepared, prompts, seeds):
            part = {name: image[start:start + photos.scenes] for name, image in decoded.items()}
            maps, uncertainty = finish_photos(part, photos, upsample, device=self.device)
            record = self._record("decompose", settings, prompt=list(texts),
                                  seed=seed if isinstance(seed, int) else list(seed), scenes=photos.photos,
                                  given=sorted(photos.working, key=map_index), ensemble_size=photos.ensemble_size,
                                  upsample=upsample, postprocess=list(photos.postprocess), **photos.plan.as_dict())
            scenes = slice(start * NUM_MAPS, (start + photos.scenes) * NUM_MAPS)
            results.append(LumiXMaps(**{name: image.contiguous() for name, image in maps.items()}, settings=record,
                                     latents=sampled[scenes].cpu(), uncertainty=uncertainty))
            start += photos.scenes
        return results


def _place(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move to the device, and cast only when needed (diffusers warns on a needless cast)."""
    if next(module.parameters()).dtype != dtype:
        module = module.to(dtype)
    return module.to(device).eval().requires_grad_(False)


def progress_bar(total: int, enabled: bool, desc: str = "LumiX", unit: str = "step"):
    """A tqdm bar (its rate and remaining-time estimate); a disabled one (every call a no-op)
    when `enabled` is false or there is nothing to count."""
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, disable=not enabled or not total)
