"""Counts the cost of LumiX's forward against this ComfyUI's own unpatched forward (test_cost_guard.py).

Started as `<ComfyUI python> cost_guard_probe.py <ComfyUI dir> <work dir> <scenario>`, like
gpu_paths_probe.py (whose setup and helpers it uses). Prints one `LUMIX_PROBE {...}` line.

- full_width: FLUX.1-dev width (hidden 3072) with one double and one single block, 5 maps,
  256 image + 64 text tokens, loaded by comfy.sd.load_diffusion_model_state_dict on the meta
  device (shapes only: nothing is computed or allocated, so the count takes a second), in
  float32 and stored as fp8 e4m3fn (ComfyUI then builds manual-cast ops that cast every
  weight per call). Unpatched and LumiX-patched forwards run through the real wrappers;
  `inject_clone` adds a deliberate extra weight copy to the patched run (the guard must fire).
- tiny_real: the tiny FLUX from a real safetensors file, real CPU tensors, float32 and fp8
  storage: the same counts on tensors that are really computed.
"""
from __future__ import annotations

import json
import pathlib
import sys

import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gpu_paths_probe as probe  # noqa: E402

IMG_SIDE, TXT_TOKENS = 32, 64  # latent 32x32 -> 16x16 = 256 image tokens per map


def counted(patcher, base, inputs, inject_clone: bool = False) -> dict:
    """One steady-state forward (after a warm-up one) of `patcher`, counted, totals and per block call."""
    from evaluation.cost_counter import CostCounter, SectionCall, section_hooks, top_ops
    model = base.model.diffusion_model
    x, t, context, y, guidance = inputs

    def forward(options):
        with torch.inference_mode():
            return model(x, t, context, y=y, guidance=guidance, transformer_options=options)

    forward(probe.sampling_options(patcher))
    counter = CostCounter(model.parameters())
    options = probe.sampling_options(patcher)
    replaced = options.get("patches_replace", {}).get("dit", {})
    handles = []
    if replaced:
        options = dict(options, patches_replace=dict(options["patches_replace"], dit={
            key: SectionCall(counter, key[0], patch) for key, patch in replaced.items()}))
    else:
        handles = section_hooks(counter, {f"{kind}_block": blocks[0] for kind, blocks in
                                          (("double", model.double_blocks), ("single", model.single_blocks))})
    proj = model.double_blocks[0].img_attn.proj
    if inject_clone:  # what a regression would look like: one more copy of a weight per call
        own_forward = proj.forward
        proj.forward = lambda a: (proj.weight.clone(), own_forward(a))[1]
    try:
        with counter:
            forward(options)
    finally:
        for handle in handles:
            handle.remove()
        proj.__dict__.pop("forward", None)
    total = counter.finish()
    return {"total": total.summary(), "blocks": {name: c.per_call() for name, c in counter.sections.items()},
            "copied": total.copied[:40], "top": top_ops(total)}


def linear_layers(model) -> int:
    return sum(1 for m in model.modules() if isinstance(m, torch.nn.Linear))


def scenario_full_width(work: pathlib.Path) -> dict:
    import comfy.ldm.flux.math as flux_math
    import comfy.ldm.modules.attention as attention
    import comfy.model_management
    import comfy.sd
    from lumix_pack.nodes.loader import patch_model

    from lumix_engine.flux.model import Flux, FluxConfig
    from lumix_engine.method.adapters import new_adapters
    from lumix_engine.tiny_random import write_adapters
    # ComfyUI's CPU attention (sub-quadratic) asks the device for free memory, which the meta
    # device cannot answer; torch SDPA is what it runs on NVIDIA. LumiX looks it up per call too.
    flux_math.optimized_attention = attention.attention_pytorch
    # Loading moves the model to the offload device, which would copy out of meta tensors.
    comfy.model_management.unet_offload_device = lambda: torch.device("meta")
    config = FluxConfig(depth=1, depth_single_blocks=1)
    with torch.device("meta"):
        state = Flux(config).state_dict()
    adapters_file = write_adapters(work / "lumix_full_width.safetensors",
                                   new_adapters(config.hidden_size, 1, 1, rank=8))
    inputs = (torch.empty(5, 16, IMG_SIDE, IMG_SIDE, device="meta"), torch.full((5,), 0.7, device="meta"),
              torch.empty(5, TXT_TOKENS, config.context_in_dim, device="meta"),
              torch.empty(5, config.vec_in_dim, device="meta"), torch.full((5,), 3.5, device="meta"))
    results = {}
    for storage in ("float32", "fp8_e4m3fn"):
        dtype = torch.float32 if storage == "float32" else torch.float8_e4m3fn
        options = {} if dtype == torch.float32 else {"dtype": dtype}
        with torch.device("meta"):
            base = comfy.sd.load_diffusion_model_state_dict(
                {k: v.to(dtype) if v.ndim == 2 else v for k, v in state.items()}, model_options=options)
        patched = patch_model(base, str(adapters_file), 1.0, True)[0]
        model = base.model.diffusion_model
        results[storage] = {
            "linear_type": type(model.double_blocks[0].img_attn.qkv).__module__ + "." +
            type(model.double_blocks[0].img_attn.qkv).__qualname__,
            "linears": linear_layers(model),
            "unpatched": counted(base, base, inputs),
            "lumix": counted(patched, base, inputs),
            "lumix_with_extra_clone": counted(patched, base, inputs, inject_clone=True),
        }
    return results


def scenario_tiny_real(work: pathlib.Path) -> dict:
    import comfy.sd

    from lumix_engine.tiny_random import TINY_FLUX, write_bfl_flux
    path = write_bfl_flux(work / "flux_cost.safetensors", TINY_FLUX, seed=0)
    generator = torch.Generator().manual_seed(0)
    inputs = (torch.randn(5, 16, 8, 8, generator=generator), torch.full((5,), 0.7),
              torch.randn(5, 6, TINY_FLUX.context_in_dim, generator=generator),
              torch.randn(5, TINY_FLUX.vec_in_dim, generator=generator), torch.full((5,), 3.5))
    results = {}
    for storage, dtype in (("float32", None), ("fp8_e4m3fn", torch.float8_e4m3fn)):
        base = comfy.sd.load_diffusion_model(str(path), model_options={} if dtype is None else {"dtype": dtype})
        patched = probe.patch(base, work)
        model = base.model.diffusion_model
        results[storage] = {"linears": linear_layers(model),
                            "linear_type": type(model.double_blocks[0].img_attn.qkv).__qualname__,
                            "unpatched": counted(base, base, inputs), "lumix": counted(patched, base, inputs)}
    return results


SCENARIOS = {"full_width": scenario_full_width, "tiny_real": scenario_tiny_real}

if __name__ == "__main__":
    comfy_dir, work_dir, name = sys.argv[1:4]
    probe.setup(comfy_dir)
    result = SCENARIOS[name](pathlib.Path(work_dir))
    print("LUMIX_PROBE " + json.dumps({"ok": True, "scenario": name, "result": result}, default=str))
