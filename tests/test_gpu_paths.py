"""Weight leases, call-time block lookup, attention hooks and FLUX-family refusals, in plain torch.

The same paths against ComfyUI's own cast / clone / attention code are in
tests/comfyui/test_gpu_paths.py; these tests pin the engine's side of the contract.
"""
from dataclasses import replace

import pytest
import torch
from torch import nn

from lumix_engine.errors import ModelMismatchError
from lumix_engine.flux.architecture import describe_flux, other_flux_family
from lumix_engine.flux.linear import CastProtocolWeights, WeightLease, plain_linear_weights, split_linear
from lumix_engine.flux.model import DoubleStreamBlock
from lumix_engine.method.patch import SampledModel, block_patches, sampling
from lumix_engine.method.qba import AttentionHooks
from lumix_engine.tiny_random import random_adapters, random_bfl_flux
from tests.factories import TEST_FLUX, adapters_roundtrip, scene_inputs

ROWS = slice(2, None, 5)


class CastOp(nn.Linear):
    """A host framework's cast op: its forward casts the stored weight to the input."""

    def forward_cast(self, x):
        return nn.functional.linear(x, self.weight.to(x.dtype), self.bias.to(x.dtype))

    def forward(self, x):
        return self.forward_cast(x)


class OwnForwardOp(CastOp):
    """A custom op (GGUF-like) with a forward of its own: never sliced."""

    def forward_cast(self, x):
        return super().forward_cast(x)


class Ledger:
    """Cast functions in the two protocols, recording every cast and release."""

    def __init__(self):
        self.casts, self.releases = 0, 0

    def offloadable_cast(self, layer, x, offloadable=False):
        self.casts += 1
        weight, bias = layer.weight.to(x.dtype), layer.bias.to(x.dtype)
        return (weight, bias, "stream") if offloadable else (weight, bias)

    def uncast(self, layer, weight, bias, offload):
        assert offload == "stream"
        self.releases += 1

    def legacy_cast(self, layer, x):
        self.casts += 1
        return layer.weight.to(x.dtype), layer.bias.to(x.dtype)


def cast_layer(op=CastOp, seed=0):
    torch.manual_seed(seed)
    layer = op(12, 30)
    layer.comfy_cast_weights = True  # selects the cast path, as a host's cast op does
    return layer


def protocol(ledger, legacy=False):
    if legacy:
        return CastProtocolWeights(ledger.legacy_cast, None, CastOp, (CastOp.forward_cast,))
    return CastProtocolWeights(ledger.offloadable_cast, ledger.uncast, CastOp, (CastOp.forward_cast,))


@pytest.mark.parametrize("legacy", [False, True])
def test_cast_lease_matches_the_plain_projection_float64_and_is_released(legacy):
    ledger, layer = Ledger(), cast_layer()
    x = torch.randn(10, 7, 12, dtype=torch.float64)
    weights = protocol(ledger, legacy)
    assert weights.offloadable is not legacy
    head, tail = split_linear(layer, x, 9, ROWS, weights)
    full = layer.forward_cast(x)
    # float64 throughout: only summation order differs from the layer's own forward
    assert (head - full[ROWS, :, :9]).abs().max() <= 1e-12 and (tail - full[..., 9:]).abs().max() <= 1e-12
    assert ledger.casts == 1 and ledger.releases == (0 if legacy else 1)


def test_a_lease_is_released_when_the_projection_fails():
    released = []

    def weights(layer, x):
        return WeightLease(torch.zeros(30, 11), None, lambda: released.append(True))
    with pytest.raises(RuntimeError):
        split_linear(cast_layer(), torch.randn(5, 3, 12), 9, ROWS, weights)
    assert released == [True]


def test_custom_ops_and_quantised_weights_keep_the_general_path():
    ledger = Ledger()
    weights = protocol(ledger)
    x = torch.randn(5, 3, 12)
    assert weights(cast_layer(OwnForwardOp), x) is None
    quantised = cast_layer()
    quantised.weight = nn.Parameter(quantised.weight.data.as_subclass(QuantisedStandIn), requires_grad=False)
    assert weights(quantised, x) is None
    assert ledger.casts == 0


class QuantisedStandIn(torch.Tensor):
    """A tensor subclass, as GGUF and quantised formats store weights."""


def test_an_unknown_cast_answer_is_a_clear_error_not_an_unpacking_error():
    def four_values(layer, x, offloadable=False):
        return layer.weight, layer.bias, None, None
    weights = CastProtocolWeights(four_values, lambda *a: None, CastOp, (CastOp.forward_cast,))
    with pytest.raises(ModelMismatchError, match="returned 4 values, expected 3.*Update ComfyUI-LumiX"):
        split_linear(cast_layer(), torch.randn(5, 3, 12), 9, ROWS, weights)
    with pytest.raises(ModelMismatchError, match="no matching uncast"):
        CastProtocolWeights(four_values, None, CastOp, (CastOp.forward_cast,))


def test_a_cast_that_changes_the_weight_layout_is_refused_and_still_released():
    ledger = Ledger()

    def transposed(layer, x, offloadable=False):
        ledger.casts += 1
        return layer.weight.t(), layer.bias, "stream"
    weights = CastProtocolWeights(transposed, ledger.uncast, CastOp, (CastOp.forward_cast,))
    with pytest.raises(ModelMismatchError, match="shape"):
        split_linear(cast_layer(), torch.randn(5, 3, 12), 9, ROWS, weights)
    assert ledger.casts == ledger.releases == 1


@pytest.fixture(scope="module")
def adapters64(tmp_path_factory):
    return adapters_roundtrip(tmp_path_factory.mktemp("ckpt"), random_adapters(TEST_FLUX), dtype=torch.float64)


def forward(model, patches, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(5, 16, TEST_FLUX.in_channels, generator=g, dtype=torch.float64)
    ids = torch.zeros(5, 16, 3, dtype=torch.float64)
    ids[:, :, 1], ids[:, :, 2] = torch.arange(4).repeat_interleave(4), torch.arange(4).repeat(4)
    txt = torch.randn(5, 6, TEST_FLUX.context_in_dim, generator=g, dtype=torch.float64)
    y = torch.randn(5, TEST_FLUX.vec_in_dim, generator=g, dtype=torch.float64)
    t, guidance = torch.full((5,), 0.6, dtype=torch.float64), torch.full((5,), 3.5, dtype=torch.float64)
    options = {"patches_replace": {"dit": patches}}
    return model(img, ids, txt, torch.zeros(5, 6, 3, dtype=torch.float64), t, y, guidance, options)


def test_patches_run_the_blocks_of_the_model_being_sampled(adapters64):
    model_a = random_bfl_flux(TEST_FLUX, seed=0, dtype=torch.float64)
    model_b = random_bfl_flux(TEST_FLUX, seed=7, dtype=torch.float64)
    patches_a, patches_b = block_patches(model_a, adapters64), block_patches(model_b, adapters64)
    with sampling(model_b):
        rebuilt = forward(model_b, patches_a)
    assert torch.equal(rebuilt, forward(model_b, patches_b))
    # Outside a binding the patch runs the block it was made on (plain-torch use, no wrapper).
    assert not torch.allclose(forward(model_b, patches_a), rebuilt)


def test_the_sampled_model_wrapper_binds_its_executors_model_and_refuses_reference_latents(adapters64):
    model = random_bfl_flux(TEST_FLUX, seed=7, dtype=torch.float64)
    patches = block_patches(random_bfl_flux(TEST_FLUX, dtype=torch.float64), adapters64)

    class Executor:
        class_obj = model

        def __call__(self, *args, **kwargs):
            return forward(model, patches)
    assert torch.equal(SampledModel()(Executor()), forward(model, block_patches(model, adapters64)))

    class Kontext(nn.Module):
        def _forward(self, x, timestep, context, y=None, guidance=None, ref_latents=None, control=None):
            raise AssertionError("not reached")
    Executor.class_obj = Kontext()
    with pytest.raises(ModelMismatchError, match="Kontext.*`color` input"):
        SampledModel()(Executor(), 1, 2, 3, None, None, [torch.zeros(1)])


def test_a_sampled_model_with_other_blocks_is_a_clear_error(adapters64):
    model = random_bfl_flux(TEST_FLUX, dtype=torch.float64)
    patches = block_patches(model, adapters64)
    other = random_bfl_flux(replace(TEST_FLUX, hidden_size=96, num_heads=6, axes_dim=[4, 6, 6]), dtype=torch.float64)
    with sampling(other), pytest.raises(ModelMismatchError, match="Put LumiXLoader after that node"):
        forward(model, patches)


@pytest.mark.parametrize("qba", [True, False])
@pytest.mark.parametrize("kind", ["double_block", "single_block"])
def test_attention_hooks_see_the_stock_tensors_and_identity_hooks_change_nothing(adapters64, kind, qba):
    """With a `before` hook the block rotates the joint (broadcast) sequence instead of the
    color queries alone; an identity hook must give the same result (float64, 1e-12)."""
    from lumix_engine.flux.rotary import BflRotary
    from lumix_engine.method.adapters import DOUBLE, SINGLE
    from lumix_engine.method.layouts.bfl import BflDoubleBlock, BflSingleBlock
    from lumix_engine.method.qba import lumix_double_block, lumix_single_block
    model = random_bfl_flux(TEST_FLUX, dtype=torch.float64)
    img, txt, vec, pe = scene_inputs(scenes=2, dtype=torch.float64)
    seen = []

    def before(q, k, v, rotary, mask):
        seen.append((q.shape, k.shape))
        return q, k, v, rotary, mask

    def after(attn):
        seen.append(attn.shape)
        return attn
    hooks = AttentionHooks(before, after)
    if kind == "double_block":
        block_adapters = adapters64.block(DOUBLE, 0, 1.0, qba)
        layout = BflDoubleBlock(model.double_blocks[0])
        plain = lumix_double_block(layout, block_adapters, img, txt, vec, BflRotary(pe))
        hooked = lumix_double_block(layout, block_adapters, img, txt, vec, BflRotary(pe), hooks=hooks)
    else:
        block_adapters = adapters64.block(SINGLE, 0, 1.0, qba)
        layout = BflSingleBlock(model.single_blocks[0])
        x = torch.cat((txt, img), 1)
        plain, hooked = (lumix_single_block(layout, block_adapters, x, vec, BflRotary(pe)),), \
            (lumix_single_block(layout, block_adapters, x, vec, BflRotary(pe), hooks=hooks),)
    for a, b in zip(plain, hooked):
        assert (a - b).abs().max() <= 1e-12
    (q_shape, k_shape), attn_shape = seen
    assert q_shape == k_shape and q_shape[0] == 10 and attn_shape[:2] == (10, q_shape[2])


class AppliesAttentionPatches(DoubleStreamBlock):
    """A stock block that calls transformer_options["patches"] attn1_patch / attn1_output_patch
    (as ComfyUI 0.29's FLUX blocks do; the plain-torch blocks, like 0.3.64's, ignore them).
    Counts its own calls."""
    calls = 0

    def forward(self, img, txt, vec, pe, attn_mask=None, transformer_options=None):
        type(self).calls += 1
        patches = (transformer_options or {}).get("patches", {})
        for patch in patches.get("attn1_patch", ()):
            patch(img, img, img, pe=pe, attn_mask=attn_mask, extra_options={})
        for patch in patches.get("attn1_output_patch", ()):
            patch(img, {})
        return super().forward(img, txt, vec, pe, attn_mask, transformer_options)


def test_attention_patches_apply_where_the_stock_block_applies_them_found_by_calling_it_once(adapters64):
    model = random_bfl_flux(TEST_FLUX, dtype=torch.float64)
    for block in model.double_blocks:
        block.__class__ = AppliesAttentionPatches
    patches = block_patches(model, adapters64)
    seen = {"attn1_patch": 0, "attn1_output_patch": 0}

    def before(q, k, v, pe=None, attn_mask=None, extra_options=None):
        seen["attn1_patch"] += 1
        return {}

    def after(attn, extra_options):
        seen["attn1_output_patch"] += 1
        return attn
    options = {"patches": {"attn1_patch": [before], "attn1_output_patch": [after]}}
    img, txt, vec, pe = scene_inputs(scenes=1, dtype=torch.float64)
    double = {"img": img, "txt": txt, "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": options}
    single = {"img": torch.cat((txt, img), 1), "vec": vec, "pe": pe, "attn_mask": None, "transformer_options": options}
    with torch.no_grad():
        for index in range(2):
            patches[("double_block", index)](dict(double), {})
        patches[("single_block", 0)](dict(single), {})
        plain = patches[("double_block", 0)]({**double, "transformer_options": {}}, {})
    # Applied by LumiX in the two double blocks (whose stock forward applies them), not in the single one.
    assert seen == {"attn1_patch": 2, "attn1_output_patch": 2}, seen
    # The stock forward ran once for its class (then cached), and never for a call without patches.
    assert AppliesAttentionPatches.calls == 1
    assert plain["img"].shape == img.shape


def test_plain_weights_are_read_only_where_the_layers_own_forward_would_read_them():
    x = torch.randn(3, 4)
    layer = nn.Linear(4, 6)
    assert plain_linear_weights(layer, x) is not None
    layer.weight_function, layer.bias_function = [], []   # ComfyUI ops with no hooks: forward uses the weight
    assert plain_linear_weights(layer, x) is not None
    for attribute, value in (("comfy_cast_weights", True), ("weight_function", [lambda w: w]),
                             ("bias_function", [lambda b: b])):
        hooked = nn.Linear(4, 6)
        setattr(hooked, attribute, value)
        assert plain_linear_weights(hooked, x) is None, attribute


def named_flux(**changes):
    model = random_bfl_flux(TEST_FLUX)
    for name, value in changes.items():
        setattr(model, name, value)
    return model


@pytest.mark.parametrize("changes,name", [
    ({"distilled_guidance_layer": nn.Linear(2, 2)}, "Chroma"),
    ({"double_stream_modulation_img": nn.Linear(2, 2)}, "FLUX.2"),
    ({"img_in": nn.Linear(384, TEST_FLUX.hidden_size)}, "FLUX.1 Fill, Depth or Canny"),
])
def test_flux_family_models_lumix_was_not_trained_on_are_refused_by_name(changes, name):
    model = named_flux(**changes)
    assert name in other_flux_family(model)
    with pytest.raises(ModelMismatchError, match=f"this MODEL is .*{name.split(',')[0]}.*trained on FLUX.1-dev"):
        describe_flux(model)


def test_flux1_dev_is_not_mistaken_for_another_family():
    assert other_flux_family(random_bfl_flux(TEST_FLUX)) is None
