"""Train the adapters of the ablation variants (a)-(d) on the frozen base of a trained tiny
model, each with the same stage-2 recipe (TinyRecipe: steps, scenes per step, learning rate,
seed), then run benchmarks.ablation_tiny on all four. Variant (a) here is exactly the
shipped model's stage 2 (`python -m lumix_engine.train tiny`) on the same base.

    python -m tools.train_ablation --base lumix_engine/assets/tiny_lumix --runs runs/ablation
"""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

import torch

from lumix_engine.tiny_trained.data import render_scenes  # noqa: E402
from lumix_engine.tiny_trained.model import load_base  # noqa: E402
from lumix_engine.train.tiny import TinyRecipe, prepare_data, train_adapters, variant  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="lumix_engine/assets/tiny_lumix", help="trained model (a): its base is used")
    parser.add_argument("--runs", default="runs/ablation")
    parser.add_argument("--variants", default="abcd")
    parser.add_argument("--scenes", type=int, default=200, help="held-out scenes for the evaluation")
    parser.add_argument("--out", default="benchmarks/results/ablation_tiny.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    recipe = TinyRecipe()
    runs = Path(args.runs)
    base = load_base(Path(args.base))
    data = prepare_data(base, render_scenes(range(recipe.scenes)), fit_codec=False)
    for name in args.variants:
        started = time.perf_counter()
        train_adapters(base, data, recipe, variant(name), runs / "work", save_to=runs / f"model_{name}")
        logging.info("variant %s trained in %.0f s", name, time.perf_counter() - started)
    models = [f"--model={n}={runs / f'model_{n}'}" for n in args.variants]
    return subprocess.call([sys.executable, "-m", "benchmarks.ablation_tiny", *models,
                            f"--scenes={args.scenes}", f"--out={args.out}"])


if __name__ == "__main__":
    raise SystemExit(main())
