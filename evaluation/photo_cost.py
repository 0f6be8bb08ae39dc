"""Cost of decomposing at a working size, ON PAPER (no GPU measured): tokens, attention and
activation memory of FLUX.1-dev + LumiX, and the largest working size that fits a GPU.

    python -m benchmarks.photo_cost   (prints the tables; benchmarks/photo_report.py embeds them)

Model (FLUX.1-dev as published: width d = 3072, 24 heads of 128, 19 double + 38 single
blocks, MLP 4d, 512 T5 tokens; LumiX decomposition = 5 maps per scene as 5 sequences, no
CFG, attention per map over text + image tokens, spec: LumiX blocks):

- image tokens per map N = (W / 16)(H / 16); sequence L = 512 + N; batch 5 sequences;
- attention: with a fused kernel (flash / memory-efficient SDPA, what ComfyUI and diffusers
  use on CUDA) no L x L matrix exists: q, k, v, out = 4 x 5 L d values; materialised (a
  "math" attention) the scores alone are 5 x 24 x L^2 values (bf16; ComfyUI's basic
  attention upcasts them to fp32, twice that);
- activations: the largest block working set at inference is the single block's (input,
  linear1 output 7d, attention output d, GELU 4d, concatenation 5d, output d) plus q and k
  in fp32 for the rotary embedding (2 x 2d) and LumiX's broadcast query and Tensor-LoRA
  terms (~2d): about 24 d values per token, bf16 -> 24 x 3072 x 2 = 147 kB per token;
- fixed: FLUX weights (11.9 B parameters: bf16 23.8 GB, fp8 11.9 GB), LumiX adapters
  (133 M parameters, 0.27 GB in bf16), 1.5 GB for the CUDA context, workspaces and
  ComfyUI's reserve; text encoders and the VAE are not resident during sampling (ComfyUI
  unloads them; the standalone pipeline's --offload-text-encoders does the same);
- FLOPs per step: 2 x 11.9e9 x 5L for the linear layers + 4 L^2 d x 57 blocks x 5 for
  attention.
"""
from __future__ import annotations

HIDDEN, HEADS, BLOCKS, TEXT, MAPS = 3072, 24, 19 + 38, 512, 5
PARAMS, ADAPTER_PARAMS = 11.9e9, 133e6
VALUES_PER_TOKEN = 24 * HIDDEN
OVERHEAD_GB = 1.5
WEIGHTS_GB = {"bf16": PARAMS * 2 / 1e9, "fp8": PARAMS / 1e9}
SIZES = ((512, 512), (1024, 768), (1536, 1152))
GPUS = (24, 80)
MAX_SIDE = 4096


def cost(width: int, height: int) -> dict[str, float]:
    tokens = (width // 16) * (height // 16)
    sequence = TEXT + tokens
    return {
        "image_tokens_per_map": tokens,
        "sequence": sequence,
        "attention_fused_gb": 4 * MAPS * sequence * HIDDEN * 2 / 1e9,
        "attention_scores_bf16_gb": MAPS * HEADS * sequence ** 2 * 2 / 1e9,
        "activations_gb": MAPS * sequence * VALUES_PER_TOKEN * 2 / 1e9,
        "tflops_per_step": (2 * PARAMS * MAPS * sequence + 4 * sequence ** 2 * HIDDEN * BLOCKS * MAPS) / 1e12,
    }


def fixed_gb(weights: str) -> float:
    return WEIGHTS_GB[weights] + ADAPTER_PARAMS * 2 / 1e9 + OVERHEAD_GB


def largest(gpu_gb: float, weights: str, aspect: float = 4 / 3) -> tuple[int, int] | None:
    """The largest 4:3 working size (multiples of 16, sides <= 4096) whose activations fit."""
    free = gpu_gb - fixed_gb(weights)
    if free <= 0:
        return None
    best = None
    for height in range(16, MAX_SIDE + 1, 16):
        width = int(round(height * aspect / 16)) * 16
        if width > MAX_SIDE:
            break
        if cost(width, height)["activations_gb"] <= free:
            best = (width, height)
    return best


def main() -> None:
    print("| working size | MP | image tokens / map | sequence (text + image) | attention, fused kernel | "
          "attention scores if materialised (bf16) | activations (peak block) | TFLOP / step |")
    print("|---|---|---|---|---|---|---|---|")
    for width, height in SIZES:
        c = cost(width, height)
        print(f"| {width}x{height} | {width * height / 1e6:.2f} | {c['image_tokens_per_map']} | {c['sequence']} | "
              f"{c['attention_fused_gb']:.2f} GB | {c['attention_scores_bf16_gb']:.1f} GB | "
              f"{c['activations_gb']:.2f} GB | {c['tflops_per_step']:.0f} |")
    print()
    print("| GPU | FLUX weights | resident (weights + adapters + 1.5 GB) | largest 4:3 working size | MP |")
    print("|---|---|---|---|---|")
    for gpu in GPUS:
        for weights in ("fp8", "bf16"):
            size = largest(gpu, weights)
            fits = f"{size[0]}x{size[1]}" if size else "does not fit (weights alone exceed it; ComfyUI streams them)"
            mp = f"{size[0] * size[1] / 1e6:.2f}" if size else "-"
            bound = " (FLUX's 4096 side)" if size and max(size) >= MAX_SIDE - 16 else ""
            print(f"| {gpu} GB | {weights} | {fixed_gb(weights):.1f} GB | {fits}{bound} | {mp} |")
    print(f"\nactivation bytes per token: {VALUES_PER_TOKEN * 2 / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
