"""The documented depth contract on real model output: in the EXR (read by OpenImageIO, a reader
this project did not write) and in the GLB, the nearest pixel sits at distance 1 and the farthest
at `depth_range`, whatever span the model's relative disparity covers; the EXR header says so."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lumix_engine.formats.exr import write_maps_exr
from lumix_engine.formats.mesh import depth_mesh
from lumix_engine.intrinsics import render_scene
from lumix_engine.intrinsics.depth import distance_from_disparity
from lumix_engine.tiny_trained.data import HELDOUT_SEED_START
from lumix_engine.tiny_trained.model import TinyLumiX
from lumix_engine.tiny_trained.text import layout_caption


@pytest.fixture(scope="module")
def model_maps():
    """The shipped tiny model's decomposition of a held-out render: its depth does not span [0, 1]."""
    scene = render_scene(HELDOUT_SEED_START + 3, 64, 64)
    maps = TinyLumiX.load().decompose(scene.images()["color"].float(), layout_caption(scene.scene), seed=0, steps=4)
    depth = maps["depth"][..., 0]
    assert float(depth.min()) > 0.02 or float(depth.max()) < 0.98, "the test needs a map that does not span [0, 1]"
    return maps


@pytest.mark.parametrize("depth_range", [10.0, 5.0, 2.5])
def test_exr_z_runs_from_1_to_depth_range_as_openimageio_reads_it(tmp_path, model_maps, depth_range):
    oiio = pytest.importorskip("OpenImageIO")
    [path] = write_maps_exr({"depth": model_maps["depth"]}, tmp_path, depth_range=depth_range)
    image = oiio.ImageInput.open(str(path))
    spec = image.spec()
    pixels = image.read_image(oiio.FLOAT)
    image.close()
    z = pixels[..., spec.channelnames.index("Z")]
    assert abs(float(z.min()) - 1.0) < 1e-6 and abs(float(z.max()) - depth_range) < 1e-5 * depth_range
    assert spec.getattribute("lumixDepthNear") == "1"
    assert float(spec.getattribute("lumixDepthFar")) == depth_range
    assert "nearest point" in spec.getattribute("lumixDepthUnits")


def test_glb_distances_run_from_1_to_depth_range(model_maps):
    mesh = depth_mesh(model_maps["depth"], model_maps["normal"], depth_range=5.0, max_side=64)  # a vertex per pixel
    z = -mesh.vertices[:, 2]
    assert abs(float(z.min()) - 1.0) < 1e-5 and abs(float(z.max()) - 5.0) < 1e-4


def test_distance_is_exact_for_a_random_disparity_against_the_float64_formula():
    disparity = torch.rand(2, 7, 9, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 0.6 + 0.2
    got = distance_from_disparity(disparity, 8.0)
    low = disparity.amin(dim=(1, 2), keepdim=True)
    high = disparity.amax(dim=(1, 2), keepdim=True)
    d = (disparity - low) / (high - low)
    expected = 1.0 / (d / 1.0 + (1.0 - d) / 8.0)      # inverse depth linear between near = 1 and far = 8
    assert torch.allclose(got, expected, rtol=1e-12, atol=0)
    assert np.isclose(float(got.amin()), 1.0) and np.isclose(float(got.amax()), 8.0)
