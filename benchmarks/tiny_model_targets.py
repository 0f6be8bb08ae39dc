"""The shipped tiny LumiX against its two targets, on held-out scenes (what the targets are
and how they are scored: evaluation/tiny_targets.py).

    python -m benchmarks.tiny_model_targets [--model lumix_engine/assets/tiny_lumix] [--scenes 200] [--scene-offset 0]

Scenes are the held-out seeds HELDOUT_SEED_START + offset + 0..scenes-1. Recipe v3 was
chosen on offset 0 (its trials, benchmarks/results/tiny_recipe_v3_trials.json), so a
certification of the chosen recipe uses an offset whose range was not looked at while
choosing (the model card says which).

"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from evaluation.tiny_targets import targets
from lumix_engine.tiny_trained.data import HELDOUT_SEED_START
from lumix_engine.tiny_trained.model import ASSETS, TinyLumiX


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ASSETS))
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--scene-offset", type=int, default=0,
                        help="first held-out scene: HELDOUT_SEED_START + this (0 = the scenes recipe v3 was chosen on)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/tiny_model_targets.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.scene_offset < 0:
        raise SystemExit(f"--scene-offset {args.scene_offset}: must be 0 or more (held-out seeds start at "
                         f"{HELDOUT_SEED_START}; lower seeds are training scenes)")
    result = targets(TinyLumiX.load(args.model), args.scenes, args.steps, offset=args.scene_offset)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("references",)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
