"""One photo path: `batch` decomposes each photo at its own size through the code of
`decompose` (apps/photo.py), on tiny random components through real model files. With one
photo per forward its files equal `decompose`'s byte for byte, for a 3:2, a 9:16 and an
odd-sized photo, with and without an ensemble; photos that share a working size share a
forward and still come back at their own sizes."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lumix_engine.apps.batch import MANIFEST, Manifest
from lumix_engine.apps.cli import EXIT_SOME_FAILED, main
from lumix_engine.apps.loading import quiet_libraries

PHOTO = ["--megapixels", "0.0625", "--steps", "2", "--device", "cpu", "--no-progress"]
SIZES = {"wide": (144, 96), "tall": (90, 160), "odd": (77, 101)}   # (width, height): 3:2, 9:16, odd


def photo(path: Path, size: tuple[int, int], seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def maps_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png")) if p.name != "contact_sheet.png"}


def run(*argv: str) -> int:
    with quiet_libraries():
        return main(list(argv))


@pytest.mark.parametrize("extra", [[], ["--seeds", "2", "--upsample", "bilinear"]], ids=["single", "ensemble"])
def test_batch_of_one_equals_decompose_byte_for_byte_per_photo(tiny_model_config, tmp_path, extra):
    sizes = SIZES if not extra else {"odd": SIZES["odd"]}   # the ensemble on the odd size only (CI time)
    folder = tmp_path / "photos"
    for k, (name, size) in enumerate(sizes.items()):
        photo(folder / f"{name}.png", size, k)
    config = ["--config", str(tiny_model_config)]
    assert run("batch", str(folder), "--out", str(tmp_path / "batch"), "--batch-size", "1", "--prompt", "a room",
               *PHOTO, *extra, *config) == 0
    manifest = Manifest(tmp_path / "batch" / MANIFEST).records
    for name, size in sizes.items():
        out = tmp_path / "decompose" / name
        assert run("decompose", "--image", str(folder / f"{name}.png"), "--out", str(out), "--prompt", "a room",
                   *PHOTO, *extra, *config) == 0
        expected = maps_of(out)
        assert len(expected) == (5 if not extra else 9)        # the five maps (+ four uncertainty maps)
        assert maps_of(tmp_path / "batch" / name) == expected, name
        with Image.open(out / "albedo.png") as written:
            assert written.size == size
        settings = json.loads((out / "settings.json").read_text())
        record = manifest[f"{name}.png"]
        assert record["size"] == list(size) and record["output_size"] == list(size)
        assert record["working_size"] == settings["working_size"]
        assert record["settings"]["ensemble_size"] == (2 if extra else 1)


def test_photos_of_one_working_size_share_a_forward_and_keep_their_own_sizes(tiny_model_config, tmp_path):
    folder = tmp_path / "photos"
    photo(folder / "a_wide.png", (144, 96), 0)
    photo(folder / "b_wide_small.png", (72, 48), 1)     # 3:2 too: the same working size
    photo(folder / "c_tall.png", (90, 160), 2)
    Image.new("RGB", (900, 1)).save(folder / "d_strip.png")   # no scene to decompose: a recorded failure
    (folder / "e_cut.png").write_bytes((folder / "a_wide.png").read_bytes()[:200])
    out = tmp_path / "out"
    assert run("batch", str(folder), "--out", str(out), "--batch-size", "2", "--no-scores", *PHOTO,
               "--config", str(tiny_model_config)) == EXIT_SOME_FAILED
    records = Manifest(out / MANIFEST).records
    assert records["a_wide.png"]["working_size"] == records["b_wide_small.png"]["working_size"]
    assert records["a_wide.png"]["working_size"] != records["c_tall.png"]["working_size"]
    assert [records[k]["timings"]["batch"] for k in ("a_wide.png", "b_wide_small.png", "c_tall.png")] == [2, 2, 1]
    for key, size in (("a_wide", (144, 96)), ("b_wide_small", (72, 48)), ("c_tall", (90, 160))):
        assert records[f"{key}.png"]["output_size"] == list(size)
        with Image.open(out / key / "depth.png") as written:
            assert written.size == size
    assert records["d_strip.png"]["status"] == "failed" and "crop or pad" in records["d_strip.png"]["error"]
    assert records["e_cut.png"]["status"] == "failed" and "Traceback" not in records["e_cut.png"]["error"]


def test_the_shipped_tiny_model_runs_the_photo_path_with_no_model_files_labelled_a_toy(tmp_path, capsys):
    """--tiny: no config, no download; decompose and batch give the same bytes, and every
    output says it comes from a toy."""
    folder = tmp_path / "photos"
    photo(folder / "odd.png", SIZES["odd"], 5)
    fast = ["--tiny", "--steps", "2", "--no-progress"]
    assert run("decompose", "--image", str(folder / "odd.png"), "--out", str(tmp_path / "dec"), *fast) == 0
    assert run("batch", str(folder), "--out", str(tmp_path / "batch"), *fast) == 0
    printed = capsys.readouterr()
    assert "TOY MODEL" in printed.err and "TOY MODEL" in printed.out
    expected = maps_of(tmp_path / "dec")
    assert len(expected) == 5 and maps_of(tmp_path / "batch" / "odd") == expected
    with Image.open(tmp_path / "dec" / "normal.png") as written:
        assert written.size == SIZES["odd"]
    settings = json.loads((tmp_path / "dec" / "settings.json").read_text())
    assert settings["model"] == "tiny" and "TOY MODEL" in settings["note"] and settings["megapixels"] == 0.0625
    record = Manifest(tmp_path / "batch" / MANIFEST).records["odd.png"]
    assert "TOY MODEL" in record["settings"]["models"]["note"] and record["output_size"] == list(SIZES["odd"])
