"""Ablation of the tiny LumiX on held-out scenes: what QBA and cross-map Tensor LoRA buy.

    python -m benchmarks.ablation_tiny --model a=lumix_engine/assets/tiny_lumix --model b=runs/model_b ... \
        --scenes 200 --steps 10 --out benchmarks/results/ablation_tiny.json

Variants (each adapters-only training on the same frozen base, same steps, batch and seed):
(a) QBA + Tensor LoRA; (b) Tensor LoRA, no QBA; (c) per-map LoRA (diagonal G1) + QBA;
(d) per-map LoRA, no QBA, each map its own noise and timestep: five independent generations.
Held-out scenes use seeds from tiny.data.HELDOUT_SEED_START (never trained on).
- text -> maps: coherence scores of the generated maps, scene by scene (edge radius 2 px,
  the 512-px radius scaled to 64 px);
- decomposition (color given, caption as prompt): errors against the exact ground truth.
Reference rows: the exact ground truth, and the ground truth passed through the latent
mapping (the best any model that speaks these latents can do).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lumix_engine.intrinsics import render_scene  # noqa: E402
from lumix_engine.modalities import MAP_NAMES  # noqa: E402
from lumix_engine.tiny_trained.data import HELDOUT_SEED_START  # noqa: E402
from lumix_engine.tiny_trained.metrics import coherence_per_scene, decomposition_errors  # noqa: E402
from lumix_engine.tiny_trained.model import TinyLumiX  # noqa: E402
from lumix_engine.tiny_trained.text import layout_caption  # noqa: E402


def heldout(count: int, size: int = 64):
    scenes = [render_scene(HELDOUT_SEED_START + k, size, size) for k in range(count)]
    images = {name: torch.cat([s.images()[name] for s in scenes]).float() for name in MAP_NAMES}
    truth = {"albedo": images["albedo"], "irradiance": images["irradiance"],
             "depth": torch.cat([s.depth for s in scenes]).float(), "normal": torch.cat([s.normal for s in scenes]).float()}
    return images, truth, [layout_caption(s.scene) for s in scenes]


def mean(values: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: round(float(v.mean()), 4) for name, v in values.items()}


def chunked(function, count: int, chunk: int):
    parts = [function(slice(start, min(start + chunk, count))) for start in range(0, count, chunk)]
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


def evaluate(model: TinyLumiX, images, truth, captions, steps: int, seed: int, chunk: int = 50) -> dict:
    count = len(captions)
    started = time.perf_counter()
    generated = chunked(lambda s: model.generate(captions[s], seed=seed + s.start, steps=steps), count, chunk)
    generate_seconds = time.perf_counter() - started
    started = time.perf_counter()
    decomposed = chunked(lambda s: model.decompose(images["color"][s], captions[s], seed=seed + s.start, steps=steps),
                         count, chunk)
    decompose_seconds = time.perf_counter() - started
    return {"generation": mean(coherence_per_scene(generated)),
            "decomposition": mean(decomposition_errors(decomposed, **truth)),
            "decomposition_coherence": mean(coherence_per_scene(decomposed)),
            "seconds": {"generate": round(generate_seconds, 1), "decompose": round(decompose_seconds, 1)}}


def references(model: TinyLumiX, images, truth) -> dict:
    codec = model.base.codec
    through = {name: codec.decode(codec.encode(image)) for name, image in images.items()}
    color = images["color"]
    rows = torch.linspace(0, 1, color.shape[1])[None, :, None, None].expand_as(color)   # lower rows nearer
    trivial = {"albedo": color, "irradiance": torch.full_like(color, 0.5), "depth": rows.clone(),
               "normal": torch.tensor([0.5, 0.5, 1.0]).expand_as(color).clone()}
    return {"trivial decomposition (albedo = color, flat irradiance, row-gradient depth, normals facing camera)":
            {"decomposition": mean(decomposition_errors(trivial, **truth))},
            "ground truth (exact, 64 px)": {"generation": mean(coherence_per_scene(images)),
                                           "decomposition": mean(decomposition_errors(images, **truth))},
            "ground truth through the latent mapping": {"generation": mean(coherence_per_scene(through)),
                                                        "decomposition": mean(decomposition_errors(through, **truth))}}


COLUMNS = (("generation", "structural_alignment", "align. ↑"), ("generation", "recomposition_rmse", "recomp. RMSE ↓"),
           ("generation", "normal_depth_degrees", "normal-depth ° ↓"),
           ("decomposition", "albedo_si_rmse", "albedo si-RMSE ↓"),
           ("decomposition", "irradiance_si_rmse", "irradiance si-RMSE ↓"),
           ("decomposition", "depth_absrel", "depth AbsRel ↓"), ("decomposition", "normal_degrees", "normal ° ↓"))
LABELS = {"a": "(a) QBA + Tensor LoRA", "b": "(b) Tensor LoRA, no QBA", "c": "(c) per-map LoRA + QBA",
          "d": "(d) independent per-map LoRAs"}


def markdown(results: dict) -> str:
    """The table of benchmarks/RESULTS.md: text -> maps coherence, then decomposition errors."""
    head = "| | " + " | ".join(label for _, _, label in COLUMNS) + " |\n|---|" + "---:|" * len(COLUMNS) + "\n"
    rows = []
    entries = [(LABELS.get(k, k), v) for k, v in results.items() if isinstance(v, dict) and "decomposition" in v
               and k != "references"] + list(results.get("references", {}).items())
    for label, entry in entries:
        cells = [f"{entry[part][key]:.4g}" if part in entry else "" for part, key, _ in COLUMNS]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", required=True, help="name=folder (repeat)")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/ablation_tiny.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, truth, captions = heldout(args.scenes)
    results = {"scenes": args.scenes, "steps": args.steps, "heldout_seeds": [HELDOUT_SEED_START,
                                                                              HELDOUT_SEED_START + args.scenes - 1]}
    for spec in args.model:
        name, folder = spec.split("=", 1)
        model = TinyLumiX.load(folder)
        if "references" not in results:
            results["references"] = references(model, images, truth)
        results[name] = evaluate(model, images, truth, captions, args.steps, args.seed)
        results[name]["variant"] = vars(model.variant)
        print(name, json.dumps(results[name]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    Path(args.out).with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    print(json.dumps(results["references"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
