"""The harness itself: a real server starts, and a core-node FLUX graph runs on tiny models."""
import time

import numpy as np
from comfyui_graphs import core_flux_graph
from PIL import Image

LUMIX_NODES = ("LumiXLoader", "LumiXSampler", "SplitIntrinsics", "Recompose")


def test_pack_loads_without_import_errors_and_lists_its_nodes(comfyui, comfyui_server):
    object_info = comfyui.object_info()
    log = comfyui_server.log_text()
    pack_lines = [line for line in log.splitlines() if "ComfyUI-LumiX" in line]
    assert not [line for line in pack_lines if "IMPORT FAILED" in line or "Cannot import" in line], \
        "\n".join(pack_lines) + "\n" + comfyui_server.log_tail()
    missing = [node for node in LUMIX_NODES if node not in object_info]
    assert not missing, f"/object_info lacks {missing}; pack log lines: {pack_lines}"


def test_test_shim_loads_and_offers_flux_conditioning(comfyui):
    assert "LumiXTestConditioning" in comfyui.object_info()


def test_core_flux_graph_runs_on_tiny_models(comfyui, tiny_models):
    started = time.monotonic()
    entry = comfyui.run(core_flux_graph(tiny_models, seed=3, steps=2, cfg=2.0,
                                        width=64, height=48, batch_size=2), timeout_s=300)
    seconds = time.monotonic() - started
    images = comfyui.output_files(entry, "save")
    assert len(images) == 2, entry["outputs"]
    for path in images:
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (48, 64, 3)
        assert np.isfinite(pixels).all()
    print(f"core FLUX graph (2 steps, cfg 2, 2 x 64x48): {seconds:.2f} s")
