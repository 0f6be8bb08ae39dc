"""The same adapter training on a full-size FLUX.1-dev (needs the model files and a GPU).

    python -m lumix_engine.train flux-dev --flux-dir models/FLUX.1-dev --data my_scenes \
        --out lumix_trained.safetensors --work runs/flux_dev --size 512 --steps 20000

`--data` is a folder of scenes, one sub-folder each, holding albedo.png, irradiance.png,
color.png, depth.png (near-white disparity), normal.png (OpenGL-encoded) and caption.txt.
The FLUX.1-dev transformer, VAE and text encoders are loaded by `LumiXPipeline.from_files`
(diffusers folder), patched with fresh adapters (rank 8 on all 57 blocks, the published
shape), frozen, and only the adapters are trained, with `objective.lumix_batch_loss` (one
noise and one timestep per scene, maps held at t = 0 as `ConditionPolicy` says), guidance
embedding 1.0, in bf16 on the GPU. Latents and text features are encoded once up front.
Resume, logging and checkpoints are `loop.Trainer`'s. The tests run this path on the
demo's tiny diffusers components; at full size it was not run here (no GPU, no weights).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from ..flux.velocity import diffusers_flux_velocity
from ..modalities import MAP_NAMES, NUM_MAPS, broadcast_to_scene
from .loop import LoopConfig, Trainer
from .objective import ConditionPolicy, lumix_batch_loss

log = logging.getLogger(__name__)


def add_parser(commands) -> None:
    parser = commands.add_parser("flux-dev", help="train LumiX adapters on FLUX.1-dev (GPU, model files, data)")
    parser.add_argument("--flux-dir", required=True, help="diffusers-format FLUX.1-dev folder")
    parser.add_argument("--data", required=True, help="folder of scene folders (five PNG maps + caption.txt)")
    parser.add_argument("--out", required=True, help="adapters file to write (published layout)")
    parser.add_argument("--work", required=True, help="checkpoints and logs (resumed if present)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--scenes-per-step", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--threads", type=int, default=0)


def load_scene_folder(folder: Path, size: int) -> tuple[torch.Tensor, list[str]]:
    """[N, 5, size, size, 3] maps and N captions from a folder of scene folders."""
    from ..image_io import load_image, resize_images
    scenes, captions = [], []
    for scene in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        maps = [resize_images(load_image(scene / f"{name}.png"), size, size)[0] for name in MAP_NAMES]
        scenes.append(torch.stack(maps))
        captions.append((scene / "caption.txt").read_text().strip())
    if not scenes:
        raise FileNotFoundError(f"no scene folders in {folder}")
    return torch.stack(scenes), captions


def run(args: argparse.Namespace) -> None:
    import tempfile

    from ..apps.pipeline import LumiXPipeline
    from ..method.adapters import new_adapters
    from ..method.checkpoint import save_adapters

    if args.threads:
        torch.set_num_threads(args.threads)
    maps, captions = load_scene_folder(Path(args.data), args.size)
    with tempfile.TemporaryDirectory() as staging:
        # The pipeline loads adapters from a file; start from fresh ones of the published shape.
        import json
        config = json.loads((Path(args.flux_dir) / "transformer" / "config.json").read_text())
        fresh = new_adapters(config["num_attention_heads"] * config["attention_head_dim"], config["num_layers"],
                             config["num_single_layers"], rank=args.rank)
        save_adapters(fresh, Path(staging) / "fresh.safetensors")
        pipe = LumiXPipeline.from_files(flux_dir=args.flux_dir, lumix=Path(staging) / "fresh.safetensors",
                                        device=args.device, dtype=args.dtype, progress=False)
    pipe.transformer.requires_grad_(False)
    adapters = pipe.adapters.float().requires_grad_(True)
    latents = torch.stack([pipe.encode_images(maps[:, m]) for m in range(NUM_MAPS)], dim=1).cpu()
    context, pooled = pipe.encode_prompt(captions)
    device = pipe.device

    def loss(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(captions), (args.scenes_per_step,), generator=generator)
        x0 = latents[index].flatten(0, 1).to(device)
        ctx = broadcast_to_scene(context[index.to(context.device)])
        vec = broadcast_to_scene(pooled[index.to(pooled.device)])
        return lumix_batch_loss(lambda x, t: diffusers_flux_velocity(pipe.transformer, x, t.to(device), ctx, vec, 1.0),
                                x0, generator, ConditionPolicy())

    trainer = Trainer(adapters, loss, LoopConfig(args.steps, lr=args.lr, warmup=100), Path(args.work))
    trainer.run()
    adapters.requires_grad_(False)
    save_adapters(adapters, Path(args.out))
    log.info("wrote %s", args.out)
