"""The LumiX block forwards against the plain formulas of the paper, and their defining properties."""
import pytest
import torch

from evaluation.reference import plain_double_block, plain_single_block
from lumix_engine.errors import BatchLayoutError
from lumix_engine.method.adapters import DOUBLE, SINGLE
from lumix_engine.method.patch import block_patches
from lumix_engine.tiny_random import random_adapters, random_bfl_flux
from tests.factories import TEST_FLUX, adapters_roundtrip, scene_inputs


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def no_fast_path(layer, x):
    return None






def run_double(model, adapters, inputs, index=0, **options):
    img, txt, vec, pe = inputs
    patch = block_patches(model, adapters, **options)[("double_block", index)]
    out = patch({"img": img, "txt": txt, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": {}}, {})
    return out["img"], out["txt"]


def run_single(model, adapters, inputs, index=0, **options):
    img, txt, vec, pe = inputs
    x = torch.cat((txt, img), 1)
    patch = block_patches(model, adapters, **options)[("single_block", index)]
    return patch({"img": x, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": {}}, {})["img"]


@pytest.mark.parametrize("qba,strength", [(True, 1.0), (True, 0.4), (False, 1.0)])
@pytest.mark.parametrize("fast", [True, False])
def test_double_block_matches_plain_formula_float64(flux64, adapters64, qba, strength, fast):
    inputs = scene_inputs(scenes=2, dtype=torch.float64)
    weights = {} if fast else {"weights": no_fast_path}
    img, txt = run_double(flux64, adapters64, inputs, 1, strength=strength, qba=qba, **weights)
    lora = adapters64.processor(DOUBLE, 1)
    ref_img, ref_txt = plain_double_block(flux64.double_blocks[1], *inputs, lora.kv_tt_lora, lora.proj_tt_lora,
                                          strength, qba)
    assert rel(img, ref_img) <= 1e-10 and rel(txt, ref_txt) <= 1e-10


@pytest.mark.parametrize("qba,strength", [(True, 1.0), (True, 0.4), (False, 1.0)])
@pytest.mark.parametrize("fast", [True, False])
def test_single_block_matches_plain_formula_float64(flux64, adapters64, qba, strength, fast):
    inputs = scene_inputs(scenes=2, dtype=torch.float64)
    weights = {} if fast else {"weights": no_fast_path}
    out = run_single(flux64, adapters64, inputs, 2, strength=strength, qba=qba, **weights)
    lora = adapters64.processor(SINGLE, 2)
    img, txt, vec, pe = inputs
    ref = plain_single_block(flux64.single_blocks[2], torch.cat((txt, img), 1), vec, pe, lora.kv_tt_lora,
                             lora.proj_tt_lora, strength, qba)
    assert rel(out, ref) <= 1e-10


def zero_g3(adapters):
    adapters = adapters.copy()
    for name, p in adapters.named_parameters():
        if name.endswith("G3"):
            p.data.zero_()
    return adapters


def test_color_map_unchanged_when_adapters_are_zero(flux64, adapters64):
    inputs = scene_inputs(scenes=2, dtype=torch.float64)
    img, txt, vec, pe = inputs
    zeroed = zero_g3(adapters64)
    patched_img, patched_txt = run_double(flux64, zeroed, inputs, 0, qba=True)
    plain_img, plain_txt = flux64.double_blocks[0](img, txt, vec, pe)
    color = torch.arange(2, 10, 5)
    others = torch.tensor([i for i in range(10) if i % 5 != 2])
    assert torch.allclose(patched_img[color], plain_img[color], rtol=1e-12, atol=1e-12)
    assert torch.allclose(patched_txt[color], plain_txt[color], rtol=1e-12, atol=1e-12)
    assert (patched_img[others] - plain_img[others]).abs().amax(dim=(1, 2)).min() > 1e-3

    single = run_single(flux64, zeroed, inputs, 0, qba=True)
    plain_single = flux64.single_blocks[0](torch.cat((txt, img), 1), vec, pe)
    assert torch.allclose(single[color], plain_single[color], rtol=1e-12, atol=1e-12)
    assert (single[others] - plain_single[others]).abs().amax(dim=(1, 2)).min() > 1e-3


def test_every_map_unchanged_with_zero_adapters_and_qba_off(flux64, adapters64):
    inputs = scene_inputs(scenes=2, dtype=torch.float64)
    img, txt, vec, pe = inputs
    zeroed = zero_g3(adapters64)
    patched_img, patched_txt = run_double(flux64, zeroed, inputs, 0, qba=False)
    plain_img, plain_txt = flux64.double_blocks[0](img, txt, vec, pe)
    assert torch.allclose(patched_img, plain_img, rtol=1e-12, atol=1e-12)
    assert torch.allclose(patched_txt, plain_txt, rtol=1e-12, atol=1e-12)
    single = run_single(flux64, zeroed, inputs, 1, qba=False)
    assert torch.allclose(single, flux64.single_blocks[1](torch.cat((txt, img), 1), vec, pe), rtol=1e-12, atol=1e-12)


def test_strength_zero_is_the_unpatched_block_with_qba_off(flux64, adapters64):
    inputs = scene_inputs(scenes=1, dtype=torch.float64)
    img, txt, vec, pe = inputs
    patched_img, _ = run_double(flux64, adapters64, inputs, 1, qba=False, strength=0.0)
    assert torch.allclose(patched_img, flux64.double_blocks[1](img, txt, vec, pe)[0], rtol=1e-12, atol=1e-12)


def test_permuting_scenes_permutes_outputs(flux64, adapters64):
    img, txt, vec, pe = scene_inputs(scenes=3, dtype=torch.float64)
    order = torch.tensor([2, 0, 1])
    rows = (order[:, None] * 5 + torch.arange(5)).reshape(-1)
    out_img, out_txt = run_double(flux64, adapters64, (img, txt, vec, pe))
    perm_img, perm_txt = run_double(flux64, adapters64, (img[rows], txt[rows], vec[rows], pe[rows]))
    assert torch.allclose(perm_img, out_img[rows], rtol=1e-12, atol=1e-12)
    assert torch.allclose(perm_txt, out_txt[rows], rtol=1e-12, atol=1e-12)
    single = run_single(flux64, adapters64, (img, txt, vec, pe))
    perm_single = run_single(flux64, adapters64, (img[rows], txt[rows], vec[rows], pe[rows]))
    assert torch.allclose(perm_single, single[rows], rtol=1e-12, atol=1e-12)


def test_scenes_do_not_leak_into_each_other(flux64, adapters64):
    img, txt, vec, pe = scene_inputs(scenes=2, dtype=torch.float64)
    both = run_single(flux64, adapters64, (img, txt, vec, pe))
    img2 = img.clone()
    img2[5:] += torch.randn_like(img2[5:])  # change scene 1 only
    changed = run_single(flux64, adapters64, (img2, txt, vec, pe))
    assert torch.equal(both[:5], changed[:5])
    assert not torch.allclose(both[5:], changed[5:])


def test_batch_not_multiple_of_five_is_refused(flux64, adapters64):
    img, txt, vec, pe = scene_inputs(scenes=1, dtype=torch.float64)
    with pytest.raises(BatchLayoutError, match="multiple of 5"):
        run_double(flux64, adapters64, (img[:4], txt[:4], vec[:4], pe[:4]))


def test_adapters_follow_a_bf16_model(tmp_path):
    """float32 adapters on a bf16 model: computed in bf16 (cast once, cached), close to float64."""
    model16 = random_bfl_flux(TEST_FLUX, dtype=torch.bfloat16)
    flux64 = random_bfl_flux(TEST_FLUX, dtype=torch.float64)
    adapters = adapters_roundtrip(tmp_path, random_adapters(TEST_FLUX))
    inputs = scene_inputs(scenes=1, dtype=torch.float64)
    out16 = run_single(model16, adapters, tuple(t.to(torch.bfloat16) if t.dtype == torch.float64 else t
                                                  for t in inputs))
    out64 = run_single(flux64, adapters, inputs)
    assert out16.dtype == torch.bfloat16
    assert rel(out16, out64) < 3e-2
    lora = adapters.processor(SINGLE, 0).kv_tt_lora
    assert {key[1] for key in lora._folded} >= {torch.bfloat16, torch.float64}
