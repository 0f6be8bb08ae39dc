"""Float EXR export: exact float32 round trips, the channel layout per map, half precision,
bad input refused before anything is written."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lumix_engine.errors import InputError
from lumix_engine.formats.exr import CHANNELS, map_channels, read_exr, write_exr, write_maps_exr
from lumix_engine.intrinsics import render_scene, srgb_to_linear


@pytest.fixture(scope="module")
def scene():
    return render_scene(11, 40, 32)


def test_float32_round_trip_is_bit_exact(tmp_path):
    generator = torch.Generator().manual_seed(0)
    values = {name: (torch.randn(17, 23, generator=generator, dtype=torch.float64) * 10 ** k).float().numpy()
              for k, name in enumerate(["R", "G", "B", "Z"])}
    values["R"][0, :4] = [0.0, -0.0, np.float32(1e-42), np.float32(3e38)]   # zero, denormal, huge
    path = write_exr(tmp_path / "random.exr", values)
    back = read_exr(path)
    assert set(back) == set(values)
    for name, array in values.items():
        assert back[name].dtype == np.float32
        assert back[name].tobytes() == array.tobytes()   # bit for bit, signed zero included


@pytest.mark.parametrize("name", ["albedo", "irradiance", "color", "depth", "normal"])
def test_every_map_round_trips_bit_exact_with_its_channels(tmp_path, scene, name):
    images = scene.images()[name]
    written = map_channels(name, images)[0]
    [path] = write_maps_exr({name: images}, tmp_path)
    back = read_exr(path)
    assert path.name == f"{name}.exr" and tuple(sorted(back)) == tuple(sorted(CHANNELS[name]))
    for channel, array in written.items():
        assert back[channel].tobytes() == array.tobytes()


def test_values_mean_what_the_table_says(scene):
    maps = scene.images()
    albedo = map_channels("albedo", maps["albedo"])[0]
    reference = srgb_to_linear(maps["albedo"][0].double()).numpy()
    assert np.abs(np.stack([albedo[c] for c in "RGB"], -1) - reference).max() < 1e-7
    # Min-max disparity of metric depth comes back as depth / min(depth) with the true range.
    depth = scene.depth[0, ..., 0].double()
    ratio = float(depth.max() / depth.min())
    z = map_channels("depth", maps["depth"], depth_range=ratio)[0]["Z"]
    assert np.abs(z - (depth / depth.min()).numpy()).max() / ratio < 1e-5
    normal = map_channels("normal", maps["normal"])[0]
    vectors = np.stack([normal[c] for c in CHANNELS["normal"]], -1)
    assert np.abs(vectors - scene.normal[0].numpy()).max() < 1e-6
    assert np.abs(np.linalg.norm(vectors, axis=-1) - 1).max() < 1e-6 and vectors.min() < -0.5


def test_half_precision(tmp_path, scene):
    channels = map_channels("color", scene.images()["color"])[0]
    back = read_exr(write_exr(tmp_path / "half.exr", channels, precision="half"))
    for c in "RGB":
        assert back[c].dtype == np.float16
        assert np.array_equal(back[c], channels[c].astype(np.float16))
    assert (tmp_path / "half.exr").stat().st_size < 0.75 * write_exr(tmp_path / "full.exr", channels).stat().st_size


@pytest.mark.parametrize("depth, message", [
    (torch.zeros(1, 8, 8, 3), "all zeros"),
    (torch.full((1, 8, 8, 3), 0.4), "constant"),
    (torch.rand(1, 8, 8, 3).index_put_((torch.tensor([0]), torch.tensor([2])), torch.tensor(float("nan"))), "NaN"),
])
def test_bad_depth_is_refused_and_nothing_is_written(tmp_path, depth, message):
    with pytest.raises(InputError, match=message):
        write_maps_exr({"albedo": torch.rand(1, 8, 8, 3), "depth": depth}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_zero_length_normals_are_refused(tmp_path):
    normal = torch.rand(1, 8, 8, 3)
    normal[0, 3, 3] = 0.5
    with pytest.raises(InputError, match="zero length"):
        write_maps_exr({"normal": normal}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_partial_file(tmp_path):
    with pytest.raises(InputError, match="one size"):
        write_exr(tmp_path / "bad.exr", {"R": np.zeros((4, 4)), "G": np.zeros((4, 5))})
    with pytest.raises(Exception):
        write_exr(tmp_path / "bad.exr", {"R": np.zeros((4, 4))}, attributes={"compression": "not one"})
    assert list(tmp_path.iterdir()) == []


def test_unknown_layout_and_precision_are_named(tmp_path):
    with pytest.raises(InputError, match="no EXR layout"):
        map_channels("specular", torch.rand(1, 4, 4, 3))
    with pytest.raises(InputError, match="precision"):
        write_exr(tmp_path / "x.exr", {"R": np.zeros((2, 2))}, precision="float16")
    with pytest.raises(InputError, match="not an OpenEXR"):
        (tmp_path / "fake.exr").write_bytes(b"nope")
        read_exr(tmp_path / "fake.exr")
