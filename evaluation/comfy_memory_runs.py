"""Runs of evaluation/comfy_memory_probe.py in a ComfyUI tree's own interpreter, one process
each (ComfyUI's modules are process-global), and the trees beside this clone with their CI venvs."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import tempfile

from evaluation.lumix_memory import FluxShape

ROOT = pathlib.Path(__file__).resolve().parents[1]
# ../shared beside the clone, as .ci/run expects it (LUMIX_SHARED overrides); a worktree one level deeper also works
SHARED = pathlib.Path(os.environ.get("LUMIX_SHARED") or next(
    (p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()), ROOT.parent / "shared"))
TREES = SHARED / "comfyui"


def default_trees() -> list[tuple[pathlib.Path, pathlib.Path]]:
    trees = []
    for tree in sorted(TREES.glob("*")) if TREES.is_dir() else []:
        python = pathlib.Path.home() / ".cache" / "lumix-ci" / f"venv-{tree.name}" / "bin" / "python"
        if (tree / "comfy").is_dir() and python.exists():
            trees.append((tree, python))
    return trees


def run_comfyui(tree: pathlib.Path, python: pathlib.Path, shape: FluxShape, dtype: str, sizes: list,
                work: pathlib.Path, free_gb: float = 200.0, unpatched: bool = False) -> dict:
    request = {"shape": shape.as_dict(), "weights_dtype": dtype, "sizes": sizes, "steps": 1, "free_gb": free_gb,
               "unpatched": unpatched}
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(pathlib.Path(tempfile.gettempdir()) / "lumix-comfyui-pycache"))
    done = subprocess.run([str(python), str(ROOT / "evaluation" / "comfy_memory_probe.py"), str(tree), str(work),
                           json.dumps(request)], capture_output=True, text=True, env=env, cwd=work)
    lines = [line for line in done.stdout.splitlines() if line.startswith("LUMIX_MEMORY ")]
    if done.returncode or not lines:
        raise RuntimeError(f"ComfyUI {tree.name} {dtype} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    result = json.loads(lines[-1][len("LUMIX_MEMORY "):])
    for row in result["results"]:
        row["comfyui"] = tree.name
    return result
