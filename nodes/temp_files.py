"""Files a node writes for its frontend extension (the relight editor's preview PNGs, the maps
viewer's float32 files): in ComfyUI's temp folder, which ComfyUI empties when it starts, and
fetched by the page through /view?filename=&subfolder=&type=temp."""
from __future__ import annotations

import uuid
from pathlib import Path


def comfy_temp_folder() -> Path:
    import folder_paths  # ComfyUI's; the writers that take a folder run (and are tested) without it
    return Path(folder_paths.get_temp_directory())


def new_run_token(folder: Path) -> str:
    """Create `folder` and return a fresh prefix for one run's file names: another run, or another
    node, never overwrites files a page may still be showing."""
    folder.mkdir(parents=True, exist_ok=True)
    return uuid.uuid4().hex[:12]
