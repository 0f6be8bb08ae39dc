"""Per-block Python overhead of the LumiX patch, at a width where compute is negligible.

    python -m benchmarks.python_overhead [--rounds 7] [--calls 200]

A tiny FLUX (hidden 64, 4 heads), 5 maps, 4 image + 3 text tokens: what remains of a block
call is dispatch and Python. The difference C - A per block call is what LumiX adds per block
and per transformer pass; multiply by 57 blocks and by the passes of a run.
"""
from __future__ import annotations

import argparse
import statistics

import torch

from evaluation.timing import alternate, machine
from lumix_engine.flux.model import Flux, FluxConfig
from lumix_engine.flux.rotary import bfl_pe
from lumix_engine.method.adapters import new_adapters
from lumix_engine.method.patch import block_patches

TINY = FluxConfig(vec_in_dim=32, context_in_dim=48, hidden_size=64, num_heads=4, depth=1, depth_single_blocks=1,
                  axes_dim=[4, 6, 6])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200, help="block calls per timed sample")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny ops: threads would only add synchronisation
    print(machine())
    torch.manual_seed(0)
    model = Flux(TINY).eval().requires_grad_(False)
    adapters = new_adapters(64, 1, 1, rank=8).requires_grad_(False)
    patches = block_patches(model, adapters)
    img, txt, vec = torch.randn(5, 4, 64), torch.randn(5, 3, 64), torch.randn(5, 64)
    pe = bfl_pe(torch.zeros(5, 7, 3), TINY.axes_dim)
    x = torch.cat((txt, img), 1)
    double, single = model.double_blocks[0], model.single_blocks[0]
    double_patch, single_patch = patches[("double_block", 0)], patches[("single_block", 0)]
    double_args = {"img": img, "txt": txt, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": {}}
    single_args = {"img": x, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": {}}

    def repeat(call):
        def run():
            for _ in range(args.calls):
                call()
        return run

    with torch.inference_mode():
        times = alternate({
            "A_double": repeat(lambda: double(img, txt, vec, pe)),
            "C_double": repeat(lambda: double_patch(double_args, {})),
            "A_single": repeat(lambda: single(x, vec, pe)),
            "C_single": repeat(lambda: single_patch(single_args, {})),
        }, args.rounds)["cpu"]
    per_call = {name: statistics.median(t) / args.calls * 1e6 for name, t in times.items()}
    for kind in ("double", "single"):
        print(f"{kind} block: unpatched {per_call['A_' + kind]:.0f} us/call, LumiX {per_call['C_' + kind]:.0f} us/call "
              f"(CPU time, median of {args.rounds} x {args.calls} calls)")


if __name__ == "__main__":
    main()
