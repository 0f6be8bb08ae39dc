"""Batch throughput: one process against Ray workers, and Ray's overhead per image.

    python -m benchmarks.batch_throughput [--photos 12] [--rounds 2] [--steps 4] [--size 64]

Tiny random components (lumix_engine/tiny_random.py) written as real files, decomposing
`--photos` photos at `--size` x `--size`. Every configuration runs the whole
`run_batch` (planning, hashing, writing the maps and the manifest) into a fresh output
folder, with its pipelines already loaded and warmed up on two photos, so the numbers are
steady-state images per second, not start-up. Configurations run interleaved, round by
round (evaluation/timing.py's rule for a shared machine):

- single, 1 thread / batch 1 and batch 4 (and with --all-threads: all threads, batch 1);
- Ray, 1 worker x 1 thread: against single 1 thread (the driver writes and hashes while
  the worker computes, so this is not Ray's cost alone); Ray's cost per image is measured
  apart, as the round trip of a photo's bytes to an actor and five map-sized PNGs back;
- Ray, 2 workers x 1 thread: the scale-out.

The tiny model does little work per image, so Ray's fixed cost per image weighs far more
here than with FLUX.1-dev, where one image takes tens of seconds on a GPU.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from evaluation.timing import machine
from lumix_engine.apps.batch import BatchSettings, Decomposer, find_inputs, local_executor, run_batch
from lumix_engine.apps.loading import ModelFiles, quiet_libraries
from lumix_engine.apps.pipeline import LumiXPipeline
from lumix_engine.errors import InputError
from lumix_engine.image_io import encode_png16
from lumix_engine.tiny_random import write_tiny_models


def photos(folder: Path, count: int, size: int) -> Path:
    for k in range(count):
        pixels = (np.random.default_rng(k).random((size, size, 3)) * 255).astype(np.uint8)
        (folder / f"p{k:03d}.png").parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"p{k:03d}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--all-threads", action="store_true",
                        help="also single process with all threads (on a loaded machine its threads wait on "
                             "each other: 80 s instead of 4 s for 8 photos at load 17 on 2 cores)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lumix_batch_bench_"))
    with quiet_libraries():
        paths = write_tiny_models(work / "models", seed=0)
    files = ModelFiles(flux_dir=paths["flux_dir"], lumix=paths["lumix"]).check()
    models = {"flux_dir": str(files.flux_dir), "lumix": str(files.lumix)}
    warm, measured = photos(work / "warm", 2, args.size), photos(work / "photos", args.photos, args.size)
    base = dict(prompt="a red sphere", steps=args.steps, width=args.size, height=args.size, scores=True)
    all_threads = torch.get_num_threads()

    def local(threads: int, batch_size: int):
        settings = BatchSettings(**base, batch_size=batch_size)
        with quiet_libraries():
            pipe = LumiXPipeline.from_files(files, device="cpu", dtype="fp32", progress=False)
        return settings, local_executor(Decomposer(pipe, settings, threads=threads)), threads

    def on_ray(workers: int):
        from lumix_engine.apps.batch.ray import ray_executor
        settings = BatchSettings(**base, batch_size=1)
        factory = ray_executor(files, settings, address="local", workers=workers, device="cpu", dtype="fp32",
                               cpus_per_worker=1, threads=1)
        return settings, factory(), None

    configs = {"single, 1 thread, batch 1": lambda: local(1, 1), "single, 1 thread, batch 4": lambda: local(1, 4)}
    if args.all_threads:
        configs[f"single, {all_threads} threads, batch 1"] = lambda: local(all_threads, 1)
    try:
        from lumix_engine.apps.batch.ray import connect
        connect("local", num_cpus=4)   # CPU tokens for the 1- and the 2-worker pools, both kept alive
        configs.update({"Ray, 1 worker x 1 thread": lambda: on_ray(1), "Ray, 2 workers x 1 thread": lambda: on_ray(2)})
    except InputError:
        print("Ray is not installed: the Ray rows are skipped (pip install ray)")
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    built = {}
    for round_ in range(args.rounds):
        for name, make in configs.items():
            if name not in built:
                built[name] = make()
            settings, execute, threads = built[name]
            if threads:
                torch.set_num_threads(threads)
            out = work / "out" / f"{round_}-{len(seconds[name])}-{name.replace(' ', '_').replace(',', '')}"
            if round_ == 0:
                run_batch(find_inputs(warm, out / "warm"), out / "warm", settings, models, lambda: execute,
                          progress=False)
            started = time.perf_counter()
            summary = run_batch(find_inputs(measured, out / "maps"), out / "maps", settings, models,
                                lambda: execute, progress=False)
            seconds[name].append(time.perf_counter() - started)
            assert summary.done == args.photos, summary.lines()
            print(f"round {round_}: {name}: {seconds[name][-1]:.2f} s", flush=True)
            torch.set_num_threads(all_threads)
    print(machine())
    print(f"{args.photos} photos, {args.size} x {args.size}, {args.steps} steps, tiny random components, "
          f"{args.rounds} rounds; median over rounds (min-max)")
    print("| configuration | s per run | images/s | vs single 1 thread |")
    print("|---|---|---|---|")
    reference = statistics.median(seconds["single, 1 thread, batch 1"])
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} ({min(values):.2f}-{max(values):.2f}) | {args.photos / median:.2f} | "
              f"{reference / median:.2f}x |")
    if "Ray, 1 worker x 1 thread" in seconds:
        overhead = (statistics.median(seconds["Ray, 1 worker x 1 thread"]) - reference) / args.photos
        print(f"Ray 1 worker - single, per image: {overhead * 1000:.0f} ms (negative: the driver's writing and "
              f"hashing overlap the worker's compute, which a single process does in turn)")
        round_trip = ray_round_trip(measured, args.photos)
        print(f"Ray round trip per image, no compute (photo bytes out, 5 map-sized PNGs back, one actor, "
              f"sequential): median {round_trip * 1000:.1f} ms")


class Echo:
    """A Ray actor that returns what a worker returns for a photo, without computing it."""

    def run(self, data: bytes, sizes: list[int]) -> dict[str, bytes]:
        return {f"map{k}": bytes(size) for k, size in enumerate(sizes)}


def ray_round_trip(folder: Path, count: int, repeats: int = 5) -> float:
    import ray
    actor = ray.remote(num_cpus=0)(Echo).remote()
    files = sorted(folder.glob("*.png"))[:count]
    sizes = [len(encode_png16(torch.rand(64, 64, 3)))] * 5
    ray.get(actor.run.remote(b"", sizes))
    times = []
    for _ in range(repeats):
        for file in files:
            started = time.perf_counter()
            ray.get(actor.run.remote(file.read_bytes(), sizes))
            times.append(time.perf_counter() - started)
    return statistics.median(times)


if __name__ == "__main__":
    main()
