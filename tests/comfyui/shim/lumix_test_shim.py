"""Test-only ComfyUI custom node for ComfyUI-LumiX's real-ComfyUI tests. Never shipped.

The harness links this file into the test server's custom_nodes/. It does two things:

1. Lets ComfyUI load *tiny* FLUX transformers. ComfyUI 0.3.64's FLUX detection
   (comfy/model_detection.py, `detect_unet_config`) hard-codes hidden 3072, 24 heads,
   context 4096, mlp ratio 4 and axes [16, 56, 56]; only block counts, in_channels,
   vec_in_dim and guidance_embed come from the file. For a FLUX file whose `img_in` is not
   3072 wide, this wrapper reads the widths from the tensors instead. Real FLUX files are
   untouched.
2. Adds `LumiXTestConditioning`, which emits FLUX-shaped CONDITIONING from a seed, because
   FLUX's text encoders (CLIP-L + T5-XXL) cannot be made tiny.
"""
import logging

import comfy.model_detection
import torch
from comfy_api.latest import ComfyExtension, io

FLUX_HIDDEN_SIZE = 3072


def axes_dim_for(head_dim: int) -> list[int]:
    """Rope axes that sum to head_dim, in FLUX's proportions ([16, 56, 56] for 128)."""
    spatial = (head_dim * 7 // 16) // 2 * 2  # rope axes must be even
    return [head_dim - 2 * spatial, spatial, spatial]


def tiny_flux_widths(state_dict, key_prefix: str) -> dict | None:
    img_in = state_dict.get(f"{key_prefix}img_in.weight")
    if img_in is None or img_in.shape[0] == FLUX_HIDDEN_SIZE:
        return None
    hidden_size = img_in.shape[0]
    head_dim = state_dict[f"{key_prefix}double_blocks.0.img_attn.norm.query_norm.scale"].shape[0]
    mlp_hidden = state_dict[f"{key_prefix}double_blocks.0.img_mlp.0.weight"].shape[0]
    return {
        "hidden_size": hidden_size,
        "num_heads": hidden_size // head_dim,
        "context_in_dim": state_dict[f"{key_prefix}txt_in.weight"].shape[1],
        "mlp_ratio": mlp_hidden / hidden_size,
        "axes_dim": axes_dim_for(head_dim),
        "qkv_bias": f"{key_prefix}double_blocks.0.img_attn.qkv.bias" in state_dict,
    }


def install_detection_shim():
    original = comfy.model_detection.detect_unet_config
    if getattr(original, "lumix_test_shim", False):
        return

    def detect_unet_config(state_dict, key_prefix, metadata=None):
        config = original(state_dict, key_prefix, metadata=metadata)
        if config is not None and config.get("image_model") == "flux":
            widths = tiny_flux_widths(state_dict, key_prefix)
            if widths is not None:
                config.update(widths)
                logging.info("lumix_test_shim: tiny FLUX detected: %s", widths)
        return config

    detect_unet_config.lumix_test_shim = True
    # model_config_from_unet looks the function up as a module global, so this reaches
    # UNETLoader, CheckpointLoaderSimple and every other path through comfy.sd.
    comfy.model_detection.detect_unet_config = detect_unet_config


install_detection_shim()


class LumiXTestConditioning(io.ComfyNode):
    """FLUX conditioning without a text encoder: [[cond [1, T, C], {pooled_output, guidance}]]."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXTestConditioning",
            category="LumiX/testing",
            description="Test only: seeded random FLUX-shaped conditioning.",
            inputs=[
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="Seed of the random tensors."),
                io.Int.Input("tokens", default=8, min=1, max=512, tooltip="Text token count T."),
                io.Int.Input("context_dim", default=48, min=1, max=8192, tooltip="Text width (T5: 4096)."),
                io.Int.Input("pooled_dim", default=32, min=1, max=8192, tooltip="Pooled width (CLIP-L: 768)."),
                io.Float.Input("guidance", default=3.5, min=0.0, max=100.0, step=0.1,
                               tooltip="FLUX guidance embedding value."),
            ],
            outputs=[io.Conditioning.Output()],
        )

    @classmethod
    def execute(cls, seed, tokens, context_dim, pooled_dim, guidance) -> io.NodeOutput:
        generator = torch.Generator().manual_seed(seed)
        cond = torch.randn(1, tokens, context_dim, generator=generator)
        pooled = torch.randn(1, pooled_dim, generator=generator)
        return io.NodeOutput([[cond, {"pooled_output": pooled, "guidance": guidance}]])


class LumiXTestShimExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [LumiXTestConditioning]


async def comfy_entrypoint() -> LumiXTestShimExtension:
    return LumiXTestShimExtension()
