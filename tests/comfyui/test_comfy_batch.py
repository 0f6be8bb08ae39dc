"""tools/comfy_batch.py against a real ComfyUI server: the shipped image -> maps workflow on
tiny models (as test_shipped_workflows runs it), several photos, a non-image, and a rerun
that decomposes only the photo whose output was damaged."""
import json
import pathlib
import sys

import numpy as np
from PIL import Image
from test_shipped_workflows import tiny_version

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from lumix_engine.apps.batch import MANIFEST, Manifest  # noqa: E402
from tools import comfy_batch  # noqa: E402


def test_comfy_batch_decomposes_a_folder_and_resumes(comfyui_server, tiny_models, tmp_path, capsys):
    api = json.loads((ROOT / "workflows" / "api" / "lumix_image_to_maps.json").read_text())
    config = tiny_models.flux_config
    workflow = tmp_path / "tiny_image_to_maps.json"
    workflow.write_text(json.dumps(tiny_version(api, tiny_models, (config.context_in_dim, config.vec_in_dim))))
    photos = tmp_path / "photos"
    for k, name in enumerate(["a/one.png", "b/one.png", "two.jpg"]):
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.random.default_rng(k).random((40 + 8 * k, 56, 3)) * 255).astype(np.uint8)).save(
            photos / name)
    (photos / "notes.png").write_text("not an image")
    out = tmp_path / "maps"
    argv = [str(photos), "--out", str(out), "--server", comfyui_server.url, "--workflow", str(workflow),
            "--poll", "0.1"]
    assert comfy_batch.main(argv) == comfy_batch.EXIT_SOME_FAILED
    printed = capsys.readouterr().out
    assert "4 image(s): 3 decomposed now, 0 already done, 1 failed" in printed, printed
    records = Manifest(out / MANIFEST).records
    assert records["notes.png"]["status"] == "failed" and records["notes.png"]["error"]
    for key, folder in (("a/one.png", "a/one"), ("b/one.png", "b/one"), ("two.jpg", "two")):
        assert records[key]["status"] == "done"
        assert {"albedo", "irradiance", "depth", "normal"} <= set(records[key]["outputs"])
        sizes = {Image.open(out / folder / f"{map_name}.png").size for map_name in records[key]["outputs"]}
        assert len(sizes) == 1, (key, sizes)   # all maps of a photo at one size

    damaged = out / "b" / "one" / "normal.png"
    damaged.write_bytes(damaged.read_bytes()[:50])
    assert comfy_batch.main(argv) == comfy_batch.EXIT_SOME_FAILED
    assert "4 image(s): 1 decomposed now, 2 already done, 1 failed" in capsys.readouterr().out
    assert Image.open(damaged).size == Image.open(out / "b" / "one" / "albedo.png").size
