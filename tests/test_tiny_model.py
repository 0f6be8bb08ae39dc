"""The shipped tiny LumiX: it loads from the repository, its files are the published
layout and small, its outputs are deterministic per seed, and its decomposition of a fixed
held-out render stays within the errors recorded when it was trained."""
from __future__ import annotations

import json

import pytest
import torch

from lumix_engine.intrinsics import render_scene
from lumix_engine.method.checkpoint import KEY_PATTERN
from lumix_engine.tiny_trained.data import HELDOUT_SEED_START
from lumix_engine.tiny_trained.metrics import decomposition_errors
from lumix_engine.tiny_trained.model import ASSETS, TinyLumiX
from lumix_engine.tiny_trained.text import layout_caption

RECORDED = json.loads((ASSETS / "recorded_errors.json").read_text())


@pytest.fixture(scope="module")
def model():
    return TinyLumiX.load()


def test_shipped_files_are_small_safetensors_in_the_published_layout():
    total = sum(p.stat().st_size for p in ASSETS.iterdir())
    assert total < 20 * 1024 * 1024
    assert (ASSETS / "MODEL_CARD.md").exists()
    from safetensors import safe_open
    with safe_open(str(ASSETS / "lumix.safetensors"), "pt") as handle:
        assert all(KEY_PATTERN.match(key) for key in handle.keys())


def test_generation_is_deterministic_per_seed(model):
    prompt = "red sphere left and blue cube right on grey and white checkered floor, teal wall, light from upper left"
    first, again = model.generate(prompt, seed=3, steps=4), model.generate(prompt, seed=3, steps=4)
    other = model.generate(prompt, seed=4, steps=4)
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not torch.equal(first["albedo"], other["albedo"])
    assert all(image.shape == (1, 64, 64, 3) for image in first.values())


def test_decomposition_of_a_fixed_heldout_render_stays_within_recorded_errors(model):
    scene = render_scene(HELDOUT_SEED_START + RECORDED["scene_offset"], 64, 64)
    truth = scene.images()
    maps = model.decompose(truth["color"].float(), layout_caption(scene.scene), seed=RECORDED["seed"],
                           steps=RECORDED["steps"])
    assert torch.equal(maps["color"], truth["color"].float())   # the given map comes back as given
    errors = decomposition_errors(maps, truth["albedo"].float(), truth["irradiance"].float(), scene.depth.float(),
                                  scene.normal.float())
    for name, bound in RECORDED["bounds"].items():
        assert float(errors[name][0]) <= bound, (name, float(errors[name][0]), bound)


def test_decomposition_beats_the_trivial_one_on_all_four_maps(model):
    """On 8 held-out renders (fixed seeds, so deterministic): a regression guard. The target
    itself is measured on 200 (benchmarks/tiny_model_targets.py, evaluation/tiny_targets.py), where the albedo margin is
    the smallest of the four (model card)."""
    from evaluation.tiny_ablation import heldout, trivial_decomposition
    images, truth, captions = heldout(8)
    maps = model.decompose(images["color"], captions, seed=0, steps=10)
    errors = {name: float(v.mean()) for name, v in decomposition_errors(maps, **truth).items()}
    trivial = {name: float(v.mean())
               for name, v in decomposition_errors(trivial_decomposition(images["color"]), **truth).items()}
    for name in ("albedo_si_rmse", "irradiance_si_rmse", "depth_absrel", "normal_degrees"):
        assert errors[name] < trivial[name], (name, errors[name], trivial[name])


def test_albedo_from_the_image_and_exact_irradiance_is_the_exact_albedo():
    from evaluation.tiny_targets import albedo_from_irradiance
    from lumix_engine.tiny_trained.metrics import si_rmse
    scene = render_scene(HELDOUT_SEED_START + 3, 64, 64).images()
    derived = albedo_from_irradiance(scene["color"].float(), scene["irradiance"].float())
    assert float(si_rmse(derived, scene["albedo"].float())[0]) < 0.01
    assert float(si_rmse(scene["color"].float(), scene["albedo"].float())[0]) > 0.03   # the check can fail


def test_paired_margins_are_zero_for_the_trivial_decomposition_and_negative_for_the_truth():
    from evaluation.tiny_ablation import heldout, trivial_decomposition
    from evaluation.tiny_targets import paired_margins
    images, truth, _ = heldout(4)
    same = paired_margins(trivial_decomposition(images["color"]), images["color"], truth)
    assert all(m["mean"] == 0 and m["model_wins_share"] == 0 for m in same.values())
    exact = paired_margins(images, images["color"], truth)
    assert all(m["mean"] < 0 and m["standard_error"] > 0 and m["model_wins_share"] == 1 for m in exact.values()), exact


def test_heldout_scenes_can_start_at_an_offset():
    # The certification range of the model card (--scene-offset) is the renders it names.
    from evaluation.tiny_ablation import heldout
    images, truth, captions = heldout(2, 16, offset=7)
    scene = render_scene(HELDOUT_SEED_START + 8, 16, 16)
    assert torch.equal(images["color"][1:], scene.images()["color"].float())
    assert torch.equal(truth["depth"][1:], scene.depth.float())
    assert captions[1] == layout_caption(scene.scene)
    default, _, _ = heldout(1, 16)
    assert torch.equal(default["color"], render_scene(HELDOUT_SEED_START, 16, 16).images()["color"].float())
