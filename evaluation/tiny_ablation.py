"""The tiny LumiX's held-out evaluation: what QBA and cross-map Tensor LoRA buy (the library
behind `python -m benchmarks.ablation_tiny` and `python -m tools.train_ablation`).

Variants (each adapters-only training on the same frozen base, same steps, batch and seed):
(a) QBA + Tensor LoRA; (b) Tensor LoRA, no QBA; (c) per-map LoRA (diagonal G1) + QBA;
(d) per-map LoRA, no QBA, each map its own noise and timestep: five independent generations;
(e), (f): (a), (b) trained on text -> five maps only, so their decomposition is zero-shot.
Held-out scenes use seeds from tiny.data.HELDOUT_SEED_START (never trained on).
- text -> maps: coherence scores of the generated maps, scene by scene (edge radius 2 px,
  the 512-px radius scaled to 64 px);
- decomposition (color given, caption as prompt): errors against the exact ground truth.
Reference rows: a trivial decomposition, the exact ground truth, and the ground truth passed
through the latent mapping (the best any model that speaks these latents can do). Several
seeds of a variant are summarised as mean ± sample standard deviation and compared by
evaluation.ablation_stats.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from lumix_engine.intrinsics import render_scene
from lumix_engine.modalities import MAP_NAMES
from lumix_engine.tiny_trained.data import HELDOUT_SEED_START
from lumix_engine.tiny_trained.latent import BlockPCACodec
from lumix_engine.tiny_trained.metrics import coherence_per_scene, decomposition_errors
from lumix_engine.tiny_trained.model import TinyLumiX, load_base
from lumix_engine.tiny_trained.text import layout_caption

from . import ablation_stats


def heldout(count: int, size: int = 64, offset: int = 0):
    """Held-out renders of seeds HELDOUT_SEED_START + offset + 0..count-1: images
    {map: [N, H, W, 3]}, exact truth for the errors, captions."""
    scenes = [render_scene(HELDOUT_SEED_START + offset + k, size, size) for k in range(count)]
    images = {name: torch.cat([s.images()[name] for s in scenes]).float() for name in MAP_NAMES}
    truth = {"albedo": images["albedo"], "irradiance": images["irradiance"],
             "depth": torch.cat([s.depth for s in scenes]).float(), "normal": torch.cat([s.normal for s in scenes]).float()}
    return images, truth, [layout_caption(s.scene) for s in scenes]


TRIVIAL = "trivial decomposition (albedo = color, flat irradiance, row-gradient depth, normals facing camera)"
SAMPLING_SEED = 0   # every model samples from the same noise seeds: seed + index of the chunk's first scene


def mean(values: dict[str, torch.Tensor]) -> dict[str, float]:
    # Six decimals: the seed spread of some metrics is only a few 1e-4.
    return {name: round(float(v.mean()), 6) for name, v in values.items()}


def chunked(function, count: int, chunk: int):
    parts = [function(slice(start, min(start + chunk, count))) for start in range(0, count, chunk)]
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


def sample_heldout(model: TinyLumiX, images, captions, steps: int, seed: int,
                   chunk: int = 50) -> tuple[dict, dict, dict]:
    """Text -> maps from every caption and the decomposition of every color image, in chunks
    (chunk k sampled with seed + its first index): (generated, decomposed, seconds)."""
    count = len(captions)
    started = time.perf_counter()
    generated = chunked(lambda s: model.generate(captions[s], seed=seed + s.start, steps=steps), count, chunk)
    generate_seconds = time.perf_counter() - started
    started = time.perf_counter()
    decomposed = chunked(lambda s: model.decompose(images["color"][s], captions[s], seed=seed + s.start, steps=steps),
                         count, chunk)
    decompose_seconds = time.perf_counter() - started
    return generated, decomposed, {"generate": round(generate_seconds, 1), "decompose": round(decompose_seconds, 1)}


def scores(generated: dict, decomposed: dict, truth, seconds: dict) -> dict:
    return {"generation": mean(coherence_per_scene(generated)),
            "decomposition": mean(decomposition_errors(decomposed, **truth)),
            "decomposition_coherence": mean(coherence_per_scene(decomposed)),
            "seconds": seconds}


def evaluate(model: TinyLumiX, images, truth, captions, steps: int, seed: int, chunk: int = 50) -> dict:
    generated, decomposed, seconds = sample_heldout(model, images, captions, steps, seed, chunk)
    return scores(generated, decomposed, truth, seconds)


def trivial_decomposition(color: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a decomposer scores without looking: albedo = the image, flat irradiance, depth
    growing down the rows (lower rows nearer), every normal facing the camera."""
    rows = torch.linspace(0, 1, color.shape[1])[None, :, None, None].expand_as(color)
    return {"albedo": color, "irradiance": torch.full_like(color, 0.5), "depth": rows.clone(),
            "normal": torch.tensor([0.5, 0.5, 1.0]).expand_as(color).clone()}


def references(codec: BlockPCACodec, images, truth) -> dict:
    """The reference rows: trivial decomposition, exact ground truth, ground truth through `codec`."""
    through = {name: codec.decode(codec.encode(image)) for name, image in images.items()}
    color = images["color"]
    return {TRIVIAL: {"decomposition": mean(decomposition_errors(trivial_decomposition(color), **truth))},
            f"ground truth (exact, {color.shape[1]} px)": {"generation": mean(coherence_per_scene(images)),
                                           "decomposition": mean(decomposition_errors(images, **truth))},
            "ground truth through the latent mapping": {"generation": mean(coherence_per_scene(through)),
                                                        "decomposition": mean(decomposition_errors(through, **truth))}}


def evaluate_folder(folder: Path | str, scenes: int, steps: int, seed: int = SAMPLING_SEED) -> dict:
    """One model folder on the first `scenes` held-out scenes, at the model's own size."""
    model = TinyLumiX.load(folder)
    images, truth, captions = heldout(scenes, model.base.config.size)
    result = evaluate(model, images, truth, captions, steps, seed)
    result["variant"] = vars(model.variant)
    return result


def references_for(base_folder: Path | str, scenes: int) -> dict:
    """The reference rows for the models trained on the base in `base_folder` (its codec)."""
    base = load_base(Path(base_folder))
    images, truth, _ = heldout(scenes, base.config.size)
    return references(base.codec, images, truth)


def report(runs: dict, reference_rows: dict, scenes: int, steps: int, **extra) -> dict:
    """The results document: every model's evaluation (`runs[variant][seed]`), the summary
    over seeds, the comparisons of evaluation.ablation_stats and the reference rows."""
    runs = {name: {str(seed): result for seed, result in sorted(seeds.items(), key=lambda kv: int(kv[0]))}
            for name, seeds in runs.items()}
    summary = ablation_stats.aggregate(runs)
    trivial = reference_rows.get(TRIVIAL, {}).get("decomposition")
    return {"scenes": scenes, "steps": steps, "sampling_seed": SAMPLING_SEED,
            "heldout_seeds": [HELDOUT_SEED_START, HELDOUT_SEED_START + scenes - 1], **extra,
            "rule": ablation_stats.RULE, "summary": summary, "comparisons": ablation_stats.compare(summary),
            "below_trivial_on_every_seed": ablation_stats.beats_trivial(runs, trivial) if trivial else {},
            "references": reference_rows, "runs": runs}


def markdown(results: dict) -> str:
    """The table of benchmarks/RESULTS.md with the comparisons below it."""
    return ablation_stats.markdown(results["summary"], results["references"], results["comparisons"],
                                   results["below_trivial_on_every_seed"], "the trivial decomposition")


def write(results: dict, out: Path | str) -> None:
    """`out` (JSON) and the same name with .md (the markdown tables)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
