"""LumiX on ComfyUI's own GPU-memory, cloning and attention code (the tree in COMFYUI_PATH).

Each test runs one scenario of gpu_paths_probe.py in the ComfyUI interpreter (COMFYUI_PYTHON),
in its own process because ComfyUI's modules are process-global. All on the CPU: where
ComfyUI's dynamic VRAM would need CUDA, the probe records the page pins instead (see there).
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import tempfile

PROBE = pathlib.Path(__file__).resolve().parent / "gpu_paths_probe.py"


def run_probe(install, tmp_path: pathlib.Path, scenario: str, timeout: int = 600, probe: pathlib.Path = PROBE) -> dict:
    # Byte code outside the ComfyUI tree, which may be read-only (kept between runs).
    env = dict(os.environ)
    env.setdefault("PYTHONPYCACHEPREFIX", str(pathlib.Path(tempfile.gettempdir()) / "lumix-comfyui-pycache"))
    done = subprocess.run([str(install.python), str(probe), str(install.path), str(tmp_path), scenario],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("LUMIX_PROBE ")]
    assert done.returncode == 0 and lines, f"probe {scenario} failed:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    return json.loads(lines[-1][len("LUMIX_PROBE "):])["result"]


def test_every_cast_path_matches_the_layer_and_releases_what_it_casts(comfyui_install, tmp_path):
    result = run_probe(comfyui_install, tmp_path, "cast_values")
    assert result["plain float64"]["path"] == "plain"
    for name in ("manual_cast float32 -> float64", "manual_cast fp8 storage -> float64", "weight_function (LoRA hook)"):
        assert result[name]["path"] == "cast" and result[name]["max_error"] < 1e-12, result[name]
    assert result["custom op (general path)"]["path"] == "general"


def test_dynamic_vram_pins_are_all_released_even_when_interrupted(comfyui_install, tmp_path):
    result = run_probe(comfyui_install, tmp_path, "dynamic_vram")
    if not result["dynamic_vram"]:
        return  # this ComfyUI casts in the legacy two-value mode only: nothing is ever pinned
    first = result["first_run"]
    assert first["faults"] == first["unpins"] > 0 and first["lumix_casts"] == first["lumix_uncasts"] == 4
    assert result["interrupted"]
    after = result["after_interrupt"]
    assert after["faults"] == after["unpins"] and after["casts"] == after["uncasts"]
    assert result["legacy_mode_pins_left"] == 4  # the control: the old call leaves LumiX's 4 layers pinned


def test_rebuilt_clones_run_their_own_weights(comfyui_install, tmp_path):
    result = run_probe(comfyui_install, tmp_path, "rebuilt_clones")
    assert result["err_a"] < 1e-5 and result["err_b"] < 1e-5
    assert "Put LumiXLoader after that node" in result["changed_blocks_error"]


def test_torch_compile_in_front_of_and_behind_the_loader(comfyui_install, tmp_path):
    result = run_probe(comfyui_install, tmp_path, "torch_compile")
    assert result["behind"] < 1e-4 and result["in_front"] < 1e-4


def test_attention_override_and_stock_attention_patches_reach_lumix_blocks(comfyui_install, tmp_path):
    result = run_probe(comfyui_install, tmp_path, "attention_override")
    assert result["seen"]["override"] == 4
    # README (Attention): 0.29's stock FLUX blocks apply attn1_patch / attn1_output_patch, 0.3.64's do not.
    documented = {"0.29.0": True, "0.3.64": False}
    if result["comfyui_version"] in documented:
        assert result["stock_block_applies_attn1_patches"] == documented[result["comfyui_version"]], result


def test_flux_family_models_lumix_was_not_trained_on_are_named(comfyui_install, tmp_path):
    result = run_probe(comfyui_install, tmp_path, "refusals")
    assert result["FLUX.1-dev"] is None and "Chroma" in result["Chroma"]
