"""Guided upsampling against bilinear: time and extra memory, side by side in one run.

    nice -n 10 python -m benchmarks.upsampling_speed --out benchmarks/results/upsampling_speed.json

For photos of 1, 4 and 24 MP (3:2), the four maps (albedo, irradiance, depth, normal) are
made at the photo path's working size for that photo (`plan_photo`, default budget) and
brought to the photo's size with `upsample_maps`, guided and bilinear, alternating, each
`--repeats` times (the minimum is reported: the machine is shared, so the least disturbed
run is the closest to the cost). Content: one Mitsuba render (benchmarks/mitsuba_scenes.py)
resampled to each size, so the content is a real scene's; plus "noise" maps at 4 MP (the
local linear transfer costs the same on any content; noise also has near-black irradiance,
which adds the dark fallback). Extra memory: peak resident memory during the call minus
before it (read from /proc every 2 ms in a child process per measurement, outputs included).
Time: wall-clock seconds and CPU seconds (all threads) of a warm call (the second in the
process, as in a long-running ComfyUI), and wall-clock seconds of the first call in a fresh
process (which also pays for the operating system's first touch of every new block). With `--threads 1` the
CPU time is the steadiest measure on a shared machine: many threads on a loaded machine
wait on each other at every tensor operation, which penalises the method with more
operations far more than the work itself.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lumix_engine.intrinsics.color_space import linear_to_srgb  # noqa: E402
from lumix_engine.intrinsics.normals import encode_normals  # noqa: E402
from lumix_engine.intrinsics.upsample import resize_linear, upsample_maps  # noqa: E402
from lumix_engine.method.resolution import plan_photo  # noqa: E402

SIZES = {"1 MP": (1224, 816), "4 MP": (2448, 1632), "24 MP": (6000, 4000)}


def _resized(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    return resize_linear(image.permute(0, 3, 1, 2), height, width).permute(0, 2, 3, 1).contiguous()


def inputs(scene: Path, width: int, height: int, content: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(working-size maps, photo) for one photo size."""
    from safetensors.torch import load_file
    work_w, work_h = plan_photo(width, height).working
    if content == "noise":
        generator = torch.Generator().manual_seed(0)
        maps = {name: torch.rand(1, work_h, work_w, 3, generator=generator) for name in
                ("albedo", "irradiance", "depth", "normal")}
        return maps, torch.rand(1, height, width, 3, generator=generator)
    raw = load_file(str(scene))
    depth = raw["depth"]
    disparity = (1 / depth - (1 / depth).min()) / ((1 / depth).max() - (1 / depth).min())
    maps = {"albedo": linear_to_srgb(raw["albedo"]), "irradiance": linear_to_srgb(raw["shading"]),
            "depth": disparity.expand(-1, -1, -1, 3), "normal": encode_normals(raw["normal"])}
    maps = {name: _resized(image, work_w, work_h).clamp(0, 1) for name, image in maps.items()}
    maps["normal"] = encode_normals(F.normalize(maps["normal"] * 2 - 1, dim=-1))
    return maps, _resized(linear_to_srgb(raw["color"]), width, height).clamp(0, 1)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(scene: Path, width: int, height: int, content: str, method: str) -> dict[str, float]:
    """Two timed calls in this process, the first in it and the second (warm, as in a
    long-running ComfyUI: the allocator has the blocks from the first); seconds, CPU
    seconds, and the first call's peak extra resident memory."""
    maps, photo = inputs(scene, width, height, content)
    upsample_maps({k: v[:, :16, :16] for k, v in maps.items()}, photo[:, :32, :32], method)   # warm up
    before, peak, running = _rss(), [0], [True]

    def watch() -> None:
        while running[0]:
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)
    watcher = threading.Thread(target=watch)
    watcher.start()
    times = []
    for call in range(2):
        started, cpu_started = time.perf_counter(), time.process_time()
        out = upsample_maps(maps, photo, method)
        times.append((time.perf_counter() - started, time.process_time() - cpu_started))
        if call == 0:
            first_peak = max(peak[0], _rss())
        del out
    running[0] = False
    watcher.join()
    return {"seconds": times[1][0], "cpu_seconds": times[1][1], "first_seconds": times[0][0],
            "first_cpu_seconds": times[0][1], "extra_gb": (first_peak - before) / 1e9}


def in_child(scene: Path, width: int, height: int, content: str, method: str, threads: int) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.upsampling_speed", "--threads", str(threads), "--child", str(scene),
               str(width), str(height), content, method]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", type=Path, default=Path("runs/mitsuba/desk_2048x1152.safetensors"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/upsampling_speed.json"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", nargs="*", default=list(SIZES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=5, metavar=("SCENE", "W", "H", "CONTENT", "METHOD"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        scene, width, height, content, method = args.child
        print(json.dumps(measure(Path(scene), int(width), int(height), content, method)))
        return
    cases = [(label, "scene") for label in args.sizes] + ([("4 MP", "noise")] if "4 MP" in args.sizes else [])
    rows = []
    for label, content in cases:
        width, height = SIZES[label]
        runs: dict[str, list[dict[str, float]]] = {"bilinear": [], "guided": []}
        for _ in range(args.repeats):
            for method in runs:
                runs[method].append(in_child(args.scene, width, height, content, method, args.threads))
        best = {method: min(r["seconds"] for r in values) for method, values in runs.items()}
        cpu = {method: min(r["cpu_seconds"] for r in values) for method, values in runs.items()}
        first = {method: min(r["first_seconds"] for r in values) for method, values in runs.items()}
        memory = {method: max(r["extra_gb"] for r in values) for method, values in runs.items()}
        rows.append({"photo": f"{label} ({width}x{height})", "working": "x".join(map(str, plan_photo(width, height).working)),
                     "content": content, "bilinear_s": best["bilinear"], "guided_s": best["guided"],
                     "ratio": best["guided"] / best["bilinear"], "bilinear_cpu_s": cpu["bilinear"],
                     "guided_cpu_s": cpu["guided"], "cpu_ratio": cpu["guided"] / cpu["bilinear"],
                     "bilinear_first_s": first["bilinear"], "guided_first_s": first["guided"],
                     "first_ratio": first["guided"] / first["bilinear"],
                     "bilinear_extra_gb": memory["bilinear"],
                     "guided_extra_gb": memory["guided"], "all_runs": runs})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "all_runs"}), flush=True)
    load = os.getloadavg()
    result = {"cpu_threads": torch.get_num_threads(), "load_average_after": load, "device": "cpu", "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"threads {torch.get_num_threads()}, load average after {load[0]:.1f}")
    print("| photo | working | content | bilinear s | guided s | ratio | CPU ratio | first call: bilinear s "
          "| guided s | ratio | extra GB bilinear | extra GB guided |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['photo']} | {row['working']} | {row['content']} | {row['bilinear_s']:.2f} | {row['guided_s']:.2f} "
              f"| {row['ratio']:.1f}x | {row['cpu_ratio']:.1f}x | {row['bilinear_first_s']:.2f} "
              f"| {row['guided_first_s']:.2f} | {row['first_ratio']:.1f}x "
              f"| {row['bilinear_extra_gb']:.2f} | {row['guided_extra_gb']:.2f} |")


if __name__ == "__main__":
    main()
