"""Independent ground truth for photo upsampling: textured scenes path-traced by Mitsuba 3.

    pip install -r requirements-eval.txt
    nice -n 10 python -m benchmarks.mitsuba_scenes --spp 4 --out runs/mitsuba

Four scenes, all diffuse (so color = albedo x shading holds per ray), each with object
edges, a spherical key light (soft shadows), a larger dim spherical light for fill, and
printed-text / tile / checker / wood-grain textures. Rendered with Mitsuba's
`scalar_rgb` variant, its `path` integrator (max depth 2: direct light, no indirect bounce),
once per light with the same samples (color = the sum), a stratified sampler (several samples per pixel, antialiased through the film's
Gaussian reconstruction filter) and the `aov` integrator for the per-pixel albedo, depth
(distance along the camera ray) and shading normal, all averaged over the same pixel
footprint, as a camera integrates them.

Per scene and size, saved as one safetensors file (float32 [1, H, W, C]):
- color: linear RGB, exposed so that the 99.5th percentile of the shading is 1;
- albedo: linear RGB reflectance (Mitsuba's albedo AOV);
- shading: color / albedo per channel, clipped to [0, 1] (the model's irradiance map in
  linear light), and color is recomputed as albedo x shading after that clip, so the truth
  recomposes exactly;
- depth: distance to the first hit (metric);
- normal: unit shading normal in camera space (x right, y up, z towards the camera, the
  OpenGL convention of lumix_engine.intrinsics.normals).
Renders are cached (re-running skips what exists) and small previews are written next to
them. The pack itself never imports Mitsuba; this is evaluation only.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZES = ((2048, 2048), (2048, 1152))
SCENES = ("poster", "desk", "checker", "clutter")
TEXTURE_PX = 2048


# --- textures (procedural, written as PNGs that Mitsuba's bitmap texture reads) ------------

def text_texture(seed: int, paper=(235, 230, 215), ink=(20, 20, 25)) -> Image.Image:
    """A printed page: lines of small text, a heading and a coloured box."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (TEXTURE_PX, TEXTURE_PX), paper)
    draw = ImageDraw.Draw(image)
    heading, body = ImageFont.load_default(size=120), ImageFont.load_default(size=44)
    draw.text((90, 70), "LumiX ground truth", font=heading, fill=(150, 30, 30))
    draw.rectangle((1300, 300, 1900, 800), fill=(40, 90, 160))
    words = "albedo irradiance shading normal depth photo render light shadow edge texture".split()
    y = 260
    while y < TEXTURE_PX - 80:
        x_end = 1200 if y < 820 else TEXTURE_PX - 90
        line = " ".join(rng.choice(words, 12))
        draw.text((90, y), line, font=body, fill=ink)
        draw.rectangle((x_end, y, TEXTURE_PX, y + 60), fill=paper)   # ragged right margin
        y += 62
    return image


def checker_texture(seed: int, cells: int = 16) -> Image.Image:
    rng = np.random.default_rng(seed)
    colors = rng.uniform(0.15, 0.9, (2, 3))
    index = (np.add.outer(np.arange(TEXTURE_PX) * cells // TEXTURE_PX, np.arange(TEXTURE_PX) * cells // TEXTURE_PX)) % 2
    return Image.fromarray((colors[index] * 255).astype(np.uint8))


def tile_texture(seed: int, cells: int = 12) -> Image.Image:
    """Coloured tiles with thin grout lines."""
    rng = np.random.default_rng(seed)
    colors = rng.uniform(0.25, 0.85, (cells, cells, 3))
    coordinate = np.arange(TEXTURE_PX) * cells / TEXTURE_PX
    cell = coordinate.astype(int)
    image = colors[cell[:, None], cell[None, :]]
    grout = (coordinate % 1 < 0.04)
    image[grout[:, None] | grout[None, :]] = 0.9
    return Image.fromarray((image * 255).astype(np.uint8))


def wood_texture(seed: int) -> Image.Image:
    """Wood grain: warped stripes plus fine noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:TEXTURE_PX, 0:TEXTURE_PX] / TEXTURE_PX
    noise = np.asarray(Image.fromarray((rng.uniform(0, 255, (32, 32))).astype(np.uint8)).resize(
        (TEXTURE_PX, TEXTURE_PX), Image.BICUBIC), dtype=np.float64) / 255
    grain = 0.5 + 0.5 * np.sin(2 * math.pi * (40 * y + 6 * noise))
    fine = rng.uniform(-0.05, 0.05, (TEXTURE_PX, TEXTURE_PX))
    base = np.array([0.55, 0.36, 0.2])
    image = base * (0.7 + 0.3 * grain[..., None] + fine[..., None])
    return Image.fromarray((image.clip(0, 1) * 255).astype(np.uint8))


def noise_texture(seed: int) -> Image.Image:
    """Speckled stone: multi-scale colour noise."""
    rng = np.random.default_rng(seed)
    image = np.zeros((TEXTURE_PX, TEXTURE_PX, 3))
    for cells, amplitude in ((8, 0.25), (64, 0.15), (512, 0.1)):
        layer = rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)
        image += amplitude * np.asarray(Image.fromarray(layer).resize((TEXTURE_PX, TEXTURE_PX), Image.BILINEAR)) / 255
    return Image.fromarray(((0.25 + image).clip(0, 1) * 255).astype(np.uint8))


# --- scenes --------------------------------------------------------------------------------

def _bitmap(path: Path, scale: float = 1.0) -> dict:
    import mitsuba as mi
    return {"type": "bitmap", "filename": str(path), "to_uv": mi.ScalarTransform4f().scale([scale, scale, 1])}


def _diffuse(reflectance) -> dict:
    if isinstance(reflectance, dict):
        return {"type": "diffuse", "reflectance": reflectance}
    return {"type": "diffuse", "reflectance": {"type": "rgb", "value": list(reflectance)}}


def _textures(folder: Path) -> dict[str, Path]:
    makers = {"text": lambda: text_texture(1), "text2": lambda: text_texture(2, (250, 250, 245), (30, 30, 120)),
              "checker": lambda: checker_texture(3), "tiles": lambda: tile_texture(4), "wood": lambda: wood_texture(5),
              "stone": lambda: noise_texture(6)}
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, make in makers.items():
        paths[name] = folder / f"{name}.png"
        if not paths[name].is_file():
            make().save(paths[name])
    return paths


def scene_dict(name: str, width: int, height: int, spp: int, textures: dict[str, Path]) -> tuple[dict, np.ndarray]:
    """Mitsuba scene and its camera-to-world rotation (3 x 3)."""
    import mitsuba as mi
    T = mi.ScalarTransform4f
    origin, target = {"poster": ([0.6, 1.6, 5.2], [0.0, 1.3, 0.0]), "desk": ([0, 3.2, 4.2], [0, 0.3, 0]),
                      "checker": ([-1.0, 2.4, 5.5], [0.3, 0.6, 0]), "clutter": ([1.2, 3.6, 4.6], [0, 0.2, 0])}[name]
    fov = 50 if width >= height else 40
    to_world = T().look_at(origin=origin, target=target, up=[0, 1, 0])
    objects: dict = {
        "floor": {"type": "rectangle", "to_world": T().rotate([1, 0, 0], -90).scale(12),
                  "bsdf": _diffuse(_bitmap(textures[{"poster": "wood", "desk": "wood", "checker": "checker",
                                                     "clutter": "stone"}[name]], 6.0))},
        "wall": {"type": "rectangle", "to_world": T().translate([0, 6, -2.5]).scale(12),
                 "bsdf": _diffuse(_bitmap(textures["tiles"], 3.0) if name != "poster" else (0.75, 0.72, 0.68))},
        # Two spherical lights: Mitsuba samples a sphere light over the cone it subtends, so
        # a lit point gets almost the same light from every sample and the shading is clean at
        # a few samples per pixel; only the penumbrae (soft shadows) are noisy. A constant
        # environment or a large panel left it noisy (2.5 % per pixel at 16 spp). Each light
        # is rendered on its own (`render`).
        # The key light's radius sets the penumbra: 0.12 gives soft shadow edges of ~10 px at
        # 2048 px; 0.35 gave wide penumbrae whose 4-spp visibility noise (rms 0.0025) was
        # most of every upsampler's irradiance error, which no upsampler can predict.
        "key": {"type": "sphere", "center": [3.0, 3.2, 2.0], "radius": 0.12,
                "emitter": {"type": "area", "radiance": {"type": "rgb", "value": [510.0, 476.0, 425.0]}}},
        "fill": {"type": "sphere", "center": [-4.0, 5.0, 7.0], "radius": 1.2,
                 "emitter": {"type": "area", "radiance": {"type": "rgb", "value": [3.0, 3.3, 3.8]}}},
    }
    if name == "poster":
        objects["poster"] = {"type": "rectangle", "to_world": T().translate([0, 1.6, -2.45]).scale([1.6, 1.6, 1]),
                             "bsdf": _diffuse(_bitmap(textures["text"]))}
        objects["pillar"] = {"type": "cube", "to_world": T().translate([1.0, 0.9, -1.7]).scale([0.25, 0.9, 0.25]),
                             "bsdf": _diffuse((0.8, 0.25, 0.2))}
        objects["ball"] = {"type": "sphere", "center": [-0.9, 0.55, 0.2], "radius": 0.55,
                           "bsdf": _diffuse(_bitmap(textures["checker"], 2.0))}
    elif name == "desk":
        objects["page"] = {"type": "rectangle",
                           "to_world": T().translate([-0.2, 0.01, 0.6]).rotate([0, 1, 0], 12).rotate([1, 0, 0], -90)
                           .scale([0.9, 1.2, 1]), "bsdf": _diffuse(_bitmap(textures["text2"]))}
        objects["mug"] = {"type": "cylinder", "p0": [0.9, 0, -0.1], "p1": [0.9, 0.8, -0.1], "radius": 0.35,
                          "bsdf": _diffuse((0.2, 0.45, 0.7))}
        objects["ball"] = {"type": "sphere", "center": [-1.2, 0.4, -0.4], "radius": 0.4,
                           "bsdf": _diffuse(_bitmap(textures["stone"]))}
        objects["box"] = {"type": "cube", "to_world": T().translate([0.3, 0.3, -1.4]).rotate([0, 1, 0], -20).scale(0.3),
                          "bsdf": _diffuse(_bitmap(textures["text"], 1.0))}
    elif name == "checker":
        for i, (x, z, r) in enumerate(((-1.3, 0.3, 0.5), (0.0, -0.4, 0.7), (1.4, 0.5, 0.45), (0.6, 1.4, 0.3))):
            objects[f"ball{i}"] = {"type": "sphere", "center": [x, r, z], "radius": r,
                                   "bsdf": _diffuse(_bitmap(textures[("wood", "tiles", "stone", "text")[i]]))}
    else:   # clutter: many small boxes and balls
        rng = np.random.default_rng(7)
        for i in range(14):
            x, z, size = rng.uniform(-1.8, 1.8), rng.uniform(-1.5, 1.3), rng.uniform(0.12, 0.3)
            texture = textures[("checker", "tiles", "wood", "text2")[i % 4]]
            if i % 2:
                objects[f"o{i}"] = {"type": "sphere", "center": [x, size, z], "radius": size,
                                    "bsdf": _diffuse(_bitmap(texture))}
            else:
                objects[f"o{i}"] = {"type": "cube", "bsdf": _diffuse(_bitmap(texture)),
                                    "to_world": T().translate([x, size, z]).rotate([0, 1, 0], float(rng.uniform(0, 90)))
                                    .scale(size)}
    scene = {"type": "scene",
             "integrator": {"type": "aov", "aovs": "albedo:albedo,dd:depth,nn:sh_normal",
                            "image": {"type": "path", "max_depth": 2}},
             "sensor": {"type": "perspective", "fov": fov, "fov_axis": "larger", "to_world": to_world,
                        "film": {"type": "hdrfilm", "width": width, "height": height, "pixel_format": "rgb"},
                        "sampler": {"type": "stratified", "sample_count": spp, "seed": 0}},
             **objects}
    rotation = np.array(to_world.matrix, dtype=np.float64)[:3, :3]
    return scene, rotation


def render(name: str, width: int, height: int, spp: int, out: Path) -> Path:
    """Render one scene (cached) and return its safetensors path."""
    from safetensors.numpy import save_file
    path = out / f"{name}_{width}x{height}.safetensors"
    if path.is_file():
        return path
    import mitsuba as mi
    mi.set_variant("scalar_rgb")
    scene_description, rotation = scene_dict(name, width, height, spp, _textures(out / "textures"))
    started = time.perf_counter()
    # One render per light, same seed and samples: a path tracer picks one light per sample,
    # and with two lights that choice, correlated with the texture inside a pixel, left
    # color / albedo noisy (2.5 % per pixel at 16 spp; 0.3 % this way at 4 spp).
    key, fill = ({k: v for k, v in scene_description.items() if k != drop} for drop in ("fill", "key"))
    image = np.array(mi.render(mi.load_dict(key)), dtype=np.float64)   # [H, W, 3 + 3 + 1 + 3]
    color = image[..., 0:3] + np.array(mi.render(mi.load_dict(fill)), dtype=np.float64)[..., 0:3]
    seconds = time.perf_counter() - started
    albedo, depth, normal = image[..., 3:6], image[..., 6:7], image[..., 7:10]
    albedo = albedo.clip(1e-3, 1)
    shading = color / albedo
    exposure = 1.0 / np.percentile(shading, 99.5)
    shading = (shading * exposure).clip(0, 1)
    # Mitsuba's camera looks along +z in its local frame with x to the left; OpenGL camera
    # space has x right, y up, z towards the viewer: flip x and z.
    normal = normal @ rotation * np.array([-1.0, 1.0, -1.0])
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True).clip(1e-8)
    maps = {"color": albedo * shading, "albedo": albedo, "shading": shading, "depth": depth, "normal": normal}
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v[None], dtype=np.float32) for k, v in maps.items()}, str(path),
              metadata={"spp": str(spp), "seconds": f"{seconds:.1f}", "exposure": f"{exposure:.4f}"})
    preview = np.concatenate([srgb(maps["color"]), srgb(maps["albedo"]), srgb(maps["shading"]),
                              (normal + 1) / 2], axis=1)
    Image.fromarray((preview * 255 + 0.5).astype(np.uint8)).resize(
        (preview.shape[1] // 8, preview.shape[0] // 8), Image.LANCZOS).save(out / f"{name}_{width}x{height}_preview.png")
    print(f"{name} {width}x{height}: {spp} spp in {seconds:.0f} s", flush=True)
    return path


def srgb(linear: np.ndarray) -> np.ndarray:
    linear = linear.clip(0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/mitsuba"))
    parser.add_argument("--spp", type=int, default=4)
    parser.add_argument("--scenes", nargs="*", default=list(SCENES))
    parser.add_argument("--sizes", nargs="*", default=[f"{w}x{h}" for w, h in SIZES])
    args = parser.parse_args()
    for size in args.sizes:
        width, height = map(int, size.split("x"))
        for name in args.scenes:
            render(name, width, height, args.spp, args.out)


if __name__ == "__main__":
    main()
