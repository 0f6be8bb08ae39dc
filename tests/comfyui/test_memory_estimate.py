"""ComfyUI keeps enough GPU memory free for LumiX's five-map step, on the tree in COMFYUI_PATH.

evaluation/comfy_memory_probe.py runs the node path's sampling (ComfyUI's FLUX at FLUX.1-dev
width with one double and one single block, the LumiX Loader, sample_maps) on a fake CUDA
device and records the peak of live GPU storages, and what the sampler asked ComfyUI's
loader to keep free (load_models_gpu's minimum_memory_required). Activations do not grow
with depth, so one block pair gives FLUX.1-dev's activation peak (benchmarks/memory_simulation.py).
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import tempfile

PROBE = pathlib.Path(__file__).resolve().parents[2] / "evaluation" / "comfy_memory_probe.py"
SIZES = [[256, 256], [496, 496], [1024, 768]]   # the photo path's minimum, 0.25 MP, 0.79 MP


def run_probe(install, tmp_path: pathlib.Path, request: dict) -> dict:
    env = dict(os.environ)
    env.setdefault("PYTHONPYCACHEPREFIX", str(pathlib.Path(tempfile.gettempdir()) / "lumix-comfyui-pycache"))
    done = subprocess.run([str(install.python), str(PROBE), str(install.path), str(tmp_path), json.dumps(request)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("LUMIX_MEMORY ")]
    assert done.returncode == 0 and lines, f"memory probe failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return json.loads(lines[-1][len("LUMIX_MEMORY "):])


def test_comfyui_keeps_free_what_the_simulated_lumix_step_needs(comfyui_install, tmp_path):
    result = run_probe(comfyui_install, tmp_path, {"shape": {"depth": 1, "depth_single_blocks": 1},
                                                   "weights_dtype": "bf16", "sizes": SIZES, "steps": 1,
                                                   "free_gb": 80})
    rows, estimates = result["results"], result["estimates"]
    assert [[r["width"], r["height"]] for r in rows] == SIZES
    activations = [r["activations_gb"] for r in rows]
    # a real step: more tokens, more memory; 1024x768 holds at least the single block's
    # linear1 output for 5 maps x (3072 + 512) tokens x 21504 features in bf16
    assert activations == sorted(activations) and activations[-1] > 5 * 3584 * 21504 * 2 / 1e9
    for row in rows:
        assert row["comfy_kept_free_gb"] >= row["activations_gb"], row
    # ComfyUI's own estimate covers LumiX's batch from 0.25 MP up, but not at the photo
    # path's smallest size (it leaves FLUX's 512 text tokens out): there the LumiX Loader's
    # PREPARE_SAMPLING wrapper raises it (nodes/memory_estimate.py). This is the control.
    own = {(e["width"], e["height"]): e["minimum_memory_required_gb"] for e in estimates}
    assert own[(256, 256)] < rows[0]["activations_gb"] <= rows[0]["comfy_kept_free_gb"]
    for row in rows[1:]:
        assert own[(row["width"], row["height"])] >= row["activations_gb"], row
