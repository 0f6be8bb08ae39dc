"""Photos at their own size: the working-size rule, guided upsampling with exact
recomposition at full size, and bad photos."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from lumix_engine.apps.photo import finish_photos, prepare_photos
from lumix_engine.errors import InputError
from lumix_engine.image_io import load_image, save_png16
from lumix_engine.intrinsics import recompose, render_scene
from lumix_engine.intrinsics.color_space import srgb_to_linear
from lumix_engine.intrinsics.normals import decode_normals
from lumix_engine.intrinsics.upsample import upsample_albedo_irradiance, upsample_maps
from lumix_engine.method.resolution import (
    DEFAULT_MEGAPIXELS,
    MAX_ASPECT,
    MAX_MEGAPIXELS,
    MAX_SIDE,
    plan_photo,
    working_size,
)
from lumix_engine.modalities import MAP_NAMES

SIZES = [(1001, 667), (667, 1001), (4000, 3000), (3000, 4000), (64, 48), (48, 64), (4096, 1024), (1024, 4096),
         (6000, 750), (1536, 1152), (8, 8), (12000, 9000), (5000, 625)]


@pytest.mark.parametrize("width,height", SIZES)
def test_working_size_keeps_aspect_area_and_multiples_of_16(width, height):
    work_w, work_h = working_size(width, height)
    assert work_w % 16 == 0 and work_h % 16 == 0 and max(work_w, work_h) <= MAX_SIDE
    # Aspect kept up to rounding each side to 16: at most 8 px of each side.
    assert abs(work_w / work_h - width / height) <= (width / height) * (8 / work_w + 8 / work_h) * 1.01
    # Area = the budget up to that rounding (no side here is clamped to 4096 at 1.77 MP).
    budget = DEFAULT_MEGAPIXELS * 1e6
    low = (math.sqrt(budget * width / height) - 8) * (math.sqrt(budget * height / width) - 8)
    high = (math.sqrt(budget * width / height) + 8) * (math.sqrt(budget * height / width) + 8)
    assert low <= work_w * work_h <= high


def test_published_size_is_its_own_working_size_and_budgets_are_bounded():
    assert working_size(1536, 1152) == (1536, 1152)
    assert working_size(1001, 667, 512 * 512 / 1e6) == (624, 416)
    assert working_size(4096, 512, MAX_MEGAPIXELS) == (4096, 512)   # clamped to FLUX's 4096-pixel side
    for bad in (MAX_MEGAPIXELS + 0.1, 0.01, float("nan")):
        with pytest.raises(InputError, match="megapixels"):
            working_size(1000, 1000, bad)


@pytest.mark.parametrize("width,height", [(1000, 1), (1, 1000), (4, 4), (int(9 * 100), 100)])
def test_strips_and_specks_are_refused_with_the_fix(width, height):
    with pytest.raises(InputError, match="crop|pad"):
        plan_photo(width, height)
    assert MAX_ASPECT == 8.0


def test_a_108_mp_photo_comes_back_downscaled_with_a_warning():
    plan = plan_photo(12000, 9000)
    assert plan.output[0] * plan.output[1] <= 24e6 and abs(plan.output[0] / plan.output[1] - 4 / 3) < 1e-3
    assert plan.warnings and "12000x9000" in plan.warnings[0] and "max_output_megapixels" in plan.warnings[0]
    assert plan_photo(6000, 4000).output == (6000, 4000) and not plan_photo(6000, 4000).warnings


@pytest.fixture(scope="module")
def scene():
    return render_scene(5, 400, 300)


def _down(image, width, height):
    from lumix_engine.image_io import resize_images
    return resize_images(image, width, height)


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-9), (torch.float32, 2e-5)])
def test_albedo_times_irradiance_recomposes_the_full_size_photo_exactly(scene, dtype, tolerance):
    maps = {k: v.to(dtype) for k, v in scene.images().items()}
    albedo, irradiance = upsample_albedo_irradiance(_down(maps["albedo"], 96, 80), _down(maps["irradiance"], 96, 80),
                                                    maps["color"])
    assert albedo.shape == irradiance.shape == maps["color"].shape and albedo.dtype == dtype
    # In linear light (float64 reference product), and as sRGB through recompose().
    product = srgb_to_linear(albedo.double()) * srgb_to_linear(irradiance.double())
    assert (product - srgb_to_linear(maps["color"].double())).abs().max() < tolerance
    assert (recompose(albedo, irradiance) - maps["color"]).abs().max() < 1 / 255
    # ... and after the 16-bit PNG quantisation of both maps, within 1/255 everywhere.
    quantised = [torch.round(m.double() * 65535) / 65535 for m in (albedo, irradiance)]
    assert (recompose(*quantised) - maps["color"].double()).abs().max() <= 1 / 255


def test_normals_stay_unit_and_given_sizes_come_back(scene):
    maps = scene.images()
    small = {name: _down(image, 160, 112) for name, image in maps.items()}
    up = upsample_maps(small, maps["color"])
    assert set(up) == set(MAP_NAMES) and all(v.shape == (1, 300, 400, 3) for v in up.values())
    assert torch.equal(up["color"], maps["color"])
    lengths = decode_normals(up["normal"]).norm(dim=-1)
    assert (lengths - 1).abs().max() < 2e-3   # unit before the [0, 1] encoding is clipped


def test_guided_beats_bilinear_on_this_scene(scene):
    """The measurement of benchmarks/photo_upsampling.py in small: x4 upsampling."""
    from lumix_engine.tiny_trained.metrics import normal_angle, si_rmse
    maps = scene.images()
    small = {name: _down(image, 100, 75) for name, image in maps.items()}
    guided, bilinear = upsample_maps(small, maps["color"]), upsample_maps(small, maps["color"], "bilinear")
    assert si_rmse(guided["albedo"], maps["albedo"]) < 0.7 * si_rmse(bilinear["albedo"], maps["albedo"])
    assert normal_angle(guided["normal"], scene.normal) < normal_angle(bilinear["normal"], scene.normal)


def _prepare(tmp_path, array, name="photo.png", **kwargs):
    path = tmp_path / name
    Image.fromarray(array).save(path)
    return prepare_photos({"color": path}, **kwargs)


@pytest.mark.parametrize("shape,mode", [((667, 1001, 3), "odd"), ((1001, 667, 3), "portrait"),
                                        ((48, 64, 3), "tiny"), ((300, 2000, 3), "panorama"),
                                        ((120, 90), "grey"), ((90, 120, 4), "rgba")])
def test_any_photo_round_trips_to_its_own_size(tmp_path, shape, mode):
    rng = np.random.default_rng(0)
    prepared = _prepare(tmp_path, rng.integers(0, 255, shape, dtype=np.uint8), megapixels=0.0625, ensemble_size=2)
    height, width = shape[:2]
    work_w, work_h = prepared.plan.working
    assert prepared.working["color"].shape == (2, work_h, work_w, 3) and work_w % 16 == 0 == work_h % 16
    # Smooth maps with one hard edge each, as a model outputs them (random noise everywhere
    # would make every pixel an edge).
    decoded = {name: _down(torch.rand(2, 3, 4, 3), work_w, work_h) for name in MAP_NAMES}
    for image in decoded.values():
        image[:, :, work_w // 2:] *= 0.5
    maps, uncertainty = finish_photos(decoded, prepared)
    assert all(image.shape == (1, height, width, 3) for image in maps.values())
    assert set(uncertainty) == {f"{n}_uncertainty" for n in MAP_NAMES if n != "color"}
    assert all(u.shape == (1, height, width, 3) for u in uncertainty.values())
    assert torch.equal(maps["color"], prepared.given["color"])
    assert (recompose(maps["albedo"], maps["irradiance"]) - maps["color"]).abs().max() < 1 / 255


def test_sixteen_bit_png_keeps_its_precision(tmp_path):
    torch.manual_seed(0)
    image = torch.rand(37, 53, 3)
    save_png16(tmp_path / "photo16.png", image)
    loaded = load_image(tmp_path / "photo16.png")
    assert (loaded[0] - image).abs().max() < 1 / 65535
    grey = (np.arange(37 * 53, dtype=np.uint16).reshape(37, 53) * 30)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    assert (load_image(tmp_path / "grey16.png")[0, ..., 0].numpy() - grey / 65535).max() < 1e-6


def test_bad_photos_get_clear_messages(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InputError, match="cannot read .*notes.png as an image"):
        prepare_photos({"color": tmp_path / "notes.png"})
    bad = torch.rand(1, 64, 64, 3)
    bad[0, 3, 4, 1], bad[0, 9, 9, 0] = float("nan"), float("inf")
    with pytest.raises(InputError, match="2 pixel.*NaN or infinite"):
        prepare_photos({"color": bad})
    with pytest.raises(InputError, match="crop or pad"):
        prepare_photos({"color": torch.rand(1, 1, 900, 3)})
    for size in (0, 17, 2.0, True):
        with pytest.raises(InputError, match="ensemble_size"):
            prepare_photos({"color": torch.rand(1, 64, 64, 3)}, ensemble_size=size)
    with pytest.raises(InputError, match=r"\['grey'\] unknown.*grey_depth, unit_normals.*'none'"):
        prepare_photos({"color": torch.rand(1, 64, 64, 3)}, postprocess="grey,unit_normals")


def test_a_photo_above_the_output_cap_comes_back_downscaled_with_a_logged_warning(caplog):
    photo = torch.rand(1, 300, 400, 3)
    with caplog.at_level("WARNING", logger="lumix_engine"):
        prepared = prepare_photos({"color": photo}, megapixels=0.0625, max_output_megapixels=0.03)
    assert prepared.plan.output == (200, 150) and "above the 0.03 MP output limit" in caplog.text
    work_w, work_h = prepared.plan.working
    maps, _ = finish_photos({name: torch.full((1, work_h, work_w, 3), 0.5) for name in MAP_NAMES}, prepared)
    assert all(image.shape == (1, 150, 200, 3) for image in maps.values())


def test_a_given_depth_guides_the_other_maps_and_comes_back_as_given():
    depth = torch.rand(1, 90, 120, 3)
    prepared = prepare_photos({"depth": depth}, megapixels=0.0625)
    work_w, work_h = prepared.plan.working
    decoded = {name: _down(torch.rand(1, 3, 4, 3), work_w, work_h) for name in MAP_NAMES}
    maps, uncertainty = finish_photos(decoded, prepared)
    assert torch.equal(maps["depth"], depth) and "depth_uncertainty" not in uncertainty
    assert all(image.shape == (1, 90, 120, 3) for image in maps.values())
