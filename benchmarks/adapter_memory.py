"""Issue 6, item 3: the adapter exists once, whatever the number of MODEL clones.

    python -m benchmarks.adapter_memory [--dtype bf16|fp32] [--path /tmp/lumix_random.safetensors]

Writes a LumiX checkpoint with random values at FLUX.1-dev size (19 double + 38 single blocks,
hidden 3072, 5 maps, rank 8: 133M parameters) as a real safetensors file (in a subprocess, so
this process's memory is not touched by the writing), then reports this process's resident
memory (VmRSS from /proc/self/status, after gc and glibc's malloc_trim so freed temporaries are
not counted), split into anonymous and file-backed pages, after each stage:
  loaded        load_adapters(file) (the engine's loader: one copy, tensors assigned, no cast)
  patched       block_patches on a FLUX.1-dev skeleton (meta device: no model weights) put in a
                ComfyUI-style model_options dict
  5 clones      copy.deepcopy(model_options) five times, as ComfyUI's ModelPatcher.clone does
  folded        every adapter called once in the file's dtype (builds the cached folded cores)
  5 more clones the same deep copies with the caches present
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import os
import subprocess
import sys

import torch

from evaluation.timing import machine
from lumix_engine.flux.model import Flux, FluxConfig
from lumix_engine.method.adapters import new_adapters
from lumix_engine.method.checkpoint import load_adapters, save_adapters
from lumix_engine.method.patch import block_patches
from lumix_engine.method.tensor_lora import TensorLoRA

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
MIB = 2 ** 20


def rss_mib() -> tuple[float, float, float]:
    """(VmRSS, RssAnon, RssFile) in MiB, after handing freed heap back to the kernel.

    safetensors maps the file: loaded tensors are file-backed pages (RssFile, shared with
    the page cache), not anonymous memory.
    """
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return tuple(int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "RssAnon", "RssFile"))


def write_random_checkpoint(path: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    adapters = new_adapters(3072, 19, 38, rank=8).requires_grad_(False)
    with torch.no_grad():
        for name, p in adapters.named_parameters():
            if name.endswith("G3"):
                p.normal_(0, 0.02)
    save_adapters(adapters, path, dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="bf16")
    parser.add_argument("--path", default=None)
    parser.add_argument("--write-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.path or f"/tmp/lumix_random_{args.dtype}.safetensors"
    if args.write_only:
        write_random_checkpoint(path, DTYPES[args.dtype])
        return
    print(machine())
    subprocess.run([sys.executable, "-m", "benchmarks.adapter_memory", "--write-only", "--dtype", args.dtype,
                    "--path", path], check=True)
    print(f"file {path}: {os.path.getsize(path) / MIB:.0f} MiB")
    stages = [("start", rss_mib())]

    adapters = load_adapters(path)
    stages.append(("loaded", rss_mib()))
    tensor_mib = sum(p.numel() * p.element_size() for p in adapters.parameters()) / MIB
    print(f"{adapters.describe()}; parameter bytes {tensor_mib:.0f} MiB")

    with torch.device("meta"):
        skeleton = Flux(FluxConfig())  # FLUX.1-dev architecture, no weights allocated
    model_options = {"transformer_options": {"patches_replace": {"dit": block_patches(skeleton, adapters)}}}
    stages.append(("patched", rss_mib()))

    clones = [copy.deepcopy(model_options) for _ in range(5)]
    stages.append(("5 clones", rss_mib()))
    shared = all(clone["transformer_options"]["patches_replace"]["dit"][key].adapters is adapters
                 for clone in clones for key in model_options["transformer_options"]["patches_replace"]["dit"])
    print(f"every clone's patches hold the same adapters object: {shared}")

    dtype = next(adapters.parameters()).dtype
    fold_mib = 0.0
    with torch.inference_mode():
        for module in adapters.modules():
            if isinstance(module, TensorLoRA):
                module(torch.zeros(module.num_maps, 1, module.in_features, dtype=dtype))
                core, readout = module.folded(torch.device("cpu"), dtype)
                fold_mib += core.numel() * core.element_size() / MIB
                if readout.data_ptr() != module.G3.data_ptr():
                    fold_mib += readout.numel() * readout.element_size() / MIB
    stages.append((f"folded ({dtype})", rss_mib()))
    clones += [copy.deepcopy(model_options) for _ in range(5)]
    stages.append(("5 more clones", rss_mib()))

    previous = stages[0][1]
    for name, (rss, anon, mapped) in stages:
        print(f"{name:24s} RSS {rss:6.0f} MiB (+{rss - previous[0]:5.0f})   anonymous {anon:6.0f} "
              f"(+{anon - previous[1]:5.0f})   file-backed {mapped:6.0f} (+{mapped - previous[2]:5.0f})")
        previous = (rss, anon, mapped)
    print(f"folded cores allocated: {fold_mib:.0f} MiB (G3 read in place: no readout copies)" if fold_mib else "")


if __name__ == "__main__":
    main()
