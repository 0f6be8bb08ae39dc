"""Environment-map relighting: SH9 irradiance (Ramamoorthi & Hanrahan 2001) against brute-force
integration of the same environment over the exact normals of the ground-truth renderer."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lumix_engine.errors import InputError
from lumix_engine.formats.exr import write_exr
from lumix_engine.formats.hdr import load_environment
from lumix_engine.intrinsics import Light, decode_normals, relight, render_scene, srgb_to_linear
from lumix_engine.intrinsics.environment import (
    environment_directions,
    procedural_sky,
    sh9_coefficients,
    sh9_irradiance,
)
from lumix_engine.intrinsics.recompose import irradiance_from_lights
from lumix_engine.intrinsics.render import environment_irradiance

sky = procedural_sky


def sh9_errors(normals, environment, rotation):
    """Per-pixel relative error of SH9 against brute force: (mean, max)."""
    exact = environment_irradiance(normals, environment, rotation)
    fitted = sh9_irradiance(normals, sh9_coefficients(environment, rotation))
    relative = (fitted - exact).abs() / exact
    return float(relative.mean()), float(relative.max())


@pytest.fixture(scope="module")
def normals():
    return render_scene(11, 40, 40).normal[0].double()


@pytest.mark.parametrize("sharpness, peak, rotation", [
    (16.0, 0.0, 0.0),     # overcast: sky and ground only
    (16.0, 0.0, 30.0),
    (2.0, 4.0, 0.0),      # a broad bright region
    (2.0, 4.0, 30.0),
])
def test_sh9_matches_brute_force_on_ground_truth_within_1_percent(normals, sharpness, peak, rotation):
    # Ramamoorthi & Hanrahan's measure: the average relative error over the image, <= 1 %,
    # for smooth lighting (what nine coefficients can represent).
    mean, largest = sh9_errors(normals, sky(sun_sharpness=sharpness, sun_peak=peak), rotation)
    assert mean <= 0.01 and largest <= 0.015


@pytest.mark.parametrize("sharpness, peak", [(16.0, 4.0), (64.0, 4.0), (300.0, 20.0)])
def test_sh9_limit_with_a_sun(normals, sharpness, peak):
    # A sun is more than nine coefficients can follow: the average error is 1-2.5 % and the
    # largest, on surfaces facing away from it where irradiance is small, stays under the
    # ~9 % that R&H give for a point source. A sun is better given as a directional light
    # beside the environment (both add in relight).
    mean, largest = sh9_errors(normals, sky(sun_sharpness=sharpness, sun_peak=peak), 0.0)
    assert 0.01 < mean <= 0.03 and largest <= 0.09


def test_uniform_environment_gives_irradiance_one_and_color_equal_albedo(normals):
    uniform = torch.ones(64, 128, 3)
    assert torch.allclose(sh9_irradiance(normals, sh9_coefficients(uniform)), torch.ones_like(normals), atol=2e-3)
    assert torch.allclose(environment_irradiance(normals, uniform), torch.ones_like(normals), atol=2e-3)


def test_directions_follow_the_stated_convention():
    d, solid = environment_directions(4, 8)
    assert abs(float(solid.sum()) - 4 * math.pi) < 0.2
    centre = environment_directions(2, 4)[0][:, 1:3].mean(dim=(0, 1))   # columns around u = 0.5
    assert centre[2] < -0.4                                            # the image centre looks along -Z
    quarter = environment_directions(2, 8)[0][:, 5:7].mean(dim=(0, 1))  # u around 0.75
    assert quarter[0] > 0.4                                             # ... the right quarter along +X
    assert d[0, 0, 1] > 0.9 and d[-1, 0, 1] < -0.9                      # top row up, bottom row down
    # Rotating by +90 degrees moves what was at the centre (-Z) to the right (+X).
    turned = environment_directions(2, 4, rotation=90)[0][:, 1:3].mean(dim=(0, 1))
    assert turned[0] > 0.4 and abs(float(turned[2])) < 1e-9


def test_a_bright_spot_lights_the_normals_facing_it():
    spot = torch.zeros(32, 64, 3)
    spot[4:8, 46:50] = 50.0   # up and to the right
    up_right = torch.tensor([[0.6, 0.6, 0.5]], dtype=torch.float64)
    away = -up_right
    coefficients = sh9_coefficients(spot)
    assert float(sh9_irradiance(up_right / up_right.norm(), coefficients)[0, 0]) > 10 * max(
        float(sh9_irradiance(away / away.norm(), coefficients)[0, 0]), 1e-3)


def test_relight_adds_environment_to_directional_lights():
    scene = render_scene(3, 24, 24)
    maps = scene.images()
    environment = sky()
    light = Light("directional", (0.2, 1.0, 0.3), (1.0, 0.9, 0.8), 0.5)
    _, both = relight(maps["albedo"], maps["normal"], [light], ambient=(0, 0, 0), environment=environment,
                      rotation=20, environment_intensity=0.7)
    lights_only = irradiance_from_lights(maps["normal"], [light], (0, 0, 0))
    unit = decode_normals(maps["normal"]).double()
    env_only = 0.7 * environment_irradiance(unit, environment, 20)
    expected = srgb_to_linear(lights_only.double()) + env_only
    assert float(((srgb_to_linear(both.double()) - expected).abs() / expected).mean()) < 0.01


def test_load_environment_from_exr_and_srgb_image(tmp_path):
    environment = sky(8)
    path = write_exr(tmp_path / "sky.exr", {c: environment[..., k].numpy() for k, c in enumerate("RGB")})
    assert torch.equal(load_environment(path), environment)
    image = torch.rand(1, 8, 16, 3)
    assert torch.allclose(load_environment(image, srgb=True), srgb_to_linear(image[0]))


@pytest.mark.parametrize("make, message", [
    (lambda: torch.ones(16, 16, 3), "2:1"),
    (lambda: torch.ones(8, 16, 3).index_put_((torch.tensor([1]),), torch.tensor(float("inf"))), "infinite"),
    (lambda: torch.ones(8, 16, 3).index_put_((torch.tensor([1]),), torch.tensor(float("nan"))), "NaN"),
    (lambda: torch.ones(8, 16, 3) - 2, "negative"),
    (lambda: torch.ones(2, 8, 16, 3), "batch"),
])
def test_bad_environment_maps_are_refused(make, message):
    with pytest.raises(InputError, match=message):
        sh9_coefficients(make())


def rgbe(values: np.ndarray) -> np.ndarray:
    """Radiance's float -> RGBE encoding (frexp of the largest channel), uint8 [H, W, 4]."""
    largest = values.max(-1)
    mantissa, exponent = np.frexp(largest)
    scale = np.where(largest > 1e-32, mantissa * 256.0 / np.where(largest > 0, largest, 1), 0)
    out = np.zeros(values.shape[:2] + (4,), np.uint8)
    out[..., :3] = np.clip(values * scale[..., None], 0, 255).astype(np.uint8)
    out[..., 3] = np.where(largest > 1e-32, exponent + 128, 0)
    return out


def write_hdr(path, pixels: np.ndarray, rle: bool) -> None:
    height, width = pixels.shape[:2]
    body = bytearray()
    for row in pixels:
        if not rle:
            body += row.tobytes()
            continue
        body += bytes([2, 2, width >> 8, width & 255])
        for channel in range(4):
            values, k = row[:, channel], 0
            while k < width:   # runs of equal bytes where they pay, literal stretches elsewhere
                run = 1
                while k + run < width and run < 127 and values[k + run] == values[k]:
                    run += 1
                if run >= 3:
                    body += bytes([128 + run, values[k]])
                    k += run
                else:
                    stretch = min(width - k, 128)
                    body += bytes([stretch]) + values[k:k + stretch].tobytes()
                    k += stretch
    path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n" + f"-Y {height} +X {width}\n".encode() + bytes(body))


@pytest.mark.parametrize("rle", [False, True])
def test_radiance_hdr_files_are_read_as_rgbe_c_decodes_them(tmp_path, rle):
    environment = sky(16).numpy()
    environment[2:4, 20:30] = 0.0                       # black pixels (exponent 0) and flat runs
    encoded = rgbe(environment)
    write_hdr(tmp_path / "sky.hdr", encoded, rle)
    loaded = load_environment(tmp_path / "sky.hdr").numpy()
    exponent = encoded[..., 3].astype(np.int32)
    # rgbe.c's m 2^(E - 136) (imagecodecs); Radiance's own decoder adds half a step (m + 0.5)
    expected = encoded[..., :3] * np.where(exponent > 0, np.ldexp(1.0, exponent - 136), 0)[..., None]
    assert np.array_equal(loaded, expected.astype(np.float32))
    assert np.abs(loaded - environment).max() <= 0.01 * environment.max()   # 8-bit mantissa


def test_environment_files_other_than_exr_and_hdr_are_named(tmp_path):
    (tmp_path / "sky.png").write_bytes(b"x")
    with pytest.raises(InputError, match="OpenEXR"):
        load_environment(tmp_path / "sky.png")
    (tmp_path / "bad.hdr").write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 4 +X 8\n\x01\x02")
    with pytest.raises(InputError, match="ends early"):
        load_environment(tmp_path / "bad.hdr")
    (tmp_path / "xyz.hdr").write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_xyze\n\n-Y 4 +X 8\n" + bytes(128))
    with pytest.raises(InputError, match="XYZ colour"):
        load_environment(tmp_path / "xyz.hdr")
    # a 100-byte file that claims 400 MP is refused before 4.8 GB of floats are allocated
    (tmp_path / "huge.hdr").write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 20000\n" + bytes(64))
    with pytest.raises(InputError, match="20000 x 20000 = 400 MP, over the limit"):
        load_environment(tmp_path / "huge.hdr")
    (tmp_path / "sideways.hdr").write_bytes(b"#?RADIANCE\n\n+X 8 -Y 4\n")
    with pytest.raises(InputError, match="-Y H \\+X W"):
        load_environment(tmp_path / "sideways.hdr")
    path = write_exr(tmp_path / "grey.exr", {"Y": np.ones((4, 8), np.float32)})
    with pytest.raises(InputError, match="no R, G, B"):
        load_environment(path)
