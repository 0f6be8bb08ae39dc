"""The plain-torch FLUX: a BFL-layout FLUX transformer that runs without ComfyUI or diffusers.

This is the FLUX the tiny models run on (the shipped tiny LumiX of `python -m lumix_engine
demo`, tiny_random's test models) and the one the tests patch; ComfyUI runs its own
(`comfy/ldm/flux`) and the standalone pipeline runs diffusers' FluxTransformer2DModel.
Same module names as `flux1-dev.safetensors` and ComfyUI's `comfy/ldm/flux`, so a
single-file state dict loads strictly, and the same block-replacement convention
(`transformer_options["patches_replace"]["dit"]`), so LumiX patches made for ComfyUI run
here unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from ..errors import ModelMismatchError
from .attention import sdpa_attention
from .rotary import BflRotary, bfl_pe

PATCH = 2  # FLUX packs 2x2 latent pixels into one token


@dataclass
class FluxConfig:
    in_channels: int = 64
    out_channels: int = 64
    vec_in_dim: int = 768
    context_in_dim: int = 4096
    hidden_size: int = 3072
    mlp_ratio: float = 4.0
    num_heads: int = 24
    depth: int = 19
    depth_single_blocks: int = 38
    axes_dim: list[int] = field(default_factory=lambda: [16, 56, 56])
    theta: int = 10000
    qkv_bias: bool = True
    guidance_embed: bool = True

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @staticmethod
    def from_state_dict(state: dict[str, torch.Tensor], axes_dim: Optional[list[int]] = None,
                        theta: int = 10000) -> "FluxConfig":
        """Infer the architecture from single-file (BFL) key names and shapes."""
        if "img_in.weight" not in state or "double_blocks.0.img_attn.qkv.weight" not in state:
            raise ModelMismatchError("not a BFL-layout FLUX state dict (no img_in / double_blocks.0.img_attn.qkv); "
                                     "expected flux1-dev.safetensors or a model in its key layout")
        hidden, in_channels = state["img_in.weight"].shape
        head_dim = state["double_blocks.0.img_attn.norm.query_norm.scale"].shape[0]
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("double_blocks."))
        singles = [int(k.split(".")[1]) for k in state if k.startswith("single_blocks.")]
        return FluxConfig(
            in_channels=in_channels,
            out_channels=state["final_layer.linear.weight"].shape[0],
            vec_in_dim=state["vector_in.in_layer.weight"].shape[1],
            context_in_dim=state["txt_in.weight"].shape[1],
            hidden_size=hidden,
            mlp_ratio=state["double_blocks.0.img_mlp.0.weight"].shape[0] / hidden,
            num_heads=hidden // head_dim,
            depth=depth,
            depth_single_blocks=1 + max(singles) if singles else 0,
            axes_dim=list(axes_dim) if axes_dim else default_axes_dim(head_dim),
            theta=theta,
            qkv_bias="double_blocks.0.img_attn.qkv.bias" in state,
            guidance_embed="guidance_in.in_layer.weight" in state,
        )


def default_axes_dim(head_dim: int) -> list[int]:
    """FLUX's rope split of a head ([16, 56, 56] at 128), scaled to other head sizes."""
    spatial = (head_dim * 7 // 16) // 2 * 2
    return [head_dim - 2 * spatial, spatial, spatial]


def timestep_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10000,
                       time_factor: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000 as FLUX does): [cos, sin]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (time_factor * t)[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class MLPEmbedder(nn.Module):
    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden)
        self.out_layer = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_layer(F.silu(self.in_layer(x)))


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.scale.shape, self.scale.to(x.dtype), eps=1e-6)


class QKNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query_norm = RMSNorm(dim)
        self.key_norm = RMSNorm(dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.query_norm(q).to(v), self.key_norm(k).to(v)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.norm = QKNorm(dim // num_heads)
        self.proj = nn.Linear(dim, dim)


@dataclass
class ModulationOut:
    shift: torch.Tensor
    scale: torch.Tensor
    gate: torch.Tensor


class Modulation(nn.Module):
    def __init__(self, dim: int, double: bool) -> None:
        super().__init__()
        self.multiplier = 6 if double else 3
        self.lin = nn.Linear(dim, self.multiplier * dim)

    def forward(self, vec: torch.Tensor) -> tuple[ModulationOut, Optional[ModulationOut]]:
        out = self.lin(F.silu(vec))[:, None, :].chunk(self.multiplier, dim=-1)
        return ModulationOut(*out[:3]), (ModulationOut(*out[3:]) if self.multiplier == 6 else None)


def _mlp(hidden: int, mlp_hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden, mlp_hidden), nn.GELU(approximate="tanh"), nn.Linear(mlp_hidden, hidden))


def _heads(qkv: torch.Tensor, num_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return rearrange(qkv, "b l (three h d) -> three b h l d", three=3, h=num_heads).unbind(0)


class DoubleStreamBlock(nn.Module):
    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        mlp_hidden = int(hidden * mlp_ratio)
        self.num_heads, self.hidden_size = num_heads, hidden
        self.img_mod = Modulation(hidden, double=True)
        self.img_norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.img_attn = SelfAttention(hidden, num_heads, qkv_bias)
        self.img_norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.img_mlp = _mlp(hidden, mlp_hidden)
        self.txt_mod = Modulation(hidden, double=True)
        self.txt_norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.txt_attn = SelfAttention(hidden, num_heads, qkv_bias)
        self.txt_norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.txt_mlp = _mlp(hidden, mlp_hidden)

    def forward(self, img, txt, vec, pe, attn_mask=None, transformer_options=None):
        img_mod1, img_mod2 = self.img_mod(vec)
        txt_mod1, txt_mod2 = self.txt_mod(vec)
        img_q, img_k, img_v = _heads(self.img_attn.qkv((1 + img_mod1.scale) * self.img_norm1(img) + img_mod1.shift),
                                     self.num_heads)
        img_q, img_k = self.img_attn.norm(img_q, img_k, img_v)
        txt_q, txt_k, txt_v = _heads(self.txt_attn.qkv((1 + txt_mod1.scale) * self.txt_norm1(txt) + txt_mod1.shift),
                                     self.num_heads)
        txt_q, txt_k = self.txt_attn.norm(txt_q, txt_k, txt_v)
        q, k, v = (torch.cat(pair, dim=2) for pair in ((txt_q, img_q), (txt_k, img_k), (txt_v, img_v)))
        if pe is not None:
            rotary = BflRotary(pe)
            q, k = rotary(q, slice(0, None)), rotary(k, slice(0, None))
        attn = sdpa_attention(q, k, v, attn_mask)
        txt_attn, img_attn = attn[:, : txt.shape[1]], attn[:, txt.shape[1]:]
        img = img + img_mod1.gate * self.img_attn.proj(img_attn)
        img = img + img_mod2.gate * self.img_mlp((1 + img_mod2.scale) * self.img_norm2(img) + img_mod2.shift)
        txt = txt + txt_mod1.gate * self.txt_attn.proj(txt_attn)
        txt = txt + txt_mod2.gate * self.txt_mlp((1 + txt_mod2.scale) * self.txt_norm2(txt) + txt_mod2.shift)
        return img, txt


class SingleStreamBlock(nn.Module):
    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.hidden_size, self.num_heads = hidden, num_heads
        self.mlp_hidden_dim = int(hidden * mlp_ratio)
        self.linear1 = nn.Linear(hidden, hidden * 3 + self.mlp_hidden_dim)
        self.linear2 = nn.Linear(hidden + self.mlp_hidden_dim, hidden)
        self.norm = QKNorm(hidden // num_heads)
        self.pre_norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp_act = nn.GELU(approximate="tanh")
        self.modulation = Modulation(hidden, double=False)

    def forward(self, x, vec, pe, attn_mask=None, transformer_options=None):
        mod, _ = self.modulation(vec)
        qkv, mlp = torch.split(self.linear1((1 + mod.scale) * self.pre_norm(x) + mod.shift),
                               [3 * self.hidden_size, self.mlp_hidden_dim], dim=-1)
        q, k, v = _heads(qkv, self.num_heads)
        q, k = self.norm(q, k, v)
        if pe is not None:
            rotary = BflRotary(pe)
            q, k = rotary(q, slice(0, None)), rotary(k, slice(0, None))
        attn = sdpa_attention(q, k, v, attn_mask)
        return x + mod.gate * self.linear2(torch.cat((attn, self.mlp_act(mlp)), dim=2))


class LastLayer(nn.Module):
    def __init__(self, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(vec)[:, None, :].chunk(2, dim=-1)
        return self.linear((1 + scale) * self.norm_final(x) + shift)


class Flux(nn.Module):
    """FLUX.1 transformer on packed tokens, BFL module names."""

    def __init__(self, config: FluxConfig) -> None:
        super().__init__()
        if config.hidden_size % config.num_heads or sum(config.axes_dim) != config.head_dim:
            raise ModelMismatchError(f"inconsistent FLUX config: hidden {config.hidden_size}, heads {config.num_heads}, "
                                     f"rope axes {config.axes_dim} must sum to the head size")
        self.config = config
        hidden = config.hidden_size
        self.img_in = nn.Linear(config.in_channels, hidden)
        self.time_in = MLPEmbedder(256, hidden)
        self.vector_in = MLPEmbedder(config.vec_in_dim, hidden)
        self.guidance_in = MLPEmbedder(256, hidden) if config.guidance_embed else nn.Identity()
        self.txt_in = nn.Linear(config.context_in_dim, hidden)
        self.double_blocks = nn.ModuleList(
            [DoubleStreamBlock(hidden, config.num_heads, config.mlp_ratio, config.qkv_bias) for _ in range(config.depth)])
        self.single_blocks = nn.ModuleList(
            [SingleStreamBlock(hidden, config.num_heads, config.mlp_ratio) for _ in range(config.depth_single_blocks)])
        self.final_layer = LastLayer(hidden, config.out_channels)

    def forward(self, img: torch.Tensor, img_ids: torch.Tensor, txt: torch.Tensor, txt_ids: torch.Tensor,
                timesteps: torch.Tensor, y: torch.Tensor, guidance: Optional[torch.Tensor] = None,
                transformer_options: Optional[dict] = None) -> torch.Tensor:
        """img [B, L, in_channels] packed tokens -> velocity tokens [B, L, out_channels]."""
        options = transformer_options or {}
        replace = options.get("patches_replace", {}).get("dit", {})
        dtype = img.dtype
        img = self.img_in(img)
        vec = self.time_in(timestep_embedding(timesteps).to(dtype))
        if self.config.guidance_embed:
            if guidance is None:
                raise ModelMismatchError("this FLUX model has a guidance embedding: pass guidance (e.g. 3.5)")
            vec = vec + self.guidance_in(timestep_embedding(guidance).to(dtype))
        vec = vec + self.vector_in(y)
        txt = self.txt_in(txt)
        pe = bfl_pe(torch.cat((txt_ids, img_ids), dim=1), self.config.axes_dim, self.config.theta)

        for index, block in enumerate(self.double_blocks):
            args = {"img": img, "txt": txt, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": options}
            patch = replace.get(("double_block", index))
            if patch is None:
                img, txt = block(img, txt, vec, pe)
            else:
                out = patch(args, {"original_block": lambda a, block=block: dict(
                    zip(("img", "txt"), block(a["img"], a["txt"], a["vec"], a["pe"], a.get("attn_mask"))))})
                img, txt = out["img"], out["txt"]
        x = torch.cat((txt, img), dim=1)
        for index, block in enumerate(self.single_blocks):
            patch = replace.get(("single_block", index))
            if patch is None:
                x = block(x, vec, pe)
            else:
                args = {"img": x, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": options}
                x = patch(args, {"original_block": lambda a, block=block: {
                    "img": block(a["img"], a["vec"], a["pe"], a.get("attn_mask"))}})["img"]
        return self.final_layer(x[:, txt.shape[1]:], vec)

    def forward_latent(self, latent: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, y: torch.Tensor,
                       guidance: Optional[torch.Tensor] = None, transformer_options: Optional[dict] = None
                       ) -> torch.Tensor:
        """latent [B, C, H, W] (H, W even) -> velocity [B, C, H, W], packing as ComfyUI does."""
        tokens, img_ids = pack_latent(latent)
        txt_ids = torch.zeros(latent.shape[0], context.shape[1], 3, device=latent.device, dtype=latent.dtype)
        out = self(tokens, img_ids, context, txt_ids, timesteps, y, guidance, transformer_options)
        return unpack_latent(out, latent.shape[-2], latent.shape[-1])


def pack_latent(latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, C, H, W] -> tokens [B, (H/2)(W/2), 4C] and their (0, row, col) position ids."""
    batch, _, height, width = latent.shape
    tokens = rearrange(latent, "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph=PATCH, pw=PATCH)
    rows, cols = height // PATCH, width // PATCH
    ids = torch.zeros(rows, cols, 3, device=latent.device, dtype=latent.dtype)
    ids[..., 1] = torch.arange(rows, device=latent.device, dtype=latent.dtype)[:, None]
    ids[..., 2] = torch.arange(cols, device=latent.device, dtype=latent.dtype)[None, :]
    return tokens, repeat(ids, "h w c -> b (h w) c", b=batch)


def unpack_latent(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return rearrange(tokens, "b (h w) (c ph pw) -> b c (h ph) (w pw)", h=height // PATCH, w=width // PATCH,
                     ph=PATCH, pw=PATCH)


def load_flux(state: dict[str, torch.Tensor], config: Optional[FluxConfig] = None) -> Flux:
    """A Flux from a single-file state dict (strict: every key must match)."""
    state = strip_model_prefix(state)
    config = config or FluxConfig.from_state_dict(state)
    with torch.device("meta"):
        model = Flux(config)
    model.load_state_dict(state, strict=True, assign=True)
    return model


def strip_model_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Single-file checkpoints sometimes nest the transformer under `model.diffusion_model.`."""
    for prefix in ("model.diffusion_model.", "diffusion_model."):
        if any(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state
