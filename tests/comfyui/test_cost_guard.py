"""LumiX's cost inside real ComfyUI, pinned: aten ops, fresh storage, weight copies and FLOPs of
the patched forward against this tree's own unpatched forward (cost_guard_probe.py).

The counts are exact for a shape and a code path, so they are pinned: a change that adds an
op, an allocation or a weight copy fails here with a message saying what grew, where a
wall-clock benchmark on a shared machine would not see it. After a deliberate improvement,
lower the budgets to the new counts (the failure message prints them).

Full width: FLUX.1-dev width, one double + one single block, 5 maps, 256 image + 64 text
tokens, counted on the meta device; float32 weights and fp8 storage (manual cast).
"""
from __future__ import annotations

import pathlib

import pytest
from test_gpu_paths import run_probe as run_gpu_paths_probe

from evaluation.cost_counter import guard_problems

# Pinned counts of the LumiX forward (whole forward, then per block call). LumiX's blocks
# run the same ops on both trees; the unpatched forwards differ (0.29 adds in place and
# fuses rope), which the ratios below are taken against.
LUMIX_BUDGET = {
    "float32": {"total": {"ops": 378, "fresh_mb": 1009.545},
                "double_block": {"ops": 152, "fresh_mb": 444.359}, "single_block": {"ops": 96, "fresh_mb": 480.645}},
    "fp8_e4m3fn": {"total": {"ops": 430, "fresh_mb": 3191.737},
                   "double_block": {"ops": 176, "fresh_mb": 1803.684},
                   "single_block": {"ops": 104, "fresh_mb": 1047.012}},
}
MAX_FLOP_RATIO = 0.945   # the floor QBA gives at five maps: 706.4 / 748.3 GFLOP = 0.944
MAX_FRESH_RATIO = 1.05   # fresh storage per forward against the tree's own unpatched forward
PROBE = pathlib.Path(__file__).resolve().parent / "cost_guard_probe.py"


def run_probe(install, tmp_path: pathlib.Path, scenario: str) -> dict:
    return run_gpu_paths_probe(install, tmp_path, scenario, probe=PROBE)


def problems_of(counts: dict, storage: str, variant: str = "lumix") -> list[str]:
    lumix, unpatched = counts[variant], counts["unpatched"]
    budget = LUMIX_BUDGET[storage]
    found = guard_problems(lumix["total"], unpatched["total"], budget["total"], MAX_FLOP_RATIO, MAX_FRESH_RATIO,
                           where=f"{storage} forward")
    for block in ("double_block", "single_block"):
        found += guard_problems(lumix["blocks"][block], unpatched["blocks"][block], budget[block],
                                max_fresh_ratio=MAX_FRESH_RATIO, where=f"{storage} {block} call")
    return found


@pytest.fixture(scope="module")
def full_width(comfyui_install, tmp_path_factory):
    return run_probe(comfyui_install, tmp_path_factory.mktemp("cost"), "full_width")


@pytest.mark.parametrize("storage", ["float32", "fp8_e4m3fn"])
def test_lumix_forward_stays_within_its_pinned_cost(full_width, storage):
    counts = full_width[storage]
    found = problems_of(counts, storage)
    assert not found, "\n".join(found) + f"\nmeasured: {counts['lumix']['total']} {counts['lumix']['blocks']}\n" \
                                         f"{counts['lumix']['top']}"


def test_manual_cast_copies_each_weight_once_per_call_as_the_unpatched_forward_does(full_width):
    fp8 = full_width["fp8_e4m3fn"]
    assert fp8["linear_type"].endswith("manual_cast.Linear"), fp8["linear_type"]  # the real comfy.ops cast path
    assert fp8["unpatched"]["total"]["weight_copies"] == fp8["linears"] == fp8["lumix"]["total"]["weight_copies"]
    assert full_width["float32"]["lumix"]["total"]["weight_copies"] == 0


@pytest.mark.parametrize("storage", ["float32", "fp8_e4m3fn"])
def test_the_guard_fires_on_one_extra_weight_copy(full_width, storage):
    found = problems_of(full_width[storage], storage, "lumix_with_extra_clone")
    assert any("weight copies" in p and "double_block" in p for p in found), found
    assert any("MB of fresh storage" in p for p in found), found


def test_counts_on_real_tensors_agree(comfyui_install, tmp_path):
    """The tiny FLUX from a file, really computed: same weight copies as unpatched (none with
    float32 weights, one per Linear under the fp8 manual cast), fewer fresh bytes, per block call too."""
    result = run_probe(comfyui_install, tmp_path, "tiny_real")
    for storage, counts in result.items():
        lumix, unpatched = counts["lumix"], counts["unpatched"]
        expected = counts["linears"] if storage == "fp8_e4m3fn" else 0
        assert lumix["total"]["weight_copies"] == unpatched["total"]["weight_copies"] == expected, (storage, counts)
        assert lumix["total"]["fresh_mb"] <= MAX_FRESH_RATIO * unpatched["total"]["fresh_mb"], (storage, counts)
        for block in ("double_block", "single_block"):
            assert lumix["blocks"][block]["fresh_mb"] <= MAX_FRESH_RATIO * unpatched["blocks"][block]["fresh_mb"], \
                (storage, block, counts)
