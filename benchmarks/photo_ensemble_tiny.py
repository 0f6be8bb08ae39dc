"""Does an ensemble of N runs lower the decomposition error? Measured on the shipped tiny
trained LumiX over held-out scenes (never trained on), against the exact ground truth.

    python -m benchmarks.photo_ensemble_tiny --scenes 50 --runs 5 --out benchmarks/results/photo_ensemble_tiny.json

Each scene is decomposed `runs` times (one noise per run: the runs are batched as scenes,
as the pipeline and the node do) with its layout caption, 10 Euler steps. Reported per
map (tiny_trained.metrics: albedo / irradiance scale-invariant RMSE in linear light, depth
AbsRel after scale and shift, normal mean angle): the mean error of the single runs, the
error of the ensemble (intrinsics.ensemble.combine_ensemble), and on how many scenes the
ensemble beats the average single run; plus a check that the uncertainty means something:
the Pearson correlation, per scene then averaged, between the normals' per-pixel angular
spread and their per-pixel angular error.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lumix_engine.intrinsics import render_scene  # noqa: E402
from lumix_engine.intrinsics.ensemble import combine_ensemble  # noqa: E402
from lumix_engine.intrinsics.normals import decode_normals  # noqa: E402
from lumix_engine.tiny_trained.data import HELDOUT_SEED_START  # noqa: E402
from lumix_engine.tiny_trained.metrics import decomposition_errors  # noqa: E402
from lumix_engine.tiny_trained.model import TinyLumiX  # noqa: E402
from lumix_engine.tiny_trained.text import layout_caption  # noqa: E402

CHUNK = 10


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double() - a.double().mean(), b.flatten().double() - b.double().mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/photo_ensemble_tiny.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = TinyLumiX.load()
    size = model.base.config.size
    single, ensemble, correlation = [], [], {"normal": []}
    started = time.perf_counter()
    for first in range(0, args.scenes, CHUNK):
        seeds = range(HELDOUT_SEED_START + first, HELDOUT_SEED_START + min(args.scenes, first + CHUNK))
        scenes = [render_scene(seed, size, size) for seed in seeds]
        color = torch.cat([s.images()["color"] for s in scenes]).float()
        captions = [layout_caption(s.scene) for s in scenes]
        truth = dict(albedo=torch.cat([s.albedo for s in scenes]).float(),
                     irradiance=torch.cat([s.irradiance for s in scenes]).float(),
                     depth=torch.cat([s.depth for s in scenes]).float(),
                     normal=torch.cat([s.normal for s in scenes]).float())
        runs = model.decompose(color.repeat_interleave(args.runs, 0),
                               [c for c in captions for _ in range(args.runs)], seed=first, steps=args.steps)
        combined, spread = combine_ensemble(runs, args.runs)
        repeated = {k: v.repeat_interleave(args.runs, 0) for k, v in truth.items()}
        errors_runs = decomposition_errors(runs, **repeated)
        single.append({k: v.view(-1, args.runs).mean(1) for k, v in errors_runs.items()})
        ensemble.append(decomposition_errors(combined, **truth))
        for k in range(len(scenes)):
            predicted = decode_normals(combined["normal"][k:k + 1])[0]
            normal_error = torch.rad2deg(torch.acos((predicted * truth["normal"][k]).sum(-1).clamp(-1, 1)))
            correlation["normal"].append(pearson(spread["normal"][k, ..., 0], normal_error))
        print(f"{first + len(scenes)} scenes, {time.perf_counter() - started:.0f} s", flush=True)
    single_all = {k: torch.cat([s[k] for s in single]) for k in single[0]}
    ensemble_all = {k: torch.cat([e[k] for e in ensemble]) for k in ensemble[0]}
    rows = {}
    for name in single_all:
        one, many = single_all[name], ensemble_all[name]
        rows[name] = {"single_run_mean": float(one.mean()), "ensemble": float(many.mean()),
                      "change_percent": float(100 * (many.mean() / one.mean() - 1)),
                      "scenes_ensemble_better": int((many < one).sum()), "scenes": len(one)}
        print(name, rows[name])
    result = {"scenes": args.scenes, "runs": args.runs, "steps": args.steps, "size": size,
              "heldout_seeds": [HELDOUT_SEED_START, HELDOUT_SEED_START + args.scenes - 1], "errors": rows,
              "uncertainty_error_correlation_normal": sum(correlation["normal"]) / len(correlation["normal"]),
              "seconds": time.perf_counter() - started}
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
