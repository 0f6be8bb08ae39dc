"""The ComfyUI node path's peak GPU memory, simulated (see evaluation/lumix_memory.py).

Run by a ComfyUI interpreter, one process per call (ComfyUI's modules are process-global):

    <ComfyUI python> evaluation/comfy_memory_probe.py <ComfyUI dir> <work dir> '<json request>'

request: {"shape": FluxShape fields, "weights_dtype": "bf16" | "fp8", "sizes": [[w, h], ...],
"steps": 1, "free_gb": 80, "unpatched": false}. Prints one line `LUMIX_MEMORY {json}`.
"unpatched": true is the control: the same step (the same five-latent batch, schedule,
conditioning and Euler sampler through ComfyUI's `sample_custom`) on the base ModelPatcher
without the LumiX patch, so the two runs differ only by the patch.

What runs for real: ComfyUI's model detection and model classes (`model_config_from_unet`,
`get_model`, its `comfy.ops` layers: fp8 weights stored as float8_e4m3fn and cast per
layer to bf16, as ComfyUI's manual cast does), a ModelPatcher, `load_models_gpu`, the LumiX
Loader's `patch_model` on a real adapter file, and the sampler nodes' `sample_maps` (what
LumiX Decompose Photo calls: the color map held at t = 0, no CFG) through ComfyUI's
`sample_custom`. The GPU is a fake CUDA device; ComfyUI is told what an NVIDIA card would
answer (free memory `free_gb`, bf16 supported, flash attention available, PyTorch SDPA as
the attention). Stand-ins: the VAE's encode (a latent of the right shape; VAE time and
memory are not counted) and the text encoders (a T5 / CLIP conditioning of the right
shape). ComfyUI 0.29's dynamic VRAM (comfy_aimdo, CUDA-only) is not simulated: the plain
ModelPatcher is used, as with --disable-dynamic-vram or on other GPUs.
"""
from __future__ import annotations

import json
import pathlib
import sys

import torch

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "comfyui"))

from evaluation.lumix_memory import FluxShape  # noqa: E402
from evaluation.memory_sim import FAKE_GPU, PeakMemory, fake_cuda, module_tensors  # noqa: E402

WEIGHT_DTYPES = {"bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn}


def pretend_nvidia(free_gb: float) -> None:
    """ComfyUI's questions to the device, answered as an NVIDIA GPU with `free_gb` free would."""
    import comfy.model_management as mm
    gpu = torch.device(FAKE_GPU)
    free, total = int(free_gb * 1e9), int(free_gb * 1e9)
    get_free, get_total = mm.get_free_memory, mm.get_total_memory

    def get_free_memory(dev=None, torch_free_too=False):
        if dev is not None and getattr(dev, "type", None) == "cuda":
            return (free, free) if torch_free_too else free
        return get_free(dev, torch_free_too)

    def get_total_memory(dev=None, torch_total_too=False):
        if dev is not None and getattr(dev, "type", None) == "cuda":
            return (total, total) if torch_total_too else total
        return get_total(dev, torch_total_too)
    mm.get_free_memory, mm.get_total_memory = get_free_memory, get_total_memory
    mm.pytorch_attention_flash_attention = lambda: True
    torch.cuda.synchronize = lambda device=None: None  # nothing runs on a fake GPU, nothing to wait for
    torch.cuda.current_device = lambda: 0  # the one fake GPU
    import comfy.ldm.flux.math as flux_math
    import comfy.ldm.modules.attention as attention
    flux_math.optimized_attention = attention.attention_pytorch  # ComfyUI's default on NVIDIA
    return gpu


def flux_state_shapes(shape: FluxShape) -> dict[str, torch.Tensor]:
    """FLUX's BFL key names and shapes as meta tensors: what ComfyUI's detection reads."""
    from lumix_engine.flux.model import Flux, FluxConfig
    with torch.device("meta"):
        flux = Flux(FluxConfig(hidden_size=shape.hidden_size, num_heads=shape.num_heads, depth=shape.depth,
                               depth_single_blocks=shape.depth_single_blocks, context_in_dim=shape.context_in_dim,
                               vec_in_dim=shape.vec_in_dim))
    return flux.state_dict()


def write_adapter_file(path: pathlib.Path, shape: FluxShape) -> pathlib.Path:
    from lumix_engine.method.adapters import new_adapters
    from lumix_engine.method.checkpoint import save_adapters
    if not path.exists():
        torch.manual_seed(0)
        adapters = new_adapters(shape.hidden_size, shape.depth, shape.depth_single_blocks, rank=shape.rank)
        save_adapters(adapters.requires_grad_(False), str(path), torch.bfloat16)
    return path


class LatentOfShape:
    """Stands in for the FLUX VAE's encode: a latent [B, 16, h/8, w/8] (its values do not
    change the memory of sampling; the VAE's own memory is a separate phase)."""

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return torch.zeros(image.shape[0], 16, image.shape[1] // 8, image.shape[2] // 8)


def comfy_model(shape: FluxShape, weights_dtype: str, gpu: torch.device):
    import comfy.model_detection
    import comfy.model_patcher
    state = flux_state_shapes(shape)
    config = comfy.model_detection.model_config_from_unet(state, "")
    config.set_inference_dtype(WEIGHT_DTYPES[weights_dtype], torch.bfloat16)
    model = config.get_model(state, "", device=gpu)
    return comfy.model_patcher.ModelPatcher(model, load_device=gpu, offload_device=gpu)


def sample_unpatched(base, positive, steps: int, width: int, height: int) -> torch.Tensor:
    """The control: what `sample_maps` runs (five latents per scene, LumiX's schedule, no
    CFG, guidance 1, Euler, through ComfyUI's sample_custom) on the unpatched model, without
    the LumiX patch and the given-map wrapper."""
    import comfy.sample
    import comfy.samplers
    import node_helpers

    from lumix_engine.method.sampling import resolve_guidance, schedule, shared_noise
    cfg, guidance = resolve_guidance(-1.0, -1.0, decomposing=True)
    shape = (base.get_model_object("latent_format").latent_channels, height // 8, width // 8)
    noise = shared_noise(1, shape, 0)
    sigmas = schedule(steps, width, height, "published").float()
    cond = node_helpers.conditioning_set_values(positive, {"guidance": guidance})
    return comfy.sample.sample_custom(base.clone(), noise, cfg, comfy.samplers.sampler_object("euler"), sigmas, cond,
                                      cond, torch.zeros_like(noise), disable_pbar=True, seed=0)


def run(request: dict, work: pathlib.Path) -> dict:
    from gpu_paths_probe import setup  # noqa: F401  (called by main)
    from lumix_pack.nodes.loader import patch_model
    from lumix_pack.nodes.sampling_glue import sample_maps
    shape = FluxShape(**request["shape"])
    gpu = pretend_nvidia(float(request.get("free_gb") or 80))
    adapters = write_adapter_file(work / f"lumix_{shape.depth}_{shape.depth_single_blocks}.safetensors", shape)
    positive = [[torch.zeros(1, shape.text_tokens, shape.context_in_dim), {"pooled_output": torch.zeros(1, shape.vec_in_dim)}]]
    results = []
    unpatched = bool(request.get("unpatched"))
    loads = record_load_requests()
    with fake_cuda():
        base = comfy_model(shape, request["weights_dtype"], gpu)
        patched, _ = patch_model(base, str(adapters), 1.0, True)
        if not request.get("lumix_estimate", True):  # control: ComfyUI's own estimate alone
            import comfy.patcher_extension
            from lumix_pack.nodes.memory_estimate import MEMORY_WRAPPER_KEY
            patched.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.PREPARE_SAMPLING, MEMORY_WRAPPER_KEY)
        weights = sum(t.untyped_storage().nbytes() for t in module_tensors(base.model))
        tracker = PeakMemory("cuda")
        # no_grad, not inference_mode: a real inference tensor cannot become a fake one (the
        # memory is the same: neither keeps anything for backward).
        with tracker, torch.no_grad():
            tracker.track(module_tensors(base.model))
            sizes = [tuple(s) for s in request["sizes"]]
            # A first step builds LumiX's per-device caches (folded adapter cores), as the
            # first step of any run does; the measured steps then see them resident.
            warm = min(sizes, key=lambda s: s[0] * s[1])
            for index, (width, height) in enumerate([warm, *sizes]):
                tracker.reset_peak()
                photo = torch.zeros(1, height, width, 3)
                if unpatched:
                    sample_unpatched(base, positive, int(request.get("steps", 1)), width, height)
                else:
                    sample_maps(patched, positive, positive, 0, int(request.get("steps", 1)), -1.0, -1.0, width,
                                height, 1, "euler", "published", LatentOfShape(), {"color": photo})
                if index:
                    report = tracker.report()
                    results.append({"path": "comfyui", "unpatched": unpatched, "weights_dtype": request["weights_dtype"], "width": width,
                                    "height": height, "megapixels": width * height / 1e6, "weights_gb": weights / 1e9,
                                    "resident_gb": report.resident / 1e9, "peak_gb": report.peak / 1e9,
                                    "activations_gb": report.activations / 1e9, "peak_op": report.peak_op,
                                    "largest_live_at_peak_gb": [b / 1e9 for b in report.peak_live],
                                    "ops": report.ops, "comfy_kept_free_gb": loads[-1]["minimum_memory_required"] / 1e9,
                                    "comfy_memory_required_gb": loads[-1]["memory_required"] / 1e9})
    import comfy.model_management
    return {"results": results, "estimates": comfy_estimates(patched, shape, request["sizes"]),
            "minimum_inference_memory_gb": comfy.model_management.minimum_inference_memory() / 1e9}


def record_load_requests() -> list[dict]:
    """What sampling asks ComfyUI's loader to keep free: load_models_gpu's memory arguments,
    recorded per call (the loader itself runs unchanged)."""
    import comfy.model_management as mm
    calls, load = [], mm.load_models_gpu

    def recording(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None, *args,
                  **kwargs):
        calls.append({"memory_required": memory_required, "minimum_memory_required": minimum_memory_required or 0})
        return load(models, memory_required, force_patch_weights, minimum_memory_required, *args, **kwargs)
    mm.load_models_gpu = recording
    return calls


def comfy_estimates(patcher, shape: FluxShape, sizes: list) -> list[dict]:
    """ComfyUI's own activation estimate for LumiX's batch (5 latents per scene), as
    `sampler_helpers.estimate_memory` computes it before loading the model."""
    import comfy.sampler_helpers
    out = []
    for width, height in sizes:
        noise_shape = [5, 16, height // 8, width // 8]
        conds = {"positive": [{"c_crossattn": torch.zeros(1, shape.text_tokens, shape.context_in_dim)}]}
        memory_required, minimum = comfy.sampler_helpers.estimate_memory(patcher, noise_shape, conds)
        out.append({"width": width, "height": height, "memory_required_gb": memory_required / 1e9,
                    "minimum_memory_required_gb": minimum / 1e9,
                    "sampler_batch_estimate_gb": patcher.model.memory_required(noise_shape) / 1e9})
    return out


if __name__ == "__main__":
    comfy_dir, work_dir, request_json = sys.argv[1:4]
    from gpu_paths_probe import setup
    setup(comfy_dir)
    result = run(json.loads(request_json), pathlib.Path(work_dir))
    print("LUMIX_MEMORY " + json.dumps(result))
