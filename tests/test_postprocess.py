"""The named post-processing steps against plain float64 references, and where they run:
one run of `finish_photos` returns the decoded maps with exactly the steps asked for."""
import numpy as np
import pytest
import torch

from lumix_engine.apps.photo import describe, finish_photos, prepare_photos
from lumix_engine.errors import InputError
from lumix_engine.intrinsics.postprocess import (
    ENGINE_STEPS,
    apply_steps,
    check_steps,
    default_steps,
    describe_steps,
    grey_depth,
    unit_normals,
)
from lumix_engine.modalities import MAP_NAMES


def random_maps(batch, height, width, seed=0, dtype=torch.float32):
    """Decoded-looking maps: random in (0, 1), channels of depth unequal, normals not unit."""
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(batch, height, width, 3, generator=g, dtype=torch.float64).to(dtype) * 0.9 + 0.05
            for name in MAP_NAMES}


def test_grey_depth_is_the_channel_mean():
    depth = random_maps(2, 5, 7, dtype=torch.float64)["depth"]
    mean = depth.numpy().mean(-1, keepdims=True)
    assert np.abs(grey_depth(depth).numpy() - np.repeat(mean, 3, -1)).max() < 1e-15


def test_unit_normals_rescale_the_decoded_vectors_and_keep_their_direction():
    normal = random_maps(2, 5, 7, dtype=torch.float64)["normal"]
    normal[0, 0, 0] = 0.5   # a zero vector: no direction, so +Z (facing the viewer)
    vectors = normal.numpy() * 2 - 1
    lengths = np.linalg.norm(vectors, axis=-1, keepdims=True)
    expected = np.where(lengths > 1e-8, vectors / np.maximum(lengths, 1e-8), [0.0, 0.0, 1.0])
    out = unit_normals(normal)
    assert np.abs(out.numpy() - (expected + 1) / 2).max() < 1e-15
    assert np.abs(np.linalg.norm(out.numpy() * 2 - 1, axis=-1) - 1).max() < 1e-12
    assert unit_normals(normal.float()).dtype == torch.float32


def test_steps_are_named_checked_and_ordered():
    assert default_steps("engine") == ENGINE_STEPS == ("grey_depth", "unit_normals")
    assert default_steps("authors") == ()
    assert check_steps(None, "authors") == () and check_steps(None) == ENGINE_STEPS
    assert check_steps("none") == () and check_steps("unit_normals, grey_depth") == ENGINE_STEPS
    assert check_steps(["unit_normals", "unit_normals"]) == ("unit_normals",)
    with pytest.raises(InputError, match=r"\['grey'\] unknown"):
        check_steps(["grey"])
    assert describe_steps(()) == "post-processing: none (maps as decoded)"
    assert describe_steps(ENGINE_STEPS) == "post-processing: grey_depth, unit_normals"
    maps = random_maps(1, 4, 4)
    done = apply_steps(maps, ("grey_depth",))
    assert torch.equal(done["depth"], grey_depth(maps["depth"]))
    assert all(done[name] is maps[name] for name in MAP_NAMES if name != "depth")


@pytest.mark.parametrize("steps", [(), ("grey_depth",), ("unit_normals",), ENGINE_STEPS])
def test_one_run_at_the_working_size_returns_the_decoded_maps_with_exactly_the_steps_asked(steps):
    photo = torch.rand(2, 32, 48, 3, generator=torch.Generator().manual_seed(4))
    prepared = prepare_photos({"color": photo}, size=(48, 32), postprocess=steps)
    decoded = random_maps(2, 32, 48)
    maps, uncertainty = finish_photos(decoded, prepared)
    for name in ("albedo", "irradiance"):
        assert torch.equal(maps[name], decoded[name]), name          # no linear-light round trip
    assert torch.equal(maps["depth"], grey_depth(decoded["depth"]) if "grey_depth" in steps else decoded["depth"])
    assert torch.equal(maps["normal"], unit_normals(decoded["normal"]) if "unit_normals" in steps
                       else decoded["normal"])
    assert torch.equal(maps["color"], photo)                          # given: as given
    assert all(not u.any() for u in uncertainty.values())
    assert describe(prepared).endswith(describe_steps(steps))


def test_the_engine_steps_hold_at_the_photo_size_and_never_touch_a_given_map():
    photo = torch.rand(1, 90, 120, 3, generator=torch.Generator().manual_seed(5))
    prepared = prepare_photos({"color": photo}, megapixels=0.0625)
    work_w, work_h = prepared.plan.working
    assert (work_w, work_h) != (120, 90)
    maps, _ = finish_photos(random_maps(1, work_h, work_w), prepared)
    depth = maps["depth"]
    assert torch.equal(depth[..., 0], depth[..., 1]) and torch.equal(depth[..., 0], depth[..., 2])
    assert ((maps["normal"] * 2 - 1).norm(dim=-1) - 1).abs().max() < 1e-5
    given_depth = random_maps(1, 90, 120, seed=6)["depth"]   # channels unequal
    prepared = prepare_photos({"depth": given_depth}, megapixels=0.0625)
    assert prepared.postprocess == ("unit_normals",)   # grey_depth has no free map: not run, not reported
    maps, _ = finish_photos(random_maps(1, *prepared.plan.working[::-1]), prepared)
    assert torch.equal(maps["depth"], given_depth)


def test_an_ensemble_keeps_its_own_combination_and_the_steps_hold_after_it():
    photo = torch.rand(1, 32, 48, 3, generator=torch.Generator().manual_seed(7))
    decoded = random_maps(3, 32, 48, seed=8)
    none = prepare_photos({"color": photo}, size=(48, 32), ensemble_size=3, postprocess="none")
    engine = prepare_photos({"color": photo}, size=(48, 32), ensemble_size=3)
    combined, spread = finish_photos(decoded, none)
    stepped, _ = finish_photos(decoded, engine)
    # The combination itself gives grey depth and unit normals; the steps change only rounding.
    assert torch.equal(combined["depth"][..., 0], combined["depth"][..., 2])
    assert ((combined["normal"] * 2 - 1).norm(dim=-1) - 1).abs().max() < 1e-5
    assert all((stepped[n] - combined[n]).abs().max() < 1e-6 for n in ("depth", "normal"))
    assert all(spread[f"{n}_uncertainty"].max() > 0 for n in ("albedo", "irradiance", "depth", "normal"))
    assert "ensemble_size 3" in describe(engine)
