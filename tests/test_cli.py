"""`python -m lumix_engine`: the demo as the README runs it, generate / decompose on tiny
model files through a config file, and the missing-model message."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from lumix_engine.apps.cli import EXIT_MISSING_MODEL, main
from lumix_engine.apps.loading import quiet_libraries
from lumix_engine.modalities import MAP_NAMES

REPO = Path(__file__).resolve().parents[1]


def test_demo_command_runs_on_cpu_without_model_files_and_writes_its_files(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "lumix_engine", "demo", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=240, env={**_env(), "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SMOKE RUN" in done.stdout and "not a trained model" in done.stdout
    assert "recomposition RMSE" in done.stdout and "demo wall time" in done.stdout
    for name in ("contact_sheet.png", "demo.json", *(f"truth_{m}.png" for m in MAP_NAMES),
                 *(f"smoke_generate_{m}.png" for m in MAP_NAMES)):
        assert (out / name).is_file(), name
    assert json.loads((out / "demo.json").read_text())["note"].startswith("SMOKE RUN")


def _env():
    import os
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def test_missing_model_gives_the_documented_message_and_a_nonzero_exit(tmp_path, capsys):
    code = main(["generate", "--prompt", "a red chair", "--out", str(tmp_path / "out"),
                 "--models", str(tmp_path / "models")])
    error = capsys.readouterr().err
    assert code == EXIT_MISSING_MODEL != 0
    assert "model files are missing" in error and "nothing is ever downloaded" in error
    assert str(tmp_path / "models" / "lumix" / "lumix.safetensors") in error and "hanx/LumiX_ckp" in error
    assert "black-forest-labs/FLUX.1-dev" in error
    assert not (tmp_path / "out").exists()


def test_generate_then_decompose_write_maps_contact_sheet_and_settings(tiny_model_config, tmp_path, capsys):
    common = ["--config", str(tiny_model_config), "--device", "cpu", "--no-progress", "--steps", "2"]
    generated = tmp_path / "generated"
    with quiet_libraries():
        assert main(["generate", "--prompt", "a red sphere", "--out", str(generated), "--width", "32",
                     "--height", "32", "--seed", "1", *common]) == 0
    printed = capsys.readouterr().out
    for name in (*(f"{m}.png" for m in MAP_NAMES), "contact_sheet.png", "settings.json"):
        assert (generated / name).is_file() and f"wrote {generated / name}" in printed
    settings = json.loads((generated / "settings.json").read_text())
    assert (settings["mode"], settings["steps"], settings["cfg"], settings["seed"]) == ("generate", 2, 3.0, 1)

    decomposed = tmp_path / "decomposed"
    with quiet_libraries():
        assert main(["decompose", "--image", str(generated / "color.png"), "--map",
                     f"depth={generated / 'depth.png'}", "--out", str(decomposed), "--width", "32", "--height", "32",
                     *common]) == 0
    settings = json.loads((decomposed / "settings.json").read_text())
    assert settings["given"] == ["color", "depth"] and settings["guidance"] == 1.0 and settings["width"] == 32
    assert settings["ensemble_size"] == 1 and settings["postprocess"] == ["unit_normals"]   # depth was given
    assert "post-processing: unit_normals\n" in capsys.readouterr().out
    assert all((decomposed / f"{m}.png").is_file() for m in MAP_NAMES)


def test_generate_writes_float_exr_and_a_mesh(tiny_model_config, tmp_path, capsys):
    from lumix_engine.formats.exr import CHANNELS, read_exr
    out = tmp_path / "exr"
    with quiet_libraries():
        code = main(["generate", "--prompt", "a red sphere", "--out", str(out), "--width", "32", "--height", "32",
                     "--format", "exr", "--precision", "half", "--mesh", "--fov", "60", "--config", str(tiny_model_config),
                     "--device", "cpu", "--no-progress", "--steps", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for name in MAP_NAMES:
        channels = read_exr(out / f"{name}.exr")
        assert sorted(channels) == sorted(CHANNELS[name]) and channels[CHANNELS[name][0]].dtype.name == "float16"
    assert (out / "mesh.glb").read_bytes()[:4] == b"glTF" and f"wrote {out / 'mesh.glb'}" in captured.out
    assert [path.name for path in out.glob("*.png")] == ["contact_sheet.png"]   # no PNG maps beside the EXRs


def test_bad_fov_on_the_command_line_is_an_input_error(tiny_model_config, tmp_path, capsys):
    with quiet_libraries():
        code = main(["generate", "--prompt", "x", "--out", str(tmp_path / "o"), "--width", "32", "--height", "32",
                     "--mesh", "--fov", "180", "--config", str(tiny_model_config), "--device", "cpu", "--no-progress",
                     "--steps", "1"])
    assert code == 2 and "fov must be" in capsys.readouterr().err
    assert not (tmp_path / "o" / "mesh.glb").exists()


def test_decompose_a_portrait_photo_at_its_own_size_with_an_ensemble(tiny_model_config, tmp_path, capsys):
    from PIL import Image
    photo = tmp_path / "portrait.png"
    Image.fromarray((np.random.default_rng(0).random((301, 187, 3)) * 255).astype(np.uint8)).save(photo)
    out = tmp_path / "out"
    with quiet_libraries():
        assert main(["decompose", "--image", str(photo), "--out", str(out), "--megapixels", "0.0625", "--ensemble-size",
                     "2", "--config", str(tiny_model_config), "--device", "cpu", "--no-progress", "--steps", "2"]) == 0
    printed = capsys.readouterr()
    assert "post-processing: grey_depth, unit_normals\n" in printed.out and "deprecated" not in printed.err
    for name in (*MAP_NAMES, *(f"{m}_uncertainty" for m in MAP_NAMES if m != "color")):
        with Image.open(out / f"{name}.png") as written:
            assert written.size == (187, 301), name
    settings = json.loads((out / "settings.json").read_text())
    assert settings["photo_size"] == [187, 301] and settings["working_size"][0] % 16 == 0
    assert settings["ensemble_size"] == 2 and "seeds" not in settings


def test_seeds_still_works_as_a_deprecated_alias_and_postprocess_is_checked_first(tiny_model_config, tmp_path,
                                                                                    capsys):
    from PIL import Image
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(1).random((32, 48, 3)) * 255).astype(np.uint8)).save(photo)
    common = ["--image", str(photo), "--config", str(tiny_model_config), "--device", "cpu", "--no-progress",
              "--steps", "1", "--width", "48", "--height", "32"]
    with quiet_libraries():
        assert main(["decompose", "--out", str(tmp_path / "old"), "--seeds", "2", *common]) == 0
        printed = capsys.readouterr()
        assert "warning: --seeds is deprecated; use --ensemble-size" in printed.err
        assert json.loads((tmp_path / "old" / "settings.json").read_text())["ensemble_size"] == 2
        assert (tmp_path / "old" / "depth_uncertainty.png").is_file()
        assert main(["decompose", "--out", str(tmp_path / "raw"), "--numerics", "authors", *common]) == 0
        assert "post-processing: none (maps as decoded)" in capsys.readouterr().out
        assert json.loads((tmp_path / "raw" / "settings.json").read_text())["postprocess"] == []
    for bad, message in ((["--seeds", "2", "--ensemble-size", "3"], "old name of --ensemble-size"),
                         (["--postprocess", "grey"], "unknown")):
        assert main(["decompose", "--out", str(tmp_path / "bad"), *bad, *common]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_bad_photos_fail_before_loading_models_and_write_nothing(tiny_model_config, tmp_path, capsys):
    from PIL import Image
    out = tmp_path / "out"
    out.mkdir()
    (out / "albedo.png").write_bytes(b"earlier result")
    strip = tmp_path / "strip.png"
    Image.new("RGB", (900, 1)).save(strip)
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    for path, message in ((strip, "crop or pad"), (notes, "cannot read")):
        assert main(["decompose", "--image", str(path), "--out", str(out), "--config", str(tiny_model_config)]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["albedo.png"] and (out / "albedo.png").read_bytes() == b"earlier result"
