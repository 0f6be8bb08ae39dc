"""LumiX inside a real ComfyUI on CUDA with default flags (dynamic VRAM on where the ComfyUI has it).

    python benchmarks/gpu_comfyui.py --comfyui /path/to/ComfyUI            # on an NVIDIA GPU, ~6-10 min
    python benchmarks/gpu_comfyui.py --comfyui /path/to/ComfyUI --tiny     # the same code path on CPU, tiny widths

ComfyUI is started the way `python main.py` starts it, minus the server: its `main` module is
imported with default flags (plus a throw-away --base-directory), which parses the flags,
initialises comfy-aimdo and switches to ModelPatcherDynamic exactly as a user's start does.
Then, for FLUX.1-dev-sized random weights stored in bf16 and in fp8 (e4m3fn, as
flux1-dev-fp8 files are), loaded through `comfy.sd.load_diffusion_model_state_dict`:

- the model unpatched and patched by LumiXLoader's own `patch_model` (random adapters at the
  published size: rank 8 on all 57 blocks), each sampled with ComfyUI's `sample_custom`
  (Euler, true CFG 3.0 -> 10 rows per step for one scene of 5 maps, 512 text tokens), a few
  steps at 512x512 and 1024x1024; seconds per step (after one warm-up step), the peak of
  torch's allocator and the peak device memory in use (cudaMemGetInfo, which also sees
  aimdo's pages);
- after every run, and after a run interrupted at its second step: the dynamic-VRAM pages
  still pinned (comfy-aimdo's residency bit 2; must be 0) and ComfyUI's host-pinned total.

- the cost guard's counts (evaluation/cost_counter.py, as tests/comfyui/test_cost_guard.py
  pins them at a smaller width) for one forward of the diffusion model at each size, 10 rows
  (5 maps x 2 guidance branches): aten ops, fresh storage, weight copies, FLOPs, and the
  forward's own peak allocated memory, printed next to s/step with LumiX / unpatched ratios.

Prints one line per measurement and a JSON summary at the end (`--json PATH` writes it).
Exits non-zero when a page stays pinned.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def start_comfyui(comfy_dir: pathlib.Path, base: pathlib.Path, tiny: bool) -> None:
    """Import ComfyUI's main module as `python main.py --base-directory base` would run it."""
    sys.path.insert(0, str(comfy_dir))
    for folder in ("custom_nodes", "models", "input", "output", "temp", "user"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    os.chdir(base)  # newer ComfyUI writes comfyui_detail.log into the working directory
    sys.argv = ["main.py", "--base-directory", str(base)] + (["--cpu"] if tiny else [])
    import main  # noqa: F401  (flags, logging, comfy-aimdo, ModelPatcherDynamic)
    os.chdir(REPO)  # the detail log is open; the rest (git commit for the report) reads the repository
    if tiny:
        sys.path.insert(0, str(REPO / "tests" / "comfyui" / "shim"))
        import lumix_test_shim  # noqa: F401  (tiny FLUX widths for ComfyUI's detection)


def import_pack():
    spec = importlib.util.spec_from_file_location("lumix_pack", REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["lumix_pack"] = pack
    spec.loader.exec_module(pack)
    from lumix_pack.nodes.loader import patch_model
    return patch_model


def random_flux_state_dict(config, storage, device):
    """flux1-dev.safetensors' keys and shapes with random values; 2-D weights in `storage`."""
    import torch
    sys.path.insert(0, str(REPO))
    from lumix_engine.flux.model import Flux
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Flux(config).state_dict().items()}
    generator = torch.Generator(device=device).manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key.endswith(".scale"):
            value = 1.0 + 0.1 * torch.randn(shape, generator=generator, device=device)
        else:
            value = torch.randn(shape, generator=generator, device=device) * (0.02 if len(shape) == 2 else 0.01)
        state[key] = value.to(storage if len(shape) == 2 else torch.bfloat16).cpu()
    return state


def write_adapters(path: pathlib.Path, config) -> pathlib.Path:
    import torch

    from lumix_engine.method.adapters import new_adapters
    from lumix_engine.tiny_random import write_adapters as save
    adapters = new_adapters(config.hidden_size, config.depth, config.depth_single_blocks, rank=8)
    with torch.no_grad():
        for name, parameter in adapters.named_parameters():
            if name.endswith("G3"):
                parameter.normal_(0, 0.02)
    return save(path, adapters, dtype=torch.bfloat16)


def pinned_pages(patcher) -> int | None:
    """Dynamic-VRAM pages still pinned (residency bit 2), or None without dynamic VRAM."""
    vbars = getattr(patcher.model, "dynamic_vbars", None)
    if not vbars:
        return None
    return sum(sum(1 for page in vbar.get_residency() if page & 2) for vbar in vbars.values())


def host_pinned_bytes() -> int:
    import comfy.model_management as mm
    return int(getattr(mm, "TOTAL_PINNED_MEMORY", 0))


def sample(patcher, side: int, steps: int, text: int, config, interrupt_at: int | None = None) -> dict:
    """ComfyUI sample_custom on one scene (5 maps) with true CFG; per-step times from its callback."""
    import comfy.model_management as mm
    import comfy.ops
    import comfy.sample
    import comfy.samplers
    import torch

    from lumix_engine.method.sampling import schedule, shared_noise
    generator = torch.Generator().manual_seed(1)
    cond = [[torch.randn(1, text, config.context_in_dim, generator=generator),
             {"pooled_output": torch.randn(1, config.vec_in_dim, generator=generator), "guidance": 3.5}]]
    neg = [[torch.randn(1, text, config.context_in_dim, generator=generator),
            {"pooled_output": torch.randn(1, config.vec_in_dim, generator=generator), "guidance": 3.5}]]
    shape = (16, side // 8, side // 8)
    noise = shared_noise(1, shape, 0)
    cuda = torch.cuda.is_available() and not mm.is_device_cpu(mm.get_torch_device())
    stamps, used = [], []

    def callback(step, x0, x, total):
        if cuda:
            torch.cuda.synchronize()
            free, total_memory = torch.cuda.mem_get_info()
            used.append(total_memory - free)
        stamps.append(time.perf_counter())
        if interrupt_at is not None and step + 1 == interrupt_at:
            # Cancel: newer ComfyUI raises at the next layer (comfy.ops.run_every_op); older
            # ones only where the server's progress hook checks, which is here.
            mm.interrupt_current_processing(True)
            if not hasattr(comfy.ops, "run_every_op"):
                mm.throw_exception_if_processing_interrupted()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    interrupted = False
    try:
        comfy.sample.sample_custom(patcher, noise, 3.0, comfy.samplers.sampler_object("euler"),
                                   schedule(steps, side, side, "published").float(), cond, neg,
                                   torch.zeros((5, *shape)), callback=callback, disable_pbar=True, seed=0)
    except mm.InterruptProcessingException:
        interrupted = True
    finally:
        mm.interrupt_current_processing(False)
    times = [b - a for a, b in zip([start] + stamps, stamps)]
    return {"s_per_step": statistics.median(times[1:]) if len(times) > 1 else None, "step_times": times,
            "torch_peak_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None,
            "device_used_peak_gib": max(used) / 2 ** 30 if used else None, "interrupted": interrupted,
            "pinned_pages_after": pinned_pages(patcher), "host_pinned_gib_after": host_pinned_bytes() / 2 ** 30}


def guard_counts(patcher, side: int, text: int, config) -> dict:
    """The cost guard's counts for one forward of `patcher`'s diffusion model (10 rows), with the
    forward's peak allocated memory; the model is loaded the way sampling loads it first."""
    import comfy.model_management as mm
    import torch

    from evaluation.cost_counter import CostCounter
    mm.load_models_gpu([patcher])
    model = patcher.model.diffusion_model
    device = mm.get_torch_device()
    dtype = getattr(patcher.model, "manual_cast_dtype", None) or patcher.model.get_dtype()
    generator = torch.Generator().manual_seed(2)
    rows = 10
    x = torch.randn(rows, 16, side // 8, side // 8, generator=generator).to(device, dtype)
    context = torch.randn(rows, text, config.context_in_dim, generator=generator).to(device, dtype)
    y = torch.randn(rows, config.vec_in_dim, generator=generator).to(device, dtype)
    t, guidance = torch.full((rows,), 0.7, device=device), torch.full((rows,), 3.5, device=device)
    options = dict(patcher.model_options.get("transformer_options", {}), wrappers=patcher.wrappers)
    cuda = torch.cuda.is_available() and device.type == "cuda"
    with torch.inference_mode():
        model(x, t, context, y=y, guidance=guidance, transformer_options=options)  # warm-up: folded cores
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start = torch.cuda.memory_allocated()
        counter = CostCounter(model.parameters())
        with counter:
            model(x, t, context, y=y, guidance=guidance, transformer_options=options)
    counts = counter.finish().summary()
    counts["forward_peak_gib"] = (torch.cuda.max_memory_allocated() - start) / 2 ** 30 if cuda else None
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", required=True, type=pathlib.Path, help="a ComfyUI source tree (0.29.0 tested)")
    parser.add_argument("--tiny", action="store_true", help="tiny widths on CPU: checks the script, measures nothing")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--steps", type=int, default=4, help="sampling steps per run (the first is a warm-up)")
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp8"], choices=["bf16", "fp8"])
    parser.add_argument("--json", type=pathlib.Path, help="also write the summary here")
    args = parser.parse_args()
    base = pathlib.Path(tempfile.mkdtemp(prefix="lumix_gpu_comfyui_"))
    start_comfyui(args.comfyui.resolve(), base, args.tiny)

    import comfy.model_management as mm
    import comfy.sd
    import torch
    sys.path.insert(0, str(REPO))
    from evaluation.timing import machine
    from lumix_engine.flux.model import FluxConfig
    patch_model = import_pack()
    config = FluxConfig(vec_in_dim=32, context_in_dim=48, hidden_size=64, num_heads=4, depth=2,
                        depth_single_blocks=2, axes_dim=[4, 6, 6]) if args.tiny else FluxConfig()
    sizes, text = ([32], 7) if args.tiny else (args.sizes, 512)
    device = mm.get_torch_device()
    summary = {"machine": machine(), "device": str(device),
               "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() and not args.tiny else None,
               "dynamic_vram": bool(getattr(sys.modules.get("comfy.memory_management"), "aimdo_enabled", False)),
               "runs": []}
    print(summary["machine"], "|", summary["gpu"] or "CPU (tiny check)", "| dynamic VRAM:", summary["dynamic_vram"])
    lumix_file = write_adapters(base / "lumix.safetensors", config)
    storages = {"bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn}
    failures = 0
    for dtype_name in args.dtypes:
        generate_on = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
        state = random_flux_state_dict(config, storages[dtype_name], generate_on)
        model = comfy.sd.load_diffusion_model_state_dict(state)
        del state
        patched, _ = patch_model(model, str(lumix_file), 1.0, True)
        print(f"\n{dtype_name}: {type(model).__name__}, {type(model.model.diffusion_model.double_blocks[0].img_attn.qkv).__name__}"
              f" layers, weights {model.model.diffusion_model.double_blocks[0].img_attn.qkv.weight.dtype}")
        for side in sizes:
            for name, patcher in (("unpatched", model), ("LumiX", patched)):
                run = sample(patcher, side, args.steps, text, config)
                run.update(dtype=dtype_name, side=side, variant=name, guard=guard_counts(patcher, side, text, config))
                summary["runs"].append(run)
                guard = run["guard"]
                print(f"  {side}x{side} {name:9s} {run['s_per_step'] or float('nan'):7.3f} s/step, torch peak "
                      f"{run['torch_peak_gib'] or 0:6.2f} GiB, device peak {run['device_used_peak_gib'] or 0:6.2f} GiB, "
                      f"pinned pages after {run['pinned_pages_after']}, host pinned {run['host_pinned_gib_after']:.2f} GiB")
                print(f"  {side}x{side} {name:9s} one forward: {guard['ops']} aten ops, {guard['fresh_mb']:.0f} MB "
                      f"fresh, {guard['weight_copies']} weight copies, {guard['gflop']:.0f} GFLOP, forward peak "
                      f"{guard['forward_peak_gib'] or 0:.2f} GiB")
                failures += bool(run["pinned_pages_after"])
            pair = {r["variant"]: r for r in summary["runs"][-2:]}
            lumix, plain = pair["LumiX"], pair["unpatched"]
            ratios = {key: lumix["guard"][key] / plain["guard"][key] for key in ("ops", "fresh_mb", "gflop")
                      if plain["guard"][key]}
            for key in ("s_per_step", "torch_peak_gib", "device_used_peak_gib"):
                if lumix[key] and plain[key]:
                    ratios[key] = lumix[key] / plain[key]
            if lumix["guard"]["forward_peak_gib"] and plain["guard"]["forward_peak_gib"]:
                ratios["forward_peak"] = lumix["guard"]["forward_peak_gib"] / plain["guard"]["forward_peak_gib"]
            summary.setdefault("ratios", []).append({"dtype": dtype_name, "side": side, **ratios})
            print(f"  {side}x{side} LumiX / unpatched: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
                  + f"; weight copies {lumix['guard']['weight_copies']} vs {plain['guard']['weight_copies']}")
        stopped = sample(patched, sizes[0], max(args.steps, 3), text, config, interrupt_at=2)
        stopped.update(dtype=dtype_name, side=sizes[0], variant="LumiX interrupted at step 2")
        summary["runs"].append(stopped)
        print(f"  interrupted run: interrupted={stopped['interrupted']}, pinned pages after "
              f"{stopped['pinned_pages_after']}")
        failures += bool(stopped["pinned_pages_after"]) + (not stopped["interrupted"])
        del model, patched
        mm.unload_all_models()
        gc.collect()
        mm.soft_empty_cache()
    summary["failures"] = failures
    text_summary = json.dumps(summary, indent=1, default=str)
    print(text_summary)
    if args.json:
        args.json.write_text(text_summary)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
