"""Simulated peak GPU memory of one LumiX decomposition step against the same step on the
unpatched ComfyUI FLUX model (issue 26: peak <= 1.05x unpatched), no GPU needed.

    python -m benchmarks.peak_vs_unpatched [--blocks 1] [--sizes 512x512 ...] [--dtypes bf16 fp8]
        [--comfyui DIR:PYTHON ...] [--full-depth-size 512x512] [--out FILE]

Each (tree, weights dtype) runs evaluation/comfy_memory_probe.py twice at FLUX.1-dev width
with `--blocks` double + single blocks: the LumiX node path (`sample_maps`) and the control
("unpatched": ComfyUI's sample_custom on the base ModelPatcher, the same five latents,
schedule, conditioning and Euler step). Activations do not grow with depth, so one block
pair gives the activation peak; the peak at FLUX.1-dev depth is the resident set of a
full-depth run (--full-depth-size, one size per dtype and mode, first tree) plus those
activations.
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
from evaluation.lumix_memory import FLUX_DEV, small_shape  # noqa: E402

DEFAULT_SIZES = ("512x512", "1024x1024", "1536x1152")  # 1536x1152: the photo path's default working size
OUT = ROOT / "benchmarks" / "results" / "peak_vs_unpatched.json"
TARGET = 1.05


def probe(tree, python, shape, dtype, sizes, unpatched: bool, work: pathlib.Path) -> list[dict]:
    return run_comfyui(tree, python, shape, dtype, sizes, work, unpatched=unpatched)["results"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--sizes", nargs="*", default=list(DEFAULT_SIZES))
    parser.add_argument("--dtypes", nargs="*", default=["bf16", "fp8"])
    parser.add_argument("--comfyui", action="append", default=None, metavar="DIR:PYTHON")
    parser.add_argument("--full-depth-size", default=None, help="WxH: also run FLUX.1-dev's full depth at this "
                        "size on the first tree for the resident set (slow); without it peaks are at --blocks")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()
    sizes = [[int(v) for v in s.lower().split("x")] for s in args.sizes]
    trees = [tuple(pathlib.Path(p) for p in spec.split(":", 1)) for spec in args.comfyui] if args.comfyui \
        else default_trees()
    started, rows, full = time.time(), [], []
    with tempfile.TemporaryDirectory() as work:
        for tree, python in trees:
            for dtype in args.dtypes:
                for unpatched in (False, True):
                    t0 = time.time()
                    rows += probe(tree, python, small_shape(args.blocks), dtype, sizes, unpatched, pathlib.Path(work))
                    print(f"{tree.name} {dtype} {'unpatched' if unpatched else 'lumix'}: {time.time() - t0:.0f} s",
                          file=sys.stderr, flush=True)
        if args.full_depth_size:
            tree, python = trees[0]
            size = [[int(v) for v in args.full_depth_size.lower().split("x")]]
            for dtype in args.dtypes:
                for unpatched in (False, True):
                    full += probe(tree, python, FLUX_DEV, dtype, size, unpatched, pathlib.Path(work))
    resident = {(r["weights_dtype"], r["unpatched"]): r["resident_gb"] for r in full}
    table = []
    for lumix in (r for r in rows if not r["unpatched"]):
        same = lambda r: all(r[k] == lumix[k] for k in ("comfyui", "weights_dtype", "width", "height"))  # noqa: E731
        control = next(r for r in rows if r["unpatched"] and same(r))
        entry = {k: lumix[k] for k in ("comfyui", "weights_dtype", "width", "height")}
        entry.update(blocks=args.blocks, lumix_activations_gb=lumix["activations_gb"],
                     unpatched_activations_gb=control["activations_gb"],
                     activations_ratio=lumix["activations_gb"] / control["activations_gb"],
                     lumix_peak_gb=lumix["peak_gb"], unpatched_peak_gb=control["peak_gb"],
                     peak_ratio=lumix["peak_gb"] / control["peak_gb"],
                     lumix_peak_op=lumix["peak_op"], unpatched_peak_op=control["peak_op"])
        key = (lumix["weights_dtype"], False), (lumix["weights_dtype"], True)
        if all(k in resident for k in key):
            entry.update(full_depth_lumix_peak_gb=resident[key[0]] + lumix["activations_gb"],
                         full_depth_unpatched_peak_gb=resident[key[1]] + control["activations_gb"])
            entry["full_depth_peak_ratio"] = entry["full_depth_lumix_peak_gb"] / entry["full_depth_unpatched_peak_gb"]
        table.append(entry)
    record = {"command": "python -m benchmarks.peak_vs_unpatched " + " ".join(sys.argv[1:]), "maps": 5, "scenes": 1,
              "steps": 1, "cfg": False, "target_ratio": TARGET, "seconds": round(time.time() - started),
              "table": table, "runs": rows, "full_depth_runs": full}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print("| ComfyUI | weights | size | activations LumiX / unpatched (GB) | ratio | peak at --blocks "
          f"{args.blocks} (GB) | ratio | peak, FLUX.1-dev depth (GB) | ratio | LumiX peak op |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for e in table:
        deep = (f"{e['full_depth_lumix_peak_gb']:.2f} / {e['full_depth_unpatched_peak_gb']:.2f} | "
                f"{e['full_depth_peak_ratio']:.3f}") if "full_depth_peak_ratio" in e else "- | -"
        print(f"| {e['comfyui']} | {e['weights_dtype']} | {e['width']}x{e['height']} | "
              f"{e['lumix_activations_gb']:.3f} / {e['unpatched_activations_gb']:.3f} | {e['activations_ratio']:.3f} | "
              f"{e['lumix_peak_gb']:.3f} / {e['unpatched_peak_gb']:.3f} | {e['peak_ratio']:.3f} | {deep} | "
              f"{e['lumix_peak_op']} |")


if __name__ == "__main__":
    main()
