"""Draw the pack's pictures from the ground-truth renderer: icon, help-page figures, thumbnails.

    python -m tools.make_pictures

Writes, from `lumix_engine.intrinsics.render_scene` (exact maps of a procedural scene) and
the engine's own relight / material-edit / conversion functions:

- `docs/icon.png`: the Registry icon, 400 x 400, five map swatches of one scene;
- `web/docs/images/*.png`: the figures of the node help pages (`web/docs/<NodeId>.md`);
- `workflows/<name>.jpg`: one thumbnail per shipped workflow, shown by ComfyUI's template
  browser beside the same-name `.json`.

No picture is a FLUX or LumiX output: each says "ground-truth render" on it, because a
thumbnail that looked like a model result would promise what the model may not do.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from lumix_engine.image_io import to_pil
from lumix_engine.intrinsics import (
    Light,
    convert_convention,
    depth_to_image,
    material_edit,
    recompose,
    relight,
    render_scene,
)
from lumix_engine.intrinsics.checks import parse_rgb
from lumix_engine.intrinsics.environment import procedural_sky
from lumix_engine.modalities import MAP_NAMES

ROOT = Path(__file__).resolve().parent.parent
ICON = ROOT / "docs" / "icon.png"
HELP_IMAGES = ROOT / "web" / "docs" / "images"
WORKFLOWS = ROOT / "workflows"
SEED = 11            # the README's scene
ICON_SIZE = 400      # the Registry's largest icon
TILE = 128           # help-page figure tiles
THUMB = 512          # template-browser thumbnails (square cards)
HONEST = "ground-truth render, not model output"
BACKGROUND = (24, 24, 28)
TEXT = (235, 235, 235)


def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def labelled_row(tiles: list[tuple[str, Image.Image]], tile: int = TILE, gap: int = 6, label_h: int = 18) -> Image.Image:
    """Tiles side by side, each with its name underneath."""
    canvas = Image.new("RGB", (len(tiles) * (tile + gap) + gap, tile + label_h + 2 * gap), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for index, (name, picture) in enumerate(tiles):
        x = gap + index * (tile + gap)
        canvas.paste(picture.resize((tile, tile), Image.LANCZOS), (x, gap))
        draw.text((x + tile // 2, gap + tile + 2), name, fill=TEXT, font=font(13), anchor="ma")
    return canvas


def scene_maps(size: int) -> dict[str, torch.Tensor]:
    return render_scene(SEED, size, size).images()


def relight_like_workflow(maps: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Relight with the light set in workflows/api/lumix_relight.json, so the thumbnail and
    help figure show what that workflow's LumiXRelight node computes on these maps."""
    graph = json.loads((WORKFLOWS / "api" / "lumix_relight.json").read_text())
    settings = next(node["inputs"] for node in graph.values() if node["class_type"] == "LumiXRelight")
    light = Light("directional", (settings["light_x"], settings["light_y"], settings["light_z"]),
                  parse_rgb(settings["light_color"]), settings["intensity"])
    return relight(maps["albedo"], maps["normal"], [light], ambient=(settings["ambient"],) * 3,
                   exposure=settings["exposure"])


def relight_with_sky(maps: dict[str, torch.Tensor]) -> torch.Tensor:
    """What the exr_glb workflow's LumiXRelightEnvironment computes with no file and no image
    given: the built-in procedural sky, no rotation, intensity 1."""
    color, _ = relight(maps["albedo"], maps["normal"], (), ambient=(0.0, 0.0, 0.0), environment=procedural_sky(64))
    return color


def make_icon(path: Path = ICON) -> None:
    """Five vertical swatches, one per map, in LumiX's batch order."""
    maps = scene_maps(ICON_SIZE)
    icon = Image.new("RGB", (ICON_SIZE, ICON_SIZE))
    width = ICON_SIZE // len(MAP_NAMES)
    for index, name in enumerate(MAP_NAMES):
        x = index * width
        icon.paste(to_pil(maps[name]).crop((x, 0, x + width, ICON_SIZE)), (x, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    icon.save(path, optimize=True)


def make_help_images(folder: Path = HELP_IMAGES) -> None:
    """One figure per idea the help pages explain better with a picture."""
    folder.mkdir(parents=True, exist_ok=True)
    scene = render_scene(SEED, TILE, TILE)
    maps = scene.images()

    def save(name: str, tiles: list[tuple[str, torch.Tensor]]) -> None:
        labelled_row([(label, to_pil(image)) for label, image in tiles]).save(folder / f"{name}.png", optimize=True)

    save("five_maps", [(name, maps[name]) for name in MAP_NAMES])
    save("recompose", [("albedo", maps["albedo"]), ("irradiance", maps["irradiance"]),
                       ("color", recompose(maps["albedo"], maps["irradiance"])),
                       ("exposure +1", recompose(maps["albedo"], maps["irradiance"], exposure=1.0))])
    relit, relit_irradiance = relight_like_workflow(maps)
    save("relight", [("albedo", maps["albedo"]), ("normal", maps["normal"]), ("irradiance", relit_irradiance),
                     ("color", relit)])
    tinted, tinted_albedo = material_edit(maps["albedo"], maps["irradiance"], tint=(0.35, 0.6, 1.4))
    save("material_edit", [("albedo", maps["albedo"]), ("tinted albedo", tinted_albedo), ("color", tinted)])
    save("depth_convert", [("color", maps["color"]),
                           ("near_white", depth_to_image(scene.depth, normalization="minmax")),
                           ("invert", depth_to_image(scene.depth, normalization="minmax", invert_output=True))])
    save("mesh_inputs", [("depth", maps["depth"]), ("albedo", maps["albedo"]), ("normal", maps["normal"])])
    save("normal_convert", [("color", maps["color"]), ("opengl", maps["normal"]),
                            ("directx", convert_convention(maps["normal"], "opengl", "directx"))])
    # The encoding of a normal map: a sphere's normals cover every direction facing the camera.
    save("normal_axes", [("normal", maps["normal"]), ("red = +X right", maps["normal"][..., 0:1].expand(-1, -1, -1, 3)),
                         ("green = +Y up", maps["normal"][..., 1:2].expand(-1, -1, -1, 3)),
                         ("blue = +Z viewer", maps["normal"][..., 2:3].expand(-1, -1, -1, 3))])


def thumbnail(title: str, panels: list[tuple[str, Image.Image]], columns: int, note: str) -> Image.Image:
    """A square card: title, a grid of labelled panels, the scene note and the honesty line.
    Text is large because the template browser shows the card at about half size."""
    canvas = Image.new("RGB", (THUMB, THUMB), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((THUMB // 2, 8), title, fill=TEXT, font=font(36), anchor="ma")
    top, bottom, gap, label_h = 56, THUMB - 66, 8, 24
    rows = -(-len(panels) // columns)
    tile = min((THUMB - gap * (columns + 1)) // columns, (bottom - top - rows * (label_h + gap)) // rows)
    left = (THUMB - (columns * tile + (columns - 1) * gap)) // 2
    top += (bottom - top - rows * (tile + label_h + gap)) // 2    # centre the grid vertically
    for index, (label, picture) in enumerate(panels):
        row, column = divmod(index, columns)
        x, y = left + column * (tile + gap), top + row * (tile + label_h + gap)
        canvas.paste(picture.resize((tile, tile), Image.LANCZOS), (x, y))
        draw.text((x + tile // 2, y + tile + 2), label, fill=TEXT, font=font(20), anchor="ma")
    draw.text((THUMB // 2, THUMB - 60), note, fill=(200, 200, 200), font=font(19), anchor="ma")
    draw.text((THUMB // 2, THUMB - 32), HONEST, fill=(255, 200, 120), font=font(21), anchor="ma")
    return canvas


def make_thumbnails(folder: Path = WORKFLOWS) -> list[Path]:
    maps = scene_maps(THUMB // 2)
    tiles = {name: to_pil(image) for name, image in maps.items()}
    relit, relit_irradiance = relight_like_workflow(maps)
    cards = {
        "lumix_text_to_maps": thumbnail("prompt -> 5 maps", [(name, tiles[name]) for name in MAP_NAMES], 3,
                                        "albedo, irradiance, color, depth, normal"),
        "lumix_image_to_maps": thumbnail("image -> maps", [("color (given)", tiles["color"])] + [
            (name, tiles[name]) for name in MAP_NAMES if name != "color"], 3, "decomposition: color held, 4 maps made"),
        "lumix_maps_to_depth_control": thumbnail("maps -> depth control", [
            ("color", tiles["color"]), ("depth (near = white)", tiles["depth"])], 2,
            "depth feeds FLUX.1-Depth-dev (result not shown)"),
        "lumix_maps_to_exr_glb": thumbnail("maps -> EXR, GLB, sky", [
            ("albedo", tiles["albedo"]), ("depth", tiles["depth"]), ("normal", tiles["normal"]),
            ("relit: built-in sky", to_pil(relight_with_sky(maps)))], 2, "saved as float EXR and a GLB mesh"),
        "lumix_relight": thumbnail("maps -> relight", [
            ("albedo", tiles["albedo"]), ("normal", tiles["normal"]),
            ("new irradiance", to_pil(relit_irradiance)), ("relit color", to_pil(relit))], 2,
            "the workflow's light: warm, from the left"),
    }
    written = []
    folder.mkdir(parents=True, exist_ok=True)
    for name, card in cards.items():
        path = folder / f"{name}.jpg"
        card.save(path, quality=88, optimize=True)
        written.append(path)
    return written


def main() -> None:
    make_icon()
    make_help_images()
    for path in make_thumbnails():
        print("wrote", path.relative_to(ROOT))
    print("wrote", ICON.relative_to(ROOT), "and", HELP_IMAGES.relative_to(ROOT))


if __name__ == "__main__":
    main()
