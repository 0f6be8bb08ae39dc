"""Conversions round-trip, recomposition restores its input, relight and material edit
follow color = albedo x irradiance in linear light, and bad input gets a clear error."""
import pytest
import torch

from lumix_engine.errors import InputError
from lumix_engine.intrinsics import (
    Light,
    convert_convention,
    decode_normals,
    depth_to_image,
    encode_normals,
    invert,
    irradiance_from_lights,
    linear_to_srgb,
    material_edit,
    normalize_normals,
    recompose,
    relight,
    render_scene,
    residual,
    srgb_to_linear,
)


def random_image(seed: int, shape=(2, 24, 32, 3)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_srgb_linear_round_trip_and_reference_values():
    values = random_image(0)
    assert (linear_to_srgb(srgb_to_linear(values)) - values).abs().max() < 1e-12
    assert (srgb_to_linear(linear_to_srgb(values)) - values).abs().max() < 1e-12
    # IEC 61966-2-1 reference points: mid-grey and the two ends of the linear segment.
    assert abs(float(srgb_to_linear(torch.tensor(0.5, dtype=torch.float64))) - 0.21404114048223255) < 1e-12
    assert abs(float(linear_to_srgb(torch.tensor(0.0031308, dtype=torch.float64))) - 0.04044994) < 1e-7
    assert float(srgb_to_linear(torch.tensor(1.0, dtype=torch.float64))) == pytest.approx(1.0, abs=1e-12)


def test_float32_conversions_agree_with_the_float64_curve_within_a_few_ulp():
    """The power is computed as exp(g log x) for speed: in float32 it stays within a relative
    1e-6 (a few ulp) of the float64 piecewise curve, from black through both thresholds to HDR values,
    and keeps 0, 1, inf and NaN."""
    generator = torch.Generator().manual_seed(5)
    values = torch.cat([torch.rand(100_000, generator=generator, dtype=torch.float64) ** 3 * 4,
                        torch.tensor([0.0, 0.0031308, 0.04045, 1.0], dtype=torch.float64)])
    for convert, threshold in ((srgb_to_linear, 0.04045), (linear_to_srgb, 0.0031308)):
        slope, curve = (1 / 12.92, lambda x: ((x + 0.055) / 1.055) ** 2.4) if threshold == 0.04045 else \
            (12.92, lambda x: 1.055 * x ** (1 / 2.4) - 0.055)
        expected = torch.where(values <= threshold, values * slope, curve(values))
        ours = convert(values.float()).double()
        assert ((ours - expected).abs() / expected.clamp_min(1e-30)).max() < 1e-6
        special = convert(torch.tensor([0.0, 1.0, float("inf"), float("nan")]))
        assert special[0] == 0 and abs(float(special[1]) - 1) < 2e-7 and special[2] == float("inf") and special[3].isnan()


def test_opengl_directx_round_trip_flips_green_only():
    normal_image = encode_normals(render_scene(1, 40, 30).normal)
    directx = convert_convention(normal_image, "opengl", "directx")
    assert torch.equal(directx[..., [0, 2]], normal_image[..., [0, 2]])
    assert (directx[..., 1] - (1 - normal_image[..., 1])).abs().max() < 1e-7
    assert (directx - normal_image).abs().max() > 0.3    # the floor's +Y really flipped
    back = convert_convention(directx, "directx", "opengl")
    assert (back - normal_image).abs().max() < 1e-6


def test_normal_encoding_round_trip_and_renormalisation():
    vectors = normalize_normals(random_image(1) * 2 - 1)
    assert (decode_normals(encode_normals(vectors)) - vectors).abs().max() < 1e-12
    scaled = normalize_normals(vectors * 3.7)
    assert (scaled - vectors).abs().max() < 1e-12
    zero = normalize_normals(torch.zeros(1, 1, 1, 3))
    assert torch.equal(zero, torch.tensor([[[[0.0, 0.0, 1.0]]]]))


def test_depth_export_is_near_white_and_invert_twice_is_identity():
    scene = render_scene(2, 64, 48)
    image = depth_to_image(scene.depth, normalization="minmax")
    assert image.shape == (1, 48, 64, 3)
    depth = scene.depth[..., 0]
    nearest, farthest = depth == depth.min(), depth == depth.max()
    assert (image[..., 0][nearest] == 1).all() and (image[..., 0][farthest] == 0).all()
    assert (invert(invert(image)) - image).abs().max() < 1e-7   # float rounding of 1 - (1 - x)
    flipped = depth_to_image(scene.depth, normalization="minmax", invert_output=True)
    assert (flipped + image - 1).abs().max() < 1e-6
    # A near-dark image and a near-white image of the same depth export the same.
    assert (depth_to_image(flipped, source="near_dark", normalization="minmax") - image).abs().max() < 1e-6
    assert (depth_to_image(image, source="near_white", normalization="minmax") - image).abs().max() < 1e-6


def test_percentile_normalisation_ignores_an_outlier():
    depth = torch.linspace(1, 2, 100 * 100).reshape(1, 100, 100)
    depth[0, 0, 0] = 1e-3                      # one absurdly near pixel
    minmax = depth_to_image(depth, normalization="minmax")
    robust = depth_to_image(depth, normalization="percentile", low_percentile=2, high_percentile=98)
    assert minmax[0, 50, 50, 0] < 0.01         # compressed to black by the outlier
    assert 0.3 < robust[0, 50, 50, 0] < 0.7    # spread over the range
    assert robust.min() == 0 and robust.max() == 1


def test_residual_recomposition_restores_the_input():
    albedo, irradiance, color = random_image(2), random_image(3), random_image(4)
    restored = recompose(albedo, irradiance, residual=residual(albedo, irradiance, color))
    assert (restored - color).abs().max() < 1e-9
    assert (recompose(albedo, irradiance) - color).abs().max() > 0.1   # the residual mattered


def test_exposure_is_in_stops():
    albedo, irradiance = random_image(5) * 0.5, random_image(6) * 0.5
    once = srgb_to_linear(recompose(albedo, irradiance))
    brighter = srgb_to_linear(recompose(albedo, irradiance, exposure=1.0))
    assert (brighter - 2 * once).abs().max() < 1e-9


def test_relight_is_lambertian_in_the_normal_map():
    scene = render_scene(3, 48, 40)
    normal_image = encode_normals(scene.normal.double())
    light = Light("directional", (0.0, 2.0, 2.0), color=(1.0, 0.8, 0.6), intensity=0.7)
    irradiance = irradiance_from_lights(normal_image, [light], ambient=(0.05, 0.1, 0.15))
    cosine = (scene.normal.double() @ torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64) / 2 ** 0.5).clamp_min(0)
    expected = torch.tensor([0.05, 0.1, 0.15], dtype=torch.float64) + cosine[..., None] * torch.tensor(
        [0.7, 0.56, 0.42], dtype=torch.float64)
    assert (srgb_to_linear(irradiance) - expected).abs().max() < 1e-6
    color, returned = relight(scene.albedo.double(), normal_image, [light], ambient=(0.05, 0.1, 0.15))
    assert torch.equal(returned, irradiance)
    assert (color - recompose(scene.albedo.double(), irradiance)).abs().max() < 1e-12
    # A user-supplied irradiance is used as given: the scene's own gives back its color.
    own, _ = relight(scene.albedo, irradiance=scene.irradiance)
    assert (own - scene.color).abs().max() < 1e-5


def test_material_edit_tints_only_inside_the_mask():
    scene = render_scene(4, 48, 40)
    unchanged, _ = material_edit(scene.albedo, scene.irradiance)
    assert (unchanged - scene.color).abs().max() < 1e-5
    mask = torch.zeros(1, 40, 48)
    mask[:, :, 24:] = 1
    color, albedo = material_edit(scene.albedo, scene.irradiance, tint=(0.5, 1.0, 1.0), mask=mask)
    linear_before, linear_after = srgb_to_linear(scene.color.double()), srgb_to_linear(color.double())
    assert (linear_after[:, :, 24:, 0] - 0.5 * linear_before[:, :, 24:, 0]).abs().max() < 1e-5
    assert (linear_after[:, :, :24] - linear_before[:, :, :24]).abs().max() < 1e-5
    swapped, new_albedo = material_edit(scene.albedo, scene.irradiance, new_albedo=scene.irradiance)
    assert torch.equal(new_albedo, linear_to_srgb(srgb_to_linear(scene.irradiance).clamp(0, 1)))


def test_bad_input_gets_an_error_that_names_the_problem():
    albedo = random_image(7)
    with pytest.raises(InputError, match="pixel-aligned"):
        recompose(albedo, random_image(8, (2, 24, 31, 3)))
    with pytest.raises(InputError, match="1 channel but 3 are needed"):
        recompose(albedo, albedo[..., :1])
    with pytest.raises(InputError, match="unsqueeze"):
        recompose(albedo[0], albedo[0])
    with pytest.raises(InputError, match="float"):
        recompose((albedo * 255).to(torch.uint8), albedo)
    with pytest.raises(InputError, match="normalization"):
        depth_to_image(albedo, normalization="median")
    with pytest.raises(InputError, match="directional"):
        irradiance_from_lights(albedo, [Light("point", (0.0, 1.0, 0.0))])


def test_png16_round_trip_keeps_sixteen_bits(tmp_path):
    from PIL import Image

    from lumix_engine.image_io import decode_png16, save_png16
    image = random_image(9, (1, 20, 30, 3))[0]
    path = save_png16(tmp_path / "map.png", image, text={"lumix": "albedo"})
    stored = decode_png16(path.read_bytes())
    assert stored.shape == (20, 30, 3) and stored.dtype.name == "uint16"
    assert (torch.from_numpy(stored.astype("float64")) / 65535 - image).abs().max() <= 0.5 / 65535 + 1e-12
    assert len(set(stored.ravel().tolist())) > 256          # more levels than 8 bits hold
    with Image.open(path) as opened:                         # a valid PNG for other readers
        assert opened.size == (30, 20)


def test_colour_text_parses_hex_as_srgb_and_triples_as_linear():
    from lumix_engine.intrinsics.checks import parse_rgb
    assert parse_rgb("#ffffff") == pytest.approx((1.0, 1.0, 1.0))
    assert parse_rgb("#808080")[0] == pytest.approx(float(srgb_to_linear(torch.tensor(128 / 255, dtype=torch.float64))))
    assert parse_rgb("1, 0.5 0.25") == (1.0, 0.5, 0.25)
    with pytest.raises(InputError, match="#RRGGBB"):
        parse_rgb("orange")


def test_grey_image_expands_to_rgb_only_when_asked():
    import pytest
    import torch

    from lumix_engine.errors import InputError
    from lumix_engine.intrinsics.checks import as_image
    grey = torch.rand(2, 4, 5, 1)
    assert torch.equal(as_image(grey, "depth", expand_grey=True), grey.expand(2, 4, 5, 3))
    with pytest.raises(InputError, match="1 channel but 3 are needed"):
        as_image(grey, "depth")
