"""lumix_engine.method.memory: the node's "will it fit" verdict, from the simulated table."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lumix_engine.method.memory import (
    RESERVE_GB,
    activations_gb,
    fits,
    largest_megapixels,
    memory_table,
    resident_gb,
)
from lumix_engine.method.resolution import working_size

GB = 1e9
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "memory_simulation.json"


def need_gb(width: int, height: int, dtype: str, resident: bool = True) -> float:
    return activations_gb(width, height, dtype) + RESERVE_GB + (resident_gb(dtype) if resident else 0.0)


def test_the_table_is_the_benchmarks_output():
    from evaluation.memory_sim import engine_table
    record = json.loads(RESULTS.read_text())
    assert engine_table(record["rows"], record["comfyui_estimates"]) == memory_table()
    assert record["shape"]["depth"] == 19 and record["shape"]["depth_single_blocks"] == 38


@pytest.mark.parametrize("dtype", ["bf16", "fp8"])
def test_activations_interpolate_the_simulated_points(dtype):
    points = sorted((int(t), gb) for t, gb in memory_table()["activations_gb"][dtype].items())
    for tokens, gb in points:
        width = 16 * tokens  # one token high: only the token count matters
        assert activations_gb(width, 16, dtype) == pytest.approx(gb)
    (t0, a0), (t1, a1) = points[2], points[3]
    middle = (t0 + t1) // 2
    assert activations_gb(16 * middle, 16, dtype) == pytest.approx(a0 + (a1 - a0) * (middle - t0) / (t1 - t0))
    grid = [activations_gb(16 * t, 16, dtype) for t in range(points[0][0], 3 * points[-1][0], 97)]
    assert grid == sorted(grid)


def test_weights_as_comfyui_stores_them():
    assert resident_gb("fp8") == pytest.approx(resident_gb("bf16") / 2, rel=0.03)
    assert 23.5 < resident_gb("bf16") < 24.5  # 11.9 B parameters in bf16, plus LumiX's cached cores
    assert resident_gb(torch.float8_e4m3fn) == resident_gb("fp8") and resident_gb(torch.float16) == resident_gb("bf16")


def test_sizes_that_fit_get_no_warning():
    assert fits((1536, 1152), "fp8", int(80 * GB)) is None
    assert fits((1536, 1152), torch.bfloat16, int(80 * GB)) is None
    assert fits((1536, 1152), "fp8", int(need_gb(1536, 1152, "fp8") * GB) + 1) is None


def test_weights_that_do_not_fit_beside_the_activations_are_streamed():
    gpu = int(24 * GB)
    message = fits((1536, 1152), "bf16", gpu)
    assert message and "stream" in message and "24.0 GB" in message and "fp8" in message
    width, height = working_size(3000, 2000, 3.4)
    message = fits((width, height), "fp8", int((need_gb(width, height, "fp8") - 0.5) * GB))
    assert message and "stream" in message
    smaller = float(message.split("megapixels ")[1].split(" ")[0])
    w, h = working_size(3000, 2000, smaller)
    assert fits((w, h), "fp8", int((need_gb(width, height, "fp8") - 0.5) * GB)) is None


def test_activations_that_do_not_fit_are_an_out_of_memory_warning_with_a_size_that_fits():
    width, height = working_size(3000, 2000, 3.4)
    gpu = int((activations_gb(width, height, "fp8") + RESERVE_GB - 1.0) * GB)
    message = fits((width, height), "fp8", gpu)
    assert message and "run out of memory" in message
    smaller = float(message.split("set megapixels to ")[1].split(" ")[0])
    w, h = working_size(3000, 2000, smaller)
    assert need_gb(w, h, "fp8", resident=False) * GB <= gpu
    w, h = working_size(3000, 2000, smaller + 0.01)
    assert need_gb(w, h, "fp8", resident=False) * GB > gpu


def test_no_verdict_without_a_known_gpu_or_weight_storage():
    assert fits((2256, 1504), "bf16", None) is None
    assert fits((2256, 1504), torch.float32, int(4 * GB)) is None   # not simulated: no claim
    assert fits((2256, 1504), "gguf", int(4 * GB)) is None


def test_largest_megapixels_is_the_boundary():
    gpu = int(24 * GB)
    best = largest_megapixels(gpu, "fp8")
    assert best is not None
    w, h = working_size(300, 200, best)
    assert need_gb(w, h, "fp8") * GB <= gpu
    if best < 3.4:
        w, h = working_size(300, 200, round(best + 0.01, 2))
        assert need_gb(w, h, "fp8") * GB > gpu
    assert largest_megapixels(int(10 * GB), "bf16") is None  # the weights alone exceed it
