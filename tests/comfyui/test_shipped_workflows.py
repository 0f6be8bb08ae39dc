"""Every shipped workflow, run in a real ComfyUI through POST /prompt on tiny models.

The API files are run as shipped except for what cannot be tiny: model file names point to
the tiny test models, the FLUX text encoders (CLIP-L + T5-XXL) are replaced by the test
conditioning node, and steps and sizes are cut so the run takes seconds on a CPU.
"""
import json
import pathlib
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import build_workflows  # noqa: E402

WORKFLOW_NAMES = sorted(build_workflows.SPECS)
WIDTH, HEIGHT = 64, 48


def write_tiny_depth_lora(path: pathlib.Path, hidden: int, rank: int = 2) -> None:
    """Like FLUX.1-Depth-dev-lora: widens img_in to take the control latent (128 inputs)."""
    g = torch.Generator().manual_seed(7)
    save_file({"diffusion_model.img_in.lora_A.weight": torch.randn(rank, 128, generator=g) * 0.1,
               "diffusion_model.img_in.lora_B.weight": torch.randn(hidden, rank, generator=g) * 0.1,
               "diffusion_model.img_in.reshape_weight": torch.tensor([hidden, 128])}, str(path))


def tiny_version(api: dict, models, conditioning_dims: tuple[int, int]) -> dict:
    graph = json.loads(json.dumps(api))
    context, pooled = conditioning_dims
    for node_id, node in list(graph.items()):
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "UNETLoader":
            inputs["unet_name"] = models.flux
        elif kind == "VAELoader":
            inputs["vae_name"] = models.vae
        elif kind == "LumiXLoader":
            inputs["lumix_name"] = models.lumix
        elif kind == "LoraLoaderModelOnly":
            inputs["lora_name"] = "tiny_depth_lora.safetensors"
        elif kind == "DualCLIPLoader":
            del graph[node_id]
        elif kind == "CLIPTextEncode":
            graph[node_id] = {"class_type": "LumiXTestConditioning",
                              "inputs": {"seed": int(node_id), "tokens": 8, "guidance": 3.5,
                                         "context_dim": context, "pooled_dim": pooled}}
        elif kind in ("LumiXSampler", "ImageScale"):
            inputs.update({"width": WIDTH, "height": HEIGHT})
            if kind == "LumiXSampler":
                inputs["steps"] = 2
        elif kind == "KSampler":
            inputs["steps"] = 2
        elif kind == "LumiXDecomposePhoto":
            inputs.update({"steps": 2, "megapixels": 0.0625})
        elif kind == "LoadImage":
            inputs["image"] = "lumix_test_input.png"
    return graph


@pytest.fixture(scope="module")
def prepared(comfyui_server, tiny_models):
    (comfyui_server.models_dir / "loras").mkdir(parents=True, exist_ok=True)
    write_tiny_depth_lora(comfyui_server.models_dir / "loras" / "tiny_depth_lora.safetensors",
                          tiny_models.flux_config.hidden_size)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(
        comfyui_server.input_dir / "lumix_test_input.png")
    return tiny_models


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_shipped_api_workflow_runs_on_tiny_models(comfyui, prepared, name):
    api = json.loads((ROOT / "workflows" / "api" / f"{name}.json").read_text())
    config = prepared.flux_config
    graph = tiny_version(api, prepared, (config.context_in_dim, config.vec_in_dim))
    started = time.monotonic()
    entry = comfyui.run(graph, timeout_s=600)
    print(f"{name}: {time.monotonic() - started:.2f} s")
    titles = {node["_meta"]["title"]: node_id for node_id, node in api.items()}
    # A photo decomposition comes back at the input photo's size (128 x 96), the rest at the sampler's.
    width, height = (128, 96) if "Decompose photo" in titles else (WIDTH, HEIGHT)
    for map_name in build_workflows.MAPS:
        if f"Save {map_name}" not in titles:
            continue
        files = comfyui.output_files(entry, titles[f"Save {map_name}"])
        assert len(files) == 1, (map_name, entry["outputs"].keys())
        pixels = np.asarray(Image.open(files[0]))
        assert pixels.shape == (height, width, 3) and np.isfinite(pixels).all()
    for title, node_id in titles.items():
        if title.endswith("16-bit"):
            image = Image.open(comfyui.output_files(entry, node_id)[0])
            assert image.size == (width, height)
    if "Save controlled" in titles:
        controlled = comfyui.output_files(entry, titles["Save controlled"])
        assert np.asarray(Image.open(controlled[0])).shape == (HEIGHT, WIDTH, 3)
    if "Scores" in titles:
        report = entry["outputs"][titles["Scores"]]["text"][0]
        assert "structural alignment" in report, report
    if "Save relit" in titles:
        assert len(comfyui.output_files(entry, titles["Save relit"])) == 1


def test_ui_files_match_the_builder_and_the_live_schemas(comfyui):
    built = build_workflows.build(comfyui.object_info())
    for name, (api, ui) in built.items():
        assert json.loads((ROOT / "workflows" / "api" / f"{name}.json").read_text()) == api, name
        assert json.loads((ROOT / "workflows" / f"{name}.json").read_text()) == ui, name


def test_workflows_appear_in_the_template_browser(comfyui):
    templates = comfyui.get_json("/workflow_templates")
    assert sorted(templates.get("ComfyUI-LumiX", [])) == WORKFLOW_NAMES
    for name in WORKFLOW_NAMES:
        ui = comfyui.get_json(f"/api/workflow_templates/ComfyUI-LumiX/{name}.json")
        assert ui["version"] == 0.4 and ui["models"]
