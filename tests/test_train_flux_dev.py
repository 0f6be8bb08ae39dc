"""The full-size training command's code path, run on the demo's tiny diffusers components:
the same loader (LumiXPipeline.from_files), encoders, patching and loop as on FLUX.1-dev."""
from __future__ import annotations

import argparse

from lumix_engine.apps.loading import quiet_libraries
from lumix_engine.image_io import save_png16
from lumix_engine.intrinsics import render_scene
from lumix_engine.method.checkpoint import load_adapters
from lumix_engine.tiny_random import write_tiny_models
from lumix_engine.tiny_trained.text import layout_caption
from lumix_engine.train.flux_dev import run


def test_flux_dev_command_trains_adapters_on_a_scene_folder(tmp_path):
    with quiet_libraries():
        paths = write_tiny_models(tmp_path / "models")
    data = tmp_path / "scenes"
    for seed in range(2):
        rendered = render_scene(seed, 32, 32)
        folder = data / f"scene_{seed}"
        folder.mkdir(parents=True)
        for name, image in rendered.images().items():
            save_png16(folder / f"{name}.png", image[0].float())
        (folder / "caption.txt").write_text(layout_caption(rendered.scene))
    out = tmp_path / "trained.safetensors"
    args = argparse.Namespace(flux_dir=str(paths["flux_dir"]), data=str(data), out=str(out), work=str(tmp_path / "w"),
                              size=32, steps=3, scenes_per_step=1, lr=1e-2, rank=4, device="cpu", dtype="fp32",
                              threads=0)
    with quiet_libraries():
        run(args)
    trained = load_adapters(out)
    assert (tmp_path / "w" / "checkpoint.pt").exists() and (tmp_path / "w" / "log.jsonl").exists()
    assert any(p.abs().sum() > 0 for name, p in trained.named_parameters() if name.endswith("G3"))
