"""Seed statistics of the tiny ablation on hand-made numbers: mean and sample standard
deviation, the Welch rule for "exceeds seed noise" (a case that must exceed, one that must
not, n = 1), the trivial-decomposition line and the markdown built from them."""
from __future__ import annotations

import math

import pytest

from evaluation import ablation_stats as stats


def run(align: float, albedo: float, depth: float = 0.2) -> dict:
    return {"generation": {"structural_alignment": align, "recomposition_rmse": 0.03, "normal_depth_degrees": 30.0},
            "decomposition": {"albedo_si_rmse": albedo, "irradiance_si_rmse": 0.1, "depth_absrel": depth,
                              "normal_degrees": 17.0},
            "decomposition_coherence": {"structural_alignment": 0.5}}


# (a) and (b) far apart on alignment with small spread; equal on recomposition (no spread:
# t = 0); albedo overlapping; (c) has a single seed.
RUNS = {"a": {0: run(0.75, 0.116), 1: run(0.76, 0.120), 2: run(0.74, 0.112)},
        "b": {0: run(0.70, 0.118), 1: run(0.71, 0.110), 2: run(0.69, 0.121, depth=0.4)},
        "c": {0: run(0.60, 0.090)}}
TRIVIAL = {"albedo_si_rmse": 0.1205, "irradiance_si_rmse": 0.114, "depth_absrel": 0.338, "normal_degrees": 36.7}


def test_summary_is_mean_and_sample_standard_deviation():
    s = stats.summarize([0.75, 0.76, 0.74])
    assert s["mean"] == pytest.approx(0.75, abs=1e-12)
    assert s["sd"] == pytest.approx(0.01, abs=1e-12)   # sample sd: divide by n - 1 = 2
    assert s["n"] == 3 and s["values"] == [0.75, 0.76, 0.74]
    assert stats.summarize([0.1, 0.1, 0.1])["sd"] == 0.0
    one = stats.summarize([0.6])
    assert one["sd"] is None and one["n"] == 1
    with pytest.raises(ValueError):
        stats.summarize([])


def test_aggregate_orders_seeds_and_covers_every_part():
    summary = stats.aggregate({"b": {"2": run(0.3, 0.1), "0": run(0.1, 0.1), "1": run(0.2, 0.1)}})
    assert summary["b"]["generation"]["structural_alignment"]["values"] == [0.1, 0.2, 0.3]
    assert set(summary["b"]) == set(stats.PARTS)


def test_welch_rule_exceeds_within_and_not_tested():
    summary = stats.aggregate(RUNS)
    a, b = summary["a"], summary["b"]
    # alignment: difference 0.05, sd 0.01 each, n 3: t = 0.05 / sqrt(2 * 0.01^2 / 3) = 6.12 > 2.
    t = stats.welch_t(a["generation"]["structural_alignment"], b["generation"]["structural_alignment"])
    assert t == pytest.approx(0.05 / math.sqrt(2 * 0.01 ** 2 / 3), rel=1e-9)
    # albedo: means 0.116 vs 0.11633, sds 0.004 and 0.0057: t ~ 0.08 < 2.
    assert stats.welch_t(a["decomposition"]["albedo_si_rmse"], b["decomposition"]["albedo_si_rmse"]) < 2
    pairs = {(p["x"], p["y"]): p["metrics"] for p in stats.compare(summary, [("a", "b", "QBA"), ("a", "c", "x"),
                                                                               ("a", "z", "absent")])}
    assert set(pairs) == {("a", "b"), ("a", "c")}   # a pair with a missing variant is left out
    ab = pairs[("a", "b")]
    assert ab["structural_alignment"]["verdict"] == stats.EXCEEDS and ab["structural_alignment"]["better"] == "a"
    assert ab["structural_alignment"]["difference"] == pytest.approx(0.05)
    assert ab["albedo_si_rmse"]["verdict"] == stats.WITHIN and "better" not in ab["albedo_si_rmse"]
    assert ab["recomposition_rmse"]["t"] == 0.0 and ab["recomposition_rmse"]["verdict"] == stats.WITHIN
    # depth: lower is better, so (a) (0.2) is the better one although its number is smaller.
    assert ab["depth_absrel"]["verdict"] == stats.WITHIN   # one outlier seed of (b) makes its sd large
    assert all(m["verdict"] == stats.NOT_TESTED and m["t"] is None for m in pairs[("a", "c")].values())


def test_lower_is_better_metrics_name_the_lower_variant():
    runs = {"x": {s: run(0.5, 0.10 + 0.001 * s) for s in range(3)},
            "y": {s: run(0.5, 0.20 + 0.001 * s) for s in range(3)}}
    (pair,) = stats.compare(stats.aggregate(runs), [("x", "y", "test")])
    assert pair["metrics"]["albedo_si_rmse"]["verdict"] == stats.EXCEEDS
    assert pair["metrics"]["albedo_si_rmse"]["better"] == "x"


def test_zero_spread_with_a_difference_exceeds():
    same = {"mean": 1.0, "sd": 0.0, "n": 2, "values": [1.0, 1.0]}
    other = {"mean": 2.0, "sd": 0.0, "n": 2, "values": [2.0, 2.0]}
    assert stats.welch_t(same, other) == math.inf
    assert stats.verdict(stats.welch_t(same, other)) == stats.EXCEEDS


def test_beats_trivial_needs_every_seed():
    beaten = stats.beats_trivial(RUNS, TRIVIAL)
    # albedo bound 0.1205: (a) all below; (b) has 0.121 on seed 2; (c) 0.090.
    assert beaten["albedo_si_rmse"] == ["a", "c"]
    assert beaten["depth_absrel"] == ["a", "c"]   # (b)'s 0.4 on seed 2 is above 0.338
    assert beaten["normal_degrees"] == ["a", "b", "c"]


def test_markdown_cells_comparisons_rule_and_trivial_lines():
    summary = stats.aggregate(RUNS)
    comparisons = stats.compare(summary, [("a", "b", "QBA"), ("a", "c", "per-map")])
    references = {"ground truth": {"generation": {"structural_alignment": 0.93}, "decomposition": {"albedo_si_rmse": 0}}}
    text = stats.markdown(summary, references, comparisons, stats.beats_trivial(RUNS, TRIVIAL))
    lines = text.splitlines()
    header = lines[0].split(" | ")
    assert header[1] == "seeds" and len(header) == 2 + len(stats.COLUMNS)
    row_a = next(line for line in lines if line.startswith("| (a) QBA + Tensor LoRA |"))
    assert "| 3 | 0.75 ± 0.01 |" in row_a
    row_c = next(line for line in lines if line.startswith("| (c)"))
    assert "| 1 | 0.6 |" in row_c and "±" not in row_c   # one seed: no sd
    assert "| ground truth | | 0.93 |" in text
    assert "Welch's t" in text and "> 2" in text
    qba = next(line for line in lines if line.startswith("| (a) vs (b): QBA"))
    assert "+0.05 (t = 6.1, exceeds; (a) better)" in qba and "(t = 0.0, within)" in qba
    per_map = next(line for line in lines if line.startswith("| (a) vs (c)"))
    assert per_map.count("(not tested, n < 2)") == len(stats.COLUMNS)
    assert "- albedo si-RMSE ↓: (a), (c)" in text
    assert "- depth AbsRel ↓: (a), (c)" in text
