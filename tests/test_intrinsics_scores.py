"""Coherence scores are at their best on ground truth and worsen as one map is shifted,
blurred or swapped for another scene's map (scores.py, docs/coherence.md)."""
import pytest
import torch

from evaluation.doctored import blurred, shifted
from lumix_engine.intrinsics import coherence_report, render_scene

SIZE = 160
MAPS = ("albedo", "irradiance", "color", "depth", "normal")


@pytest.fixture(scope="module")
def truth() -> dict[str, torch.Tensor]:
    return render_scene(11, SIZE, SIZE).images()


@pytest.fixture(scope="module")
def best(truth):
    return coherence_report(**truth)


@pytest.fixture(scope="module")
def other_scene() -> dict[str, torch.Tensor]:
    return render_scene(12, SIZE, SIZE).images()


def report_with(truth: dict[str, torch.Tensor], name: str, image: torch.Tensor):
    return coherence_report(**{**truth, name: image})


def test_scores_are_at_their_best_on_ground_truth(best):
    report = best
    # Tolerances: exact maps recompose to float32 rounding; alignment 0.95 because a few
    # true edges (a crease between two equally lit faces, a weak albedo step in shadow)
    # have no counterpart in color, and log-gradients add up only approximately in the
    # darkest pixels (scene 11 scores 0.975); normals-from-depth directions within 1 degree.
    assert report.recomposition_rmse < 1e-5
    assert report.structural_alignment > 0.95
    assert min(report.alignment_per_map.values()) > 0.9
    assert report.normal_depth_error_degrees < 1.0
    assert "structural alignment" in report.text and "deg" in report.text


@pytest.mark.parametrize("name", MAPS)
def test_alignment_falls_monotonically_as_one_map_is_shifted(truth, best, name):
    scores = [best.structural_alignment]
    scores += [report_with(truth, name, shifted(truth[name], pixels)).structural_alignment for pixels in (1, 2, 4, 8)]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores


@pytest.mark.parametrize("name", ("albedo", "irradiance", "color"))
def test_recomposition_error_grows_monotonically_with_shift(truth, best, name):
    errors = [best.recomposition_rmse]
    errors += [report_with(truth, name, shifted(truth[name], pixels)).recomposition_rmse for pixels in (1, 2, 4, 8)]
    assert all(a < b for a, b in zip(errors, errors[1:])), errors


@pytest.mark.parametrize("name", ("depth", "normal"))
def test_normal_depth_error_grows_monotonically_with_shift(truth, best, name):
    errors = [best.normal_depth_error_degrees]
    errors += [report_with(truth, name, shifted(truth[name], pixels)).normal_depth_error_degrees
               for pixels in (1, 2, 4, 8)]
    assert all(a < b for a, b in zip(errors, errors[1:])), errors


def map_specific_error(report, name: str) -> float:
    """The score that owns a map besides alignment: recomposition for the three images,
    normal-depth consistency for depth and normal."""
    if name in ("albedo", "irradiance", "color"):
        return report.recomposition_rmse
    return report.normal_depth_error_degrees


@pytest.mark.parametrize("name", MAPS)
def test_swapping_one_map_for_another_scenes_worsens_the_scores(truth, best, other_scene, name):
    report = report_with(truth, name, other_scene[name])
    assert report.alignment_per_map[name] < best.alignment_per_map[name] - 0.01
    assert report.structural_alignment < best.structural_alignment
    assert map_specific_error(report, name) > map_specific_error(best, name) + 0.01


@pytest.mark.parametrize("name", MAPS)
def test_blurring_one_map_worsens_the_scores(truth, best, name):
    report = report_with(truth, name, blurred(truth[name]))
    assert map_specific_error(report, name) > map_specific_error(best, name) + 0.01
    if name != "normal":
        # Blurred normals keep their creases in place, so the precision-based alignment
        # barely moves (it can even rise); normal-depth consistency is the score that sees it.
        assert report.alignment_per_map[name] < best.alignment_per_map[name] - 0.003


def test_depth_given_near_dark_scores_like_near_white(truth, best):
    near_dark = {**truth, "depth": 1 - truth["depth"]}
    flipped = coherence_report(**near_dark, depth_near_is_white=False)
    wrong_way = coherence_report(**near_dark)
    assert abs(flipped.normal_depth_error_degrees - best.normal_depth_error_degrees) < 1e-3
    assert wrong_way.normal_depth_error_degrees > 90   # a flipped convention is caught


def test_noise_maps_score_low_on_structural_alignment(truth):
    # Noise has edges everywhere, so every noise edge lies near some other edge; the score
    # must measure alignment beyond chance (and thin saturated edge sets), not mere nearness.
    generator = torch.Generator().manual_seed(0)
    noise = {name: torch.rand(image.shape, generator=generator) for name, image in truth.items()}
    report = coherence_report(**noise)
    assert report.structural_alignment < 0.2, report.alignment_per_map
    assert max(report.alignment_per_map.values()) < 0.2, report.alignment_per_map
    for name in MAPS:
        # One noise map among true ones: its own score is low.
        one = report_with(truth, name, noise[name])
        assert one.alignment_per_map[name] < 0.2, (name, one.alignment_per_map)
    assert 0.0 <= report.structural_alignment <= 1.0
