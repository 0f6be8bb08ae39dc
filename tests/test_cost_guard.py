"""LumiX's cost on the engine's own FLUX, pinned, and the inference path it is pinned on.

Counted with evaluation/cost_counter.py (aten ops, fresh storage, weight copies, FLOPs) on the
meta device at FLUX.1-dev width (one double + one single block, 5 maps, 256 image + 64 text
tokens): exact, and nothing is computed. The real-ComfyUI twin is tests/comfyui/test_cost_guard.py.

Inference (no autograd) writes the modulation, the deltas and the second residual in place
and rope straight into the joint q/k; those paths are checked here against the plain float64
formulas (with a float64 rope table, so that rope's own float32 rounding is not what is measured).
"""
from __future__ import annotations

import pytest
import torch

from evaluation.cost_counter import CostCounter, SectionCall, count_cost, guard_problems, section_hooks
from evaluation.reference import plain_double_block, plain_single_block
from lumix_engine.flux.model import Flux, FluxConfig
from lumix_engine.method.adapters import DOUBLE, SINGLE, new_adapters
from lumix_engine.method.patch import block_patches
from tests.factories import scene_inputs
from tests.test_qba_blocks import rel, run_double, run_single

IMG_TOKENS, TXT_TOKENS = 256, 64
# Pinned counts of the LumiX forward (inference mode, steady state: adapter cores folded).
# Total ops 352 -> 356 when the rope table became MPS-safe (lumix_engine/devices.py): a few
# moves of the once-per-forward table, outside the blocks, in the unpatched forward too.
BUDGET = {"total": {"ops": 356, "fresh_mb": 1022.681},
          "double_block": {"ops": 156, "fresh_mb": 444.359}, "single_block": {"ops": 98, "fresh_mb": 480.645}}
MAX_FLOP_RATIO, MAX_FRESH_RATIO = 0.945, 1.05


@pytest.fixture(scope="module")
def full_width():
    config = FluxConfig(depth=1, depth_single_blocks=1)
    with torch.device("meta"):
        model = Flux(config).eval().requires_grad_(False)
        adapters = new_adapters(config.hidden_size, 1, 1, rank=8).requires_grad_(False)
        inputs = (torch.empty(5, IMG_TOKENS, config.in_channels), torch.zeros(5, IMG_TOKENS, 3),
                  torch.empty(5, TXT_TOKENS, config.context_in_dim), torch.zeros(5, TXT_TOKENS, 3),
                  torch.full((5,), 0.5), torch.empty(5, config.vec_in_dim), torch.full((5,), 3.5))
    return model, adapters, inputs


def count(model, adapters, inputs, patched: bool, extra_clone: bool = False) -> dict:
    """One steady-state forward (after a warm-up one) under inference mode, totals and per block call."""
    patches = block_patches(model, adapters) if patched else {}

    def forward(options):
        with torch.inference_mode():
            return model(*inputs, transformer_options=options)

    forward({"patches_replace": {"dit": patches}})
    counter = CostCounter([*model.parameters(), *adapters.parameters()])
    handles = [] if patched else section_hooks(counter, {"double_block": model.double_blocks[0],
                                                         "single_block": model.single_blocks[0]})
    sectioned = {key: SectionCall(counter, key[0], patch) for key, patch in patches.items()}
    proj = model.double_blocks[0].img_attn.proj
    if extra_clone:  # a regression: one more copy of a weight per call
        own_forward = proj.forward
        proj.forward = lambda a: (proj.weight.clone(), own_forward(a))[1]
    try:
        with counter:
            forward({"patches_replace": {"dit": sectioned}})
    finally:
        proj.__dict__.pop("forward", None)
        for handle in handles:
            handle.remove()
    total = counter.finish()
    return {"total": total.summary(), **{name: c.per_call() for name, c in counter.sections.items()}}


def problems(lumix: dict, unpatched: dict) -> list[str]:
    found = guard_problems(lumix["total"], unpatched["total"], BUDGET["total"], MAX_FLOP_RATIO, MAX_FRESH_RATIO)
    for block in ("double_block", "single_block"):
        found += guard_problems(lumix[block], unpatched[block], BUDGET[block], max_fresh_ratio=MAX_FRESH_RATIO,
                                where=f"{block} call")
    return found


def test_lumix_forward_stays_within_its_pinned_cost(full_width):
    unpatched, lumix = count(*full_width, patched=False), count(*full_width, patched=True)
    assert unpatched["total"]["weight_copies"] == 0
    found = problems(lumix, unpatched)
    assert not found, "\n".join(found) + f"\nmeasured: {lumix}"


def test_the_guard_fires_on_one_extra_weight_copy(full_width):
    unpatched, lumix = count(*full_width, patched=False), count(*full_width, patched=True, extra_clone=True)
    found = problems(lumix, unpatched)
    assert any("weight copies" in p and "double_block" in p for p in found), found
    assert any("MB of fresh storage" in p for p in found), found


def test_counter_sees_what_it_claims_to_see():
    """Views and in-place ops allocate nothing; a new tensor, a weight copy and a matmul's FLOPs are counted."""
    weight = torch.randn(8, 4)
    x = torch.randn(3, 4)

    def work():
        y = x @ weight.t()          # 3 x 8 floats fresh, 2 * 3 * 4 * 8 FLOPs
        y.add_(1).view(24)          # in place and a view: nothing fresh
        return weight.to(torch.float64)  # a copy of the weight
    _, counter = count_cost(work, [weight])
    total = counter.total
    assert total.weight_copies == 1 and total.flops == 2 * 3 * 4 * 8
    assert total.fresh_bytes == 3 * 8 * 4 + 8 * 4 * 8, total.fresh_by_name


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
@pytest.mark.parametrize("qba,strength,scenes", [(True, 1.0, 1), (True, 0.4, 2), (False, 1.0, 2)])
def test_inference_path_matches_plain_formula_float64_and_leaves_inputs_alone(flux64, adapters64, mode, qba,
                                                                              strength, scenes):
    img, txt, vec, pe = scene_inputs(scenes=scenes, dtype=torch.float64)
    inputs = (img, txt, vec, pe.double())  # rope in float64 too: the comparison is then exact
    before = [t.clone() for t in inputs]
    with mode():
        out_img, out_txt = run_double(flux64, adapters64, inputs, 1, strength=strength, qba=qba)
        out_x = run_single(flux64, adapters64, inputs, 2, strength=strength, qba=qba)
    assert all(torch.equal(a, b) for a, b in zip(inputs, before)), "a block changed its inputs"
    lora = adapters64.processor(DOUBLE, 1)
    ref_img, ref_txt = plain_double_block(flux64.double_blocks[1], *before, lora.kv_tt_lora, lora.proj_tt_lora,
                                          strength, qba)
    lora = adapters64.processor(SINGLE, 2)
    ref_x = plain_single_block(flux64.single_blocks[2], torch.cat((before[1], before[0]), 1), before[2], before[3],
                               lora.kv_tt_lora, lora.proj_tt_lora, strength, qba)
    assert rel(out_img, ref_img) <= 1e-12 and rel(out_txt, ref_txt) <= 1e-12 and rel(out_x, ref_x) <= 1e-12


def test_training_still_gets_gradients_through_every_adapter(flux64, adapters64):
    """With gradients enabled nothing is written in place: backward reaches G1, G2, G3 of both adapters."""
    adapters = adapters64.copy()
    img, txt, vec, pe = scene_inputs(scenes=1, dtype=torch.float64)
    img_out, txt_out = run_double(flux64, adapters, (img, txt, vec, pe), 1)
    (img_out.square().sum() + txt_out.square().sum()).backward()
    lora = adapters.processor(DOUBLE, 1)
    for adapter in (lora.kv_tt_lora, lora.proj_tt_lora):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (adapter.G1, adapter.G2, adapter.G3))
