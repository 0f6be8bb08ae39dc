"""Finding and loading the models the standalone pipeline needs, from local files only.

Two ways to give FLUX.1-dev, mixable per component:
- a diffusers-format folder (`black-forest-labs/FLUX.1-dev` as on Hugging Face), whose
  `transformer/`, `vae/`, `text_encoder/`, `text_encoder_2/` hold the weights;
- the single files ComfyUI users already have (`flux1-dev.safetensors`, `ae.safetensors`,
  `clip_l.safetensors`, `t5xxl_fp16.safetensors`). They carry no configs or tokenizers, so
  a folder with FLUX.1-dev's small files (configs and tokenizers, no weights) is needed too.

Nothing here downloads: every loader gets `local_files_only=True`, and a missing file
raises `MissingModelError` naming the file, where to put it and where to get it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import torch

from ..errors import LumiXError

FLUX_REPO = "black-forest-labs/FLUX.1-dev"
TEXT_ENCODERS_REPO = "comfyanonymous/flux_text_encoders"
LUMIX_REPO = "hanx/LumiX_ckp"

# (what it is, where to get it) per component, for the missing-file message.
SOURCES = {
    "lumix": ("the LumiX adapter lumix.safetensors",
              f"the LumiX authors' release: huggingface-cli download {LUMIX_REPO} lumix.safetensors "
              f"(https://huggingface.co/{LUMIX_REPO})"),
    "transformer": ("the FLUX.1-dev transformer flux1-dev.safetensors",
                    f"https://huggingface.co/{FLUX_REPO} (gated: accept the licence, then download flux1-dev.safetensors)"),
    "vae": ("the FLUX VAE ae.safetensors",
            f"https://huggingface.co/{FLUX_REPO} (gated: accept the licence, then download ae.safetensors)"),
    "clip_l": ("the CLIP-L text encoder clip_l.safetensors", f"https://huggingface.co/{TEXT_ENCODERS_REPO}"),
    "t5xxl": ("the T5-XXL text encoder t5xxl_fp16.safetensors",
              f"https://huggingface.co/{TEXT_ENCODERS_REPO}"),
    "flux_dir": ("a FLUX.1-dev diffusers folder (at least its configs and tokenizers, ~3 MB)",
                 f"huggingface-cli download {FLUX_REPO} --exclude '*.safetensors' --local-dir models/diffusers/FLUX.1-dev "
                 f"(add the weights by leaving out --exclude, or use the single files)"),
}

# ComfyUI's model folders, searched (in order) when a ComfyUI `models` folder is given.
COMFY_LOCATIONS = {
    "lumix": (("lumix", "lumix.safetensors"),),
    "transformer": (("diffusion_models", "flux1-dev.safetensors"), ("unet", "flux1-dev.safetensors")),
    "vae": (("vae", "ae.safetensors"),),
    "clip_l": (("text_encoders", "clip_l.safetensors"), ("clip", "clip_l.safetensors")),
    "t5xxl": (("text_encoders", "t5xxl_fp16.safetensors"), ("clip", "t5xxl_fp16.safetensors")),
    "flux_dir": (("diffusers", "FLUX.1-dev"),),
}

# Diffusers-folder subfolder of each component.
SUBFOLDERS = {"transformer": "transformer", "vae": "vae", "clip_l": "text_encoder", "t5xxl": "text_encoder_2"}


class MissingModelError(LumiXError):
    """A model file the pipeline needs is not where it was told to look."""


@dataclass
class ModelFiles:
    """Where each model is. Single files override the folder's weights, per component.

    `models` is a ComfyUI-style `models` folder: any path left empty is looked up there
    (`lumix/lumix.safetensors`, `diffusion_models/flux1-dev.safetensors`, `vae/ae.safetensors`,
    `text_encoders/clip_l.safetensors`, `text_encoders/t5xxl_fp16.safetensors`,
    `diffusers/FLUX.1-dev`).
    """
    lumix: Optional[Path] = None
    flux_dir: Optional[Path] = None
    transformer: Optional[Path] = None
    vae: Optional[Path] = None
    clip_l: Optional[Path] = None
    t5xxl: Optional[Path] = None
    models: Optional[Path] = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not isinstance(value, Path):
                setattr(self, f.name, Path(value).expanduser())

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "ModelFiles":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise LumiXError(f"unknown model path key(s) {unknown}; use {sorted(known)}")
        return cls(**{k: v for k, v in values.items() if v not in (None, "")})

    def resolved(self) -> "ModelFiles":
        """Fill empty paths from the ComfyUI `models` folder, where the file exists there."""
        out = ModelFiles(**{f.name: getattr(self, f.name) for f in fields(self)})
        if self.models is None:
            return out
        for name, candidates in COMFY_LOCATIONS.items():
            if getattr(out, name) is None:
                found = [self.models / sub / file for sub, file in candidates if (self.models / sub / file).exists()]
                if found:
                    setattr(out, name, found[0])
        return out

    def check(self) -> "ModelFiles":
        """The resolved paths, or MissingModelError listing every missing file with its source."""
        files = self.resolved()
        problems = []
        home = files.models or Path("models")

        def missing(name: str, where: str) -> None:
            what, source = SOURCES[name]
            problems.append(f"- {what}: {where}\n  get it from {source}")

        def missing_file(name: str) -> None:
            sub, file = COMFY_LOCATIONS[name][0]
            path = getattr(files, name)
            where = (f"not found at {path}" if path is not None
                     else f"not given; put it at {home / sub / file} (or pass --{name.replace('_', '-')} PATH)")
            missing(name, where)

        if files.lumix is None or not files.lumix.is_file():
            missing_file("lumix")
        folder = files.flux_dir
        if folder is None or not folder.is_dir():
            where = (f"not found at {folder}" if folder is not None else
                     f"not given; put it at {home / 'diffusers' / 'FLUX.1-dev'} (or pass --flux-dir DIR)")
            missing("flux_dir", where + "; it supplies the tokenizers and configs, and the weights of any "
                    "component not given as a single file")
        else:
            for sub in ("tokenizer", "tokenizer_2", *SUBFOLDERS.values()):
                if not (folder / sub).is_dir():
                    missing("flux_dir", f"{folder} has no {sub}/ subfolder")
                    break
            for name, sub in SUBFOLDERS.items():
                single = getattr(files, name)
                if single is not None:
                    if not single.is_file():
                        missing_file(name)
                elif not any((folder / sub).glob("*.safetensors")):
                    file = COMFY_LOCATIONS[name][0][1]
                    missing(name, f"no weights in {folder / sub}/ and no single file given; put {file} at "
                                  f"{home / COMFY_LOCATIONS[name][0][0] / file} (or pass --{name.replace('_', '-')} "
                                  f"PATH), or the diffusers weights in {folder / sub}/")
        if problems:
            raise MissingModelError("LumiX cannot run: model files are missing (nothing is ever downloaded "
                                    "automatically).\n" + "\n".join(problems))
        return files


def _dtype_kwargs(dtype: torch.dtype) -> dict[str, Any]:
    return {"torch_dtype": dtype, "local_files_only": True}


def _check_loading_info(info: dict, what: str, path: Path) -> None:
    """from_pretrained reports what it could not load; a LumiX run never goes on without it."""
    missing = list(info.get("missing_keys", []))
    mismatched = list(info.get("mismatched_keys", []))
    if missing or mismatched:
        raise LumiXError(f"{path} does not hold {what}: {len(missing)} weights missing "
                         f"(first: {missing[:3]}), {len(mismatched)} with the wrong shape (first: {mismatched[:3]}).")


def load_transformer(files: ModelFiles, dtype: torch.dtype):
    """diffusers FluxTransformer2DModel, from flux1-dev.safetensors (BFL layout) or the folder."""
    from diffusers import FluxTransformer2DModel

    if files.transformer is not None:
        from safetensors.torch import load_file

        from ..flux.convert import diffusers_transformer_from_bfl
        from ..flux.model import strip_model_prefix
        state = strip_model_prefix(load_file(str(files.transformer)))
        return diffusers_transformer_from_bfl(state).to(dtype)
    model, info = FluxTransformer2DModel.from_pretrained(files.flux_dir, subfolder="transformer",
                                                         output_loading_info=True, **_dtype_kwargs(dtype))
    _check_loading_info(info, "a FLUX transformer", files.flux_dir / "transformer")
    return model


def load_vae(files: ModelFiles, dtype: torch.dtype):
    """diffusers AutoencoderKL, from ae.safetensors (config from the folder) or the folder."""
    from diffusers import AutoencoderKL

    if files.vae is not None:
        return AutoencoderKL.from_single_file(str(files.vae), config=str(files.flux_dir), subfolder="vae",
                                              **_dtype_kwargs(dtype))
    model, info = AutoencoderKL.from_pretrained(files.flux_dir, subfolder="vae", output_loading_info=True,
                                                **_dtype_kwargs(dtype))
    _check_loading_info(info, "the FLUX VAE", files.flux_dir / "vae")
    return model


def _load_text_encoder(model_class, files: ModelFiles, single: Optional[Path], subfolder: str, dtype: torch.dtype,
                       what: str):
    """A transformers encoder from the folder, or from a single file with the folder's config.

    transformers' from_pretrained takes the path of one weights file as well as a folder;
    the config comes from the folder. So nothing is linked or copied (a symlink or hard link
    fails on Windows without developer mode, or when the model sits on another drive), and
    from_pretrained still handles key prefixes, tied weights and lazy, memory-mapped loading.
    """
    if single is None:
        model, info = model_class.from_pretrained(files.flux_dir, subfolder=subfolder, output_loading_info=True,
                                                  **_dtype_kwargs(dtype))
        _check_loading_info(info, what, files.flux_dir / subfolder)
        return model
    config = model_class.config_class.from_pretrained(files.flux_dir, subfolder=subfolder, local_files_only=True)
    source: Optional[str] = str(single.resolve())
    extra: dict[str, Any] = {}
    if not single.name.endswith(".safetensors"):
        # transformers tells the format by the name and would unpickle anything else (e.g.
        # ComfyUI's .sft files), so such a file is read here, as safetensors or not at all.
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            source, extra = None, {"state_dict": load_file(str(single))}
        except SafetensorError as exc:
            raise LumiXError(f"{single} is not a safetensors file ({exc}); give {what} as .safetensors") from None
    model, info = model_class.from_pretrained(source, config=config, output_loading_info=True, **extra,
                                              **_dtype_kwargs(dtype))
    _check_loading_info(info, what, single)
    return model


def load_text_encoders(files: ModelFiles, dtype: torch.dtype):
    """(CLIP-L, its tokenizer, T5-XXL, its tokenizer)."""
    from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

    clip = _load_text_encoder(CLIPTextModel, files, files.clip_l, "text_encoder", dtype, "the CLIP-L text encoder")
    t5 = _load_text_encoder(T5EncoderModel, files, files.t5xxl, "text_encoder_2", dtype, "the T5-XXL text encoder")
    clip_tokenizer = AutoTokenizer.from_pretrained(files.flux_dir, subfolder="tokenizer", local_files_only=True)
    t5_tokenizer = AutoTokenizer.from_pretrained(files.flux_dir, subfolder="tokenizer_2", local_files_only=True)
    return clip.eval(), clip_tokenizer, t5.eval(), t5_tokenizer


@contextlib.contextmanager
def quiet_libraries():
    """No progress bars or load notices from diffusers / transformers while the demo's tiny
    models are written and read (they would bury the demo's own report); restored after."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    levels = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(levels[0])
        transformers_logging.set_verbosity(levels[1])
        diffusers_logging.enable_progress_bar()
        transformers_logging.enable_progress_bar()
