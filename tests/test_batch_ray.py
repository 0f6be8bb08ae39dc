"""Batch decomposition on a local Ray cluster of 2 CPU workers, on tiny random components
through real model files: the output bytes and the manifest equal the single-process run's,
and a Ray run resumes by the same rule. Skipped when Ray (an optional extra) is absent."""
import pytest
import torch

from lumix_engine.apps.batch import (
    MANIFEST,
    BatchSettings,
    Decomposer,
    Manifest,
    find_inputs,
    local_executor,
    run_batch,
)
from lumix_engine.apps.loading import ModelFiles, quiet_libraries
from lumix_engine.apps.pipeline import LumiXPipeline
from tests.test_batch import editing, photo_set, records, tree

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install ray); CI installs it")

from lumix_engine.apps.batch.ray import ray_executor  # noqa: E402

SETTINGS = BatchSettings(prompt="a red sphere", seed=3, steps=2, width=32, height=32, batch_size=2)
THREADS = 1   # per pipeline, in both runs: BLAS rounding depends on the thread count


@pytest.fixture(scope="module")
def setup(tiny_model_config, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray")
    models = tiny_model_config.parent
    files = ModelFiles(flux_dir=models / "FLUX.1-dev", lumix=models / "lumix.safetensors").check()
    photos = photo_set(folder / "photos")
    yield files, photos, {"flux_dir": str(files.flux_dir), "lumix": str(files.lumix), "dtype": "fp32"}
    if ray.is_initialized():
        ray.shutdown()


def _single_process(files, photos, out, models):
    threads = torch.get_num_threads()

    def factory():
        with quiet_libraries():
            pipe = LumiXPipeline.from_files(files, device="cpu", dtype="fp32", progress=False)
        return local_executor(Decomposer(pipe, SETTINGS, threads=THREADS))
    try:
        return run_batch(find_inputs(photos, out), out, SETTINGS, models, factory, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_two_ray_workers_give_the_single_process_bytes_and_resume_by_the_same_rule(setup, tmp_path):
    files, photos, models = setup
    single = tmp_path / "single"
    _single_process(files, photos, single, models)
    on_ray = tmp_path / "ray"
    execute = ray_executor(files, SETTINGS, address="local", workers=2, device="cpu", dtype="fp32",
                           cpus_per_worker=1, threads=THREADS)()
    summary = run_batch(find_inputs(photos, on_ray), on_ray, SETTINGS, models, lambda: execute, progress=False)
    assert (summary.done, list(summary.failed)) == (5, ["b/notes.png"])
    assert tree(on_ray) == tree(single)
    assert records(on_ray) == records(single)

    # Resume on Ray: only the damaged photos again, one in each of the three batches. Which
    # worker takes which batch depends on timing, so it is not asserted.
    for folder in ("a/x", "b/y", "c"):
        damaged = on_ray / folder / "depth.png"
        damaged.write_bytes(damaged.read_bytes()[:100])
    summary = run_batch(find_inputs(photos, on_ray), on_ray, SETTINGS, models, lambda: execute, progress=False)
    assert (summary.done, summary.skipped) == (3, 2)
    assert tree(on_ray) == tree(single) and records(on_ray) == records(single)
    done = Manifest(on_ray / MANIFEST).records
    assert all(done[key]["status"] == "done" for key in ("a/x.png", "b/y.jpg", "c.png"))


def test_a_photo_edited_while_a_ray_worker_decomposes_it_is_redone_on_resume(setup, tmp_path):
    """The driver reads each photo once and records the hash of those bytes, whichever worker
    decomposes them: an edit between read and record is done again on resume."""
    files, photos, models = setup
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a/x.png", "c.png"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes((photos / name).read_bytes())
    out = tmp_path / "out"
    inputs = find_inputs(folder, out)
    pool = ray_executor(files, SETTINGS, address="local", workers=2, device="cpu", dtype="fp32",
                        cpus_per_worker=1, threads=THREADS)()
    execute, sources = editing(pool, {"c.png": 21})
    sources.update({item.key: item.source for item in inputs.items})
    run_batch(inputs, out, SETTINGS, models, lambda: execute, progress=False)
    summary = run_batch(inputs, out, SETTINGS, models, lambda: pool, progress=False)
    assert (summary.done, summary.skipped) == (1, 1)
    fresh = tmp_path / "fresh"
    run_batch(find_inputs(folder, fresh), fresh, SETTINGS, models, lambda: pool, progress=False)
    assert tree(out) == tree(fresh)
