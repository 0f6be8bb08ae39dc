"""Environment-map relighting figure and accuracy table for the README (docs/images/).

    python benchmarks/render_environment_figure.py [--seed 11] [--size 160]

Relights a ground-truth scene (exact albedo and normals) with a procedural lat-long sky,
once through the 9 SH coefficients (Ramamoorthi & Hanrahan 2001) and once by brute-force
integration of every environment pixel, and prints the per-pixel relative irradiance error
(mean, 99th percentile, max) for skies with suns of different sizes, as a markdown table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from anywhere without installing
from lumix_engine.intrinsics import linear_to_srgb, render_scene, srgb_to_linear
from lumix_engine.intrinsics.environment import procedural_sky, sh9_coefficients, sh9_irradiance
from lumix_engine.intrinsics.render import environment_irradiance

OUT = Path(__file__).resolve().parent.parent / "docs" / "images"
SUNS = [("overcast (no sun)", 16.0, 0.0), ("broad glow, k = 2", 2.0, 4.0), ("large sun, k = 16", 16.0, 4.0),
        ("medium sun, k = 64", 64.0, 4.0), ("small sun, k = 300", 300.0, 20.0)]


def to_pixels(image: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    array = np.round(image.clamp(0, 1).numpy() * 255).astype(np.uint8)
    return Image.fromarray(array).resize(size, Image.Resampling.NEAREST)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--rotation", type=float, default=0.0)
    args = parser.parse_args()
    scene = render_scene(args.seed, args.size, args.size)
    normals = scene.normal[0].double()
    albedo = srgb_to_linear(scene.albedo[0].double())

    print("| environment | mean error | 99th percentile | max |")
    print("|---|---|---|---|")
    for label, sharpness, peak in SUNS:
        sky = procedural_sky(32, sun_sharpness=sharpness, sun_peak=peak)
        exact = environment_irradiance(normals, sky, args.rotation)
        fitted = sh9_irradiance(normals, sh9_coefficients(sky, args.rotation))
        relative = ((fitted - exact).abs() / exact).flatten()
        print(f"| {label} | {float(relative.mean()):.2%} | {float(relative.quantile(0.99)):.2%} | "
              f"{float(relative.max()):.2%} |")

    sky = procedural_sky(64, sun_sharpness=16.0, sun_peak=4.0)
    exact = environment_irradiance(normals, sky, args.rotation)
    fitted = sh9_irradiance(normals, sh9_coefficients(sky, args.rotation))
    cell = (args.size, args.size)
    panels = [
        to_pixels(linear_to_srgb(sky / sky.max() * 2), (2 * args.size, args.size)),
        to_pixels(linear_to_srgb(albedo * fitted), cell),
        to_pixels(linear_to_srgb(albedo * exact), cell),
        to_pixels(((fitted - exact).abs() / exact * 10).mean(-1, keepdim=True).expand(-1, -1, 3), cell),
    ]
    figure = Image.new("RGB", (sum(p.width for p in panels) + 3 * 4, args.size), (24, 24, 24))
    x = 0
    for panel in panels:
        figure.paste(panel, (x, 0))
        x += panel.width + 4
    OUT.mkdir(parents=True, exist_ok=True)
    figure.save(OUT / "relight_environment.png", optimize=True)
    print(f"wrote {OUT / 'relight_environment.png'}: environment | SH9 | brute force | relative error x 10")


if __name__ == "__main__":
    main()
