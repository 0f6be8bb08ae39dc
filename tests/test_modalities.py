"""The five-map batch layout: splitting, joining and recomposing batches of the wrong shape.
"""

import pytest
import torch

from lumix_engine.errors import BatchLayoutError, InputError
from lumix_engine.intrinsics import recompose
from lumix_engine.modalities import join_maps, split_maps


@pytest.mark.parametrize("batch", [1, 4, 6, 9])
def test_split_batch_not_a_multiple_of_five(batch):
    with pytest.raises(BatchLayoutError, match=f"multiple of 5; got a batch of {batch}"):
        split_maps(torch.rand(batch, 8, 8, 3))


def test_split_of_a_single_channel_batch_keeps_one_channel():
    """SplitIntrinsics is channel-agnostic: a grey [5, H, W, 1] batch splits into grey maps."""
    maps = split_maps(torch.rand(10, 8, 6, 1))
    assert all(m.shape == (2, 8, 6, 1) for m in maps.values())


def test_join_of_mismatched_sizes_is_refused():
    maps = {name: torch.rand(1, 8, 8, 3) for name in ("albedo", "irradiance", "color", "depth", "normal")}
    maps["depth"] = torch.rand(1, 8, 6, 3)
    with pytest.raises(BatchLayoutError, match="different shapes.*pixel-aligned"):
        join_maps(maps)


def test_recompose_of_mismatched_sizes_is_refused():
    with pytest.raises(InputError, match=r"pixel-aligned.*albedo 1x8x8, irradiance 1x8x6.*Resize"):
        recompose(torch.rand(1, 8, 8, 3), torch.rand(1, 8, 6, 3))


def test_recompose_of_mismatched_batches_is_refused():
    with pytest.raises(InputError, match="pixel-aligned"):
        recompose(torch.rand(2, 8, 8, 3), torch.rand(1, 8, 8, 3))


def test_recompose_of_a_single_channel_image_is_refused():
    with pytest.raises(InputError, match="1 channel but 3 are needed.*expand"):
        recompose(torch.rand(1, 8, 8, 1), torch.rand(1, 8, 8, 3))
