"""Tiny FLUX-shaped components with seeded random weights, for the demo and the tests.

"Tiny random" (this module) is machinery with random weights: it proves code paths run and
gives test inputs with no zeros to hide behind. It has learnt nothing. The trained toy model
is `lumix_engine.tiny_trained`, a different thing.

The components are the real classes (the plain-torch BFL `Flux`, diffusers'
FluxTransformer2DModel and AutoencoderKL, transformers' CLIPTextModel and T5EncoderModel,
tokenizers built by the `tokenizers` library) and are written as real files in the real key
layouts, so whatever loads them goes through the real loaders.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import save_file

from .flux.convert import diffusers_transformer_from_bfl
from .flux.model import Flux, FluxConfig
from .method.adapters import LumiXAdapters, new_adapters
from .method.checkpoint import save_adapters
from .modalities import NUM_MAPS

# A FLUX.1 transformer at toy width: 16-channel latents packed 2x2 (64 per token), CLIP
# pooled width 32, T5 width 48, 2 double + 2 single blocks, head size 16 = rope 4 + 6 + 6.
TINY_FLUX = FluxConfig(in_channels=64, out_channels=64, vec_in_dim=32, context_in_dim=48, hidden_size=64,
                       num_heads=4, depth=2, depth_single_blocks=2, axes_dim=[4, 6, 6])
TINY_T5_LENGTH = 32
SPECIALS = {"<pad>": 0, "</s>": 1, "<unk>": 2, "<|startoftext|>": 3, "<|endoftext|>": 4}
WORDS = ("a an the and of on in with from to front lit above left right upper behind near far shiny red orange "
         "yellow green teal blue purple pink white grey brown sphere cube box floor wall checkered room chair "
         "table lamp window light sunlit warm soft scene photo of , . blurry low quality artifacts distorted "
         "noisy pixelated jpeg").split()


@dataclass
class TinyComponents:
    """Everything LumiXPipeline needs, tiny and random; `flux_bfl` holds the same
    transformer weights in the BFL layout (for comparing the two layouts)."""
    transformer: torch.nn.Module
    flux_bfl: Flux
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: Any
    text_encoder_2: torch.nn.Module
    tokenizer_2: Any
    adapters: LumiXAdapters


def _own_rng():
    """Seed inside this block without touching the caller's global RNG state."""
    return torch.random.fork_rng(devices=[])


def tiny_tokenizers(words: tuple[str, ...] = WORDS):
    """(CLIP-style, T5-style) word-level tokenizers over one small vocabulary, built by the
    `tokenizers` library: CLIP wraps text in start/end tokens and pads with the end token
    (as CLIP-L does, so pooling finds the first end token); T5 appends </s> and pads with <pad>."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = dict(SPECIALS)
    for word in words:
        vocab.setdefault(word, len(vocab))

    def build(template: str, specials: list[str], model_max_length: int, **tokens: str):
        tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        tokenizer.normalizer = normalizers.Lowercase()
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        tokenizer.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(name, vocab[name]) for name in specials])
        return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>",
                                       model_max_length=model_max_length, **tokens)

    clip = build("<|startoftext|> $A <|endoftext|>", ["<|startoftext|>", "<|endoftext|>"], 77,
                 bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    t5 = build("$A </s>", ["</s>"], TINY_T5_LENGTH, eos_token="</s>", pad_token="<pad>")
    return clip, t5, len(vocab)


def random_bfl_flux(config: FluxConfig = TINY_FLUX, seed: int = 0, dtype: torch.dtype = torch.float32) -> Flux:
    """Every parameter random (norm scales and biases too), so no path hides behind zeros."""
    generator = torch.Generator().manual_seed(seed)
    model = Flux(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name.endswith("scale"):      # RMSNorm scales around 1
                p.copy_(1.0 + 0.2 * noise)
            elif p.ndim == 2:               # weights: variance-preserving
                p.copy_(noise * 0.5 / math.sqrt(p.shape[-1]))
            else:                           # biases
                p.copy_(0.1 * noise)
    return model.to(dtype).eval().requires_grad_(False)


def write_bfl_flux(path: Path, config: FluxConfig = TINY_FLUX, seed: int = 0, prefix: str = "") -> Path:
    """A random BFL-layout FLUX as a single safetensors file (ComfyUI's UNETLoader layout)."""
    model = random_bfl_flux(config, seed)
    save_file({prefix + k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def random_adapters(config: FluxConfig = TINY_FLUX, rank: int = 4, seed: int = 1, g3_std: float = 0.3,
                    double_ids: Optional[list[int]] = None, single_ids: Optional[list[int]] = None) -> LumiXAdapters:
    """Adapters with non-zero G1 and G3 (a fresh adapter is a no-op, which would test nothing),
    on every block unless `double_ids` / `single_ids` name a subset."""
    with _own_rng():
        torch.manual_seed(seed)
        if double_ids is None and single_ids is None:
            adapters = new_adapters(config.hidden_size, config.depth, config.depth_single_blocks, rank)
        else:
            adapters = LumiXAdapters(config.hidden_size, NUM_MAPS, rank, double_ids or [], single_ids or [])
        with torch.no_grad():
            for name, p in adapters.named_parameters():
                if name.endswith("G3"):
                    p.normal_(0, g3_std)
                elif name.endswith("G1"):
                    p.normal_(0, 1.0)
    return adapters.requires_grad_(False)


def write_adapters(path: Path, adapters: LumiXAdapters, prefix: str = "",
                   dtype: Optional[torch.dtype] = None) -> Path:
    """A LumiX checkpoint file; `prefix` writes the key layout other publishers use."""
    if prefix:
        save_file({prefix + k: v.contiguous() for k, v in adapters.state_dict().items()}, str(path))
    else:
        save_adapters(adapters, path, dtype)
    return path


def tiny_components(seed: int = 0) -> TinyComponents:
    """Tiny, seeded, random: the same `seed` always gives the same weights."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip_tokenizer, t5_tokenizer, vocab_size = tiny_tokenizers()
    flux_bfl = random_bfl_flux(TINY_FLUX, seed)
    transformer = diffusers_transformer_from_bfl(
        {k: v.clone() for k, v in flux_bfl.state_dict().items()}, TINY_FLUX).eval()
    with _own_rng():
        torch.manual_seed(seed + 1)
        clip = CLIPTextModel(CLIPTextConfig(
            vocab_size=vocab_size, hidden_size=TINY_FLUX.vec_in_dim, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=77, projection_dim=TINY_FLUX.vec_in_dim,
            bos_token_id=SPECIALS["<|startoftext|>"], eos_token_id=SPECIALS["<|endoftext|>"],
            pad_token_id=SPECIALS["<|endoftext|>"]))
        t5 = T5EncoderModel(T5Config(
            vocab_size=vocab_size, d_model=TINY_FLUX.context_in_dim, d_kv=12, d_ff=96, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=16, feed_forward_proj="gated-gelu",
            pad_token_id=SPECIALS["<pad>"], eos_token_id=SPECIALS["</s>"], decoder_start_token_id=0))
        # FLUX's VAE shape at toy width: 16 latent channels, 8x downsampling, its scale and shift.
        vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            block_out_channels=(8, 8, 16, 16), layers_per_block=1, latent_channels=16,
                            norm_num_groups=4, sample_size=64, scaling_factor=0.3611, shift_factor=0.1159,
                            use_quant_conv=False, use_post_quant_conv=False)
    return TinyComponents(transformer, flux_bfl, vae.eval(), clip.eval(), clip_tokenizer, t5.eval(), t5_tokenizer,
                          random_adapters(TINY_FLUX, seed=seed + 2))


def write_tiny_models(folder: Path, seed: int = 0, components: Optional[TinyComponents] = None) -> dict[str, Path]:
    """Write the tiny components as the real files: a diffusers-format FLUX folder, a
    BFL single-file transformer and a LumiX checkpoint. Returns ModelFiles-style paths."""
    parts = components or tiny_components(seed)
    flux_dir = folder / "FLUX.1-dev"
    parts.transformer.save_pretrained(flux_dir / "transformer")
    parts.vae.save_pretrained(flux_dir / "vae")
    parts.text_encoder.save_pretrained(flux_dir / "text_encoder")
    parts.text_encoder_2.save_pretrained(flux_dir / "text_encoder_2")
    parts.tokenizer.save_pretrained(flux_dir / "tokenizer")
    parts.tokenizer_2.save_pretrained(flux_dir / "tokenizer_2")
    single = folder / "flux1-dev.safetensors"
    save_file({k: v.contiguous() for k, v in parts.flux_bfl.state_dict().items()}, str(single))
    lumix = folder / "lumix.safetensors"
    save_adapters(parts.adapters, lumix)
    return {"flux_dir": flux_dir, "lumix": lumix, "transformer_single_file": single}


def _taesd_conv(shapes: dict, name: str, n_in: int, n_out: int, bias: bool = True):
    shapes[f"{name}.weight"] = (n_out, n_in, 3, 3)
    if bias:
        shapes[f"{name}.bias"] = (n_out,)


def _taesd_block(shapes: dict, name: str):
    for conv_index in (0, 2, 4):  # Sequential(conv, ReLU, conv, ReLU, conv)
        _taesd_conv(shapes, f"{name}.conv.{conv_index}", 64, 64)


def taesd_shapes(latent_channels: int = 16) -> dict[str, tuple[int, ...]]:
    """Key -> shape of ComfyUI's TAESD (comfy/taesd/taesd.py), 64 channels wide."""
    s = {}
    # Encoder: conv, Block, then three (strided conv, 3 Blocks), then conv to latent.
    _taesd_conv(s, "taesd_encoder.0", 3, 64)
    _taesd_block(s, "taesd_encoder.1")
    index = 2
    for _ in range(3):
        _taesd_conv(s, f"taesd_encoder.{index}", 64, 64, bias=False)
        for offset in (1, 2, 3):
            _taesd_block(s, f"taesd_encoder.{index + offset}")
        index += 4
    _taesd_conv(s, f"taesd_encoder.{index}", 64, latent_channels)
    # Decoder: Clamp, conv, ReLU, then three (3 Blocks, Upsample, conv), Block, conv to RGB.
    _taesd_conv(s, "taesd_decoder.1", latent_channels, 64)
    index = 3
    for _ in range(3):
        for offset in (0, 1, 2):
            _taesd_block(s, f"taesd_decoder.{index + offset}")
        _taesd_conv(s, f"taesd_decoder.{index + 4}", 64, 64, bias=False)
        index += 5
    _taesd_block(s, f"taesd_decoder.{index}")
    _taesd_conv(s, f"taesd_decoder.{index + 1}", 64, 3)
    return s


def write_taesd_vae(path: Path, latent_channels: int = 16, seed: int = 1) -> Path:
    """A tiny VAE in ComfyUI's TAESD single-file layout (`taesd_encoder.*`, `taesd_decoder.*`,
    `vae_scale`, `vae_shift`), which ComfyUI's VAELoader loads as a FLUX-latent VAE."""
    generator = torch.Generator().manual_seed(seed)
    state = {key: 0.03 * torch.randn(shape, generator=generator) for key, shape in taesd_shapes(latent_channels).items()}
    # FLUX's latent statistics, as ComfyUI's taef1 uses them.
    state["vae_scale"] = torch.tensor(0.3611)
    state["vae_shift"] = torch.tensor(0.1159)
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(path))
    return path
