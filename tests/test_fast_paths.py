"""The performance paths against the plain float64 formulas.

Fold-and-sum Tensor LoRA, the query projection restricted to the color rows, and the image
queries written straight into the joint query tensor: each must be the plain function.
"""
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from evaluation.reference import plain_double_block, plain_single_block, tensor_lora_plain
from lumix_engine.flux.linear import split_linear
from lumix_engine.method.adapters import DOUBLE, SINGLE
from lumix_engine.method.patch import block_patches
from lumix_engine.method.qba import QUERY_SOURCE_ROWS
from lumix_engine.method.tensor_lora import TensorLoRA
from tests.factories import scene_inputs


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def random_lora(d_in, d_out, rank, dtype, seed=0):
    torch.manual_seed(seed)
    lora = TensorLoRA(5, d_in, d_out, rank, dtype=dtype).requires_grad_(False)
    lora.G1.normal_()
    lora.G3.normal_()
    return lora



@pytest.mark.parametrize("scenes", [1, 2, 4])
@pytest.mark.parametrize("strength", [1.0, 0.35])
def test_tensor_lora_sum_over_source_maps_matches_plain_sum_float64(scenes, strength):
    lora = random_lora(24, 40, 3, torch.float64)
    x = torch.randn(5 * scenes, 7, 24, dtype=torch.float64)
    assert rel(lora(x, strength), tensor_lora_plain(lora, x, strength)) <= 1e-12


def test_tensor_lora_reads_g3_in_place_when_dtypes_match():
    lora = random_lora(16, 32, 4, torch.float64)
    _, readout = lora.folded(torch.device("cpu"), torch.float64)
    assert readout.data_ptr() == lora.G3.data_ptr()  # one copy of the adapter, no readout copy


def test_tensor_lora_cast_once_to_another_compute_dtype_matches_plain_sum():
    lora = random_lora(16, 32, 4, torch.float32)
    x = torch.randn(10, 5, 16, dtype=torch.float64)
    out = lora(x, compute_dtype=torch.float64)  # float32 parameters, float64 compute: cast copies
    core, readout = lora.folded(torch.device("cpu"), torch.float64)
    assert readout.dtype == torch.float64 and readout.data_ptr() != lora.G3.data_ptr()
    assert lora.folded(torch.device("cpu"), torch.float64)[0] is core  # cached, not cast per call
    assert rel(out, tensor_lora_plain(lora, x)) <= 1e-6  # the core folds in float32, the parameters' dtype


@pytest.mark.parametrize("scenes", [1, 3])
def test_split_linear_projects_the_head_for_the_color_rows_only(scenes):
    layer = nn.Linear(12, 30, dtype=torch.float64)
    x = torch.randn(5 * scenes, 4, 12, dtype=torch.float64)
    with FlopCounterMode(display=False) as counter:
        head, tail = split_linear(layer, x, 9, QUERY_SOURCE_ROWS)
    # the head is computed for the color rows only, not computed for all rows and sliced
    assert counter.get_total_flops() == 2 * 4 * 12 * (scenes * 9 + 5 * scenes * 21)
    full = layer(x)
    assert torch.allclose(head, full[2::5, :, :9], rtol=1e-12, atol=1e-12)
    assert torch.allclose(tail, full[..., 9:], rtol=1e-12, atol=1e-12)






@pytest.mark.parametrize("scenes", [1, 3])
def test_double_block_fast_path_matches_plain_formula_float64(flux64, adapters64, scenes):
    img, txt, vec, pe = scene_inputs(scenes=scenes, dtype=torch.float64)
    patch = block_patches(flux64, adapters64)[("double_block", 1)]
    out = patch({"img": img, "txt": txt, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": {}}, {})
    lora = adapters64.processor(DOUBLE, 1)
    ref_img, ref_txt = plain_double_block(flux64.double_blocks[1], img, txt, vec, pe, lora.kv_tt_lora,
                                          lora.proj_tt_lora)
    assert rel(out["img"], ref_img) <= 1e-10 and rel(out["txt"], ref_txt) <= 1e-10


@pytest.mark.parametrize("scenes", [1, 3])
def test_single_block_fast_path_matches_plain_formula_float64(flux64, adapters64, scenes):
    img, txt, vec, pe = scene_inputs(scenes=scenes, dtype=torch.float64)
    x = torch.cat((txt, img), 1)
    patch = block_patches(flux64, adapters64)[("single_block", 0)]
    out = patch({"img": x, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": {}}, {})["img"]
    lora = adapters64.processor(SINGLE, 0)
    ref = plain_single_block(flux64.single_blocks[0], x, vec, pe, lora.kv_tt_lora, lora.proj_tt_lora)
    assert rel(out, ref) <= 1e-10
