"""Issue 6, item 2: one Tensor LoRA, the authors' contraction order against the engine's.

    python -m benchmarks.tensor_lora_alone [--rounds 7] [--d-out 3072]

d_in = 3072, rank 8, 5 maps (one scene), L = 1536 tokens, float32, CPU.

Time: the two orders interleaved in one process, the engine's with its folded core cached
(the steady state of sampling; the one-off fold is timed separately).
Peak memory: each variant runs once in a fresh subprocess with MALLOC_MMAP_THRESHOLD_=65536,
so every large tensor is its own mmap and is returned to the kernel when freed. The child
builds the adapter and the input (and, for the engine, the folded core), resets the kernel's
peak-RSS mark (`echo 5 > /proc/self/clear_refs`), runs the variant once and reports
VmHWM - VmRSS-before: the memory the call itself touched, output included.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from evaluation.reference import tensor_lora_authors_order
from evaluation.timing import alternate, machine, ratio_summary, time_summary
from lumix_engine.method.tensor_lora import TensorLoRA

MAPS, D_IN, RANK, LENGTH = 5, 3072, 8, 1536
MIB = 2 ** 20


def build(d_out: int, seed: int = 0) -> tuple[TensorLoRA, torch.Tensor]:
    torch.manual_seed(seed)
    adapter = TensorLoRA(MAPS, D_IN, d_out, RANK).requires_grad_(False)
    with torch.no_grad():
        adapter.G1.normal_(0, 1.0)
        adapter.G3.normal_(0, 0.3)
    return adapter, torch.randn(MAPS, LENGTH, D_IN)


def authors(adapter: TensorLoRA, x: torch.Tensor) -> torch.Tensor:
    return tensor_lora_authors_order(x, adapter.G1, adapter.G2, adapter.G3, adapter.scale)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith(field + ":")))


def child(variant: str, d_out: int) -> None:
    """Runs in the subprocess: one call of `variant`, prints {"peak_mib": ...}."""
    torch.set_num_threads(2)
    adapter, x = build(d_out)
    with torch.inference_mode():
        if variant == "ours":
            adapter.folded(x.device, x.dtype)  # the cache sampling keeps; built before the mark
        before = _status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        out = adapter(x) if variant == "ours" else authors(adapter, x)
        peak = _status_kib("VmHWM")
    print(json.dumps({"peak_mib": (peak - before) / 1024, "output_mib": out.numel() * out.element_size() / MIB}))


def peak_memory(variant: str, d_out: int) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    done = subprocess.run([sys.executable, "-m", "benchmarks.tensor_lora_alone", "--child", variant,
                           "--d-out", str(d_out)], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def analytic_mib(d_out: int) -> dict[str, float]:
    """Sizes of the large intermediates each order materialises (float32)."""
    f = 4 / MIB
    return {
        "authors": f * (MAPS * MAPS * LENGTH * RANK * RANK  # x with G2: [M, M, L, R, R]
                        + MAPS * MAPS * LENGTH * d_out  # per-source outputs [M, M, L, d_out]
                        + 2 * MAPS * LENGTH * d_out),  # the sum over sources, then times s
        "ours": f * (MAPS * LENGTH * MAPS * RANK  # per-source low-rank codes [M, L, M*R]
                     + MAPS * LENGTH * d_out),  # the output
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--d-out", type=int, default=3072, help="3072 (proj adapter) or 6144 (kv adapter)")
    parser.add_argument("--child", choices=("authors", "ours"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.d_out)
        return
    print(machine())
    print(f"Tensor LoRA: maps {MAPS}, d_in {D_IN}, d_out {args.d_out}, rank {RANK}, L {LENGTH}, float32")
    adapter, x = build(args.d_out)
    with torch.inference_mode():
        start = time.perf_counter()
        adapter.release_cache()
        adapter.folded(x.device, x.dtype)
        print(f"one-off fold (G1 into G2): {(time.perf_counter() - start) * 1e3:.1f} ms")
        ours, theirs = adapter(x), authors(adapter, x)
        exact = tensor_lora_authors_order(x.double(), adapter.G1.double(), adapter.G2.double(),
                                          adapter.G3.double(), adapter.scale)
        for name, out in (("ours", ours), ("authors", theirs)):
            error = ((out.double() - exact).norm() / exact.norm()).item()
            print(f"relative error vs float64, {name}: {error:.2e}")
        print(f"relative difference ours vs authors (float32): "
              f"{((ours - theirs).norm() / theirs.norm()).item():.2e}   target <= 1e-5")
        del ours, theirs, exact
        clocks = alternate({"authors": lambda: authors(adapter, x), "ours": lambda: adapter(x)}, args.rounds)
    for clock, times in clocks.items():
        print(f"[{clock} time] {time_summary(times)}")
        speedups = [a / b for a, b in zip(times["authors"], times["ours"])]
        print(f"  speed-up authors/ours = {statistics.median(speedups):.2f}x (min {min(speedups):.2f}, "
              f"max {max(speedups):.2f})   target >= 4x;  {ratio_summary(times, 'ours', 'authors')}")
    sizes = analytic_mib(args.d_out)
    for variant in ("authors", "ours"):
        measured = peak_memory(variant, args.d_out)
        print(f"peak memory of one call, {variant}: {measured['peak_mib']:.0f} MiB measured "
              f"(output {measured['output_mib']:.0f} MiB; large intermediates + output, analytic: "
              f"{sizes[variant]:.0f} MiB)")


if __name__ == "__main__":
    main()
