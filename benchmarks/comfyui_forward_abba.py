"""LumiX's forward against the same ComfyUI's unpatched forward, inside real ComfyUI, in ABBA order.

    ~/.cache/lumix-ci/venv-0.29.0/bin/python benchmarks/comfyui_forward_abba.py --comfyui ../shared/comfyui/0.29.0
    ~/.cache/lumix-ci/venv-0.3.64/bin/python benchmarks/comfyui_forward_abba.py --comfyui ../shared/comfyui/0.3.64

Run with the ComfyUI tree's own interpreter (its venv). FLUX.1-dev width (hidden 3072, 24
heads) with one double and one single block (545M random float32 weights), loaded through
`comfy.sd.load_diffusion_model_state_dict`; LumiX installed by LumiXLoader's own
`patch_model` (random rank-8 adapters, G3 non-zero). A = that tree's unpatched diffusion
model, B = the patched one; both run the diffusion model's forward with the transformer
options ComfyUI's sampler passes (wrappers included, so LumiX's SampledModel wrapper runs),
under torch.inference_mode as ComfyUI's executor runs it, on the CPU with ComfyUI's own
CPU attention. 5 maps of one scene, a 16x16 latent (64 image tokens) and 32 text tokens.

Each round is A B B A, so a drift of the machine's speed within a round cancels to first
order; the ratio of a round is (B1 + B2) / (A1 + A2), on wall time and on this process's CPU
time. Reports medians with min-max and quartiles of the per-round ratios, plus the
deterministic counts (aten ops, fresh MB, weight copies, FLOPs) of one forward of each, and
writes everything to --json.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "comfyui"))
sys.path.insert(0, str(REPO))


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1],
            "q1": quartiles[0], "q3": quartiles[2]}


def fmt(s: dict[str, float]) -> str:
    return f"{s['median']:.3f} (IQR {s['q1']:.3f}-{s['q3']:.3f}, min-max {s['min']:.3f}-{s['max']:.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", required=True, type=pathlib.Path)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--latent", type=int, default=16, help="latent side (image tokens = (side/2)^2)")
    parser.add_argument("--text", type=int, default=32, help="text tokens")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()

    import gpu_paths_probe
    gpu_paths_probe.setup(str(args.comfyui.resolve()))
    import comfy.sd
    import torch
    from lumix_pack.nodes.loader import patch_model

    from evaluation.cost_counter import count_cost
    from evaluation.timing import machine
    from lumix_engine.flux.model import Flux, FluxConfig
    from lumix_engine.method.adapters import new_adapters
    from lumix_engine.tiny_random import write_adapters

    config = FluxConfig(depth=1, depth_single_blocks=1)
    torch.manual_seed(0)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Flux(config).state_dict().items()}
    state = {k: (1 + 0.1 * torch.randn(s)) if k.endswith(".scale") else
             torch.randn(s) * (0.02 if len(s) == 2 else 0.01) for k, s in shapes.items()}
    base = comfy.sd.load_diffusion_model_state_dict(state)
    del state
    adapters = new_adapters(config.hidden_size, 1, 1, rank=8)
    with torch.no_grad():
        for name, p in adapters.named_parameters():
            if name.endswith("G3"):
                p.normal_(0, 0.02)
    work = pathlib.Path(tempfile.mkdtemp(prefix="lumix_abba_"))
    patched = patch_model(base, str(write_adapters(work / "lumix.safetensors", adapters)), 1.0, True)[0]

    generator = torch.Generator().manual_seed(1)
    x = torch.randn(5, 16, args.latent, args.latent, generator=generator)
    context = torch.randn(5, args.text, config.context_in_dim, generator=generator)
    y = torch.randn(5, config.vec_in_dim, generator=generator)
    t, guidance = torch.full((5,), 0.7), torch.full((5,), 3.5)
    model = base.model.diffusion_model
    variants = {"A_unpatched": base, "B_lumix": patched}

    def forward(patcher):
        with torch.inference_mode():
            return model(x, t, context, y=y, guidance=guidance,
                         transformer_options=gpu_paths_probe.sampling_options(patcher))

    counts = {}
    for name, patcher in variants.items():
        forward(patcher)  # warm-up: folded adapter cores, allocator, first-call paths
        counts[name] = count_cost(lambda p=patcher: forward(p), model.parameters())[1].total.summary()
    counts["flop_ratio"] = counts["B_lumix"]["gflop"] / counts["A_unpatched"]["gflop"]
    counts["fresh_ratio"] = counts["B_lumix"]["fresh_mb"] / counts["A_unpatched"]["fresh_mb"]
    header = (f"{machine()} | ComfyUI {args.comfyui.name} | torch {torch.__version__}, {torch.get_num_threads()} "
              f"threads | attention {getattr(sys.modules['comfy.ldm.flux.math'].optimized_attention, '__name__', '?')}")
    print(header)
    print("counts:", json.dumps(counts))

    times = {name: {"wall": [], "cpu": []} for name in variants}
    ratios = {"wall": [], "cpu": []}
    started = time.time()
    for round_index in range(args.rounds):
        got = {name: {"wall": 0.0, "cpu": 0.0} for name in variants}
        for name in ("A_unpatched", "B_lumix", "B_lumix", "A_unpatched"):
            wall, cpu = time.perf_counter(), time.process_time()
            forward(variants[name])
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            times[name]["wall"].append(wall)
            times[name]["cpu"].append(cpu)
            got[name]["wall"] += wall
            got[name]["cpu"] += cpu
        for clock in ("wall", "cpu"):
            ratios[clock].append(got["B_lumix"][clock] / got["A_unpatched"][clock])
        print(f"round {round_index + 1:2d}: B/A wall {ratios['wall'][-1]:.3f}, cpu {ratios['cpu'][-1]:.3f} "
              f"(A {got['A_unpatched']['wall'] / 2:.2f} s, B {got['B_lumix']['wall'] / 2:.2f} s per call)", flush=True)
    summary = {
        "header": header, "comfyui": args.comfyui.name, "rounds": args.rounds, "order": "ABBA",
        "shape": {"maps": 5, "latent": args.latent, "image_tokens": (args.latent // 2) ** 2, "text_tokens": args.text,
                  "hidden": config.hidden_size, "double_blocks": 1, "single_blocks": 1, "dtype": "float32"},
        "minutes": (time.time() - started) / 60, "counts": counts,
        "ratio_B_over_A": {clock: spread(values) for clock, values in ratios.items()},
        "seconds_per_call": {name: {clock: spread(values) for clock, values in clocks.items()}
                             for name, clocks in times.items()},
        "ratios_per_round": ratios,
    }
    for clock in ("wall", "cpu"):
        print(f"B/A {clock}: {fmt(summary['ratio_B_over_A'][clock])}")
    for name in variants:
        print(f"{name}: wall {fmt(summary['seconds_per_call'][name]['wall'])} s, "
              f"cpu {fmt(summary['seconds_per_call'][name]['cpu'])} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
