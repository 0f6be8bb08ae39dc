"""Runs LumiX against one ComfyUI tree's own weight-casting, cloning and attention code.

Started by test_gpu_paths.py as `<ComfyUI python> gpu_paths_probe.py <ComfyUI dir> <work dir> <scenario>`
(a subprocess, because ComfyUI's modules are process-global). Prints one JSON line
`{"ok": true, ...}` or raises. Everything runs on the CPU; where ComfyUI's code would need CUDA
(dynamic VRAM's page table), the probe gives the layer a recording stand-in for the one
native object involved and drives the rest of ComfyUI's own functions as they are.
"""
from __future__ import annotations

import copy
import ctypes
import dataclasses
import functools
import importlib.util
import inspect
import json
import pathlib
import sys

import torch

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]


def setup(comfy_dir: str):
    sys.path.insert(0, comfy_dir)
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE / "shim"))
    sys.path.insert(0, str(REPO))
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    comfy.cli_args.args.disable_pinned_memory = True  # host pinning needs CUDA; the vbar pins are counted below
    import comfy.model_management  # noqa: F401
    import lumix_test_shim  # noqa: F401  (tiny FLUX widths for ComfyUI's detection)
    spec = importlib.util.spec_from_file_location("lumix_pack", REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["lumix_pack"] = pack
    spec.loader.exec_module(pack)


def counting(cast, uncast):
    """ComfyUI's own cast/uncast, wrapped to count calls (signatures kept via __wrapped__)."""
    counts = {"cast": 0, "uncast": 0}

    @functools.wraps(cast)
    def counted_cast(*args, **kwargs):
        counts["cast"] += 1
        return cast(*args, **kwargs)

    counted_uncast = None
    if uncast is not None:
        @functools.wraps(uncast)
        def counted_uncast(*args, **kwargs):
            counts["uncast"] += 1
            return uncast(*args, **kwargs)
    return counts, counted_cast, counted_uncast


def protocol(cast=None, uncast=None):
    import comfy.ops

    from lumix_engine.flux.linear import CastProtocolWeights
    return CastProtocolWeights(cast or comfy.ops.cast_bias_weight,
                               uncast or getattr(comfy.ops, "uncast_bias_weight", None), comfy.ops.CastWeightBiasOp,
                               (comfy.ops.disable_weight_init.Linear.forward_comfy_cast_weights,))


def scenario_cast_values(work: pathlib.Path) -> dict:
    """Every cast path against the layer's own forward, float64 where the storage allows."""
    import comfy.ops

    from lumix_engine.flux.linear import plain_linear_weights, split_linear
    counts, cast, uncast = counting(comfy.ops.cast_bias_weight, getattr(comfy.ops, "uncast_bias_weight", None))
    weights = protocol(cast, uncast)
    generator = torch.Generator().manual_seed(0)
    rows = slice(2, None, 5)
    results = {}

    def linear(ops, dtype):
        layer = ops.Linear(12, 30, bias=True, dtype=dtype)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(30, 12, generator=generator).to(dtype))
            layer.bias.copy_(torch.randn(30, generator=generator).to(dtype))
        return layer

    def check(name, layer, x, expect_cast, tol):
        before = dict(counts)
        kind = "plain" if plain_linear_weights(layer, x) else "cast" if weights.takes_cast_path(layer) else "general"
        head, tail = split_linear(layer, x, 9, rows, weights)
        reference = layer(x)
        error = max((head - reference[rows, :, :9]).abs().max().item(), (tail - reference[..., 9:]).abs().max().item())
        assert error <= tol, f"{name}: split_linear differs from the layer by {error}"
        casts, uncasts = counts["cast"] - before["cast"], counts["uncast"] - before["uncast"]
        assert (casts > 0) == expect_cast, f"{name}: {casts} casts, expected {'some' if expect_cast else 'none'}"
        if weights.offloadable:
            assert casts == uncasts, f"{name}: {casts} casts but {uncasts} uncasts"
        results[name] = {"path": kind, "casts": casts, "uncasts": uncasts, "max_error": error}

    x64 = torch.randn(10, 7, 12, generator=generator, dtype=torch.float64)
    check("plain float64", linear(comfy.ops.disable_weight_init, torch.float64), x64, False, 1e-12)
    check("manual_cast float32 -> float64", linear(comfy.ops.manual_cast, torch.float32), x64, True, 1e-12)
    fp8 = linear(comfy.ops.manual_cast, torch.float32)
    fp8.weight = torch.nn.Parameter(fp8.weight.data.to(torch.float8_e4m3fn), requires_grad=False)
    check("manual_cast fp8 storage -> float64", fp8, x64, True, 1e-12)
    hooked = linear(comfy.ops.disable_weight_init, torch.float64)
    delta = 0.1 * torch.randn(30, 12, generator=generator, dtype=torch.float64)
    hooked.weight_function = [lambda w: w + delta]  # a LoRA in low-VRAM mode patches the weight like this
    check("weight_function (LoRA hook)", hooked, x64, True, 1e-12)
    if hasattr(comfy.ops, "uncast_bias_weight"):
        dynamic_cpu = linear(comfy.ops.manual_cast, torch.float32)
        dynamic_cpu._v = None  # dynamic VRAM's marker; on a CPU device the cast copies instead of faulting
        check("dynamic VRAM layer on CPU", dynamic_cpu, x64, True, 1e-12)
    fp8_ops = getattr(comfy.ops, "fp8_ops", None)
    if fp8_ops is not None:
        check("fp8_ops (own matmul: general path)", linear(fp8_ops, torch.float64), x64, False, 1e-12)

    class CustomOp(comfy.ops.manual_cast.Linear):  # e.g. GGUF: dequantises in its own forward
        def forward_comfy_cast_weights(self, input):
            return torch.nn.functional.linear(input, self.weight.to(input.dtype), self.bias.to(input.dtype))
    check("custom op (general path)", linear(type("Ops", (), {"Linear": CustomOp}), torch.float32), x64, False, 1e-12)
    return results


class RecordingVBar:
    """Stands in for comfy_aimdo's ModelVBAR (a CUDA page table): `fault` pins a module's
    pages (and reports them resident), `unpin` releases them. Counts both per module."""

    def __init__(self) -> None:
        self.pinned: dict[int, int] = {}
        self.faults = 0
        self.unpins = 0

    def fault(self, offset, size):
        self.faults += 1
        self.pinned[offset] = self.pinned.get(offset, 0) + 1
        return (ctypes.c_uint32 * 2)(1, offset)

    def unpin(self, offset, size):
        self.unpins += 1
        self.pinned[offset] = self.pinned.get(offset, 0) - 1


def dynamic_vram_layers(model, vbar: RecordingVBar) -> list:
    """Give every cast op the state ModelPatcherDynamic.load gives it (comfy_cast_weights,
    a vbar allocation `_v`, empty weight functions), as on an NVIDIA GPU with default flags."""
    layers = []
    for index, (name, module) in enumerate(model.named_modules()):
        if hasattr(module, "comfy_cast_weights") and getattr(module, "weight", None) is not None:
            module.comfy_cast_weights = True
            module.seed_key = name
            module._pin_state = None
            module._v_signature = None
            module._v = (vbar, index, 0)
            module.weight_function, module.bias_function = [], []
            module.weight_lowvram_function = module.bias_lowvram_function = None
            layers.append(name)
    return layers


def load_tiny(work: pathlib.Path, seed: int = 0):
    import comfy.sd

    from lumix_engine.tiny_random import TINY_FLUX, write_bfl_flux
    path = write_bfl_flux(work / f"flux_{seed}.safetensors", TINY_FLUX, seed=seed)
    return comfy.sd.load_diffusion_model(str(path))


def patch(model, work: pathlib.Path, qba: bool = True):
    from lumix_pack.nodes.loader import patch_model

    from lumix_engine.tiny_random import TINY_FLUX, random_adapters, write_adapters
    path = work / "lumix.safetensors"
    if not path.exists():
        write_adapters(path, random_adapters(TINY_FLUX, rank=2, seed=2))
    return patch_model(model, str(path), 1.0, qba)[0]  # (patched MODEL, info text)


def sampling_options(patcher) -> dict:
    """transformer_options as ComfyUI's sampler hands them to the model (wrappers included)."""
    options = copy.copy(patcher.model_options.get("transformer_options", {}))
    options["wrappers"] = patcher.wrappers
    return options


def run_diffusion_model(patcher, device="cpu", seed=0, options=None):
    """One forward of the patcher's diffusion model with LumiX's batch (5 maps, one scene)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 16, 8, 8, generator=generator).to(device)
    context = torch.randn(5, 6, 48, generator=generator).to(device)
    y = torch.randn(5, 32, generator=generator).to(device)
    t = torch.full((5,), 0.7, device=device)
    guidance = torch.full((5,), 3.5, device=device)
    model = patcher.model.diffusion_model
    return model(x, t, context, y=y, guidance=guidance,
                 transformer_options=options if options is not None else sampling_options(patcher))


def scenario_dynamic_vram(work: pathlib.Path) -> dict:
    """ComfyUI's dynamic-VRAM cast (vbar fault -> offloadable cast -> uncast -> unpin) driven for
    a whole LumiX-patched forward, on the meta device (the vbar path needs a device other
    than the weights' and other than the CPU). Every pin must be released, also when the run
    is interrupted part-way."""
    import comfy.model_management
    import comfy.ops
    if "offloadable" not in inspect.signature(comfy.ops.cast_bias_weight).parameters:
        # Older ComfyUI: no dynamic VRAM and nothing to release (cast_values covers its cast).
        assert not hasattr(comfy.ops, "uncast_bias_weight")
        return {"dynamic_vram": False}
    # The one CUDA call on the path: viewing the vbar's device pages as a tensor.
    # On NVIDIA, ComfyUI's default attention is torch SDPA; the CPU default (sub-quadratic)
    # asks the device for its free memory, which the meta device cannot answer.
    import comfy.ldm.flux.math as flux_math
    import comfy.ldm.modules.attention as attention
    import comfy_aimdo.torch
    flux_math.optimized_attention = attention.attention_pytorch
    comfy_aimdo.torch.aimdo_to_tensor = lambda alloc, device: torch.empty((1 << 20,), dtype=torch.uint8,
                                                                          device=device)
    base = load_tiny(work)
    patched = patch(base, work)
    vbar = RecordingVBar()
    layers = dynamic_vram_layers(patched.model.diffusion_model, vbar)
    lumix_counts, lumix_cast, lumix_uncast = counting(comfy.ops.cast_bias_weight, comfy.ops.uncast_bias_weight)
    counts, cast, uncast = counting(comfy.ops.cast_bias_weight, comfy.ops.uncast_bias_weight)
    comfy.ops.cast_bias_weight, comfy.ops.uncast_bias_weight = cast, uncast  # every layer's casts, stock ones too
    lumix_patches = list(patched.model_options["transformer_options"]["patches_replace"]["dit"].values())
    weights = protocol(lumix_cast, lumix_uncast)  # what comfy_glue.comfy_cast_weights() builds, counted
    for p in lumix_patches:
        p.weights = weights
    out = run_diffusion_model(patched, device="meta")
    assert out.device.type == "meta" and out.shape == (5, 16, 8, 8), out.shape
    first = {"faults": vbar.faults, "unpins": vbar.unpins, "casts": counts["cast"], "uncasts": counts["uncast"],
             "lumix_casts": lumix_counts["cast"], "lumix_uncasts": lumix_counts["uncast"]}
    # LumiX reads img_attn.qkv of every double block and linear1 of every single block itself.
    blocks = len(patched.model.diffusion_model.double_blocks) + len(patched.model.diffusion_model.single_blocks)
    assert lumix_counts["cast"] == lumix_counts["uncast"] == blocks, first
    assert vbar.faults == vbar.unpins and counts["cast"] == counts["uncast"], first
    leaks = {k: v for k, v in vbar.pinned.items() if v}
    assert not leaks, f"pages left pinned: {leaks}"

    # Interrupt part-way: a stock attention-output patch raises ComfyUI's interrupt in the
    # third block, as a user's Cancel would at the next op.
    calls = {"n": 0}

    def interrupt_after_two(attn, extra_options):
        calls["n"] += 1
        if calls["n"] == 3:
            comfy.model_management.interrupt_current_processing(True)
        return attn
    options = sampling_options(patched)
    options["patches"] = {"attn1_output_patch": [interrupt_after_two]}
    interrupted = False
    try:
        run_diffusion_model(patched, device="meta", options=options)
    except comfy.model_management.InterruptProcessingException:
        interrupted = True
    finally:
        comfy.model_management.interrupt_current_processing(False)
    leaks = {k: v for k, v in vbar.pinned.items() if v}
    assert not leaks, f"pages left pinned after an interrupt: {leaks}"
    assert vbar.faults == vbar.unpins and counts["cast"] == counts["uncast"]
    from lumix_engine.method.patch import _SAMPLED_MODEL, lumix_patches_in
    assert _SAMPLED_MODEL.get() is None, "the sampled-model binding outlived the interrupted run"
    assert not lumix_patches_in(base.model_options.get("transformer_options", {}).get("patches_replace")), \
        "the MODEL that went into LumiXLoader got LumiX patches"
    assert all("forward" not in vars(m) for m in base.model.diffusion_model.modules()), "a block's forward was replaced"

    after_interrupt = {"faults": vbar.faults, "unpins": vbar.unpins, "casts": counts["cast"],
                       "uncasts": counts["uncast"]}

    # Control: the same run with the cast called as before this fix (legacy two-value mode,
    # no uncast) leaves exactly LumiX's layers pinned, so the counts above do see LumiX's casts.
    legacy = protocol(comfy.ops.cast_bias_weight, comfy.ops.uncast_bias_weight)
    legacy.offloadable = False
    for p in lumix_patches:
        p.weights = legacy
    before = dict(vbar.pinned)
    run_diffusion_model(patched, device="meta")
    legacy_leaks = sum(vbar.pinned.values()) - sum(before.values())
    assert legacy_leaks == blocks, legacy_leaks
    return {"dynamic_vram": True, "legacy_mode_pins_left": legacy_leaks, "layers": len(layers), "first_run": first, "after_interrupt": after_interrupt, "interrupted": interrupted,
            "attention_output_patch_calls": calls["n"]}


def rebuild(patcher, model):
    """A clone of `patcher` (all its patches and wrappers) that runs `model`: what
    clone(model_override=...) does, and what clone(disable_dynamic / force_deepcopy) does
    with a freshly loaded copy."""
    if "model_override" in inspect.signature(patcher.clone).parameters:
        import comfy.model_patcher
        fresh = comfy.model_patcher.ModelPatcher(model, patcher.load_device, patcher.offload_device)
        return patcher.clone(model_override=fresh.get_clone_model_override())
    clone = patcher.clone()
    clone.model = model
    return clone


def scenario_rebuilt_clones(work: pathlib.Path) -> dict:
    """Two rebuilt clones with different weights in one process: each runs its own blocks."""
    a, b = load_tiny(work, seed=0), load_tiny(work, seed=5)
    patched = patch(a, work)
    clone_b = rebuild(patched, b.model)
    clone_a = rebuild(patched, load_tiny(work, seed=0).model)  # a reload, as disable_dynamic does
    with torch.no_grad():
        out_a, out_b = run_diffusion_model(clone_a), run_diffusion_model(clone_b)
        ref_a, ref_b = run_diffusion_model(patch(a, work)), run_diffusion_model(patch(b, work))
        plain_b = run_diffusion_model(b)
    err_a, err_b = (out_a - ref_a).abs().max().item(), (out_b - ref_b).abs().max().item()
    assert err_a < 1e-5 and err_b < 1e-5, (err_a, err_b)
    # The same through ComfyUI's sampler, which hands the wrappers to the model itself.
    sampled_b, sampled_ref_b = sample(clone_b), sample(patch(b, work))
    err_sampled = (sampled_b - sampled_ref_b).abs().max().item()
    assert err_sampled < 1e-5 and (sampled_b - sample(patched)).abs().max() > 1e-3, err_sampled
    # Control: without LumiX's wrapper the rebuilt clone would run the first model's blocks.
    import comfy.patcher_extension
    from lumix_pack.nodes.loader import LUMIX_WRAPPER_KEY
    unwrapped = rebuild(patched, b.model)
    unwrapped.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, LUMIX_WRAPPER_KEY)
    assert (sample(unwrapped) - sampled_ref_b).abs().max() > 1e-3
    result = {}
    if "force_deepcopy" in inspect.signature(patched.clone).parameters:
        # A deep-copied clone reloads the model from its file; change its weights afterwards.
        deep = patched.clone(force_deepcopy=True)
        assert deep.model is not patched.model
        with torch.no_grad():
            deep.model.diffusion_model.double_blocks[0].img_attn.qkv.weight.mul_(1.5)
        reference = patch(rebuild(load_tiny(work, seed=0), deep.model), work)
        result["err_force_deepcopy"] = (sample(deep) - sample(reference)).abs().max().item()
        assert result["err_force_deepcopy"] < 1e-5, result
    assert (out_a - out_b).abs().max() > 1e-3 and (out_b - plain_b).abs().max() > 1e-3
    # A clone whose model is no FLUX of that shape: a clear error, not a shape error from torch.
    from dataclasses import replace

    import comfy.sd

    from lumix_engine.tiny_random import TINY_FLUX, write_bfl_flux
    wide = comfy.sd.load_diffusion_model(str(write_bfl_flux(work / "wide.safetensors", replace(TINY_FLUX, hidden_size=96,
                                                                                                 num_heads=6))))
    try:
        run_diffusion_model(rebuild(patched, wide.model))
        raise AssertionError("a clone with other blocks ran")
    except Exception as error:  # noqa: BLE001 - the type and text are what is checked
        message = f"{type(error).__name__}: {error}"
    assert "ModelMismatchError" in message and "Put LumiXLoader after that node" in message, message
    return {"err_a": err_a, "err_b": err_b, "err_sampled": err_sampled, **result, "changed_blocks_error": message}


def scenario_torch_compile(work: pathlib.Path) -> dict:
    """ComfyUI's torch.compile wrapper (what TorchCompileModel installs) behind and in front of
    LumiX; backend "eager" so that the check is dynamo's tracing, not a C++ build."""
    from comfy_api.torch_helpers import set_torch_compile_wrapper
    base = load_tiny(work)
    results = {}
    reference = sample(patch(base, work))
    behind = patch(base, work).clone()
    set_torch_compile_wrapper(behind, backend="eager")
    front = base.clone()
    set_torch_compile_wrapper(front, backend="eager")
    front = patch(front, work)
    for name, model in (("behind", behind), ("in_front", front)):
        out = sample(model)
        results[name] = (out - reference).abs().max().item()
        assert results[name] < 1e-4, results
    return results


def sample(patcher, steps: int = 2):
    import comfy.sample
    import comfy.samplers

    from lumix_engine.method.sampling import shared_noise
    generator = torch.Generator().manual_seed(3)
    cond = [[torch.randn(1, 6, 48, generator=generator), {"pooled_output": torch.randn(1, 32, generator=generator),
                                                           "guidance": 3.5}]]
    noise = shared_noise(1, (16, 8, 8), 0)
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    with torch.no_grad():
        return comfy.sample.sample_custom(patcher, noise, 1.0, comfy.samplers.sampler_object("euler"), sigmas, cond,
                                          cond, torch.zeros_like(noise), disable_pbar=True, seed=0)


def scenario_attention_override(work: pathlib.Path) -> dict:
    """optimized_attention_override (and, where the stock block applies them, attn1_patch /
    attn1_output_patch) reach LumiX blocks as they reach the stock ones. What the stock
    blocks do is seen by running the unpatched model with the same patches."""
    import comfyui_version
    base = load_tiny(work)
    patched = patch(base, work)
    seen = {"override": 0, "attn1_patch": 0, "attn1_output_patch": 0}

    def override(func, *args, **kwargs):
        seen["override"] += 1
        return func(*args, **kwargs)

    def attn1_patch(q, k, v, pe=None, attn_mask=None, extra_options=None):
        seen["attn1_patch"] += 1
        assert q.shape == k.shape and extra_options["img_slice"][1] == q.shape[2]
        return {"v": v * 0.5}

    def attn1_output_patch(attn, extra_options):
        seen["attn1_output_patch"] += 1
        return attn

    patches = {"attn1_patch": [attn1_patch], "attn1_output_patch": [attn1_output_patch]}
    blocks = len(base.model.diffusion_model.double_blocks) + len(base.model.diffusion_model.single_blocks)
    stock_options = sampling_options(base)
    stock_options["patches"] = patches
    with torch.no_grad():
        run_diffusion_model(base, options=stock_options)
    stock_seen = dict(seen)
    assert stock_seen["attn1_patch"] == stock_seen["attn1_output_patch"] in (0, blocks), stock_seen
    stock_applies = stock_seen["attn1_patch"] == blocks
    seen.update({name: 0 for name in seen})

    options = sampling_options(patched)
    options["optimized_attention_override"] = override
    options["patches"] = patches
    with torch.no_grad():
        patched_out = run_diffusion_model(patched, options=options)
        plain_out = run_diffusion_model(patched)
    assert seen["override"] == blocks, seen
    expected = blocks if stock_applies else 0
    assert seen["attn1_patch"] == expected and seen["attn1_output_patch"] == expected, (seen, expected)
    changed = (patched_out - plain_out).abs().max().item()
    assert (changed > 1e-4) == stock_applies, changed
    return {"seen": seen, "stock_seen": stock_seen, "stock_block_applies_attn1_patches": stock_applies,
            "comfyui_version": comfyui_version.__version__}


def scenario_refusals(work: pathlib.Path) -> dict:
    """FLUX-family models LumiX was not trained on are refused by name, on ComfyUI's own classes."""
    import comfy.ldm.flux.model as flux_model
    import comfy.ops

    from lumix_engine.flux.architecture import other_flux_family
    params = {f.name: f for f in dataclasses.fields(flux_model.FluxParams)}
    base = dict(in_channels=16, out_channels=16, vec_in_dim=32, context_in_dim=48, hidden_size=64, mlp_ratio=4.0,
                num_heads=4, depth=1, depth_single_blocks=1, axes_dim=[4, 6, 6], theta=10000, qkv_bias=True,
                guidance_embed=True)
    for name, value in (("patch_size", 2), ("txt_ids_dims", [])):
        if name in params:
            base[name] = value
    names = {}
    build = functools.partial(flux_model.Flux, operations=comfy.ops.disable_weight_init, dtype=torch.float32)
    names["FLUX.1-dev"] = other_flux_family(build(**base))
    fill = dict(base, in_channels=96 // 4 if "patch_size" in params else 96)
    names["FLUX.1 Fill"] = other_flux_family(build(**fill))
    if "global_modulation" in params:
        names["FLUX.2"] = other_flux_family(build(**dict(base, global_modulation=True)))
    try:
        from comfy.ldm.chroma.model import Chroma, ChromaParams
        sig = {f.name for f in dataclasses.fields(ChromaParams)}
        chroma_args = dict(in_channels=64, out_channels=64, context_in_dim=48, hidden_size=64, mlp_ratio=4.0,
                           num_heads=4, depth=1, depth_single_blocks=1, axes_dim=[4, 6, 6], theta=10000,
                           qkv_bias=True, guidance_embed=False, approximator_in_dim=64, approximator_depth=1,
                           approximator_hidden_size=64, patch_size=1, in_dim=64, out_dim=64, hidden_dim=64,
                           n_layers=1, txt_ids_dims=[], vec_in_dim=32)
        chroma_args = {k: v for k, v in chroma_args.items() if k in sig}
        names["Chroma"] = other_flux_family(Chroma(operations=comfy.ops.disable_weight_init, dtype=torch.float32,
                                                   **chroma_args))
    except ImportError:
        pass
    # FLUX.1 Kontext has FLUX.1-dev's architecture; what gives it away is the reference
    # latents its workflows pass (ReferenceLatent), refused before any block runs.
    patched = patch(load_tiny(work), work)
    generator = torch.Generator().manual_seed(0)
    try:
        patched.model.diffusion_model(torch.randn(5, 16, 8, 8, generator=generator), torch.full((5,), 0.5),
                                      torch.randn(5, 6, 48, generator=generator), y=torch.randn(5, 32),
                                      guidance=torch.full((5,), 3.5), ref_latents=[torch.randn(1, 16, 8, 8)],
                                      transformer_options=sampling_options(patched))
        raise AssertionError("reference latents reached LumiX's blocks")
    except Exception as error:  # noqa: BLE001 - the type and text are what is checked
        names["Kontext reference latents"] = f"{type(error).__name__}: {error}"
    assert names["Kontext reference latents"].startswith("ModelMismatchError") and \
        "Kontext" in names["Kontext reference latents"], names
    assert names["FLUX.1-dev"] is None, names
    keywords = {"FLUX.1 Fill": "extra input channels", "FLUX.2": "FLUX.2", "Chroma": "Chroma"}
    for name, found in names.items():
        if name in keywords:
            assert found and keywords[name] in found, (name, found)
    return names


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in globals().items() if name.startswith("scenario_")}

if __name__ == "__main__":
    comfy_dir, work_dir, name = sys.argv[1:4]
    setup(comfy_dir)
    result = SCENARIOS[name](pathlib.Path(work_dir))
    print("LUMIX_PROBE " + json.dumps({"ok": True, "scenario": name, "result": result}, default=str))
