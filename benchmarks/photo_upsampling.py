"""Guided upsampling against plain bilinear, on exact ground truth at full resolution.

    python -m benchmarks.photo_upsampling --cache /tmp/lumix_photo_gt --out benchmarks/results/photo_upsampling.json

Procedural scenes (`render_scene`, exact maps, purely diffuse so color = albedo x
irradiance) are rendered at full size (2048 x 2048 and 2048 x 1152). Their maps are brought
down to a working size as a model would output them (antialiased; albedo and irradiance in
linear light; normals renormalised), so the model is not what is measured, and brought back
with `upsample_maps` ("guided") and with plain bilinear. Errors at full size, per image, then
averaged over scenes:

- albedo / irradiance: scale-invariant RMSE in linear light (tiny_trained.metrics.si_rmse);
- depth: AbsRel after least-squares scale and shift in disparity, against metric depth;
- normal: mean angle (degrees);
- edges: the same errors on the pixels within 2 px of a ground-truth edge (object id,
  albedo or shadow boundaries), where upsampling loses detail; and the sharpness ratio,
  mean gradient magnitude of the result / of the truth on those pixels (1 = as sharp);
- recomposition: max and RMS of |recompose(albedo, irradiance) - photo| over sRGB values,
  in float and after 16-bit and 8-bit quantisation of the two maps.
Two working sizes: the default budget (1.77 MP, upsampling x1.2 to x1.5 here) and 0.26 MP
(512 x 512, x4): a 6000 x 4000 photo at the default budget is x3.3.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lumix_engine.intrinsics import recompose, render_scene  # noqa: E402
from lumix_engine.intrinsics.color_space import linear_to_srgb, srgb_to_linear  # noqa: E402
from lumix_engine.intrinsics.depth import depth_to_image  # noqa: E402
from lumix_engine.intrinsics.normals import decode_normals, encode_normals  # noqa: E402
from lumix_engine.intrinsics.upsample import resize_linear, upsample_maps  # noqa: E402
from lumix_engine.method.resolution import DEFAULT_MEGAPIXELS, working_size  # noqa: E402
from lumix_engine.tiny_trained.metrics import depth_absrel, normal_angle, si_rmse  # noqa: E402

SIZES = ((2048, 2048), (2048, 1152))
SCENES = (3, 11, 27)
BUDGETS = (DEFAULT_MEGAPIXELS, 512 * 512 / 1e6)
EDGE_BAND_PX = 2


def truth(seed: int, width: int, height: int, cache: Path) -> dict[str, torch.Tensor]:
    """Exact maps of scene `seed` at width x height, rendered once and kept in `cache`."""
    path = cache / f"scene{seed}_{width}x{height}.safetensors"
    if path.is_file():
        return load_file(path)
    scene = render_scene(seed, width, height)
    maps = {**scene.images(), "metric_depth": scene.depth, "unit_normal": scene.normal,
            "object_id": scene.object_id.float()[..., None]}
    cache.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in maps.items()}, path)
    return maps


def to_working(maps: dict[str, torch.Tensor], width: int, height: int) -> dict[str, torch.Tensor]:
    """What a perfect model would output at the working size."""
    def down(image: torch.Tensor) -> torch.Tensor:
        return resize_linear(image.permute(0, 3, 1, 2), height, width).permute(0, 2, 3, 1)
    normal = F.normalize(down(decode_normals(maps["normal"])), dim=-1)
    return {"albedo": linear_to_srgb(down(srgb_to_linear(maps["albedo"]))),
            "irradiance": linear_to_srgb(down(srgb_to_linear(maps["irradiance"]))),
            "color": linear_to_srgb(down(srgb_to_linear(maps["color"]))),
            "depth": depth_to_image(down(maps["metric_depth"])[..., 0], normalization="minmax"),
            "normal": encode_normals(normal)}


def edge_band(maps: dict[str, torch.Tensor]) -> torch.Tensor:
    """[1, H, W] bool: within EDGE_BAND_PX of an object, albedo or irradiance boundary."""
    def jumps(x: torch.Tensor, threshold: float) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().amax(1, keepdim=True) > threshold
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().amax(1, keepdim=True) > threshold
        edges = torch.zeros_like(x[:, :1], dtype=torch.bool)
        edges[..., :, 1:] |= dx
        edges[..., 1:, :] |= dy
        return edges
    edges = jumps(maps["object_id"], 0.5) | jumps(maps["albedo"], 0.05) | jumps(maps["irradiance"], 0.05)
    band = F.max_pool2d(edges.float(), 2 * EDGE_BAND_PX + 1, stride=1, padding=EDGE_BAND_PX) > 0
    return band[:, 0]


def gradient(image: torch.Tensor) -> torch.Tensor:
    x = image.permute(0, 3, 1, 2)
    dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    return (dx ** 2 + dy ** 2).sum(1).sqrt()


def masked(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The pixels of [1, H, W, C] under mask [1, H, W] as a [1, N, 1, C] image (metrics take images)."""
    return image[mask][None, :, None, :]


def errors(result: dict[str, torch.Tensor], gt: dict[str, torch.Tensor], band: torch.Tensor) -> dict[str, float]:
    row = {
        "albedo_si_rmse": si_rmse(result["albedo"], gt["albedo"]),
        "irradiance_si_rmse": si_rmse(result["irradiance"], gt["irradiance"]),
        "depth_absrel": depth_absrel(result["depth"], gt["metric_depth"]),
        "normal_degrees": normal_angle(result["normal"], gt["unit_normal"]),
        "albedo_si_rmse_edges": si_rmse(masked(result["albedo"], band), masked(gt["albedo"], band)),
        "irradiance_si_rmse_edges": si_rmse(masked(result["irradiance"], band), masked(gt["irradiance"], band)),
        "normal_degrees_edges": normal_angle(masked(result["normal"], band), masked(gt["unit_normal"], band)),
    }
    for name in ("albedo", "depth", "normal"):
        row[f"{name}_sharpness"] = gradient(result[name])[band].mean() / gradient(gt[name])[band].mean()
    differences = {"float": recompose(result["albedo"], result["irradiance"]) - gt["color"]}
    for bits in (16, 8):
        levels = 2 ** bits - 1
        quantised = {k: torch.round(result[k] * levels) / levels for k in ("albedo", "irradiance")}
        differences[f"{bits}bit"] = recompose(quantised["albedo"], quantised["irradiance"]) - gt["color"]
    for kind, difference in differences.items():
        row[f"recompose_max_{kind}"] = difference.abs().max()
        row[f"recompose_rms_{kind}"] = difference.pow(2).mean().sqrt()
    return {k: float(v.mean() if isinstance(v, torch.Tensor) else v) for k, v in row.items()}


def run(cache: Path) -> dict:
    rows = []
    for width, height in SIZES:
        for budget in BUDGETS:
            work_w, work_h = working_size(width, height, budget)
            per_method: dict[str, list[dict[str, float]]] = {"guided": [], "bilinear": []}
            for seed in SCENES:
                gt = truth(seed, width, height, cache)
                band = edge_band(gt)
                working = to_working(gt, work_w, work_h)
                for method in per_method:
                    started = time.perf_counter()
                    result = upsample_maps(working, gt["color"], method)
                    seconds = time.perf_counter() - started
                    per_method[method].append({**errors(result, gt, band), "seconds": seconds})
            for method, values in per_method.items():
                mean = {k: sum(v[k] for v in values) / len(values) for k in values[0]}
                rows.append({"size": f"{width}x{height}", "working": f"{work_w}x{work_h}",
                             "factor": round(math.sqrt(width * height / (work_w * work_h)), 2),
                             "method": method, "scenes": len(values), **mean})
                print(json.dumps(rows[-1]), flush=True)
    return {"scenes": list(SCENES), "rows": rows}


def crop_figure(cache: Path, out: Path) -> None:
    """Side by side: truth, bilinear, guided, for albedo / irradiance / normal, on a crop of
    scene 3 at 2048 x 2048 from a 512 x 512 working size (x4)."""
    from PIL import Image, ImageDraw
    gt = truth(SCENES[0], *SIZES[0], cache)
    working = to_working(gt, 512, 512)
    results = {"truth": gt, "bilinear": upsample_maps(working, gt["color"], "bilinear"),
               "guided (ours)": upsample_maps(working, gt["color"], "guided")}
    top, left, size, zoom = 1100, 700, 192, 2
    tiles, label_h = [], 22
    names = ("albedo", "irradiance", "depth", "normal")
    sheet = Image.new("RGB", (len(results) * size * zoom, len(names) * (size * zoom + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for column, (title, maps) in enumerate(results.items()):
        for row, name in enumerate(names):
            crop = maps[name][0, top:top + size, left:left + size].clamp(0, 1)
            tile = Image.fromarray((crop.numpy() * 255 + 0.5).astype("uint8")).resize((size * zoom, size * zoom),
                                                                                       Image.NEAREST)
            y = row * (size * zoom + label_h)
            sheet.paste(tile, (column * size * zoom, y + label_h))
            draw.text((column * size * zoom + 4, y + 4), f"{name}: {title}", fill="black")
            tiles.append(tile)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/lumix_photo_gt"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/photo_upsampling.json"))
    parser.add_argument("--figure", type=Path, default=Path("docs/images/photo_upsampling_crop.png"))
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    if args.render_only:
        for width, height in SIZES:
            for seed in SCENES:
                truth(seed, width, height, args.cache)
        return
    result = run(args.cache)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    crop_figure(args.cache, args.figure)
    print(f"wrote {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
