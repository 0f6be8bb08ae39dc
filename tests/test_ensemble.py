"""Ensemble combination against plain float64 references written from the definitions."""
import numpy as np
import pytest
import torch

from lumix_engine.errors import InputError
from lumix_engine.intrinsics.ensemble import align_scale_shift, combine_ensemble, combine_runs

RUNS, H, W = 5, 6, 7


def srgb_to_linear(x):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x):
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(np.maximum(x, 0), 1 / 2.4) - 0.055)


@pytest.fixture
def runs():
    generator = torch.Generator().manual_seed(0)
    maps = {name: torch.rand(RUNS, H, W, 3, generator=generator, dtype=torch.float64)
            for name in ("albedo", "irradiance", "normal")}
    base = torch.rand(H, W, generator=generator, dtype=torch.float64)
    scales, shifts = torch.rand(RUNS, generator=generator) + 0.5, torch.rand(RUNS, generator=generator) * 0.2
    noise = torch.rand(RUNS, H, W, generator=generator, dtype=torch.float64) * 0.05
    maps["depth"] = (scales[:, None, None] * base + shifts[:, None, None] + noise)[..., None].expand(-1, -1, -1, 3)
    maps["color"] = torch.rand(1, H, W, 3, generator=generator, dtype=torch.float64).expand(RUNS, -1, -1, -1)
    return maps


def test_albedo_and_irradiance_average_in_linear_light(runs):
    combined, spread = combine_runs(runs)
    for name in ("albedo", "irradiance"):
        linear = srgb_to_linear(runs[name].numpy())
        assert np.abs(combined[name][0].numpy() - linear_to_srgb(linear.mean(0))).max() < 1e-12
        assert np.abs(spread[name][0, ..., 0].numpy() - np.clip(linear.std(0).mean(-1), 0, 1)).max() < 1e-12


def test_depth_runs_are_aligned_by_scale_and_shift_to_their_median(runs):
    combined, spread = combine_runs(runs)
    d = runs["depth"][..., 0].reshape(RUNS, -1).numpy()
    reference = np.median(d, axis=0)
    aligned = []
    for run in d:   # least squares [run, 1] @ (s, t) = reference
        design = np.stack([run, np.ones_like(run)], 1)
        (s, t), *_ = np.linalg.lstsq(design, reference, rcond=None)
        aligned.append(s * run + t)
    aligned = np.array(aligned)
    assert np.abs(combined["depth"][0, ..., 0].numpy().ravel() - np.clip(aligned.mean(0), 0, 1)).max() < 1e-12
    assert np.abs(spread["depth"][0, ..., 1].numpy().ravel() - np.clip(aligned.std(0), 0, 1)).max() < 1e-12
    # Runs that differ only by scale and shift have no spread once aligned.
    exact = runs["depth"][:1] * torch.tensor([1.0, 0.5, 2.0, 0.7, 0.9], dtype=torch.float64)[:, None, None, None] + 0.1
    assert combine_runs({"depth": exact})[1]["depth"].max() < 1e-12


def test_normals_are_the_renormalised_mean_with_angular_spread(runs):
    combined, spread = combine_runs(runs)
    vectors = runs["normal"].numpy() * 2 - 1
    vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)
    mean = vectors.mean(0)
    mean /= np.linalg.norm(mean, axis=-1, keepdims=True)
    assert np.abs(combined["normal"][0].numpy() - (mean + 1) / 2).max() < 1e-12
    angles = np.degrees(np.arccos(np.clip((vectors * mean).sum(-1), -1, 1))).mean(0) / 90
    assert np.abs(spread["normal"][0, ..., 2].numpy() - np.clip(angles, 0, 1)).max() < 1e-7


def test_given_color_is_kept_and_one_run_has_no_spread(runs):
    combined, spread = combine_runs(runs)
    assert torch.equal(combined["color"], runs["color"][:1]) and spread["color"].max() == 0
    single = {name: images[:1] for name, images in runs.items()}
    combined, spread = combine_runs(single)
    assert all(float(u.max()) < 1e-12 for u in spread.values())
    assert torch.allclose(combined["albedo"], single["albedo"], atol=1e-12)


def test_an_ensemble_of_one_returns_the_maps_as_decoded(runs):
    """One run per scene is no ensemble: the very tensors come back (no linear-light round
    trip, no greying, no renormalisation), with zero uncertainty."""
    single = {name: images[:2] for name, images in runs.items()}
    combined, spread = combine_ensemble(single, 1)
    assert all(combined[name] is single[name] for name in single)
    assert all(spread[name].shape == single[name].shape and not spread[name].any() for name in single)


def test_scenes_are_grouped_scene_major(runs):
    two = {name: torch.cat([images, images.flip(0)]) for name, images in runs.items()}
    combined, spread = combine_ensemble(two, RUNS)
    first, _ = combine_runs(runs)
    assert combined["albedo"].shape == (2, H, W, 3) and spread["normal"].shape == (2, H, W, 3)
    assert torch.allclose(combined["albedo"][0], first["albedo"][0], atol=1e-12)
    with pytest.raises(InputError, match="whole number"):
        combine_ensemble(two, 3)


def test_a_constant_run_gets_zero_scale():
    values = torch.tensor([[0.5, 0.5, 0.5], [0.1, 0.2, 0.3]], dtype=torch.float64)
    aligned = align_scale_shift(values, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    assert torch.allclose(aligned[0], torch.full((3,), 2.0, dtype=torch.float64))
    assert torch.allclose(aligned[1], torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
