"""What every benchmark shares: the machine description and alternating timing.
(Formerly benchmarks/common.py; benchmarks are scripts and nothing imports them.)

Timing rule: variants run interleaved A B C A B C ... in one process, and ratios
are taken per round, so a slow spell on the shared machine hits all variants of a round.
"""
from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import time
from typing import Callable

import torch


def load_average() -> str:
    try:
        with open("/proc/loadavg") as load:
            return "load average " + " ".join(load.read().split()[:3])
    except OSError:
        return "load average unknown"


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, "
            f"nproc {os.cpu_count()}, {model}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"python {platform.python_version()}, {load_average()}")


def alternate(variants: dict[str, Callable[[], object]], rounds: int, warmup: int = 1
              ) -> dict[str, dict[str, list[float]]]:
    """Seconds per call of each variant, run in the order A B C A B C ... `rounds` times.

    Returns {"wall": {variant: [s, ...]}, "cpu": {...}}. "cpu" is this process's CPU time
    (all threads): it does not count time the process spent descheduled by other load on
    the shared machine, so it is steadier than wall time there, but it counts threads
    spinning while they wait for each other.
    """
    for _ in range(warmup):
        for run in variants.values():
            run()
    times: dict[str, dict[str, list[float]]] = {"wall": {name: [] for name in variants},
                                                "cpu": {name: [] for name in variants}}
    for _ in range(rounds):
        for name, run in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            times["cpu"][name].append(time.process_time() - cpu)
            times["wall"][name].append(time.perf_counter() - wall)
    return times


def ratio_summary(times: dict[str, list[float]], numerator: str, denominator: str) -> str:
    """Median and min-max of the per-round ratio numerator / denominator."""
    ratios = [a / b for a, b in zip(times[numerator], times[denominator])]
    return (f"{numerator}/{denominator} = {statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} rounds; ratio of fastest "
            f"calls {min(times[numerator]) / min(times[denominator]):.3f})")


def time_summary(times: dict[str, list[float]]) -> str:
    return ", ".join(f"{name}: median {statistics.median(t) * 1e3:.1f} ms (min {min(t) * 1e3:.1f}, max "
                     f"{max(t) * 1e3:.1f})" for name, t in times.items())
