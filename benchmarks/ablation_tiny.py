"""Ablation of the tiny LumiX on held-out scenes: what QBA and cross-map Tensor LoRA buy.

    python -m benchmarks.ablation_tiny --model a=lumix_engine/assets/tiny_lumix --model b:1=runs/model_b_s1 ... \
        --scenes 200 --steps 10 --out benchmarks/results/ablation_tiny.json

(`python -m tools.train_ablation` trains every variant on several stage-2 seeds and runs this
evaluation in parallel workers, then the same aggregation.) A model is named `variant` or
`variant:seed` (stage-2 training seed, 0 when left out); several seeds of a variant are
summarised as mean ± sample standard deviation and compared by evaluation.ablation_stats.
The variants, the held-out scenes, the scores and the reference rows are described in
evaluation/tiny_ablation.py, which this script runs.
"""
from __future__ import annotations

import argparse
import json

import torch

from evaluation import ablation_stats
from evaluation.tiny_ablation import evaluate_folder, markdown, references_for, report, write


def parse_model(spec: str) -> tuple[str, int, str]:
    """'a=folder' or 'a:2=folder' -> (variant, seed, folder)."""
    name, sep, folder = spec.partition("=")
    variant, _, seed = name.partition(":")
    if not sep or not variant or not folder or (seed and not seed.isdigit()):
        raise SystemExit(f"--model {spec!r}: expected variant=folder or variant:seed=folder, e.g. a:1=runs/model_a_s1")
    return variant, int(seed or 0), folder


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", required=True,
                        help="variant=folder or variant:seed=folder (repeat); seeds of one variant are aggregated")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/ablation_tiny.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = [parse_model(spec) for spec in args.model]
    runs: dict[str, dict[int, dict]] = {}
    for variant, seed, folder in models:
        result = evaluate_folder(folder, args.scenes, args.steps)
        if variant in ablation_stats.LABELS and result["variant"]["name"] != variant:
            raise SystemExit(f"--model names {folder} variant {variant!r}, but its config.json says variant "
                             f"{result['variant']['name']!r}; name each model by its own variant")
        runs.setdefault(variant, {})[seed] = result
        print(f"{variant}:{seed}", json.dumps(runs[variant][seed]), flush=True)
    results = report(runs, references_for(models[0][2], args.scenes), args.scenes, args.steps)
    write(results, args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
