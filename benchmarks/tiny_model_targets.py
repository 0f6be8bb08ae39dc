"""The shipped tiny LumiX against its two targets, on held-out scenes (what the targets are
and how they are scored: evaluation/tiny_targets.py).

    python -m benchmarks.tiny_model_targets [--model lumix_engine/assets/tiny_lumix] [--scenes 200]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from evaluation.tiny_targets import targets
from lumix_engine.tiny_trained.model import ASSETS, TinyLumiX


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ASSETS))
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/tiny_model_targets.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = targets(TinyLumiX.load(args.model), args.scenes, args.steps)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("references",)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
