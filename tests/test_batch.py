"""Batch decomposition (`python -m lumix_engine batch`) on tiny random components through real
model files: inputs, the manifest, batched == one by one, bad files, and resuming after the
process is killed at chosen points (tests/batch_faults.py) or by SIGKILL: the resumed output
must equal an uninterrupted run byte for byte."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lumix_engine.apps import batch
from lumix_engine.apps.batch import (
    MANIFEST,
    BatchSettings,
    Decomposer,
    Job,
    Manifest,
    find_inputs,
)
from lumix_engine.apps.cli import EXIT_INPUT_ERROR, EXIT_SOME_FAILED, EXIT_STOPPED, main
from lumix_engine.apps.loading import quiet_libraries
from lumix_engine.apps.pipeline import LumiXPipeline
from lumix_engine.errors import InputError
from lumix_engine.image_io import decode_png16, encode_png16
from lumix_engine.method.sampling import shared_noise
from tests import batch_faults

REPO = Path(__file__).resolve().parents[1]
FAST = ["--steps", "2", "--width", "32", "--height", "32", "--device", "cpu", "--no-progress"]
VOLATILE = ("timings", "finished_at", "worker")


@pytest.fixture(scope="module")
def models(tiny_model_config):
    return tiny_model_config


def photo(path: Path, seed: int, size=(40, 56)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def photo_set(folder: Path) -> Path:
    """Five photos in nested folders (two share a name), one file that is not an image."""
    for k, name in enumerate(["a/x.png", "b/x.png", "b/y.jpg", "b/deep/z.png", "c.png"]):
        photo(folder / name, k, size=(40 + 8 * k, 56))
    (folder / "b" / "notes.png").write_text("not an image")
    return folder


def tree(out: Path) -> dict[str, bytes]:
    """Every file under out but the manifest, summary and lock, by relative path."""
    skip = {MANIFEST, "summary.json", batch.LOCK}
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in skip}


def records(out: Path) -> dict[str, dict]:
    """The last manifest record per photo, without timings and file times."""
    result = {}
    for key, record in Manifest(out / MANIFEST).records.items():
        record = {k: v for k, v in record.items() if k not in VOLATILE}
        for entry in [record.get("source") or {}, *(record.get("outputs") or {}).values()]:
            entry.pop("mtime_ns", None)
        result[key] = record
    return result


@pytest.fixture(scope="module")
def reference(models, tmp_path_factory):
    """An uninterrupted run, batch size 2, in this process."""
    folder = photo_set(tmp_path_factory.mktemp("photos"))
    out = tmp_path_factory.mktemp("reference") / "maps"
    with quiet_libraries():
        code = main(["batch", str(folder), "--out", str(out), "--config", str(models), "--batch-size", "2", *FAST])
    assert code == EXIT_SOME_FAILED   # the non-image
    return folder, out


# -- per-scene noise and inputs -----------------------------------------------------------

def test_per_scene_seeds_give_each_scene_the_noise_of_its_one_scene_run():
    batched = shared_noise(3, (16, 4, 4), [7, 7, 9])
    for k, seed in enumerate([7, 7, 9]):
        assert torch.equal(batched[5 * k:5 * k + 5], shared_noise(1, (16, 4, 4), seed))
    assert torch.equal(shared_noise(2, (16, 4, 4), 3), shared_noise(2, (16, 4, 4), 3))   # int: unchanged
    with pytest.raises(InputError, match="2 seeds for 3 scenes"):
        shared_noise(3, (16, 4, 4), [1, 2])


def test_folder_glob_and_list_file_mirror_their_tree(tmp_path):
    folder = photo_set(tmp_path / "in")
    photo(folder / "b" / "y.png", 9)                      # differs from y.jpg only in the extension
    out = tmp_path / "out"
    found = find_inputs(folder, out)
    assert [i.key for i in found.items] == ["a/x.png", "b/deep/z.png", "b/notes.png", "b/x.png", "b/y.jpg",
                                            "b/y.png", "c.png"]
    folders = {i.key: i.folder for i in found.items}
    assert folders["a/x.png"] == "a/x" and folders["b/x.png"] == "b/x"          # same name, other folder
    assert (folders["b/y.jpg"], folders["b/y.png"]) == ("b/y_jpg", "b/y_png")
    assert any("differ only in the extension" in note for note in found.notes)
    assert [i.key for i in find_inputs(folder, out, recursive=False).items] == ["c.png"]
    assert [i.key for i in find_inputs(str(folder / "b" / "**" / "*.png"), out).items] == [
        "deep/z.png", "notes.png", "x.png", "y.png"]
    listing = tmp_path / "list.txt"
    listing.write_text("# photos\nin/a/x.png\n\nin/b/x.png\nin/a/x.png\n")
    listed = find_inputs(listing, out)
    assert [i.key for i in listed.items] == ["a/x.png", "b/x.png"] and "listed twice" in listed.notes[0]


def test_input_mistakes_are_refused_with_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images in the folder"):
        find_inputs(tmp_path / "empty", tmp_path / "out")
    folder = photo_set(tmp_path / "in")
    with pytest.raises(InputError, match="output folder is the input folder.*choose another"):
        find_inputs(folder, folder)
    with pytest.raises(InputError, match="inside the output folder"):
        find_inputs(folder, tmp_path)
    with pytest.raises(InputError, match="not a folder, a list file"):
        find_inputs(tmp_path / "nothing_here", tmp_path / "out")
    inside = find_inputs(folder, folder / "maps")
    photo(folder / "maps" / "old" / "albedo.png", 3)
    inside = find_inputs(folder, folder / "maps")
    assert all(not i.key.startswith("maps/") for i in inside.items)
    assert any("output folder" in note and "not inputs" in note for note in inside.notes)


def test_empty_folder_exits_with_the_input_error_code(tmp_path, models, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--config", str(models),
                 *FAST]) == EXIT_INPUT_ERROR
    assert "no images in the folder" in capsys.readouterr().err


# -- results ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pipe(models):
    with quiet_libraries():
        pipeline = LumiXPipeline.from_files(flux_dir=models.parent / "FLUX.1-dev",
                                            lumix=models.parent / "lumix.safetensors", device="cpu", dtype="fp32",
                                            progress=False)
    yield pipeline
    pipeline.close()


def test_batched_scenes_match_one_by_one_and_batch_size_one_matches_decompose(pipe, tmp_path):
    """Several photos in one forward give each photo its one-by-one maps: the same noise
    (one seed per scene) and the same computation up to float rounding, which matrix
    kernels choose by batch shape (measured: a few 1e-7). One photo per forward is
    bit-identical to `pipe.decompose` of that photo."""
    settings = BatchSettings(prompt="a red sphere", seed=5, steps=2, width=32, height=32, scores=False)
    decomposer = Decomposer(pipe, settings)
    jobs = [Job(f"p{k}", photo(tmp_path / f"p{k}.png", k).read_bytes(), "a red sphere", True) for k in range(3)]
    together = decomposer.run(jobs, (32, 32))
    alone = [decomposer.run([job], (32, 32))[0] for job in jobs]
    worst = 0
    for batched, single in zip(together, alone):
        assert batched.timings["batch"] == 3 and single.timings["batch"] == 1
        for name in single.files:
            a = decode_png16(batched.files[name]).astype(np.int64)
            b = decode_png16(single.files[name]).astype(np.int64)
            worst = max(worst, int(np.abs(a - b).max()))
    assert worst <= 2   # of 65535: last-bit rounding, nothing more
    maps = pipe.decompose(tmp_path / "p1.png", prompt="a red sphere", seed=5, steps=2, width=32, height=32)
    for name, image in maps.as_dict().items():
        assert encode_png16(image[0], text={"lumix_map": name}) == alone[1].files[name], name


def test_bad_files_are_recorded_and_the_run_goes_on(reference, models, tmp_path, capsys):
    folder = photo_set(tmp_path / "in")
    photo(folder / "big.png", 1, size=(300, 300))
    data = photo(tmp_path / "whole.png", 2).read_bytes()
    (folder / "cut.png").write_bytes(data[:len(data) // 2])        # a valid header, then nothing
    (folder / "gone.png").symlink_to(tmp_path / "missing.png")      # unreadable
    out = folder / "maps"                                           # inside the input: excluded
    argv = ["batch", str(folder), "--out", str(out), "--config", str(models), "--batch-size", "2",
            "--max-pixels", "50000", *FAST]
    with quiet_libraries():
        assert main(argv) == EXIT_SOME_FAILED
    printed = capsys.readouterr().out
    assert "9 image(s): 5 decomposed now, 0 already done, 4 failed" in printed
    found = records(out)
    errors = {key: found[key]["error"] for key in found if found[key]["status"] == "failed"}
    assert "as an image" in errors["b/notes.png"]
    assert "300 x 300 = 0.1 MP, over the limit" in errors["big.png"] and "--max-pixels" in errors["big.png"]
    assert errors["cut.png"] and "No such file" in errors["gone.png"]
    for key in errors:
        assert key in printed
    assert "output folder" in printed and "not inputs" in printed
    assert sorted(k for k in found if found[k]["status"] == "done") == sorted(
        k for k in records(reference[1]) if records(reference[1])[k]["status"] == "done")
    assert tree(out) == tree(reference[1])   # same photos, same maps, whatever else is in the folder

    with quiet_libraries():   # rerun: the done are skipped, the failed tried again
        assert main(argv) == EXIT_SOME_FAILED
    assert "9 image(s): 0 decomposed now, 5 already done, 4 failed" in capsys.readouterr().out
    photo(folder / "c.png", 11)                                    # a changed source is done again
    with quiet_libraries():
        main(argv)
    assert "1 decomposed now, 4 already done" in capsys.readouterr().out


def test_manifest_records_what_the_issue_asks_for(reference):
    record = records(reference[1])["b/y.jpg"]
    assert record["status"] == "done" and record["path"].endswith("b/y.jpg")
    assert record["size"] == [56, 56] and record["working_size"] == [32, 32] and record["seed"] == 0
    assert record["output_size"] == [32, 32]    # --width/--height: a fixed working and output size
    assert record["settings"]["steps"] == 2 and record["settings"]["guidance"] == 1.0
    assert set(record["outputs"]) == {"albedo", "irradiance", "color", "depth", "normal"}
    assert 0 <= record["scores"]["structural_alignment"] <= 1 and "recomposition_rmse" in record["scores"]
    raw = Manifest(reference[1] / MANIFEST).records["b/y.jpg"]
    assert {"load_s", "sample_s", "write_s", "batch"} <= set(raw["timings"])
    summary = json.loads((reference[1] / "summary.json").read_text())
    assert (summary["found"], summary["decomposed_now"], list(summary["failed"])) == (6, 5, ["b/notes.png"])


# -- killed and resumed -------------------------------------------------------------------

def _run(args, env_extra=None, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
           **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "tests.batch_faults", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_killed_runs_resume_to_the_uninterrupted_output_byte_for_byte(reference, models, tmp_path):
    """One output folder, killed again and again at points drawn at random (fixed seed):
    before a write, halfway through a map file, halfway through a manifest line, after a
    write, and by SIGKILL once the first photo is recorded; then resumed to the end with the
    same command. A run writes the non-image's failed record first, then per photo 5 maps and
    its record: the 7th write of a fresh run is the first photo's record."""
    folder, expected = reference
    out = tmp_path / "maps"
    command = ["batch", str(folder), "--out", str(out), "--config", str(models), "--batch-size", "2", *FAST]
    draw = random.Random(16)
    points = [("exit-mid", draw.randint(2, 6)), ("exit-mid", 7), ("exit-before", draw.randint(1, 8)),
              ("exit-after", draw.randint(1, 12))]
    for mode, n in points:
        done = _run([mode, str(n), "--", *command])
        _, err = done.communicate(timeout=300)
        assert done.returncode == batch_faults.KILLED, (mode, n, err[-2000:])
    # SIGKILL from outside, as soon as one more photo is recorded.
    before = len(Manifest(out / MANIFEST).records)
    process = _run(["exit-after", "100000", "--", *command])
    deadline = time.monotonic() + 300
    while process.poll() is None and len(Manifest(out / MANIFEST).records) <= before:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)

    resumed = _run(["exit-after", "100000", "--", *command])
    stdout, err = resumed.communicate(timeout=300)
    assert resumed.returncode == EXIT_SOME_FAILED, err[-2000:]
    assert "already done" in stdout
    assert tree(out) == tree(expected)
    assert records(out) == records(expected)
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]


def test_a_full_disk_stops_the_run_keeps_what_is_written_and_resumes(reference, models, tmp_path, monkeypatch,
                                                                    capsys):
    folder, expected = reference
    out = tmp_path / "maps"
    command = ["batch", str(folder), "--out", str(out), "--config", str(models), "--batch-size", "2", *FAST]
    monkeypatch.setattr(batch.manifest, "write_file", batch.manifest.write_file)     # restored after the test
    monkeypatch.setattr(batch.manifest, "append_line", batch.manifest.append_line)
    batch_faults.install("enospc", 15)                             # a map file of the third photo
    with quiet_libraries():
        assert main(command) == EXIT_STOPPED
    error = capsys.readouterr().err
    assert "the disk is full" in error and "run the same command again to resume" in error
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]
    written = records(out)
    assert sum(r["status"] == "done" for r in written.values()) == 2
    for record in written.values():                                # every recorded file is whole
        for output in record.get("outputs", {}).values():
            assert (out / output["path"]).read_bytes() == (expected / output["path"]).read_bytes()
    monkeypatch.undo()
    with quiet_libraries():
        assert main(command) == EXIT_SOME_FAILED
    assert tree(out) == tree(expected) and records(out) == records(expected)


def _edit(path: Path, seed: int) -> None:
    """Other pixels, the same size and format (a BMP keeps its byte count)."""
    with Image.open(path) as opened:
        size, fmt = opened.size, opened.format
    pixels = (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)


def editing(execute, edits: dict[str, int]):
    """An executor that edits each photo in `edits` after the driver read its bytes and
    before the worker returns its maps (so before its record is written)."""
    def run(work):
        def tap():
            for unit, jobs in work:
                for job in jobs:
                    if job.key in edits:
                        _edit(job_sources[job.key], edits.pop(job.key))
                yield unit, jobs
        return execute(tap())
    job_sources = {}
    return run, job_sources


def test_a_photo_edited_during_the_run_is_recorded_as_read_and_redone_on_resume(pipe, tmp_path):
    """The record vouches for the bytes that were decomposed: a photo edited between its
    read and its record is done again on resume, and its maps are then the edited photo's.
    An edit that keeps the size and the modification time is found by --verify."""
    folder = tmp_path / "in"
    photo(folder / "a.png", 1)
    photo(folder / "b.bmp", 2)
    photo(folder / "c.png", 3)
    settings = BatchSettings(prompt="a red sphere", steps=2, width=32, height=32, scores=False)
    decomposer = Decomposer(pipe, settings)
    inputs = find_inputs(folder, tmp_path / "out")
    out = tmp_path / "out"
    before = {name: batch.file_sha256(folder / name) for name in ("a.png", "b.bmp")}
    stat_b = (folder / "b.bmp").stat()
    execute, sources = editing(batch.local_executor(decomposer), {"a.png": 11, "b.bmp": 12})
    sources.update({item.key: item.source for item in inputs.items})
    batch.run_batch(inputs, out, settings, {}, lambda: execute, progress=False)
    os.utime(folder / "b.bmp", ns=(stat_b.st_atime_ns, stat_b.st_mtime_ns))   # size and time as read
    done = Manifest(out / MANIFEST).records
    for name in ("a.png", "b.bmp"):
        assert done[name]["source"]["sha256"] == before[name] != batch.file_sha256(folder / name)

    fresh = tmp_path / "fresh"          # the edited photos, decomposed from scratch
    batch.run_batch(find_inputs(folder, fresh), fresh, settings, {}, lambda: batch.local_executor(decomposer),
                    progress=False)
    summary = batch.run_batch(inputs, out, settings, {}, lambda: batch.local_executor(decomposer), progress=False)
    assert (summary.done, summary.skipped) == (1, 2)               # a.png; b.bmp looks unchanged by size + time
    assert tree(out)["a/albedo.png"] == tree(fresh)["a/albedo.png"]
    assert tree(out)["b/albedo.png"] != tree(fresh)["b/albedo.png"]
    summary = batch.run_batch(inputs, out, settings, {}, lambda: batch.local_executor(decomposer), verify=True,
                              progress=False)
    assert (summary.done, summary.skipped) == (1, 2)               # b.bmp, by its hash
    assert tree(out) == tree(fresh)


def test_killed_after_an_edit_between_read_and_record_the_resume_redoes_the_photo(models, tmp_path):
    """A real run in a subprocess: the first photo is overwritten after its bytes were read,
    just before its record is written, and the process dies after writing the record. The
    resumed run decomposes the edited photo again, and its maps equal a fresh run's."""
    folder = tmp_path / "in"
    first = photo(folder / "a.png", 1)
    photo(folder / "b.png", 2)
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    command = ["batch", str(folder), "--out", str(out), "--config", str(models), *FAST]
    killed = _run([f"edit-after:{first}", "6", "--", *command])    # 5 maps, then the record of a.png
    _, err = killed.communicate(timeout=300)
    assert killed.returncode == batch_faults.KILLED, err[-2000:]
    assert Manifest(out / MANIFEST).records["a.png"]["status"] == "done"
    resumed = _run(["exit-after", "100000", "--", *command])
    stdout, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert "2 decomposed now, 0 already done" in stdout and "source or output changed" in stdout
    with quiet_libraries():
        assert main(["batch", str(folder), "--out", str(fresh), "--config", str(models), *FAST]) == 0
    assert tree(out) == tree(fresh)
    assert Manifest(out / MANIFEST).records["a.png"]["source"]["sha256"] == batch.file_sha256(first)


def test_a_second_run_on_the_same_output_folder_is_refused(tmp_path):
    folder = photo_set(tmp_path / "in")
    out = tmp_path / "out"
    with batch.exclusive(out):
        with pytest.raises(InputError, match="another batch run is writing to"):
            batch.run_batch(find_inputs(folder, out), out, BatchSettings(width=32, height=32), {},
                            lambda: pytest.fail("no model may load"))


def test_the_lock_holds_across_processes_and_needs_no_posix_call(tmp_path):
    """Another process holding the output folder's lock refuses this run; the lock is
    filelock's (Windows has no fcntl), and no batch module reaches for fcntl."""
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from lumix_engine.apps.batch import exclusive\n"
                               f"with exclusive(Path({str(out)!r})):\n    print('held', flush=True); time.sleep(60)"],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match="another batch run is writing to"):
            with batch.exclusive(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with batch.exclusive(out):   # the lock goes with the process that held it
        pass
    sources = [p.read_text() for p in (REPO / "lumix_engine" / "apps" / "batch").glob("*.py")]
    assert not any("import fcntl" in text for text in sources)


def test_photos_are_batched_by_working_size_in_key_order(tmp_path, monkeypatch):
    """The batches depend only on the inputs and their working sizes (here a rule that sends
    portrait photos to 32 x 48), never on what is done."""
    folder = tmp_path / "in"
    for k, size in enumerate([(40, 56), (64, 40), (40, 56), (64, 40), (40, 56)]):   # (height, width)
        photo(folder / f"p{k}.png", k, size=size)
    monkeypatch.setattr(batch.planner, "working_size", lambda size, settings: (32, 32) if size[0] >= size[1] else (32, 48))
    settings = BatchSettings(width=32, height=32, batch_size=2)
    plan = batch.plan_work(find_inputs(folder, tmp_path / "out"), Manifest(tmp_path / "none.jsonl"), settings,
                           "key", tmp_path / "out")
    assert [([i.key for i in unit.items], unit.size) for unit in plan.units] == [
        (["p0.png", "p2.png"], (32, 32)), (["p4.png"], (32, 32)), (["p1.png", "p3.png"], (32, 48))]
