"""Issue 6, item 4: full-size FLUX.1-dev with random bf16 weights on one GPU, unpatched vs LumiX.

    python -m benchmarks.gpu_full_size            # on an H100 / H200 (about 2 minutes)
    python -m benchmarks.gpu_full_size --tiny     # the same code path on CPU, tiny widths (a check)

Builds the engine's BFL Flux (19 double + 38 single blocks, hidden 3072) directly on the
device in bf16 (random init, ~24 GB), LumiX adapters at the published size (rank 8, all 57
blocks, random G3) on the device in bf16. One sampling step = one transformer pass on the batch
of 5 maps x 2 guidance branches = 10, with 512 text tokens, at 512^2 and 1024^2. Reports seconds
per step (CUDA events, median of the interleaved repetitions), peak allocated memory, the
FLOPs of one step (torch FlopCounterMode: matmuls and attention) and the achieved TFLOP/s
against a measured bf16 matmul rate (8192^3).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from evaluation.timing import machine
from lumix_engine.flux.model import Flux, FluxConfig, pack_latent
from lumix_engine.method.adapters import new_adapters
from lumix_engine.method.patch import block_patches

TINY = FluxConfig(vec_in_dim=32, context_in_dim=48, hidden_size=64, num_heads=4, depth=2, depth_single_blocks=3,
                  axes_dim=[4, 6, 6])
BATCH = 10  # 5 maps x 2 guidance branches, scene-major in each branch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, n: int, reps: int = 10) -> float:
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    synchronize(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - start)


def inputs(config: FluxConfig, side: int, device: torch.device, text_tokens: int):
    latent = torch.randn(BATCH, 16, side // 8, side // 8, device=device, dtype=torch.bfloat16)
    img, img_ids = pack_latent(latent)
    txt = torch.randn(BATCH, text_tokens, config.context_in_dim, device=device, dtype=torch.bfloat16)
    txt_ids = torch.zeros(BATCH, text_tokens, 3, device=device, dtype=torch.bfloat16)
    t = torch.full((BATCH,), 0.7, device=device, dtype=torch.bfloat16)
    y = torch.randn(BATCH, config.vec_in_dim, device=device, dtype=torch.bfloat16)
    guidance = torch.full((BATCH,), 3.5, device=device, dtype=torch.bfloat16)
    return img, img_ids, txt, txt_ids, t, y, guidance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny widths on CPU: checks the script, measures nothing")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cpu" if args.tiny else "cuda")
    config = TINY if args.tiny else FluxConfig()
    text_tokens = 7 if args.tiny else 512
    sizes = [32] if args.tiny else args.sizes
    print(machine(), "|", torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (tiny check)")
    peak_rate = matmul_rate(device, 256 if args.tiny else 8192)
    print(f"measured bf16 matmul rate: {peak_rate / 1e12:.1f} TFLOP/s")

    torch.manual_seed(0)
    with torch.device(device):
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)  # parameters born in bf16: no fp32 copy of 12B weights
        try:
            model = Flux(config).eval().requires_grad_(False)
            adapters = new_adapters(config.hidden_size, config.depth, config.depth_single_blocks, rank=8)
        finally:
            torch.set_default_dtype(default)
    adapters.requires_grad_(False)
    with torch.no_grad():
        for name, p in adapters.named_parameters():
            if name.endswith("G3"):
                p.normal_(0, 0.02)
    print(f"model {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters; {adapters.describe()}")
    lumix_options = {"patches_replace": {"dit": block_patches(model, adapters)}}

    with torch.inference_mode():
        for side in sizes:
            batch_inputs = inputs(config, side, device, text_tokens)
            variants = {"unpatched": {}, "LumiX": lumix_options}
            flops, peak, seconds = {}, {}, {name: [] for name in variants}
            for name, options in variants.items():
                with FlopCounterMode(display=False) as counter:
                    model(*batch_inputs, transformer_options=options)  # also the warm-up
                flops[name] = counter.get_total_flops()
                synchronize(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                model(*batch_inputs, transformer_options=options)
                synchronize(device)
                peak[name] = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
            for _ in range(args.reps):
                for name, options in variants.items():
                    synchronize(device)
                    start = time.perf_counter()
                    model(*batch_inputs, transformer_options=options)
                    synchronize(device)
                    seconds[name].append(time.perf_counter() - start)
            tokens = (side // 16) ** 2
            print(f"\n{side}x{side} ({tokens} image + {text_tokens} text tokens, batch {BATCH} = 5 maps x 2 branches)")
            for name in variants:
                step = statistics.median(seconds[name])
                achieved = flops[name] / step
                print(f"  {name:9s} {step:7.3f} s/step (min {min(seconds[name]):.3f}, max {max(seconds[name]):.3f}), "
                      f"peak {peak[name] / 2 ** 30:6.2f} GiB, {flops[name] / 1e12:7.1f} TFLOP/step, "
                      f"{achieved / 1e12:6.1f} TFLOP/s = {achieved / peak_rate:.0%} of measured matmul rate")
            ratios = [c / a for c, a in zip(seconds["LumiX"], seconds["unpatched"])]
            print(f"  LumiX/unpatched time {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
                  f", FLOPs {flops['LumiX'] / flops['unpatched']:.3f}")


if __name__ == "__main__":
    main()
