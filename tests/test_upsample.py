"""Guided upsampling: the banded, vectorised path against the float64 pixel-by-pixel
reference (tests/upsample_reference.py) on random inputs, the properties the method is
chosen for (an antialiased edge comes back exact, a texture does not leak into a flat map
or a ramp), exact recomposition, the dark fallback, progress and interruption, and the
dtypes it creates."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from lumix_engine.intrinsics import recompose, upsample
from lumix_engine.intrinsics.color_space import linear_to_srgb, srgb_to_linear
from lumix_engine.intrinsics.local_linear import slope_tiles
from lumix_engine.intrinsics.upsample import (
    ALBEDO_FLOOR,
    DARK_HIGH,
    DARK_LOW,
    FITS,
    Fit,
    compute_dtype,
    guided_bands,
    local_linear_upsample,
    resize_linear,
    upsample_maps,
)
from tests import upsample_reference as reference

LOW, FULL = (6, 7), (17, 15)   # non-integer factors on both axes
FIT_SET = [Fit(3e-3), Fit(1e-2, 2, True), Fit(1e-3)]   # epsilons the size of random photos' variances


def _random_maps(seed: int, channels: int, dtype=torch.float64) -> torch.Tensor:
    """[1, C, h, w] in (0.05, 0.95), never constant."""
    generator = torch.Generator().manual_seed(seed)
    return (0.05 + 0.9 * torch.rand(1, channels, *LOW, generator=generator, dtype=torch.float64)).to(dtype)


def _random_photo(seed: int, dtype=torch.float64) -> torch.Tensor:
    """[1, H, W, 3] in (0.1, 0.9), as the pack passes photos."""
    generator = torch.Generator().manual_seed(seed)
    return (0.1 + 0.8 * torch.rand(1, *FULL, 3, generator=generator, dtype=torch.float64)).to(dtype)


def _reference(low: torch.Tensor, guide: torch.Tensor, fits: list, sizes: list) -> np.ndarray:
    """guide: linear photo [1, H, W, 3]; the working-size photo as the code makes it."""
    guide_low = resize_linear(guide.double().permute(0, 3, 1, 2), *LOW)[0].numpy()
    return reference.local_linear(low[0].double().numpy(), guide_low, guide[0].double().permute(2, 0, 1).numpy(),
                                  [(f.epsilon, f.radius, f.detrend) for f in fits], sizes)


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-9), (torch.float32, 2e-4)])
@pytest.mark.parametrize("band_pixels", [None, 40])   # one band; bands of 2 rows
def test_local_linear_upsampling_matches_the_float64_reference(dtype, tolerance, band_pixels):
    low, guide = _random_maps(1, 5, dtype), _random_photo(2, dtype)
    sizes = [2, 1, 2]   # three maps in one stack, one of them detrended over 5 x 5
    ours = local_linear_upsample(low, guide, FIT_SET, sizes, band_pixels=band_pixels)
    assert ours.dtype == dtype and ours.shape == (1, 5, *FULL)
    expected = _reference(low, guide, FIT_SET, sizes)
    assert np.abs(ours[0].double().numpy() - expected).max() < tolerance
    # The detail term is really there: the result is not bilinear.
    assert np.abs(expected - reference.bilinear(low[0].double().numpy(), *FULL)).max() > 1e-2


@pytest.mark.parametrize("tile_rows,chunk_pixels", [(1, 15), (2, 31), (3, 1 << 16)])
def test_tiles_and_chunks_give_the_reference(monkeypatch, tile_rows, chunk_pixels):
    """The fits are made tile by tile of working rows and the output chunk by chunk of output
    rows, each chunk ending where its tile's rows do: with tiles of 1 to 3 working rows
    (of 6) and chunks of 1 to all output rows, the float64 result is the reference's."""
    monkeypatch.setattr(upsample, "SLOPE_TILE_ROWS", tile_rows)
    monkeypatch.setattr(upsample, "CHUNK_PIXELS", chunk_pixels)
    low, guide = _random_maps(22, 5), _random_photo(23)
    ours = local_linear_upsample(low, guide, FIT_SET, [2, 1, 2])
    assert np.abs(ours[0].numpy() - _reference(low, guide, FIT_SET, [2, 1, 2])).max() < 1e-9


def test_fit_tiles_are_the_whole_images_fit_bit_for_bit():
    low, guide = _random_maps(24, 5), _random_photo(25)
    guide_low = resize_linear(guide.permute(0, 3, 1, 2), *LOW)
    whole = next(slope_tiles(low, guide_low, FIT_SET, [2, 1, 2], tile_rows=LOW[0]))[1].clone()
    for rows, slopes in slope_tiles(low, guide_low, FIT_SET, [2, 1, 2], tile_rows=2, overlap=1):
        assert torch.equal(slopes, whole[..., rows, :])


def test_a_photo_wider_but_shorter_than_the_working_size_still_recomposes():
    """Enlarged on one axis, shrunk on the other: the fits and plain maps are resized whole
    (antialiased), and albedo x irradiance is still the photo."""
    low = _random_maps(26, 9, torch.float32).permute(0, 2, 3, 1)                      # 6 x 7 working
    photo = _random_photo(27, torch.float32)[:, :4]                                   # 4 x 15
    out = upsample_maps({"albedo": low[..., :3], "irradiance": low[..., 3:6], "depth": low[..., 6:]}, photo)
    assert all(image.shape == (1, 4, 15, 3) for image in out.values())
    assert (recompose(out["albedo"], out["irradiance"]) - photo).abs().max() < 1 / 255


def test_small_epsilon_is_solved_accurately_in_float32():
    """Where the photo's covariance is nearly rank one (an edge between two colours) the
    slopes need a stable solve: float32 against the float64 reference at the pack's own
    epsilons, on a photo whose channels vary together."""
    generator = torch.Generator().manual_seed(3)
    grey = torch.rand(1, *FULL, 1, generator=generator, dtype=torch.float64)
    guide = (0.2 + 0.6 * grey * torch.tensor([1.0, 0.9, 0.8], dtype=torch.float64)
             + 1e-3 * torch.rand(1, *FULL, 3, generator=generator, dtype=torch.float64))
    low = resize_linear(grey.permute(0, 3, 1, 2), *LOW).repeat(1, 2, 1, 1)
    fits = [FITS["irradiance"], FITS["depth"]]
    ours = local_linear_upsample(low.float(), guide.float(), fits, [1, 1])
    expected = _reference(low, guide, fits, [1, 1])
    assert np.abs(ours[0].double().numpy() - expected).max() < 1e-3


def test_an_antialiased_two_sided_edge_comes_back_exactly():
    """The reason for the method: a pixel on an edge mixes both sides by coverage in the
    photo and in the map alike, so the map is linear in the photo, at every scale. Brought
    down 3x and back, the detail transfer restores the edge; bilinear blurs it."""
    height, width = 48, 60
    x = torch.arange(width, dtype=torch.float64)[None, :]
    y = torch.arange(height, dtype=torch.float64)[:, None]
    coverage = ((x - 29.3 - 0.4 * (y - 24)) / 1.5).clamp(-0.5, 0.5) + 0.5          # a slanted soft edge
    left, right = torch.tensor([0.6, 0.2, 0.1], dtype=torch.float64), torch.tensor([0.1, 0.3, 0.5], dtype=torch.float64)
    photo = (coverage[..., None] * left + (1 - coverage[..., None]) * right)[None]  # [1, H, W, 3], linear
    depth = (0.3 * coverage + 0.8 * (1 - coverage))[None, None]                     # [1, 1, H, W]
    low = resize_linear(depth, 16, 20)
    guided = local_linear_upsample(low, photo, FITS["depth"])
    bilinear = resize_linear(low, height, width)
    guided_error, bilinear_error = (guided - depth).abs().max(), (bilinear - depth).abs().max()
    assert guided_error < 0.02 * bilinear_error and bilinear_error > 0.1


@pytest.mark.parametrize("name", ["irradiance", "depth", "normal"])
def test_texture_does_not_leak_into_a_flat_map_or_a_ramp(name):
    generator = torch.Generator().manual_seed(4)
    texture = 0.1 + 0.8 * torch.rand(1, 32, 32, 3, generator=generator, dtype=torch.float64)
    flat = torch.full((1, 1, 8, 8), 0.3, dtype=torch.float64)
    assert (local_linear_upsample(flat, texture, FITS[name]) - 0.3).abs().max() < 1e-9   # rounding / epsilon
    if FITS[name].detrend:   # depth: a tilted floor under a texture stays a plane
        ramp = torch.linspace(0.2, 0.4, 8, dtype=torch.float64).expand(1, 1, 8, 8).contiguous()
        assert (local_linear_upsample(ramp, texture, FITS[name]) - resize_linear(ramp, 32, 32)).abs().max() < 1e-9


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-9), (torch.float32, 3e-4)])
def test_guided_maps_match_the_reference_and_recompose_the_photo(dtype, tolerance):
    """upsample_maps (all four maps, one stack, bands) against the reference per map, with
    some near-black irradiance, so the dark fallback runs too."""
    photo = _random_photo(5, dtype)
    photo[:, :4, :5] = 0.02                                    # a dark corner of the photo
    low = _random_maps(6, 9, dtype)
    low[:, 3:6, :2, :2] = 0.01                                 # sRGB irradiance 0.01: linear ~8e-4, below DARK_LOW
    albedo, irradiance, depth = low[:, 0:3], low[:, 3:6], low[:, 6:9]
    normal_vectors = F.normalize(_random_maps(7, 3, torch.float64) - 0.5 + torch.tensor([0, 0, 0.3])[:, None, None],
                                 dim=1).to(dtype)
    maps = {"albedo": albedo, "irradiance": irradiance, "depth": depth, "normal": (normal_vectors + 1) / 2}
    hwc = {name: image.permute(0, 2, 3, 1) for name, image in maps.items()}
    out = upsample_maps(hwc, photo, band_pixels=45)
    assert all(out[name].dtype == dtype and out[name].shape == (1, *FULL, 3) for name in maps)

    guide = srgb_to_linear(photo.double())

    def guided(values: torch.Tensor, fit: Fit) -> np.ndarray:
        return _reference(values.double(), guide, [fit], [values.shape[1]])
    irradiance_up = guided(srgb_to_linear(irradiance.double()), FITS["irradiance"])
    model_albedo = reference.bilinear(srgb_to_linear(albedo[0].double()).numpy(), *FULL)
    expected_albedo, expected_irradiance = reference.recompose_albedo_irradiance(
        irradiance_up, model_albedo, photo[0].double().permute(2, 0, 1).numpy(), DARK_LOW, DARK_HIGH, ALBEDO_FLOOR)
    expected_depth = np.clip(guided(depth, FITS["depth"]), 0, 1)
    vectors = guided(normal_vectors, FITS["normal"])
    expected_normal = (vectors / np.linalg.norm(vectors, axis=0) + 1) / 2
    for name, expected in (("albedo", expected_albedo), ("irradiance", expected_irradiance),
                           ("depth", expected_depth), ("normal", expected_normal)):
        error = np.abs(out[name][0].permute(2, 0, 1).double().numpy() - expected).max()
        assert error < tolerance, (name, error)
    assert (np.abs(expected_albedo - linear_to_srgb(torch.from_numpy(model_albedo)).numpy())[:, :2, :2]).max() < 1e-9
    # albedo x irradiance = the photo, in linear light and through recompose (within 1/255).
    product = srgb_to_linear(out["albedo"].double()) * srgb_to_linear(out["irradiance"].double())
    assert (product - srgb_to_linear(photo.double())).abs().max() < tolerance
    assert (recompose(out["albedo"], out["irradiance"]) - photo).abs().max() < 1 / 255


def test_black_photo_and_black_irradiance_keep_the_models_albedo():
    """0 / 0: where both are black the ratio means nothing, and the model's albedo stays."""
    photo = torch.zeros(1, *FULL, 3)
    albedo = _random_maps(8, 3, torch.float32).permute(0, 2, 3, 1)
    out = upsample_maps({"albedo": albedo, "irradiance": torch.zeros_like(albedo)}, photo)
    expected = resize_linear(srgb_to_linear(albedo).permute(0, 3, 1, 2), *FULL).clamp(ALBEDO_FLOOR, 1)
    assert (out["albedo"] - linear_to_srgb(expected).permute(0, 2, 3, 1)).abs().max() < 1e-5
    assert out["albedo"].std() > 0.05 and out["irradiance"].abs().max() == 0


def test_progress_reaches_the_end_and_an_interrupt_stops_the_work():
    low, photo = _random_maps(9, 3, torch.float32), _random_photo(10, torch.float32)
    calls = []
    list(guided_bands(low, photo, [FITS["depth"]], progress=lambda done, total: calls.append((done, total)),
                      band_pixels=45))
    assert calls == [(3, 17), (6, 17), (9, 17), (12, 17), (15, 17), (17, 17)]

    class Interrupted(Exception):
        pass
    seen = []

    def check_interrupt():
        if len(seen) == 2:
            raise Interrupted
        seen.append(1)
    with pytest.raises(Interrupted):
        upsample_maps({"depth": low.permute(0, 2, 3, 1)}, photo, check_interrupt=check_interrupt, band_pixels=45)
    assert len(seen) == 2   # stopped at the third band


class _Dtypes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.float64 = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64:
                self.float64.append(tuple(tensor.shape))
        return out


def test_float32_maps_make_no_float64_images_and_mps_never_gets_float64():
    """MPS has no float64: the compute dtype there is float32 whatever the maps are. With
    float32 maps the only float64 tensors are the per-axis sample tables, built on the CPU."""
    assert compute_dtype(torch.device("mps"), torch.float64) == torch.float32
    assert compute_dtype(torch.device("cpu"), torch.float64) == torch.float64
    assert compute_dtype(torch.device("cpu"), torch.float16) == torch.float32
    low, photo = _random_maps(11, 3, torch.float32), _random_photo(12, torch.float32)
    maps = {"albedo": low.permute(0, 2, 3, 1), "irradiance": low.permute(0, 2, 3, 1) * 0.9,
            "depth": low.permute(0, 2, 3, 1), "normal": low.permute(0, 2, 3, 1)}
    with _Dtypes() as seen:
        upsample_maps(maps, photo)
    assert seen.float64 and all(len(shape) <= 2 and max(shape) <= max(FULL) for shape in seen.float64)


def test_a_photo_smaller_than_the_working_size_is_shrunk_with_antialiasing():
    low = _random_maps(13, 3, torch.float32)          # 6 x 7 working, 3 x 4 photo
    photo = torch.rand(1, 3, 4, 3)
    out = upsample_maps({"depth": low.permute(0, 2, 3, 1)}, photo)["depth"]
    expected = resize_linear(low, 3, 4).permute(0, 2, 3, 1)
    assert out.shape == (1, 3, 4, 3) and (out - expected).abs().max() < 1e-6


def test_a_grey_depth_image_is_upsampled_once_and_stays_grey():
    low = _random_maps(14, 1, torch.float32).permute(0, 2, 3, 1).expand(-1, -1, -1, 3)
    photo = _random_photo(15, torch.float32)
    out = upsample_maps({"depth": low}, photo)["depth"]
    single = local_linear_upsample(low[..., :1].permute(0, 3, 1, 2), srgb_to_linear(photo), FITS["depth"])
    assert torch.equal(out[..., 0], out[..., 2]) and (out[..., 0] - single[:, 0].clamp(0, 1)).abs().max() < 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_the_cpu():
    low, photo = _random_maps(16, 9, torch.float32), _random_photo(17, torch.float32)
    maps = {"albedo": low[:, :3], "irradiance": low[:, 3:6], "depth": low[:, 6:]}
    maps = {k: v.permute(0, 2, 3, 1) for k, v in maps.items()}
    cpu = upsample_maps(maps, photo)
    gpu = upsample_maps({k: v.cuda() for k, v in maps.items()}, photo)
    assert all((cpu[k] - gpu[k].cpu()).abs().max() < 1e-4 for k in maps)


def test_a_photo_gets_the_same_maps_alone_and_in_a_batch_with_a_dark_one():
    """Nothing is switched on by the data: a photo whose working-size irradiance is all above
    DARK_HIGH, but whose full-size irradiance dips below it here and there, comes back the same
    alone and batched with a near-black photo (float64: exactly)."""
    generator = torch.Generator().manual_seed(18)
    photo = 0.05 + 0.15 * torch.rand(1, *FULL, 3, generator=generator, dtype=torch.float64)
    # Irradiance that follows the photo (slope 1): at full size it dips where the photo is
    # darker than anything at the working size, whose samples are averages.
    photo_low = resize_linear(srgb_to_linear(photo).permute(0, 3, 1, 2), *LOW)
    irradiance = linear_to_srgb(0.021 + photo_low - photo_low.amin((2, 3), keepdim=True))
    first = {"albedo": _random_maps(19, 3), "irradiance": irradiance, "depth": _random_maps(20, 3),
             "normal": _random_maps(21, 3)}
    alone = upsample_maps({name: image.permute(0, 2, 3, 1) for name, image in first.items()}, photo)
    assert (srgb_to_linear(alone["irradiance"]).amax(-1) < DARK_HIGH).any()    # the case this is about
    second = {name: image * (0.01 if name == "irradiance" else 1.0) for name, image in first.items()}
    batch = upsample_maps({name: torch.cat([first[name], second[name]]).permute(0, 2, 3, 1) for name in first},
                          torch.cat([photo, photo * 0.1]))
    assert all(torch.equal(batch[name][:1], alone[name]) for name in first)
