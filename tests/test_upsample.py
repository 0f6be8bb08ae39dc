"""Guided upsampling: the banded, vectorised path against the float64 pixel-by-pixel
reference (tests/upsample_reference.py) on random inputs, exact recomposition, progress and
interruption, and the dtypes it creates."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from lumix_engine.intrinsics import recompose
from lumix_engine.intrinsics.color_space import srgb_to_linear
from lumix_engine.intrinsics.upsample import (
    DARK,
    LOG_OFFSET,
    RADIUS,
    SIGMA_RANGE,
    SIGMA_SPACE,
    TAU,
    compute_dtype,
    edge_aware_upsample,
    guided_bands,
    resize_linear,
    upsample_maps,
)
from tests import upsample_reference as reference

LOW, FULL = (6, 7), (17, 15)   # non-integer factors on both axes


def _random_maps(seed: int, channels: int, dtype=torch.float64) -> torch.Tensor:
    """[1, C, h, w]: half the channels strongly varying (joint bilateral everywhere), half
    gently (the blend between bilinear and joint bilateral), never constant."""
    generator = torch.Generator().manual_seed(seed)
    amplitude = torch.tensor([0.9 if c % 2 else 0.12 for c in range(channels)], dtype=torch.float64)
    values = 0.5 + amplitude[:, None, None] * (torch.rand(channels, *LOW, generator=generator, dtype=torch.float64) - 0.5)
    return values[None].to(dtype)


def _random_photo(seed: int, dtype=torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (0.1 + 0.8 * torch.rand(1, 3, *FULL, generator=generator, dtype=torch.float64)).to(dtype)


def _reference_edge_aware(low: torch.Tensor, photo: torch.Tensor, tau: list, sizes: list) -> np.ndarray:
    guide_low = resize_linear(photo.double(), *LOW)[0].numpy()   # the photo at the working size, as the code makes it
    return reference.edge_aware(low[0].double().numpy(), guide_low, photo[0].double().numpy(), tau, sizes, RADIUS,
                                SIGMA_SPACE, SIGMA_RANGE)


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("band_pixels", [None, 40])   # one band; bands of 2 rows
def test_edge_aware_upsampling_matches_the_float64_reference(dtype, tolerance, band_pixels):
    low, photo = _random_maps(1, 4, dtype), _random_photo(2, dtype)
    tau, sizes = [0.2, 0.4, 0.3], [1, 2, 1]   # three maps in one stack
    ours = edge_aware_upsample(low, photo, tau, sizes, band_pixels=band_pixels)
    assert ours.dtype == dtype and ours.shape == (1, 4, *FULL)
    expected = _reference_edge_aware(low, photo, tau, sizes)
    assert np.abs(ours[0].double().numpy() - expected).max() < tolerance
    # The gentle channels really blend (neither pure bilinear nor pure joint bilateral).
    smooth = reference.bilinear(low[0].double().numpy(), *FULL)
    assert np.abs(expected[0] - smooth).max() > 1e-3


def test_bilinear_bands_are_torchs_bilinear():
    low = _random_maps(3, 2)
    ours = edge_aware_upsample(low, _random_photo(4), 1e9, band_pixels=30)   # tau so high: bilinear only
    assert (ours - F.interpolate(low, size=FULL, mode="bilinear", align_corners=False)).abs().max() < 1e-12


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-9), (torch.float32, 3e-5)])
def test_guided_maps_match_the_reference_and_recompose_the_photo(dtype, tolerance):
    """upsample_maps (all four maps, one stack, bands) against the reference per map."""
    photo = _random_photo(5, dtype)
    low = _random_maps(6, 9, dtype)
    albedo, irradiance, depth = low[:, 0:3], low[:, 3:6], low[:, 6:9]
    normal_vectors = F.normalize(_random_maps(7, 3, torch.float64) - 0.5 + torch.tensor([0, 0, 0.3])[:, None, None],
                                 dim=1).to(dtype)
    maps = {"albedo": albedo, "irradiance": irradiance, "depth": depth, "normal": (normal_vectors + 1) / 2}
    hwc = {name: image.permute(0, 2, 3, 1) for name, image in maps.items()}
    out = upsample_maps(hwc, photo.permute(0, 2, 3, 1))
    assert all(out[name].dtype == dtype and out[name].shape == (1, *FULL, 3) for name in maps)

    photo64 = photo[0].double().numpy()
    log_irradiance = np.log(reference.srgb_to_linear(irradiance[0].double().numpy()) + LOG_OFFSET)
    guide_low = resize_linear(photo.double(), *LOW)[0].numpy()

    def guided(values: np.ndarray, tau: float) -> np.ndarray:
        return reference.edge_aware(values, guide_low, photo64, [tau], [len(values)], RADIUS, SIGMA_SPACE,
                                    SIGMA_RANGE)
    expected_albedo, expected_irradiance = reference.recompose_albedo_irradiance(
        guided(log_irradiance, TAU["log_irradiance"]), photo64, LOG_OFFSET, DARK)
    expected_depth = np.clip(guided(depth[0].double().numpy(), TAU["depth"]), 0, 1)
    vectors = guided(normal_vectors[0].double().numpy(), TAU["normal"])
    expected_normal = (vectors / np.linalg.norm(vectors, axis=0) + 1) / 2
    for name, expected in (("albedo", expected_albedo), ("irradiance", expected_irradiance),
                           ("depth", expected_depth), ("normal", expected_normal)):
        error = np.abs(out[name][0].permute(2, 0, 1).double().numpy() - expected).max()
        assert error < tolerance, (name, error)
    # albedo x irradiance = the photo, in linear light and through recompose (within 1/255).
    product = srgb_to_linear(out["albedo"].double()) * srgb_to_linear(out["irradiance"].double())
    assert (product - srgb_to_linear(photo.permute(0, 2, 3, 1).double())).abs().max() < tolerance
    assert (recompose(out["albedo"], out["irradiance"]) - photo.permute(0, 2, 3, 1)).abs().max() < 1 / 255


def test_dark_irradiance_keeps_the_guided_albedo():
    """Where the irradiance is black the ratio means nothing: the guided albedo is kept."""
    photo = torch.zeros(1, *FULL, 3)
    albedo = _random_maps(8, 3, torch.float32).permute(0, 2, 3, 1)
    out = upsample_maps({"albedo": albedo, "irradiance": torch.zeros_like(albedo)}, photo)
    expected = edge_aware_upsample(albedo.permute(0, 3, 1, 2), photo.permute(0, 3, 1, 2), TAU["other"])
    assert (out["albedo"] - expected.permute(0, 2, 3, 1).clamp(0, 1)).abs().max() < 1e-6
    assert out["albedo"].std() > 0.05


def test_progress_reaches_the_end_and_an_interrupt_stops_the_work():
    low, photo = _random_maps(9, 3, torch.float32), _random_photo(10, torch.float32)
    calls = []
    list(guided_bands(low, photo, None, progress=lambda done, total: calls.append((done, total)), band_pixels=45))
    assert calls == [(3, 17), (6, 17), (9, 17), (12, 17), (15, 17), (17, 17)]

    class Interrupted(Exception):
        pass
    seen = []

    def check_interrupt():
        if len(seen) == 2:
            raise Interrupted
        seen.append(1)
    with pytest.raises(Interrupted):
        upsample_maps({"depth": low.permute(0, 2, 3, 1)}, photo.permute(0, 2, 3, 1), check_interrupt=check_interrupt,
                      band_pixels=45)
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
        upsample_maps(maps, photo.permute(0, 2, 3, 1))
    assert seen.float64 and all(len(shape) <= 2 and max(shape) <= max(FULL) for shape in seen.float64)


def test_a_photo_smaller_than_the_working_size_is_shrunk_with_antialiasing():
    low = _random_maps(13, 3, torch.float32)          # 6 x 7 working, 3 x 4 photo
    photo = torch.rand(1, 3, 4, 3)
    out = upsample_maps({"depth": low.permute(0, 2, 3, 1)}, photo)["depth"]
    assert out.shape == (1, 3, 4, 3) and torch.isfinite(out).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_the_cpu():
    low, photo = _random_maps(14, 9, torch.float32), _random_photo(15, torch.float32)
    maps = {"albedo": low[:, :3], "irradiance": low[:, 3:6], "depth": low[:, 6:]}
    maps = {k: v.permute(0, 2, 3, 1) for k, v in maps.items()}
    cpu = upsample_maps(maps, photo.permute(0, 2, 3, 1))
    gpu = upsample_maps({k: v.cuda() for k, v in maps.items()}, photo.permute(0, 2, 3, 1))
    assert all((cpu[k] - gpu[k].cpu()).abs().max() < 1e-5 for k in maps)
