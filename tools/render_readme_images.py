"""Render the README's intrinsic-map figures into docs/images/ from a ground-truth scene.

    python -m tools.render_readme_images [--seed 11] [--size 256]
    python -m tools.render_readme_images --tiny-sheet     # only the shipped tiny model's sheet

Writes the five maps, a relit color, a material edit, a render-time measurement and the
coherence scores (printed as a markdown table for the README), and the contact sheet of the
shipped tiny LumiX (`tiny_lumix_sheet.png`: text -> maps, and the decomposition of held-out
renders beside their exact ground truth; the demo's own sheet shows one of each).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from evaluation.doctored import grey, wrong_but_consistent
from lumix_engine.intrinsics import Light, coherence_report, material_edit, relight, render_scene

OUT = Path(__file__).resolve().parent.parent / "docs" / "images"


def save(name: str, image: torch.Tensor) -> None:
    # 8-bit is fine for a README figure; the maps themselves stay float.
    pixels = np.round(image[0].clamp(0, 1).numpy() * 255).astype(np.uint8)
    Image.fromarray(pixels).save(OUT / f"intrinsics_{name}.png", optimize=True)


def tiny_model_sheet(scenes: int = 3) -> Path:
    """Demo seeds 0..scenes-1 of the shipped tiny LumiX (lumix_engine.tiny_trained.showcase)."""
    from lumix_engine.image_io import contact_sheet
    from lumix_engine.tiny_trained.showcase import run_showcase, showcase_rows
    rows = []
    for seed in range(scenes):
        show = run_showcase(seed=seed)
        rows += [(f"{title} (demo seed {seed})", cells) for title, cells in showcase_rows(show)]
        print("\n".join(show.lines))
    path = OUT / "tiny_lumix_sheet.png"
    contact_sheet(rows, cell=128).save(path, optimize=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--tiny-sheet", action="store_true", help="only draw the tiny model's contact sheet")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    print("wrote", tiny_model_sheet())
    if args.tiny_sheet:
        return

    scene = render_scene(args.seed, args.size, args.size)
    maps = scene.images()
    for name, image in maps.items():
        save(name, image)
    print("scene:", scene.scene.caption())

    # Relight: a warm light from the right and low, a little blue ambient.
    sunset = Light("directional", (0.8, 0.25, 0.45), color=(1.0, 0.6, 0.35), intensity=0.9)
    relit, relit_irradiance = relight(maps["albedo"], maps["normal"], [sunset], ambient=(0.05, 0.07, 0.12))
    save("relit", relit)
    save("relit_irradiance", relit_irradiance)
    edited, _ = material_edit(maps["albedo"], maps["irradiance"], tint=(0.35, 0.6, 1.4))
    save("tinted", edited)

    report = coherence_report(**maps)
    shifted = {**maps, "normal": torch.roll(maps["normal"], 4, dims=2)}
    other = render_scene(args.seed + 1, args.size, args.size).images()
    rows = [("ground truth", report), ("normal shifted 4 px", coherence_report(**shifted)),
            ("depth from another scene", coherence_report(**{**maps, "depth": other["depth"]})),
            ("depth = grey copy of color", coherence_report(**{**maps, "depth": grey(maps["color"])})),
            ("every map = color", coherence_report(**{name: maps["color"] for name in maps}))]
    # Wrong maps that pass the checks (docs/coherence.md): the table must show that too.
    for name in ("irradiance = luminance^0.5, albedo = color / irradiance", "every map from the image alone"):
        rows.append((f"{name} (wrong)", coherence_report(**wrong_but_consistent()[name](maps, other))))
    print("\n| maps | structural alignment (0..1, 1 best) | recomposition RMSE (0..1, 0 best) "
          "| normal-depth error (deg, 0 best) |\n|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r.structural_alignment:.3f} | {r.recomposition_rmse:.4f} | "
              f"{r.normal_depth_error_degrees:.2f} |")

    for size in (512, 1024):
        times = []
        for seed in range(5):
            start = time.perf_counter()
            render_scene(seed, size, size)
            times.append(time.perf_counter() - start)
        print(f"render {size}x{size}: best {min(times):.3f} s, median {sorted(times)[2]:.3f} s "
              f"({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
