"""`python -m lumix_engine generate | decompose | batch | demo`.

generate and decompose write the five maps (16-bit PNG, or float EXR with --format exr;
a GLB mesh per scene with --mesh), a contact sheet and settings.json to --out and print
what they wrote; batch decomposes a folder, glob or list file, resumably (see apps/batch/), in
one process or on Ray workers. Model paths come from flags, or from a JSON / TOML
config file whose keys are the flag names (`lumix`, `flux_dir`, `transformer`, `vae`,
`clip_l`, `t5xxl`, `models`; relative paths are relative to the file). Nothing is ever
downloaded: a missing file exits with code 3 and a message naming what to put where.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import LumiXError
from ..formats.mesh import DEFAULT_FOV
from ..image_io import MAX_IMAGE_PIXELS, load_image
from ..intrinsics.depth import DEPTH_RANGE
from ..intrinsics.postprocess import STEPS, check_steps, describe_steps
from ..intrinsics.upsample import METHODS
from ..method.resolution import DEFAULT_MEGAPIXELS, MAX_MEGAPIXELS, MAX_OUTPUT_MEGAPIXELS, MIN_MEGAPIXELS
from ..method.sampling import DECOMPOSITION, TEXT_TO_MAPS
from ..modalities import MAP_NAMES
from .loading import MissingModelError, ModelFiles, quiet_libraries
from .photo import prepare_photos

EXIT_INPUT_ERROR = 2
EXIT_MISSING_MODEL = 3
EXIT_SOME_FAILED = 4     # batch: finished, but some images could not be decomposed (see the manifest)
EXIT_STOPPED = 5         # batch: a write failed (e.g. a full disk); rerun the same command to resume
MODEL_KEYS = ("lumix", "flux_dir", "transformer", "vae", "clip_l", "t5xxl", "models")


def read_config(path: Path) -> dict[str, Any]:
    """Model paths from a .json or .toml file; relative paths are taken from the file's folder."""
    if not path.is_file():
        raise LumiXError(f"config file not found: {path}")
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:   # Python 3.10
            raise LumiXError(f"{path}: TOML config files need Python 3.11 or newer; use a .json file") from None
        values = tomllib.loads(path.read_text())
    elif path.suffix.lower() == ".json":
        values = json.loads(path.read_text())
    else:
        raise LumiXError(f"config file {path} must end in .json or .toml")
    values = values.get("models", values) if isinstance(values.get("models"), dict) else values
    unknown = sorted(set(values) - set(MODEL_KEYS))
    if unknown:
        raise LumiXError(f"{path}: unknown key(s) {unknown}; use {list(MODEL_KEYS)}")
    return {key: str((path.parent / Path(value).expanduser()) if not Path(value).expanduser().is_absolute()
                     else Path(value).expanduser()) for key, value in values.items()}


def model_files(args: argparse.Namespace) -> ModelFiles:
    values = read_config(Path(args.config)) if args.config else {}
    for key in MODEL_KEYS:
        flag = getattr(args, key, None)
        if flag:
            values[key] = flag
    return ModelFiles.from_mapping(values)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("models (local files only; flags override --config)")
    group.add_argument("--config", help="JSON or TOML file with the model paths below (keys: lumix, flux_dir, ...)")
    group.add_argument("--models", help="a ComfyUI models folder: files are looked up in lumix/, diffusion_models/, "
                                        "vae/, text_encoders/, diffusers/FLUX.1-dev")
    group.add_argument("--lumix", help="lumix.safetensors (from huggingface.co/hanx/LumiX_ckp)")
    group.add_argument("--flux-dir", dest="flux_dir", help="FLUX.1-dev in diffusers format: the full folder, or "
                                                           "its configs and tokenizers with the single files below")
    group.add_argument("--transformer", help="flux1-dev.safetensors (BFL single file)")
    group.add_argument("--vae", help="ae.safetensors")
    group.add_argument("--clip-l", dest="clip_l", help="clip_l.safetensors")
    group.add_argument("--t5xxl", help="t5xxl_fp16.safetensors")
    run = parser.add_argument_group("running")
    run.add_argument("--device", help="cuda, cuda:1, cpu, mps (default: cuda if available)")
    run.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), help="default: bf16 on cuda, fp32 on cpu")
    run.add_argument("--offload-text-encoders", action="store_true",
                     help="keep CLIP and T5 on the CPU between prompts (saves ~10 GB of GPU memory)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--numerics", choices=("engine", "authors"), default="engine",
                     help="'authors': draw the noise, keep the state, combine CFG and run the VAE and T5 as the "
                          "authors' scripts do, to match their outputs seed for seed (default: engine)")


def _add_sampling_options(parser: argparse.ArgumentParser, defaults, photo: bool = False) -> None:
    group = parser.add_argument_group("sampling (defaults: the published settings)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--steps", type=int, help=f"default {defaults.steps}")
    group.add_argument("--cfg", type=float, help=f"true classifier-free guidance, default {defaults.cfg} (1 = off)")
    group.add_argument("--guidance", type=float, help=f"FLUX guidance embedding, default {defaults.guidance}")
    fixed = (" (with --height/--width: a fixed working and output size, every image resized to it, instead of "
             "its own size)") if photo else ""
    group.add_argument("--width", type=int, help="multiple of 16" + fixed)
    group.add_argument("--height", type=int, help="multiple of 16" + fixed)
    group.add_argument("--negative-prompt", dest="negative_prompt", help="used when cfg > 1")
    group.add_argument("--token-count", dest="token_count", choices=("published", "true"),
                       help="schedule shift: the authors' token count (default) or FLUX's true count")


def _add_photo_options(parser: argparse.ArgumentParser) -> None:
    """The photo path's options, shared by decompose and batch (apps/photo.py)."""
    photo = parser.add_argument_group("photo size and ensembles")
    photo.add_argument("--megapixels", type=float,
                       help=f"working area in megapixels, aspect kept, sides multiples of 16 (default "
                            f"{DEFAULT_MEGAPIXELS:.2f} = the published 1536x1152, {MIN_MEGAPIXELS} with --tiny; "
                            f"{MIN_MEGAPIXELS} to {MAX_MEGAPIXELS}); the maps come back at the image's own size. "
                            f"--width/--height fix the size instead")
    photo.add_argument("--tiny", action="store_true",
                       help="use the shipped tiny model (a TOY: 64x64, procedural renders only; no model files, no "
                            "download) to try the whole photo path on any machine; its outputs are labelled as a toy's")
    photo.add_argument("--ensemble-size", dest="ensemble_size", type=int, default=1,
                       help="ensemble: N runs (one noise each, from --seed) combined per map, plus "
                            "NAME_uncertainty.png files (default 1: no ensemble; formerly --seeds)")
    photo.add_argument("--seeds", type=int, help=argparse.SUPPRESS)   # deprecated name of --ensemble-size
    photo.add_argument("--postprocess", help=f"post-processing of the decoded maps: comma-separated steps "
                                             f"({', '.join(STEPS)}) or 'none' (default: both with --numerics "
                                             f"engine, none with --numerics authors, whose single run is then "
                                             f"the authors' maps exactly)")
    photo.add_argument("--upsample", choices=METHODS, default="guided",
                       help="working size -> image size: guided (edge-aware, albedo x irradiance = the image "
                            "exactly; default) or bilinear")
    photo.add_argument("--max-output-megapixels", dest="max_output_megapixels", type=float,
                       default=MAX_OUTPUT_MEGAPIXELS,
                       help=f"larger images come back downscaled to this area, with a warning (default "
                            f"{MAX_OUTPUT_MEGAPIXELS:g})")
    photo.add_argument("--max-pixels", dest="max_pixels", type=float, default=MAX_IMAGE_PIXELS,
                       help=f"images with more pixels are refused from their header, before decoding (default "
                            f"{MAX_IMAGE_PIXELS:.0e}; batch records them as failed)")


def _ensemble_size(args: argparse.Namespace) -> int:
    """--ensemble-size, or its deprecated name --seeds (with a warning)."""
    if args.seeds is None:
        return args.ensemble_size
    if args.ensemble_size not in (1, args.seeds):
        raise LumiXError(f"--seeds is the old name of --ensemble-size; give --ensemble-size {args.ensemble_size} only")
    print("warning: --seeds is deprecated; use --ensemble-size", file=sys.stderr)
    return args.seeds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lumix_engine",
                                     description="LumiX: albedo, irradiance, color, depth and normal from FLUX.1-dev.")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="text -> the five maps",
                                   description=f"Text -> five maps. Defaults: {TEXT_TO_MAPS.width}x"
                                               f"{TEXT_TO_MAPS.height}, {TEXT_TO_MAPS.steps} steps, cfg "
                                               f"{TEXT_TO_MAPS.cfg}, guidance {TEXT_TO_MAPS.guidance}.")
    generate.add_argument("--prompt", required=True)
    generate.add_argument("--scenes", type=int, default=1, help="scenes from one prompt (one noise each)")
    _add_output_options(generate)
    _add_sampling_options(generate, TEXT_TO_MAPS)
    _add_model_options(generate)

    decompose = commands.add_parser("decompose", help="an image -> the other maps",
                                    description="Image -> the other maps at the image's own size (guidance 1.0, no "
                                                "CFG; worked on at --megapixels, aspect kept, brought back edge-aware "
                                                "unless --width/--height fix the size).")
    decompose.add_argument("--image", help="the image of the map named by --given (default: a color photo)")
    decompose.add_argument("--given", default="color", choices=MAP_NAMES, help="which map --image is")
    decompose.add_argument("--map", action="append", default=[], metavar="NAME=PATH",
                           help="another given map, e.g. --map depth=depth.png (repeatable)")
    decompose.add_argument("--prompt", default="", help="a caption of the image (the published runs use one)")
    _add_output_options(decompose)
    _add_photo_options(decompose)
    _add_sampling_options(decompose, DECOMPOSITION, photo=True)
    _add_model_options(decompose)

    batch = commands.add_parser("batch", help="a folder, glob or list of photos -> their maps, resumable",
                                description="Decompose many photos: a folder (recursive), a glob ('photos/**/*.jpg', "
                                            "quoted) or a list file (.txt: one path per line). Writes the maps in a "
                                            "mirror of the input tree, manifest.jsonl and summary.json. Each photo is "
                                            "decomposed as decompose does it: at a working size from its own size "
                                            "(--megapixels) and back at its own size. Run the same command again "
                                            "after an interruption: finished photos are skipped.")
    batch.add_argument("input", help="folder, glob pattern or list file")
    batch.add_argument("--out", required=True, help="output folder (not the input folder)")
    batch.add_argument("--prompt", default="", help="one caption for every photo")
    batch.add_argument("--captions", action="store_true",
                       help="use NAME.txt beside each photo as its prompt where it exists (else --prompt)")
    batch.add_argument("--maps", default=",".join(MAP_NAMES), help="maps to write (comma-separated; default all five,"
                                                                   " color being the photo itself, as decompose "
                                                                   "returns it)")
    batch.add_argument("--batch-size", dest="batch_size", type=int, default=1,
                       help="photos (scenes) per forward when their working sizes match (default 1: each scene is "
                            "already a batch of five maps)")
    batch.add_argument("--no-scores", action="store_true", help="skip the coherence scores in the manifest")
    batch.add_argument("--no-recursive", action="store_true", help="a folder's top level only")
    batch.add_argument("--verify", action="store_true",
                       help="on resume, re-hash sources and outputs instead of trusting size + modification time")
    batch.add_argument("--threads", type=int, help="CPU threads per pipeline (results are bit-identical only at "
                                                   "equal thread counts)")
    scale = batch.add_argument_group("Ray scale-out (pip install ray)")
    scale.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run on Ray: 'local' (default: start one here), 'auto' (join the cluster this machine is "
                            "part of) or ray://host:10001")
    scale.add_argument("--workers", type=int, help="pipelines (Ray actors); default: one per GPU, else 2")
    scale.add_argument("--gpus-per-worker", dest="gpus_per_worker", type=float, help="default 1 on cuda, else 0")
    scale.add_argument("--cpus-per-worker", dest="cpus_per_worker", type=int, default=1)
    _add_photo_options(batch)
    _add_sampling_options(batch, DECOMPOSITION, photo=True)
    _add_model_options(batch)

    demo = commands.add_parser("demo", help="no model files needed: ground truth, the shipped tiny trained model, "
                                            "and a smoke run on tiny components",
                               description="Render a ground-truth scene, relight it and score it; generate five maps "
                                           "from a prompt and decompose a held-out render with the shipped TRAINED "
                                           "tiny LumiX (64x64); run the whole diffusers pipeline on tiny "
                                           "random-weight components (a smoke run, not a trained model); write a "
                                           "contact sheet.")
    demo.add_argument("--prompt", default=None,
                      help="prompt for the tiny model (its caption vocabulary, e.g. 'red sphere left and blue cube "
                           "right on grey and white checkered floor, teal wall, light from upper left')")
    demo.add_argument("--out", default="lumix_demo", help="output folder (default lumix_demo/)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="cpu")
    return parser


def _sampling_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key) for key in ("seed", "steps", "cfg", "guidance", "width", "height",
                                                "negative_prompt", "token_count")}


def _megapixels(args: argparse.Namespace) -> float:
    if args.megapixels is not None:
        return args.megapixels
    if args.tiny:
        from .tiny import DEFAULT_MEGAPIXELS as TINY_MEGAPIXELS
        return TINY_MEGAPIXELS
    return DEFAULT_MEGAPIXELS


def _pipeline(args: argparse.Namespace):
    if getattr(args, "tiny", False):
        from .tiny import TOY_LABEL, TinyPhotoPipeline
        print(TOY_LABEL, file=sys.stderr)
        if args.numerics != "engine" or args.device not in (None, "cpu") or args.dtype not in (None, "fp32"):
            raise LumiXError("--tiny runs on the CPU in float32 with engine numerics; drop --device, --dtype and "
                             "--numerics")
        return TinyPhotoPipeline.load(progress=not args.no_progress)
    from .pipeline import LumiXPipeline
    files = model_files(args).check()   # before importing diffusers: a missing file fails fast
    return LumiXPipeline.from_files(files, device=args.device, dtype=args.dtype,
                                    offload_text_encoders=args.offload_text_encoders, progress=not args.no_progress,
                                    numerics=args.numerics)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--out", required=True, help="output folder")
    group.add_argument("--format", choices=("png", "exr"), default="png",
                       help="png: 16-bit PNGs as the model outputs them (default); exr: float OpenEXR in physical "
                            "units (scene-linear R,G,B; depth Z + disparity; normals N.X,N.Y,N.Z in [-1, 1])")
    group.add_argument("--precision", choices=("float32", "half"), default="float32", help="EXR sample type")
    group.add_argument("--depth-range", dest="depth_range", type=float, default=DEPTH_RANGE,
                       help=f"far / near for depth in EXR and mesh (depth is relative; default {DEPTH_RANGE:g})")
    group.add_argument("--mesh", action="store_true",
                       help="also write a relightable 2.5D mesh per scene (mesh.glb: depth + albedo + normals)")
    group.add_argument("--fov", type=float, default=DEFAULT_FOV,
                       help=f"vertical field of view for --mesh, degrees in (1, 179) (default {DEFAULT_FOV:g})")


def _write(maps, args: argparse.Namespace, title: str) -> list[Path]:
    from ..image_io import contact_sheet, maps_rows, write_json
    out_dir = Path(args.out)
    files = maps.save(out_dir, args.format, precision=args.precision, depth_range=args.depth_range)
    if args.mesh:
        files += maps.save_meshes(out_dir, fov=args.fov, depth_range=args.depth_range)
    sheet = out_dir / "contact_sheet.png"
    contact_sheet(maps_rows(title, maps.as_dict())).save(sheet)
    return files + [sheet, write_json(maps.settings, out_dir / "settings.json")]


def run_generate(args: argparse.Namespace) -> list[Path]:
    pipe = _pipeline(args)
    maps = pipe.generate(args.prompt, scenes=args.scenes, **_sampling_kwargs(args))
    return _write(maps, args, f"LumiX: {args.prompt[:80]}")


def run_decompose(args: argparse.Namespace) -> list[Path]:
    given: dict[str, str] = {}
    if args.image:
        given[args.given] = args.image
    for item in args.map:
        name, _, path = item.partition("=")
        if not path or name not in MAP_NAMES:
            raise LumiXError(f"--map {item!r}: write NAME=PATH with NAME one of {', '.join(MAP_NAMES)}")
        given[name] = path
    if not given:
        raise LumiXError("decompose needs --image (and optionally --given) or --map NAME=PATH")
    for name, path in given.items():
        if not Path(path).is_file():
            raise LumiXError(f"the {name} image {path} does not exist")
    if (args.width is None) != (args.height is None):
        raise LumiXError("give --width and --height together (a fixed size), or neither (the image's own size)")
    ensemble_size = _ensemble_size(args)
    # Read and check the images before loading any model: a bad photo fails in a second.
    images = {name: load_image(path, int(args.max_pixels)) for name, path in given.items()}
    megapixels = _megapixels(args)
    prepare_photos(images, megapixels, ensemble_size, args.max_output_megapixels,
                   None if args.width is None else (args.width, args.height), check_steps(args.postprocess, args.numerics))
    pipe = _pipeline(args)
    maps = pipe.decompose(given=images, prompt=args.prompt, megapixels=megapixels, ensemble_size=ensemble_size,
                          upsample=args.upsample, max_output_megapixels=args.max_output_megapixels,
                          postprocess=args.postprocess, **_sampling_kwargs(args))
    for warning in maps.settings.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print(describe_steps(maps.settings["postprocess"]))
    title = f"{'TOY tiny model: ' if args.tiny else ''}LumiX decomposition of {', '.join(given.values())}"
    written = _write(maps, args, title)
    if ensemble_size > 1:
        from ..image_io import write_maps
        written[-2:-2] = write_maps(maps.uncertainty, Path(args.out))
    return written


def run_batch_command(args: argparse.Namespace) -> int:
    from .batch import BatchSettings, BatchStopped, Decomposer, find_inputs, local_executor, run_batch
    settings = BatchSettings(prompt=args.prompt, captions=args.captions, seed=args.seed, steps=args.steps,
                             cfg=args.cfg, guidance=args.guidance, width=args.width, height=args.height,
                             negative_prompt=args.negative_prompt, token_count=args.token_count,
                             maps=tuple(name.strip() for name in args.maps.split(",") if name.strip()),
                             batch_size=args.batch_size, max_pixels=int(args.max_pixels),
                             scores=not args.no_scores, megapixels=_megapixels(args), ensemble_size=_ensemble_size(args),
                             upsample=args.upsample, max_output_megapixels=args.max_output_megapixels).check()
    out = Path(args.out)
    inputs = find_inputs(args.input, out, recursive=not args.no_recursive)
    if args.tiny:
        from .tiny import TOY_LABEL
        files, models = None, {"model": "tiny", "note": TOY_LABEL}
        print(TOY_LABEL)
    else:
        files = model_files(args).check()
        models = {key: str(Path(value).resolve()) for key, value in vars(files).items() if value is not None}
    models["dtype"] = args.dtype or "default"
    if args.numerics != "engine":
        models["numerics"] = args.numerics
    if args.ray:
        from .batch.ray import ray_executor
        factory = ray_executor(files, settings, address=args.ray, workers=args.workers, device=args.device,
                               dtype=args.dtype, gpus_per_worker=args.gpus_per_worker,
                               cpus_per_worker=args.cpus_per_worker, threads=args.threads, numerics=args.numerics)
    else:
        def factory():
            with quiet_libraries():
                return local_executor(Decomposer(_pipeline(args), settings, threads=args.threads))
    try:
        summary = run_batch(inputs, out, settings, models, factory, verify=args.verify,
                            progress=not args.no_progress)
    except BatchStopped as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    for line in summary.lines():
        print(line)
    return EXIT_SOME_FAILED if summary.failed else 0


def run_demo_command(args: argparse.Namespace, started: float) -> list[Path]:
    from .demo import run_demo
    result = run_demo(Path(args.out), seed=args.seed, device=args.device, prompt=args.prompt)
    for line in result.lines:
        print(line)
    print(f"demo wall time {time.perf_counter() - started:.1f} s (counted after Python start-up and `import torch`)")
    return []


def main(argv: Optional[Sequence[str]] = None, started: Optional[float] = None) -> int:
    """Run one command; returns the exit code. `started`: when the process began (for timings)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    started = time.perf_counter() if started is None else started
    try:
        if args.command == "batch":
            return run_batch_command(args)
        if args.command == "demo":
            written = run_demo_command(args, started)
        else:
            written = {"generate": run_generate, "decompose": run_decompose}[args.command](args)
    except MissingModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MISSING_MODEL
    except LumiXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    if written:
        for path in written:
            print(f"wrote {path}")
        print(f"done in {time.perf_counter() - started:.1f} s")
    return 0
