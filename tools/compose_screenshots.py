"""The help pages' screenshots of the real frontend (web/docs/screenshots/).

web/docs/images/ holds only figures drawn by tools/make_pictures.py; screenshots of ComfyUI's
page come from the browser tests instead, which save them with LUMIX_UI_SCREENSHOTS=<dir>.
To regenerate them (frontend 1.47):

    LUMIX_UI_SCREENSHOTS=/tmp/shots COMFYUI_PATH=/work/shared/comfyui/0.29.0 \\
    COMFYUI_PYTHON=$HOME/.cache/lumix-ci/venv-0.29.0/bin/python python -m pytest -q \\
        tests/comfyui/test_relight_editor.py tests/comfyui/test_maps_viewer.py --lumix-require-comfyui
    python -m tools.compose_screenshots /tmp/shots

Only the files whose screenshots are all in the folder are rewritten.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from tools.make_pictures import BACKGROUND, TEXT, font

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "web" / "docs" / "screenshots"

DRAG_FRAMES = [f"relight_editor_drag_{k:02}.png" for k in range(1, 13)]
# The stepped figure: (screenshot, caption) per step of test_relight_editor.py's drag.
STEPS = [("relight_editor_drag_01.png", "press on the ball: the light starts there"),
         ("relight_editor_drag_06.png", "drag: the preview and widgets follow"),
         ("relight_editor_drag_12.png", "release: queue to get this image")]
ANIMATION_MS = 120       # per drag step; the last frame is held
MAX_ANIMATION_BYTES = 1_000_000

# Each file in web/docs/screenshots/ -> (the browser test that saves its screenshots, their names).
SOURCES: dict[str, tuple[str, list[str]]] = {
    "maps_viewer.png": ("tests/comfyui/test_maps_viewer.py", ["comfyui-0.29.0_maps_viewer_docs.png"]),
    "relight_editor.png": ("tests/comfyui/test_relight_editor.py", ["relight_editor_drag_12.png"]),
    "relight_editor_steps.png": ("tests/comfyui/test_relight_editor.py", [name for name, _ in STEPS]),
    "relight_editor_drag.webp": ("tests/comfyui/test_relight_editor.py", DRAG_FRAMES),
    "relight_environment_editor.png": ("tests/comfyui/test_relight_editor.py", ["relight_environment_editor.png"]),
}


def stepped_figure(frames: list[Image.Image], captions: list[str], gap: int = 10, caption_h: int = 24) -> Image.Image:
    """Frames side by side, each numbered in its corner and captioned underneath."""
    width, height = max(f.width for f in frames), max(f.height for f in frames)
    canvas = Image.new("RGB", (len(frames) * (width + gap) + gap, height + caption_h + 2 * gap), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for index, (frame, caption) in enumerate(zip(frames, captions)):
        x = gap + index * (width + gap)
        canvas.paste(frame.convert("RGB"), (x, gap))
        badge = (x + 6, gap + 6, x + 30, gap + 30)
        draw.ellipse(badge, fill=(250, 190, 60))
        draw.text((x + 18, gap + 18), str(index + 1), fill=BACKGROUND, font=font(16), anchor="mm")
        draw.text((x + width // 2, gap + height + 6), f"{index + 1}. {caption}", fill=TEXT, font=font(14), anchor="ma")
    return canvas


def save_animation(frames: list[Image.Image], path: Path) -> None:
    """A looping animated WebP of the drag, shrunk until it is under MAX_ANIMATION_BYTES."""
    scale = 1.0
    while True:
        size = (round(frames[0].width * scale), round(frames[0].height * scale))
        small = [f.convert("RGB").resize(size, Image.LANCZOS) for f in frames]
        durations = [ANIMATION_MS] * (len(small) - 1) + [1500]
        small[0].save(path, save_all=True, append_images=small[1:], duration=durations, loop=0, quality=80, method=6)
        if path.stat().st_size < MAX_ANIMATION_BYTES or scale < 0.3:
            return
        scale *= 0.8


def compose(shots: Path, out: Path = SCREENSHOTS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (_, sources) in SOURCES.items():
        if not all((shots / source).is_file() for source in sources):
            continue
        frames = [Image.open(shots / source) for source in sources]
        target = out / name
        if name == "relight_editor_steps.png":
            stepped_figure(frames, [caption for _, caption in STEPS]).save(target, optimize=True)
        elif name.endswith(".webp"):
            save_animation(frames, target)
        else:
            frames[0].convert("RGB").save(target, optimize=True)
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shots", type=Path, help="the LUMIX_UI_SCREENSHOTS folder of a browser-test run")
    args = parser.parse_args()
    written = compose(args.shots)
    for path in written:
        print("wrote", path.relative_to(ROOT))
    if not written:
        raise SystemExit(f"no complete set of screenshots in {args.shots}: run the browser tests first (see --help)")


if __name__ == "__main__":
    main()
