"""Record the shipped tiny model's decomposition errors on one fixed held-out render, as the
regression bounds of tests/test_tiny_model.py (run after retraining the shipped weights):

    python -m tools.train_record_bounds
"""
import json

import torch

torch.set_num_threads(1)
from lumix_engine.intrinsics import render_scene
from lumix_engine.tiny_trained.data import HELDOUT_SEED_START
from lumix_engine.tiny_trained.metrics import decomposition_errors
from lumix_engine.tiny_trained.model import ASSETS, TinyLumiX
from lumix_engine.tiny_trained.text import layout_caption

model = TinyLumiX.load()
offset, seed, steps = 0, 0, 10
scene = render_scene(HELDOUT_SEED_START + offset, 64, 64)
truth = scene.images()
maps = model.decompose(truth["color"].float(), layout_caption(scene.scene), seed=seed, steps=steps)
errors = decomposition_errors(maps, truth["albedo"].float(), truth["irradiance"].float(), scene.depth.float(), scene.normal.float())
measured = {k: float(v[0]) for k, v in errors.items()}
bounds = {k: round(v * 1.1 + (0.5 if k == "normal_degrees" else 0.005), 4) for k, v in measured.items()}
record = {"scene_offset": offset, "seed": seed, "steps": steps, "measured": {k: round(v, 5) for k, v in measured.items()},
          "bounds": bounds, "note": "bounds = measured * 1.1 + a small absolute margin (0.005; 0.5 deg for normals)"}
(ASSETS / "recorded_errors.json").write_text(json.dumps(record, indent=1) + "\n")
print(record)
