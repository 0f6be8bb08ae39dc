"""`python -m lumix_engine.train tiny | adapters | flux-dev` (see each command's -h)."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def _recipe_options(parser: argparse.ArgumentParser) -> None:
    from .tiny import TinyRecipe
    for f in fields(TinyRecipe):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)


def _recipe(args):
    from .tiny import TinyRecipe
    return TinyRecipe(**{f.name: getattr(args, f.name) for f in fields(TinyRecipe)})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lumix_engine.train")
    commands = parser.add_subparsers(dest="command", required=True)
    tiny = commands.add_parser("tiny", help="rebuild the shipped tiny model from scratch (data, base, adapters)")
    tiny.add_argument("--out", default="lumix_engine/assets/tiny_lumix", help="model folder to write")
    tiny.add_argument("--work", default="runs/tiny", help="checkpoints and logs (resumed if present)")
    tiny.add_argument("--variant", default="a", choices="abcdef")
    tiny.add_argument("--threads", type=int, default=1)
    _recipe_options(tiny)
    adapters = commands.add_parser("adapters", help="stage 2 only: adapters of one variant on a trained tiny base")
    adapters.add_argument("--base", required=True, help="a tiny model folder (its base is used, frozen)")
    adapters.add_argument("--out", required=True)
    adapters.add_argument("--work", required=True)
    adapters.add_argument("--variant", default="a", choices="abcdef")
    adapters.add_argument("--threads", type=int, default=1)
    _recipe_options(adapters)
    from .flux_dev import add_parser as add_flux_dev
    add_flux_dev(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if args.command == "tiny":
        from .tiny import train_adapters, train_base, variant
        base, data = train_base(_recipe(args), Path(args.work))
        train_adapters(base, data, _recipe(args), variant(args.variant), Path(args.work), save_to=Path(args.out))
    elif args.command == "adapters":
        from ..tiny_trained.data import render_scenes
        from ..tiny_trained.model import load_base
        from .tiny import prepare_data, train_adapters, variant
        recipe = _recipe(args)
        base = load_base(Path(args.base))
        data = prepare_data(base, render_scenes(range(recipe.scenes)), fit_codec=False)
        train_adapters(base, data, recipe, variant(args.variant), Path(args.work), save_to=Path(args.out))
    else:
        from .flux_dev import run as run_flux_dev
        run_flux_dev(args)
    log.info("done in %.0f s", time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
