"""Peak GPU memory of a LumiX decomposition step at every working size, simulated (no GPU).

    python -m benchmarks.memory_simulation [--blocks N] [--comfyui DIR:PYTHON ...] [--sizes 1536x1152 ...]

Runs the real sampling code under fake tensors on a fake CUDA device (evaluation/memory_sim.py):
the ComfyUI node path (ComfyUI's FLUX classes, ModelPatcher, LumiX Loader, the sampler nodes'
`sample_maps`) in each ComfyUI tree given (default: the trees under ../shared/comfyui with
their CI venvs), bf16 and fp8 weights; and the standalone pipeline (diffusers FLUX + the
engine's sampler), bf16 (it has no fp8 mode). FLUX.1-dev shapes (19 + 38 blocks, hidden
3072, 24 heads, T5 512 tokens), five maps, one scene, no CFG, one denoising step, for the
working sizes the photo path picks at 0.25 ... 3.4 MP for a 3:2 and a 1:1 photo, and
the published 1536x1152.

Writes benchmarks/results/memory_simulation.json (every run) and
lumix_engine/method/memory_table.json (what the node's fit check reads), and prints the
tables of docs/memory.md. --blocks N runs N double + N single blocks instead (quick check;
then nothing is written unless --out is given).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.comfy_memory_runs import default_trees, run_comfyui  # noqa: E402
from evaluation.lumix_memory import FLUX_DEV, FluxShape, small_shape  # noqa: E402
from evaluation.memory_sim import engine_table, photo_working_sizes  # noqa: E402

MEGAPIXELS = (0.25, 0.5, 1.0, 1.769472, 2.5, 3.4)
ASPECTS = ((3, 2), (1, 1))
PUBLISHED = (1536, 1152)  # the authors' decomposition size, 4:3 at the default 1.77 MP
RESULTS = ROOT / "benchmarks" / "results" / "memory_simulation.json"
ENGINE_TABLE = ROOT / "lumix_engine" / "method" / "memory_table.json"
def markdown(rows: list[dict], estimates: list[dict]) -> str:
    sizes = sorted({(r["width"], r["height"]) for r in rows}, key=lambda s: s[0] * s[1])
    columns = sorted({(r["path"], r.get("comfyui", ""), r["weights_dtype"]) for r in rows})
    head = "| working size | MP | image tokens / map | " + " | ".join(
        f"{path}{' ' + tree if tree else ''} {dtype}: peak (activations)" for path, tree, dtype in columns) + " |"
    lines = [head, "|" + "---|" * (3 + len(columns))]
    for width, height in sizes:
        cells = []
        for path, tree, dtype in columns:
            row = next((r for r in rows if (r["path"], r.get("comfyui", ""), r["weights_dtype"], r["width"],
                                            r["height"]) == (path, tree, dtype, width, height)), None)
            cells.append(f"{row['peak_gb']:.1f} GB ({row['activations_gb']:.2f})" if row else "-")
        lines.append(f"| {width}x{height} | {width * height / 1e6:.2f} | {(width // 16) * (height // 16)} | "
                     + " | ".join(cells) + " |")
    if estimates:
        lines += ["", "| working size | ComfyUI | simulated activations (bf16 / fp8) | ComfyUI's estimate, minimum "
                  "(one batch of 5 latents) | ComfyUI's estimate, memory_required (2 batches) |", "|---|---|---|---|---|"]
        for est in sorted(estimates, key=lambda e: (e["comfyui"], e["width"] * e["height"])):
            acts = [r["activations_gb"] for r in rows if r["path"] == "comfyui" and r.get("comfyui") == est["comfyui"]
                    and (r["width"], r["height"]) == (est["width"], est["height"])]
            lines.append(f"| {est['width']}x{est['height']} | {est['comfyui']} | "
                         f"{' / '.join(f'{a:.2f}' for a in acts)} GB | {est['minimum_memory_required_gb']:.2f} GB | "
                         f"{est['memory_required_gb']:.2f} GB |")
    return "\n".join(lines)


def simulate(trees: list, shape: FluxShape, sizes: list, pipeline: bool, dtypes=("bf16", "fp8")) -> tuple[list, list]:
    import torch

    from evaluation.lumix_memory import simulate_pipeline
    rows, estimates = [], []
    with tempfile.TemporaryDirectory() as work:
        for tree, python in trees:
            for dtype in dtypes:
                t0 = time.time()
                result = run_comfyui(tree, python, shape, dtype, [list(s) for s in sizes], pathlib.Path(work))
                rows += result["results"]
                if dtype == dtypes[0]:
                    estimates += [dict(e, comfyui=tree.name) for e in result["estimates"]]
                print(f"ComfyUI {tree.name} {dtype}, {shape.depth}+{shape.depth_single_blocks} blocks, "
                      f"{len(sizes)} sizes: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    if pipeline:
        t0 = time.time()
        rows += [r.as_dict() for r in simulate_pipeline(sizes, shape, torch.bfloat16)]
        print(f"pipeline bf16, {shape.depth}+{shape.depth_single_blocks} blocks: {time.time() - t0:.0f} s",
              file=sys.stderr, flush=True)
    for row in rows:
        row["blocks"] = [shape.depth, shape.depth_single_blocks]
    return rows, estimates


def key(row: dict) -> tuple:
    return row["path"], row.get("comfyui", ""), row["weights_dtype"]


def combine(per_block: list[dict], full: list[dict]) -> list[dict]:
    """Peak at FLUX.1-dev depth = its resident set (weights, caches) + the activations of one
    block pair at that size. Blocks run one after the other and free their temporaries, so
    the activation peak does not grow with depth (checked: `full` runs at full depth)."""
    resident = {key(r): r["resident_gb"] for r in full}
    weights = {key(r): r["weights_gb"] for r in full}
    rows = []
    for row in per_block:
        if key(row) in resident:
            rows.append(dict(row, resident_gb=resident[key(row)], weights_gb=weights[key(row)],
                             peak_gb=resident[key(row)] + row["activations_gb"], blocks=[19, 38],
                             activations_from_blocks=row["blocks"]))
    return rows


VRAM_CLASSES_GIB = (12, 16, 24, 48, 80)  # as sold: a "24 GB" card holds 24 GiB = 25.8 GB


def vram_classes() -> str:
    """The default working budget per VRAM class, from the engine's table (what the node reads)."""
    from lumix_engine.method import memory
    from lumix_engine.method.resolution import DEFAULT_MEGAPIXELS
    memory.memory_table.cache_clear()
    lines = ["| GPU | weights | largest budget, weights on the GPU | largest budget, weights streamed by ComfyUI | "
             "default budget |", "|---|---|---|---|---|"]
    for gb in VRAM_CLASSES_GIB:
        for dtype in ("fp8", "bf16"):
            resident = memory.largest_megapixels(gb * 2 ** 30, dtype)
            streamed = memory.largest_megapixels(gb * 2 ** 30, dtype, weights_resident=False)
            # The published budget wherever its activations fit; weights stream if they must.
            default = None if streamed is None else min(streamed, DEFAULT_MEGAPIXELS)
            default = "too small" if default is None else f"{default:.2f} MP, " + (
                "weights on the GPU" if resident is not None and resident >= default - 1e-9 else
                "part of the weights streamed (slower)")
            show = lambda mp: "does not fit" if mp is None else f"{mp:.2f} MP"  # noqa: E731
            lines.append(f"| {gb} GB ({gb * 2 ** 30 / 1e9:.1f}) | {dtype} | {show(resident)} | {show(streamed)} | {default} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=1,
                        help="block pairs for the per-size activation runs (default 1; activations do not grow "
                             "with depth)")
    parser.add_argument("--full-depth-sizes", nargs="*", default=[f"{PUBLISHED[0]}x{PUBLISHED[1]}"],
                        help="sizes also run at FLUX.1-dev's full depth (resident set and the depth check)")
    parser.add_argument("--full-depth-trees", type=int, default=1,
                        help="how many ComfyUI trees get the full-depth run (slow: 57 blocks of fake ops)")
    parser.add_argument("--comfyui", action="append", default=None, metavar="DIR:PYTHON",
                        help="a ComfyUI tree and its Python (default: every tree under ../shared/comfyui)")
    parser.add_argument("--sizes", nargs="*", default=None, help="WxH working sizes (default: the photo path's grid)")
    parser.add_argument("--no-pipeline", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args()
    import torch
    parse = lambda items: [tuple(int(v) for v in s.lower().split("x")) for s in items]  # noqa: E731
    if args.sizes:
        sizes = parse(args.sizes)
    else:
        sizes = sorted(set(photo_working_sizes(MEGAPIXELS, ASPECTS)) | {PUBLISHED},
                       key=lambda s: s[0] * s[1])
    trees = [tuple(pathlib.Path(p) for p in spec.split(":", 1)) for spec in args.comfyui] if args.comfyui \
        else default_trees()
    started = time.time()
    per_block, estimates = simulate(trees, small_shape(args.blocks), sizes, not args.no_pipeline)
    full, _ = simulate(trees[-args.full_depth_trees:] if args.full_depth_trees else [], FLUX_DEV,
                       parse(args.full_depth_sizes), not args.no_pipeline)
    if args.full_depth_trees < len(trees):  # the other trees run the same model classes: their resident set
        for tree, _ in trees[:-args.full_depth_trees or None]:
            full += [dict(r, comfyui=tree.name, resident_from=r.get("comfyui")) for r in full
                     if r["path"] == "comfyui" and r.get("comfyui") == trees[-1][0].name]
    depth_check = [{"path": f["path"], "comfyui": f.get("comfyui", ""), "weights_dtype": f["weights_dtype"],
                    "width": f["width"], "height": f["height"], "activations_full_depth_gb": f["activations_gb"],
                    "activations_one_block_pair_gb": b["activations_gb"]}
                   for f in full if "resident_from" not in f
                   for b in per_block if key(b) == key(f) and (b["width"], b["height"]) == (f["width"], f["height"])]
    rows = combine(per_block, full)
    record = {"command": "python -m benchmarks.memory_simulation", "shape": FLUX_DEV.as_dict(), "maps": 5,
              "scenes": 1, "cfg": False, "steps": 1, "torch": torch.__version__,
              "seconds": round(time.time() - started), "rows": rows, "depth_check": depth_check,
              "comfyui_estimates": estimates, "per_block_runs": per_block, "full_depth_runs": full}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    if args.out == RESULTS and trees:
        ENGINE_TABLE.write_text(json.dumps(engine_table(rows, estimates), indent=1) + "\n")
    print(markdown(rows, estimates))
    if args.out == RESULTS and trees:
        print("\n" + vram_classes())
    print("\ndepth check (activations, GB):", json.dumps(depth_check, indent=1))


if __name__ == "__main__":
    main()
