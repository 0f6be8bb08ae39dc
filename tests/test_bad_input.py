"""Bad input through each door: the CLI's decompose answers an `error:` line and exit code 2,
leaves the output folder as it was and shows no traceback; the pipeline raises InputError
naming the problem before any model runs; batch records the photo as failed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lumix_engine.apps.cli import EXIT_INPUT_ERROR, main
from lumix_engine.apps.loading import quiet_libraries
from lumix_engine.errors import InputError
from tests.test_image_loader import zero_png16

REPO = Path(__file__).resolve().parents[1]


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the error must say)."""
    folder.mkdir()
    photo = np.random.default_rng(1).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    Image.fromarray(photo).save(folder / "whole.jpg")
    data = (folder / "whole.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[:len(data) // 2])
    (folder / "notes.png").write_text("not an image")
    (folder / "bomb.png").write_bytes(zero_png16(30000, 30000))
    Image.new("RGB", (900, 1)).save(folder / "strip.png")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    return {"truncated": (folder / "truncated.jpg", "truncated or damaged"),
            "not an image": (folder / "notes.png", "cannot read"),
            "bomb": (folder / "bomb.png", "30000 x 30000 = 900.0 MP, over the limit of 64.0 MP"),
            "strip": (folder / "strip.png", "crop or pad"),
            "one pixel": (folder / "dot.png", "crop or pad"),
            "missing": (folder / "missing.png", "does not exist")}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cli_decompose_refuses_bad_images_with_an_error_line_and_leaves_the_output_alone(
        tiny_model_config, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "albedo.png").write_bytes(b"earlier result")
    before = _snapshot(out)
    for case, (path, message) in _bad_files(tmp_path / "photos").items():
        code = main(["decompose", "--image", str(path), "--out", str(out), "--config", str(tiny_model_config)])
        error = capsys.readouterr().err
        assert code == EXIT_INPUT_ERROR, (case, error)
        assert error.startswith("error: ") and message in error and "Traceback" not in error, (case, error)
        assert _snapshot(out) == before, case
    fresh = tmp_path / "fresh"
    assert main(["decompose", "--image", str(tmp_path / "photos" / "bomb.png"), "--out", str(fresh),
                 "--config", str(tiny_model_config)]) == EXIT_INPUT_ERROR
    assert not fresh.exists()


def test_cli_bomb_message_names_the_flag_that_raises_the_limit_in_a_real_process(tiny_model_config, tmp_path):
    files = _bad_files(tmp_path / "photos")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "lumix_engine", "decompose", "--image", str(files["bomb"][0]),
                           "--out", str(out), "--config", str(tiny_model_config)], cwd=REPO, capture_output=True,
                          text=True, timeout=240, env=_env())
    assert done.returncode == EXIT_INPUT_ERROR and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "downscale it first" in last and "--max-pixels" in last, last
    assert not out.exists()
    # the flag does raise it: a small photo over a tiny limit is refused, under the default it is read
    Image.new("RGB", (64, 48)).save(tmp_path / "small.png")
    code = main(["decompose", "--image", str(tmp_path / "small.png"), "--out", str(out), "--max-pixels", "1000",
                 "--config", str(tiny_model_config)])
    assert code == EXIT_INPUT_ERROR and not out.exists()


def _env():
    import os
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def pipe(tiny_model_config):
    from lumix_engine.apps.pipeline import LumiXPipeline
    folder = tiny_model_config.parent
    with quiet_libraries():
        pipeline = LumiXPipeline.from_files(flux_dir=folder / "FLUX.1-dev", lumix=folder / "lumix.safetensors",
                                            device="cpu", dtype="fp32", progress=False)
    yield pipeline
    pipeline.close()


@pytest.mark.parametrize("value, count", [(float("nan"), 1), (float("inf"), 2), (float("-inf"), 3)])
def test_pipeline_refuses_a_tensor_with_nan_or_infinite_pixels(pipe, value, count):
    image = torch.rand(1, 48, 64, 3)
    image[0, 5, 7:7 + count, 1] = value
    with pytest.raises(InputError, match=f"{count} pixel\\(s\\) that are NaN or infinite"):
        pipe.decompose(image=image, steps=1)
    with pytest.raises(InputError, match="NaN or infinite"):
        pipe.decompose(given={"color": image.double()}, steps=1)


def test_pipeline_refuses_strips_and_bad_files_before_sampling(pipe, tmp_path):
    for shape in ((1, 1, 900, 3), (1, 700, 1, 3), (1, 1, 1, 3)):
        with pytest.raises(InputError, match="crop or pad"):
            pipe.decompose(image=torch.rand(*shape), steps=1)
    for case, (path, message) in _bad_files(tmp_path / "photos").items():
        if case in ("missing",):
            continue
        with pytest.raises(InputError, match=message.replace("(", "\\(")):
            pipe.decompose(image=path, steps=1)


def test_batch_records_a_bomb_as_failed_without_decoding_it(tiny_model_config, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "bomb.png").write_bytes(zero_png16(30000, 30000))
    out = tmp_path / "out"
    code = main(["batch", str(photos), "--out", str(out), "--config", str(tiny_model_config), "--no-progress"])
    assert code == 4, capsys.readouterr()
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    failed = [r for r in records if r.get("status") == "failed"]
    assert len(failed) == 1 and "over the limit" in failed[0]["error"], records
    assert not list(out.rglob("*.png"))
