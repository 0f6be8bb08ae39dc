"""Train the ablation variants (a)-(f) on the frozen base of a trained tiny model, each on
several stage-2 seeds with the same recipe, evaluate every model on held-out scenes and
summarise the seeds (evaluation.tiny_ablation, evaluation.ablation_stats).

    python -m lumix_engine.train tiny --work runs/tiny     # stage 1 writes the base to runs/tiny
    python -m tools.train_ablation --base runs/tiny --runs runs/ablation --seeds 3 --jobs 2

The base: `--base` is a folder with a tiny base.safetensors and config.json; the default,
runs/tiny, is the work folder of `python -m lumix_engine.train tiny`, where stage 1 saves the
base before any fine-tuning: the stage-1 base the recorded ablation ran on (benchmarks/RESULTS.md
gives its exact command and overrides). The shipped lumix_engine/assets/tiny_lumix is NOT that
base: recipe v3 fine-tunes its base in stage 2 and adds a learned decoder.

Recipe: TinyRecipe's defaults (recipe v3's stage 2, which fine-tunes the base unless
`--set adapter_base_lr=0.0`), with the adapter rank and width read from the base's
config.json; `--set adapter_steps=600` overrides a field. Seed s trains with
`replace(recipe, seed=s)`; seed 0 of variant (a) is the same `train_adapters` call as the
stage 2 of `python -m lumix_engine.train tiny` (tests/test_train_ablation.py).

Work is split into subprocesses (`--jobs` at a time, one torch thread each), one model per
subprocess, for training and for evaluation. Everything resumes: a model folder
`runs/model_<variant>_s<seed>` counts as done once its lumix.safetensors and config.json are
there (a worker writes into `<folder>.partial` and renames it when complete), a model's
evaluation is kept in its folder (`eval_<scenes>scenes_<steps>steps.json`), and a killed
training resumes from its checkpoint under `runs/work/`. The training data (rendered and
encoded once by the parent) is cached in `runs/data_<scenes>scenes_<size>px.safetensors`.
Worker logs: `runs/logs/`.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from evaluation import tiny_ablation
from lumix_engine.apps.batch import file_sha256
from lumix_engine.image_io import atomic_path
from lumix_engine.tiny_trained.data import render_scenes
from lumix_engine.tiny_trained.model import VARIANTS, load_base
from lumix_engine.train.tiny import TinyData, TinyRecipe, prepare_data, train_adapters, variant

ROOT = Path(__file__).resolve().parents[1]
DONE_FILES = ("lumix.safetensors", "config.json")


def base_recipe(base: Path, overrides: list[str]) -> TinyRecipe:
    """TinyRecipe's defaults, rank and width from the base's config, then KEY=VALUE overrides."""
    config = json.loads((base / "config.json").read_text())
    recipe = dataclasses.replace(TinyRecipe(), rank=int(config["rank"]), hidden=int(config["flux"]["hidden_size"]))
    fields = {f.name: f for f in dataclasses.fields(TinyRecipe) if f.name != "seed"}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE with KEY one of {sorted(fields)} "
                             "(the stage-2 seeds come from --seeds)")
        recipe = dataclasses.replace(recipe, **{key: type(getattr(recipe, key))(value)})
    return recipe


def recipe_tag(recipe: TinyRecipe) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(recipe), sort_keys=True).encode()).hexdigest()[:8]


def model_dir(runs: Path, name: str, seed: int) -> Path:
    return runs / f"model_{name}_s{seed}"


def data_path(runs: Path, recipe: TinyRecipe, size: int) -> Path:
    return runs / f"data_{recipe.scenes}scenes_{size}px.safetensors"


def eval_path(folder: Path, scenes: int, steps: int) -> Path:
    return folder / f"eval_{scenes}scenes_{steps}steps.json"


def references_path(runs: Path, scenes: int) -> Path:
    return runs / f"references_{scenes}scenes.json"


def is_trained(folder: Path, recipe: TinyRecipe) -> bool:
    """Done = both weight files present; a folder trained with another recipe is an error, not
    a result to mix in."""
    if not all((folder / name).exists() for name in DONE_FILES):
        return False
    record = folder / "recipe.json"
    if not record.exists():   # e.g. a model trained elsewhere and moved here: its recipe cannot be checked
        print(f"{folder}: no recipe.json; assumed trained with {dataclasses.asdict(recipe)}", flush=True)
        return True
    recorded = json.loads(record.read_text())["recipe"]
    if recorded != dataclasses.asdict(recipe):
        raise SystemExit(f"{folder} was trained with recipe {recorded}, not {dataclasses.asdict(recipe)}; "
                         "use another --runs folder or delete that model folder")
    return True


def write_atomically(path: Path, text: str) -> None:
    with atomic_path(path) as partial:
        partial.write_text(text)


def check_base(runs: Path, base: Path) -> str:
    """The runs folder belongs to one base: record its hash, refuse another."""
    digest = file_sha256(base / "base.safetensors")
    record = runs / "base.json"
    if record.exists():
        recorded = json.loads(record.read_text())
        if recorded["sha256"] != digest:
            raise SystemExit(f"{runs} holds models trained on another base ({recorded['base']}, sha256 "
                             f"{recorded['sha256'][:12]}); use another --runs folder for {base}")
    else:
        runs.mkdir(parents=True, exist_ok=True)
        write_atomically(record, json.dumps({"base": str(base), "sha256": digest}, indent=1) + "\n")
    return digest


def cache_data(runs: Path, base_folder: Path, recipe: TinyRecipe, digest: str) -> Path:
    """Render and encode the training scenes once (the workers read the file)."""
    path = data_path(runs, recipe, json.loads((base_folder / "config.json").read_text())["size"])
    if path.exists():
        return path
    base = load_base(base_folder)
    started = time.perf_counter()
    data = prepare_data(base, render_scenes(range(recipe.scenes), base.config.size), fit_codec=False)
    with atomic_path(path) as partial:
        save_file({"latents": data.latents.contiguous(), "ids": data.ids.contiguous()}, str(partial),
                  metadata={"base_sha256": digest})
    print(f"rendered and encoded {recipe.scenes} training scenes in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def load_data(path: Path, digest: str) -> TinyData:
    with safe_open(str(path), "pt") as handle:
        if (handle.metadata() or {}).get("base_sha256") != digest:
            raise SystemExit(f"{path} was encoded with another base; delete it and rerun")
    tensors = load_file(str(path))
    return TinyData(tensors["latents"], tensors["ids"])


def train_worker(base_folder: Path, runs: Path, name: str, seed: int, recipe: TinyRecipe) -> None:
    """Train one variant on one seed into runs/model_<name>_s<seed> (via a .partial folder)."""
    base = load_base(base_folder)
    digest = json.loads((runs / "base.json").read_text())["sha256"]
    data = load_data(data_path(runs, recipe, base.config.size), digest)
    recipe = dataclasses.replace(recipe, seed=seed)
    final = model_dir(runs, name, seed)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    started = time.perf_counter()
    work = runs / "work" / f"{name}_s{seed}_{recipe_tag(recipe)}"   # a checkpoint only resumes its own recipe
    train_adapters(base, data, recipe, variant(name), work, save_to=partial)
    record = {"recipe": dataclasses.asdict(recipe), "variant": name, "seed": seed,
              "seconds": round(time.perf_counter() - started, 1), "base": str(base_folder)}
    (partial / "recipe.json").write_text(json.dumps(record, indent=1) + "\n")
    if final.exists():   # a leftover without its weights: not a finished model
        shutil.rmtree(final)
    os.replace(partial, final)


def evaluate_worker(folder: Path, scenes: int, steps: int) -> None:
    result = tiny_ablation.evaluate_folder(folder, scenes, steps)
    write_atomically(eval_path(folder, scenes, steps), json.dumps(result, indent=1) + "\n")
    # The worker's log is what a reader of the results can check the JSON against.
    logging.info("evaluated %s on %d held-out scenes, %d steps: %s", folder.name, scenes, steps, json.dumps(result))


def references_worker(base_folder: Path, runs: Path, scenes: int) -> None:
    rows = tiny_ablation.references_for(base_folder, scenes)
    write_atomically(references_path(runs, scenes), json.dumps(rows, indent=1) + "\n")
    logging.info("reference rows on %d held-out scenes: %s", scenes, json.dumps(rows))


Task = tuple[str, list[str], list]   # name, worker arguments, tasks to queue once it succeeds


def run_pool(tasks: list[Task], jobs: int, logs: Path) -> list[str]:
    """Run every task as `python -m tools.train_ablation <arguments>`, `jobs` at a time, one
    torch thread each, output to logs/<name>.log; a task's follow-ups join the queue when it
    succeeds. Returns the names that failed."""
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    pending, running, failed = list(tasks), {}, []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                name, argv, then = pending.pop(0)
                log = open(logs / f"{name}.log", "w")
                process = subprocess.Popen([sys.executable, "-m", "tools.train_ablation", *argv], cwd=ROOT,
                                           stdout=log, stderr=subprocess.STDOUT, env=env)
                running[process] = (name, log, time.perf_counter(), then)
            time.sleep(0.1)
            for process in [p for p in running if p.poll() is not None]:
                name, log, started, then = running.pop(process)
                log.close()
                seconds = time.perf_counter() - started
                if process.returncode == 0:
                    print(f"{name}: done in {seconds:.0f} s", flush=True)
                    pending[:0] = then   # next in line, before the remaining trainings
                else:
                    failed.append(name)
                    tail = (logs / f"{name}.log").read_text().splitlines()[-15:]
                    print(f"{name}: FAILED (exit {process.returncode}) after {seconds:.0f} s; "
                          f"log {logs / (name + '.log')}:\n  " + "\n  ".join(tail), flush=True)
    finally:
        for process, (_, log, _, _) in running.items():   # interrupted: stop only our own workers
            process.terminate()
            process.wait()
            log.close()
    return failed


def orchestrate(args: argparse.Namespace) -> int:
    base, runs = Path(args.base).resolve(), Path(args.runs).resolve()
    if not (base / "base.safetensors").is_file() or not (base / "config.json").is_file():
        raise SystemExit(f"--base {args.base}: no base.safetensors and config.json there; run "
                         "`python -m lumix_engine.train tiny --work runs/tiny` (its stage 1 writes the frozen base "
                         "to runs/tiny) or pass the folder of a trained tiny base")
    recipe = base_recipe(base, args.set)
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown or args.seeds < 1 or args.jobs < 1:
        raise SystemExit(f"--variants {args.variants!r} (letters from {''.join(VARIANTS)}), --seeds {args.seeds} and "
                         f"--jobs {args.jobs} (both at least 1): fix the one that is off")
    digest = check_base(runs, base)
    models = [(name, seed) for name in args.variants for seed in range(args.seeds)]
    recipe_json = json.dumps(dataclasses.asdict(recipe))
    common = [f"--base={base}", f"--runs={runs}"]
    todo = [(n, s) for n, s in models if not is_trained(model_dir(runs, n, s), dataclasses.replace(recipe, seed=s))]
    print(f"recipe {dataclasses.asdict(recipe)}; {len(models) - len(todo)} of {len(models)} models already "
          f"trained; {args.jobs} workers", flush=True)
    if todo:
        cache_data(runs, base, recipe, digest)

    def evaluation(name: str, seed: int) -> Task:
        return (f"evaluate_{name}_s{seed}", ["--worker=evaluate", f"--model-dir={model_dir(runs, name, seed)}",
                                             f"--scenes={args.scenes}", f"--steps={args.steps}"], [])

    # Seed-major order (every variant's seed 0 first), each model evaluated as soon as it is
    # trained: a run stopped early still leaves whole seeds to compare.
    tasks: list[Task] = []
    if not references_path(runs, args.scenes).exists():
        tasks.append(("references", ["--worker=references", *common, f"--scenes={args.scenes}"], []))
    for seed in range(args.seeds):
        for name in args.variants:
            if (name, seed) in todo:
                tasks.append((f"train_{name}_s{seed}", ["--worker=train", *common, f"--variant={name}",
                                                        f"--seed={seed}", f"--recipe={recipe_json}"],
                              [evaluation(name, seed)]))
            elif not eval_path(model_dir(runs, name, seed), args.scenes, args.steps).exists():
                tasks.append(evaluation(name, seed))
    failed = run_pool(tasks, args.jobs, runs / "logs")
    missing = aggregate(args, runs, models, recipe)
    if failed or missing:
        print(f"failed: {failed}; not in the results: {missing}", flush=True)
        return 1
    return 0


def aggregate(args: argparse.Namespace, runs: Path, models: list[tuple[str, int]], recipe: TinyRecipe) -> list[str]:
    """Read every model's evaluation and write the summary; returns the models missing."""
    results: dict[str, dict[int, dict]] = {}
    missing = []
    for name, seed in models:
        folder = model_dir(runs, name, seed)
        path = eval_path(folder, args.scenes, args.steps)
        if not path.exists():
            missing.append(f"{name}_s{seed}")
            continue
        result = json.loads(path.read_text())
        if (folder / "recipe.json").exists():
            result.setdefault("seconds", {})["train"] = json.loads((folder / "recipe.json").read_text())["seconds"]
        results.setdefault(name, {})[seed] = result
    references = references_path(runs, args.scenes)
    if not results or not references.exists():
        return missing or ["references"]
    recipe_record = {k: v for k, v in dataclasses.asdict(recipe).items() if k != "seed"}
    report = tiny_ablation.report(results, json.loads(references.read_text()), args.scenes, args.steps,
                                  recipe=recipe_record, stage2_seeds=list(range(args.seeds)), base=str(args.base),
                                  missing=missing)
    tiny_ablation.write(report, args.out)
    print(tiny_ablation.markdown(report), flush=True)
    return missing


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="runs/tiny",
                   help="folder with a tiny base (base.safetensors, config.json): the stage-1 base that "
                        "`python -m lumix_engine.train tiny --work runs/tiny` writes to runs/tiny")
    p.add_argument("--runs", default="runs/ablation", help="models, evaluations, logs and the data cache")
    p.add_argument("--variants", default="abcdef")
    p.add_argument("--seeds", type=int, default=3, help="stage-2 seeds 0..N-1 per variant (0 = the shipped recipe)")
    p.add_argument("--jobs", type=int, default=2, help="parallel worker processes, one torch thread each")
    p.add_argument("--scenes", type=int, default=200, help="held-out scenes for the evaluation")
    p.add_argument("--steps", type=int, default=10, help="Euler steps for the evaluation's sampling")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a TinyRecipe field")
    p.add_argument("--out", default="benchmarks/results/ablation_tiny.json")
    # Worker mode (started by the orchestrator, one model per process).
    p.add_argument("--worker", choices=("train", "evaluate", "references"), help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    p.add_argument("--recipe", help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = parser().parse_args(argv)
    torch.set_num_threads(1)
    if args.worker:   # the training loop's progress lines go to the worker's log
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    if args.worker == "train":
        train_worker(Path(args.base), Path(args.runs), args.variant, args.seed, TinyRecipe(**json.loads(args.recipe)))
    elif args.worker == "evaluate":
        evaluate_worker(Path(args.model_dir), args.scenes, args.steps)
    elif args.worker == "references":
        references_worker(Path(args.base), Path(args.runs), args.scenes)
    else:
        return orchestrate(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
