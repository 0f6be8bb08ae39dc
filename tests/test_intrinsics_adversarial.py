"""Structural alignment against doctored map sets (evaluation.doctored): copies
of the image, texture leaking into geometry, shading baked into albedo, blurred, shifted and
swapped maps must all score below the true maps, scene by scene (docs/coherence.md)."""
import pytest
import torch

from evaluation.doctored import doctored_sets
from lumix_engine.intrinsics import coherence_report, render_scene

SIZE = 160
SCENES = (0, 3, 6, 8, 9, 11)
# Sets that are only marginally below ground truth on some scenes (docs/coherence.md, blind
# spots): blurred normals keep their creases where they were. They must still be below on
# every scene; the clear-margin test is on average.
MARGINAL = {"normal blurred"}
# A texture leaked into BOTH geometry maps corroborates itself (each excuses the other's
# suspicious edges; docs/coherence.md, blind spots): below ground truth on average and on all
# but one scene, not on every scene.
EXCUSED = {"depth and normal + albedo texture"}


@pytest.fixture(scope="module")
def table() -> dict[str, dict[int, float]]:
    maps = {seed: render_scene(seed, SIZE, SIZE).images() for seed in SCENES}
    rows = {"ground truth": {seed: coherence_report(**maps[seed]).structural_alignment for seed in SCENES}}
    for name, doctor in doctored_sets().items():
        rows[name] = {seed: coherence_report(**doctor(maps[seed], maps[SCENES[(i + 1) % len(SCENES)]]))
                      .structural_alignment for i, seed in enumerate(SCENES)}
    return rows


def test_the_suite_stages_many_failures():
    names = doctored_sets()
    assert len(names) >= 25
    for word in ("copy", "texture", "shading", "blurred", "shifted", "another scene", "every map"):
        assert any(word in name for name in names), word


@pytest.mark.parametrize("name", sorted(doctored_sets()))
def test_every_doctored_set_scores_below_the_true_maps(table, name):
    truth, doctored = table["ground truth"], table[name]
    margins = {seed: truth[seed] - doctored[seed] for seed in SCENES}
    mean_margin = sum(margins.values()) / len(margins)
    if name in EXCUSED:
        assert sum(m > 0 for m in margins.values()) >= len(SCENES) - 1, margins
        assert mean_margin > 0.02, margins
        return
    # Scene by scene, strictly below; on average by a clear margin.
    assert all(m > 0 for m in margins.values()), margins
    assert mean_margin > (0.01 if name in MARGINAL else 0.03), margins


def test_copying_the_image_into_every_map_is_far_below_truth(table):
    # The old precision-only score rated this set as high as ground truth.
    for name in ("every map = color", "every map = grey copy of color", "albedo = color", "irradiance = color"):
        for seed in SCENES:
            assert table[name][seed] < table["ground truth"][seed] - 0.05, (name, seed)


def test_depth_copied_from_the_image_loses_its_own_alignment():
    # The example: a grey copy of color as depth raised depth alignment 0.731 -> 0.927.
    for seed in (1, 7):
        maps = render_scene(seed, SIZE, SIZE).images()
        gray = maps["color"] @ torch.tensor([0.2126, 0.7152, 0.0722])
        true_depth = coherence_report(**maps).alignment_per_map["depth"]
        copied = coherence_report(**{**maps, "depth": gray[..., None]}).alignment_per_map["depth"]
        assert copied < true_depth - 0.2, (seed, true_depth, copied)
