"""Issue 6, item 1: one double + one single FLUX.1-dev block, unpatched vs LumiX, on CPU.

    python -m benchmarks.block_level [--rounds 7] [--part both|double|single] [--profile]

FLUX.1-dev width (hidden 3072, 24 heads, mlp 4x), random weights, 5 maps of one scene,
256 image + 64 text tokens per map, float32. Variants, interleaved A B C A B C ...:
  A  the unpatched blocks (flux_model.DoubleStreamBlock / SingleStreamBlock) on the 5-map batch
  B  LumiX the plain way (evaluation/reference.py: full q/k/v for every map, Tensor LoRA in the authors' order)
  C  the project's LumiX (patch.block_patches -> qba.py), called as ComfyUI calls a replaced block
"""
from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from evaluation.reference import plain_double_block, plain_single_block
from evaluation.timing import alternate, load_average, machine, ratio_summary, time_summary
from lumix_engine.flux.model import Flux, FluxConfig
from lumix_engine.flux.rotary import bfl_pe
from lumix_engine.method.adapters import DOUBLE, SINGLE, new_adapters
from lumix_engine.method.patch import block_patches

DEV_BLOCKS = FluxConfig(depth=1, depth_single_blocks=1)  # FLUX.1-dev width, one block of each kind
IMG_TOKENS, TXT_TOKENS, MAPS = 256, 64, 5


def build(seed: int = 0):
    torch.manual_seed(seed)
    model = Flux(DEV_BLOCKS).eval().requires_grad_(False)
    adapters = new_adapters(DEV_BLOCKS.hidden_size, 1, 1, rank=8).requires_grad_(False)
    with torch.no_grad():
        for name, p in adapters.named_parameters():
            if name.endswith("G3"):
                p.normal_(0, 0.02)  # non-zero, or the adapters would be a no-op
    hidden = DEV_BLOCKS.hidden_size
    img = torch.randn(MAPS, IMG_TOKENS, hidden)
    txt = torch.randn(MAPS, TXT_TOKENS, hidden)
    vec = torch.randn(MAPS, hidden)
    side = int(IMG_TOKENS ** 0.5)
    ids = torch.zeros(MAPS, TXT_TOKENS + IMG_TOKENS, 3)
    ids[:, TXT_TOKENS:, 1] = torch.arange(side).repeat_interleave(side).float()
    ids[:, TXT_TOKENS:, 2] = torch.arange(side).repeat(side).float()
    pe = bfl_pe(ids, DEV_BLOCKS.axes_dim, DEV_BLOCKS.theta)
    return model, adapters, (img, txt, vec, pe)


def variants(model, adapters, inputs):
    """{(variant, part): call}, ordered A B C for the double block, then A B C for the single one."""
    img, txt, vec, pe = inputs
    x = torch.cat((txt, img), dim=1)
    double, single = model.double_blocks[0], model.single_blocks[0]
    patches = block_patches(model, adapters)
    double_patch, single_patch = patches[("double_block", 0)], patches[("single_block", 0)]
    lora_double, lora_single = adapters.processor(DOUBLE, 0), adapters.processor(SINGLE, 0)
    double_args = {"img": img, "txt": txt, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": {}}
    single_args = {"img": x, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": {}}
    return {
        ("A_unpatched", "double"): lambda: double(img, txt, vec, pe),
        ("B_plain_lumix", "double"): lambda: plain_double_block(double, img, txt, vec, pe, lora_double.kv_tt_lora,
                                                                lora_double.proj_tt_lora),
        ("C_lumix", "double"): lambda: double_patch(double_args, {}),
        ("A_unpatched", "single"): lambda: single(x, vec, pe),
        ("B_plain_lumix", "single"): lambda: plain_single_block(single, x, vec, pe, lora_single.kv_tt_lora,
                                                                lora_single.proj_tt_lora),
        ("C_lumix", "single"): lambda: single_patch(single_args, {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--part", choices=("both", "double", "single"), default="both")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table per variant instead")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine())
    model, adapters, inputs = build()
    runs = {key: run for key, run in variants(model, adapters, inputs).items() if args.part in ("both", key[1])}
    with torch.inference_mode():
        flops = {}
        for (name, part), run in runs.items():
            with FlopCounterMode(display=False) as counter:
                run()
            flops[name] = flops.get(name, 0) + counter.get_total_flops()
        print("matmul/attention GFLOP per call (torch FlopCounterMode): "
              + ", ".join(f"{name} {value / 1e9:.1f}" for name, value in flops.items())
              + f"; C/A by FLOPs {flops['C_lumix'] / flops['A_unpatched']:.3f}, "
              f"C/B {flops['C_lumix'] / flops['B_plain_lumix']:.3f}")
        if args.profile:
            from torch.profiler import ProfilerActivity, profile
            for key, run in runs.items():
                run()
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    run()
                print(f"== {key}\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))
            return
        # The double block's three variants back to back, then the single block's: the
        # variants compared within a round run within seconds of each other.
        times = alternate({f"{name}/{part}": run for (name, part), run in runs.items()}, args.rounds)
    print(f"finished, {load_average()}")
    parts = sorted({part for _, part in runs}, key=("double", "single").index)
    names = ("A_unpatched", "B_plain_lumix", "C_lumix")
    for clock in ("wall", "cpu"):
        for part in parts:
            per_part = {name: times[clock][f"{name}/{part}"] for name in names}
            print(f"\n[{clock} time, {part} block] {time_summary(per_part)}")
            print_ratios(per_part)
        if len(parts) == 2:
            both = {name: [sum(t) for t in zip(*(times[clock][f"{name}/{part}"] for part in parts))] for name in names}
            print(f"\n[{clock} time, double + single] {time_summary(both)}")
            print_ratios(both)


def print_ratios(times: dict[str, list[float]]) -> None:
    print("  " + ratio_summary(times, "C_lumix", "A_unpatched"), "  target <= 0.96")
    print("  " + ratio_summary(times, "C_lumix", "B_plain_lumix"), "  target <= 0.93")
    print("  " + ratio_summary(times, "B_plain_lumix", "A_unpatched"))


if __name__ == "__main__":
    main()
