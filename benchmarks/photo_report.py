"""Write benchmarks/PHOTO_RESULTS.md from the photo benchmarks' JSON results.

    python -m benchmarks.photo_report

Reads benchmarks/results/photo_upsampling.json (benchmarks/photo_upsampling.py) and
benchmarks/results/photo_ensemble_tiny.json (benchmarks/photo_ensemble_tiny.py), and
recomputes the on-paper cost tables (evaluation/photo_cost.py).
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation import photo_cost  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
OUT = Path(__file__).resolve().parent / "PHOTO_RESULTS.md"
COLUMNS = (("albedo_si_rmse", "albedo si-RMSE", 4), ("irradiance_si_rmse", "irradiance si-RMSE", 4),
           ("depth_absrel", "depth AbsRel", 5), ("normal_degrees", "normal (deg)", 3),
           ("albedo_si_rmse_edges", "albedo si-RMSE, edges", 4), ("normal_degrees_edges", "normal (deg), edges", 2),
           ("albedo_sharpness", "albedo sharpness", 2), ("normal_sharpness", "normal sharpness", 2),
           ("depth_sharpness", "depth sharpness", 2))


def upsampling_section(result: dict) -> list[str]:
    lines = ["| photo | working size (x factor) | method | " + " | ".join(c[1] for c in COLUMNS)
             + " | recomposition max, float / 16-bit / 8-bit | s (CPU, loaded) |",
             "|---|---|---|" + "---|" * len(COLUMNS) + "---|---|"]
    rows = result["rows"]
    for row in rows:
        cells = [f"{row[key]:.{digits}f}" for key, _, digits in COLUMNS]
        recomposition = " / ".join(f"{row[f'recompose_max_{k}']:.2g}" for k in ("float", "16bit", "8bit"))
        lines.append(f"| {row['size']} | {row['working']} (x{row['factor']}) | {row['method']} | "
                     + " | ".join(cells) + f" | {recomposition} | {row['seconds']:.0f} |")
    lines += ["", "Error of guided relative to bilinear (100 % = the same, lower is better):", "",
              "| photo | working size | albedo | irradiance | depth | normal | albedo, edges | normal, edges |",
              "|---|---|---|---|---|---|---|---|"]
    for guided, bilinear in zip(rows[0::2], rows[1::2]):
        ratios = [100 * guided[k] / bilinear[k] for k in ("albedo_si_rmse", "irradiance_si_rmse", "depth_absrel",
                                                          "normal_degrees", "albedo_si_rmse_edges",
                                                          "normal_degrees_edges")]
        lines.append(f"| {guided['size']} | {guided['working']} | " + " | ".join(f"{r:.0f} %" for r in ratios) + " |")
    return lines


def ensemble_section(result: dict) -> list[str]:
    lines = [f"{result['scenes']} held-out scenes (seeds {result['heldout_seeds'][0]}-{result['heldout_seeds'][1]}, "
             f"never trained on), {result['size']}x{result['size']}, {result['steps']} Euler steps, N = "
             f"{result['runs']} runs per scene, {result['seconds']:.0f} s on the shared CPU.", "",
             "| map (error) | single run (mean over the N runs) | ensemble of N | change | scenes where the ensemble "
             "is better |", "|---|---|---|---|---|"]
    for name, row in result["errors"].items():
        lines.append(f"| {name} | {row['single_run_mean']:.4f} | {row['ensemble']:.4f} | "
                     f"{row['change_percent']:+.1f} % | {row['scenes_ensemble_better']} / {row['scenes']} |")
    lines += ["", f"Normals: per-pixel angular spread vs per-pixel angular error, Pearson correlation averaged over "
                  f"scenes: {result['uncertainty_error_correlation_normal']:.2f}.", "",
              "Read with care: the comparison is against the average single run. For an error that is convex in "
              "the prediction (RMSE in linear light, the angle to a fixed normal, roughly), the mean of N runs is "
              "never worse than their average error, so part of this gain is guaranteed by averaging; what the "
              "table adds is its size on this model, and that it holds on every scene. It says nothing about the "
              "full-size FLUX model, whose runs may differ less (or more) from seed to seed."]
    return lines


def cost_section() -> list[str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        photo_cost.main()
    return buffer.getvalue().rstrip().splitlines()


def main() -> None:
    upsampling = json.loads((RESULTS / "photo_upsampling.json").read_text())
    ensemble_path = RESULTS / "photo_ensemble_tiny.json"
    text = [
        "# Photos at their own size: results",
        "",
        "Run by hand on the shared 2-core CPU (load average 10-17 from other jobs during these runs, so the "
        "seconds are only indicative). No GPU was lent to this session: the memory table is on paper.",
        "",
        "## 1. Guided upsampling against bilinear, on exact ground truth at full size",
        "",
        "    python -m benchmarks.photo_upsampling",
        "",
        f"Procedural scenes {upsampling['scenes']} rendered at 2048x2048 and 2048x1152 (exact maps, purely diffuse); "
        "their maps brought down to the working size as a perfect model would output them, then back to full size "
        "by `upsample_maps` (guided: joint bilateral near the map's edges, bilinear in its smooth parts, albedo = "
        "photo / irradiance) or plain bilinear, and compared with the full-size truth. Two working sizes: the "
        "default 1.77 MP budget (x1.2-1.5 here) and 0.26 MP (x3-4, as a 6000x4000 photo at the default budget is "
        "x3.3). Edges = pixels within 2 px of an object, albedo or shadow boundary. Sharpness = mean gradient "
        "magnitude of the result / of the truth on those pixels (1 = as sharp as the truth). Recomposition = max "
        "|recompose(albedo, irradiance) - photo| over all sRGB values (1/255 = 0.0039).",
        "",
        *upsampling_section(upsampling),
        "",
        "Side by side (scene 3, 2048x2048 from a 512x512 working size, a 192-pixel crop at 2x): truth, bilinear, "
        "guided.",
        "",
        "![crop](../docs/images/photo_upsampling_crop.png)",
        "",
        "## 2. Ensembles on the shipped tiny model",
        "",
        "    python -m benchmarks.photo_ensemble_tiny --scenes 50 --runs 5",
        "",
        *(ensemble_section(json.loads(ensemble_path.read_text())) if ensemble_path.is_file() else ["not run"]),
        "",
        "## 3. Cost on paper (no GPU measured)",
        "",
        "    python -m benchmarks.photo_cost",
        "",
        "Model and assumptions in `evaluation/photo_cost.py`'s docstring (FLUX.1-dev, 5 maps as 5 sequences, no "
        "CFG, 512 text tokens, ~147 kB of bf16 activations per token at the peak block).",
        "",
        *cost_section(),
        "",
        "The default working budget stays the published 1536x1152 (1.77 MP): the authors decompose at it, FLUX.1 "
        "was trained up to about 2 MP, and it fits a 24 GB GPU with fp8 weights with about 5 GB to spare. The "
        "upper bound of the megapixels option is 3.4 MP, the largest 4:3 size that fits 24 GB with fp8 on paper; "
        "80 GB cards are bounded by FLUX's 4096-pixel side, not by memory, but quality beyond ~2 MP is FLUX's "
        "extrapolation and has not been measured. The VAE decode (ComfyUI estimates 7.7 GB per 1536x1152 image "
        "for the FLUX VAE) runs after the transformer, one image at a time, and ComfyUI falls back to tiled decoding "
        "when it does not fit.",
        "",
        "## 4. In real ComfyUI",
        "",
        "`tests/comfyui/test_photo_sizes.py` runs the shipped `lumix_image_to_maps` API workflow (tiny models, "
        "2 steps, 0.0625 MP) on photos of 1001x667, 667x1001 (portrait), 600x100 (panorama), 64x48, grey and "
        "RGBA, and checks that every saved map (8-bit and 16-bit) has the photo's size; 1001x667 runs as a "
        "2-seed ensemble; a 900x1 strip is refused with 'crop or pad'. Run on ComfyUI 0.3.64 and 0.29.0 "
        "(`../shared/comfyui`, with the shipped workflows, their UI files in the real frontend and the "
        "template browser): 17 passed on each.",
    ]
    OUT.write_text("\n".join(text) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
