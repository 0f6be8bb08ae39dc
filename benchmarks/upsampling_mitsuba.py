"""Guided upsampling against bilinear, on Mitsuba 3 ground truth (independent of our renderer).

    nice -n 10 python -m benchmarks.mitsuba_scenes            # renders, cached in runs/mitsuba
    nice -n 10 python -m benchmarks.upsampling_mitsuba        # this table

Each render (benchmarks/mitsuba_scenes.py: path-traced, antialiased, soft shadows, textured)
gives full-size truth maps. They are brought down to the photo path's working size for that
photo (`plan_photo`, the default 1.77 MP budget), as a perfect model would output them
(antialiased; albedo and irradiance in linear light; depth as the normalised disparity
image; normals renormalised), and back to full size by `upsample_maps`, guided by the
full-size color, and by plain bilinear. Scores at full size, per scene:

- albedo / irradiance: scale-invariant RMSE in linear light;
- depth: AbsRel after least-squares scale and shift in disparity, against metric depth;
- normal: mean angle (degrees) to the unit truth;
- texture copy: how much of the albedo's fine detail (log albedo minus its own working-size
  version brought back bilinearly: what the working size cannot hold) shows up in the
  irradiance error (log result - log truth, grey): the least-squares slope of that error on
  that detail, over all pixels. 0 = none copied, 1 = all of it;
- recomposition: max |recompose(albedo, irradiance) - photo| over sRGB values, in float
  and after 8-bit quantisation of both maps (1/255 = 0.0039).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lumix_engine.intrinsics import recompose  # noqa: E402
from lumix_engine.intrinsics.color_space import linear_to_srgb, srgb_to_linear  # noqa: E402
from lumix_engine.intrinsics.depth import depth_to_image  # noqa: E402
from lumix_engine.intrinsics.normals import decode_normals, encode_normals  # noqa: E402
from lumix_engine.intrinsics.upsample import resize_linear, upsample_maps  # noqa: E402
from lumix_engine.method.resolution import plan_photo  # noqa: E402
from lumix_engine.tiny_trained.metrics import depth_absrel, normal_angle, si_rmse  # noqa: E402

MAPS = ("albedo", "irradiance", "depth", "normal")
ERRORS = ("albedo_si_rmse", "irradiance_si_rmse", "depth_absrel", "normal_degrees")


def load_truth(path: Path) -> dict[str, torch.Tensor]:
    """One render -> sRGB images in [0, 1] (albedo, irradiance, color) + metric depth and unit normals."""
    raw = load_file(str(path))
    return {"albedo": linear_to_srgb(raw["albedo"]), "irradiance": linear_to_srgb(raw["shading"]),
            "color": linear_to_srgb(raw["color"]), "metric_depth": raw["depth"].clamp_min(1e-3),
            "unit_normal": raw["normal"], "normal": encode_normals(raw["normal"]),
            "albedo_linear": raw["albedo"], "irradiance_linear": raw["shading"]}


def down(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    return resize_linear(image.permute(0, 3, 1, 2), height, width).permute(0, 2, 3, 1)


def to_working(gt: dict[str, torch.Tensor], width: int, height: int) -> dict[str, torch.Tensor]:
    """What a perfect model would output at the working size."""
    return {"albedo": linear_to_srgb(down(gt["albedo_linear"], width, height)),
            "irradiance": linear_to_srgb(down(gt["irradiance_linear"], width, height)),
            "depth": depth_to_image(down(gt["metric_depth"], width, height)[..., 0], normalization="minmax"),
            "normal": encode_normals(F.normalize(down(decode_normals(gt["normal"]), width, height), dim=-1))}


def _grey_log(linear: torch.Tensor) -> torch.Tensor:
    return torch.log(linear.clamp_min(1e-4)).mean(-1)


def texture_copy(irradiance: torch.Tensor, gt: dict[str, torch.Tensor], width: int, height: int) -> float:
    """Slope of the irradiance error (log, grey) on the albedo detail finer than the working size."""
    albedo = gt["albedo_linear"]
    full_h, full_w = albedo.shape[1:3]
    coarse = down(down(albedo, width, height), full_w, full_h)
    detail = _grey_log(albedo) - _grey_log(coarse)
    error = _grey_log(srgb_to_linear(irradiance)) - _grey_log(gt["irradiance_linear"])
    error = error - error.mean()
    return float((error * detail).sum() / (detail * detail).sum())


def scores(result: dict[str, torch.Tensor], gt: dict[str, torch.Tensor], width: int, height: int) -> dict[str, float]:
    row = {"albedo_si_rmse": float(si_rmse(result["albedo"], gt["albedo"])),
           "irradiance_si_rmse": float(si_rmse(result["irradiance"], gt["irradiance"])),
           "depth_absrel": float(depth_absrel(result["depth"], gt["metric_depth"])),
           "normal_degrees": float(normal_angle(result["normal"], gt["unit_normal"])),
           "texture_copy": texture_copy(result["irradiance"], gt, width, height)}
    row["recompose_max_float"] = float((recompose(result["albedo"], result["irradiance"]) - gt["color"]).abs().max())
    quantised = [torch.round(result[k] * 255) / 255 for k in ("albedo", "irradiance")]
    row["recompose_max_8bit"] = float((recompose(*quantised) - gt["color"]).abs().max())
    return row


def score_render(path: Path) -> list[dict]:
    """Both methods on one render; cached next to it (scores/<render>.json) until it changes."""
    cache = path.parent / "scores" / f"{path.stem}.json"
    if cache.is_file() and cache.stat().st_mtime > path.stat().st_mtime:
        return json.loads(cache.read_text())
    gt = load_truth(path)
    height, width = gt["color"].shape[1:3]
    work_w, work_h = plan_photo(width, height).working
    working = to_working(gt, work_w, work_h)
    rows = []
    for method in ("bilinear", "guided"):
        result = upsample_maps(working, gt["color"], method)
        rows.append({"scene": path.stem, "working": f"{work_w}x{work_h}", "method": method,
                     **scores(result, gt, work_w, work_h)})
        print(json.dumps(rows[-1]), flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(rows))
    return rows


def run(folder: Path, names: list[str] | None = None) -> dict:
    rows = []
    for path in sorted(folder.glob("*.safetensors")):
        if names is None or path.stem in names:
            rows += score_render(path)
    return {"rows": rows, "summary": summarise(rows)}


def summarise(rows: list[dict]) -> dict:
    """Per scene: guided error / bilinear error for each map; and the worst over scenes."""
    by_scene: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_scene.setdefault(row["scene"], {})[row["method"]] = row
    ratios = {scene: {error: pair["guided"][error] / pair["bilinear"][error] for error in ERRORS}
              for scene, pair in by_scene.items() if {"guided", "bilinear"} <= set(pair)}
    worst = {error: max(r[error] for r in ratios.values()) for error in ERRORS} if ratios else {}
    return {"guided_over_bilinear": ratios, "worst_ratio": worst}


def crop_figure(path: Path, out: Path, top: int, left: int, size: int = 160, zoom: int = 2) -> None:
    """Truth / bilinear / guided crops (albedo, irradiance, depth, normal) of one render."""
    from PIL import Image, ImageDraw
    gt = load_truth(path)
    height, width = gt["color"].shape[1:3]
    work_w, work_h = plan_photo(width, height).working
    working = to_working(gt, work_w, work_h)
    truth = {**gt, "depth": depth_to_image(gt["metric_depth"][..., 0], normalization="minmax")}
    columns = {"truth": truth, "bilinear": upsample_maps(working, gt["color"], "bilinear"),
               "guided": upsample_maps(working, gt["color"], "guided")}
    label = 18
    tile = size * zoom
    sheet = Image.new("RGB", (len(columns) * tile, len(MAPS) * (tile + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for column, (title, maps) in enumerate(columns.items()):
        for row, name in enumerate(MAPS):
            crop = maps[name][0, top:top + size, left:left + size].clamp(0, 1)
            image = Image.fromarray((crop.numpy() * 255 + 0.5).astype("uint8")).resize((tile, tile), Image.NEAREST)
            y = row * (tile + label)
            sheet.paste(image, (column * tile, y + label))
            draw.text((column * tile + 4, y + 3), f"{name}: {title}", fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renders", type=Path, default=Path("runs/mitsuba"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/upsampling_mitsuba.json"))
    parser.add_argument("--figure", type=Path, default=Path("docs/images/upsampling_mitsuba_crop.png"))
    parser.add_argument("--figure-scene", default="poster_2048x1152")
    parser.add_argument("--crop", type=int, nargs=2, default=(330, 1200), metavar=("TOP", "LEFT"))
    parser.add_argument("--only", nargs="*", help="render names (default: every render in --renders)")
    args = parser.parse_args()
    result = run(args.renders, args.only)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    figure_source = args.renders / f"{args.figure_scene}.safetensors"
    if figure_source.is_file():
        crop_figure(figure_source, args.figure, *args.crop)
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
