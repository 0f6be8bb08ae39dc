"""Reliability in a real ComfyUI: bad input through the real nodes, interruption,
graph isolation, long runs and API-mode load.

This module runs its own server (module scope) with extra tiny models (schnell, deeper and
shallower FLUX variants, bad LumiX files) and a test-only probe node
(shim/lumix_reliability_probe.py) that reports patch state and the adapter cache. It uses
ComfyUI's default (classic) cache, as users do: identical prompts are served from the cache,
so tests that need a re-run change the seed or evict the entry with another prompt first.
Numbers it measures are printed (run with -s) and recorded in tests/RELIABILITY.md.
"""
from __future__ import annotations

import json
import pathlib
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from comfyui_graphs import conditioning_node, core_flux_graph, lumix_graph, write_tiny_models
from comfyui_harness import ComfyUIClient, ComfyUIServer, PromptRejected, WorkflowFailed
from PIL import Image
from safetensors.torch import load_file, save_file

from lumix_engine.tiny_random import TINY_FLUX, write_bfl_flux

PROBE_FILE = pathlib.Path(__file__).resolve().parent / "shim" / "lumix_reliability_probe.py"
MAPS = ("albedo", "irradiance", "color", "depth", "normal")
SCHNELL, DEEPER, SHALLOW = "tiny_schnell.safetensors", "tiny_flux_3x3.safetensors", "tiny_flux_2x1.safetensors"
NAN_LUMIX, CUT_LUMIX = "lumix_nan.safetensors", "lumix_cut.safetensors"
LISTED = (CUT_LUMIX, NAN_LUMIX, "lumix_tiny.safetensors", "lumix_tiny_zero.safetensors")


@pytest.fixture(scope="module")
def server(comfyui_install, tmp_path_factory):
    base = tmp_path_factory.mktemp("reliability_base")
    models = base / "models"
    names = write_tiny_models(models)
    write_bfl_flux(models / "diffusion_models" / SCHNELL, replace(TINY_FLUX, guidance_embed=False))
    write_bfl_flux(models / "diffusion_models" / DEEPER, replace(TINY_FLUX, depth=3, depth_single_blocks=3))
    write_bfl_flux(models / "diffusion_models" / SHALLOW, replace(TINY_FLUX, depth=2, depth_single_blocks=1))
    good = models / "lumix" / names.lumix
    state = load_file(str(good))
    state["double_blocks.1.processor.proj_tt_lora.G2"][0, 0, 0, 0] = float("inf")
    save_file(state, str(models / "lumix" / NAN_LUMIX))
    data = good.read_bytes()
    (models / "lumix" / CUT_LUMIX).write_bytes(data[:len(data) // 2])
    srv = ComfyUIServer(comfyui_install, base)
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / PROBE_FILE.name).symlink_to(PROBE_FILE)
    srv.names = names
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(srv.input_dir / "color_64x48.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(srv.input_dir / "color_64x64.png")
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client(server) -> ComfyUIClient:
    return ComfyUIClient(server)


@pytest.fixture(scope="module")
def models(server):
    return server.names


def rss_kib(server) -> int:
    for line in pathlib.Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def latent_of(client, entry, node="save_latent") -> torch.Tensor:
    files = [p for p in client.output_files(entry, node) if p.suffix == ".latent"]
    assert len(files) == 1, entry["outputs"]
    return load_file(str(files[0]))["latent_tensor"]


def with_latent(graph: dict, prefix: str, source: str = "sampler", node: str = "save_latent") -> dict:
    graph[node] = {"class_type": "SaveLatent", "inputs": {"samples": [source, 0], "filename_prefix": f"latents/{prefix}"}}
    return graph


def probe(graph: dict, model_source=("unet", 0), tag: str = "") -> dict:
    graph["probe"] = {"class_type": "LumiXReliabilityProbe", "inputs": {"model": list(model_source), "tag": tag}}
    return graph


def probe_report(entry) -> dict:
    return json.loads(entry["outputs"]["probe"]["probe"][0])


def plain_graph(models, seed: int, advanced: bool, prefix: str, steps: int = 3) -> dict:
    """UNETLoader -> KSampler (or the equivalent KSamplerAdvanced, so the cache cannot serve
    it) -> SaveLatent. KSamplerAdvanced with add_noise, steps 0..10000 and no leftover noise
    runs ComfyUI's common_ksampler with the same sigmas and noise: bit-identical."""
    graph = core_flux_graph(models, seed=seed, steps=steps, cfg=2.0, width=64, height=48)
    for node in ("vae", "decode", "save"):
        del graph[node]
    if advanced:
        inputs = graph["sampler"]["inputs"]
        graph["sampler"] = {"class_type": "KSamplerAdvanced", "inputs": {
            "model": inputs["model"], "positive": inputs["positive"], "negative": inputs["negative"],
            "latent_image": inputs["latent_image"], "add_noise": "enable", "noise_seed": seed, "steps": steps,
            "cfg": 2.0, "sampler_name": "euler", "scheduler": "simple", "start_at_step": 0, "end_at_step": 10000,
            "return_with_leftover_noise": "disable"}}
    return with_latent(graph, prefix, node="save_plain")


def prefixed(graph: dict, prefix: str, keep=()) -> dict:
    """The graph with its node ids prefixed (links rewritten), except the ids in `keep`."""
    rename = {k: k if k in keep else prefix + k for k in graph}
    out = {}
    for key, node in graph.items():
        inputs = {name: [rename[v[0]], v[1]] if isinstance(v, list) and len(v) == 2 and v[0] in rename else v
                  for name, v in node["inputs"].items()}
        out[rename[key]] = {**node, "inputs": inputs}
    return out


def execution_error(failed: WorkflowFailed) -> str:
    """'InputError: message' (ComfyUI reports the type with the pack's module path)."""
    kind = str(failed.details.get("exception_type", "")).rsplit(".", 1)[-1]
    return f"{kind}: {str(failed.details.get('exception_message', '')).strip()}"


def failure_message(client, graph) -> str:
    """The error a bad graph ends in: validation (400) or execution, as one string."""
    try:
        client.run(graph)
    except PromptRejected as rejected:
        body = rejected.body
        details = [f"{e.get('message')}: {e.get('details')}" for node in body.get("node_errors", {}).values()
                   for e in node.get("errors", [])]
        return "rejected: " + "; ".join(details or [json.dumps(body.get("error"))])
    except WorkflowFailed as failed:
        return "failed: " + execution_error(failed)
    raise AssertionError("the graph ran without error")


# ------------------------------------------------------------------ bad checkpoints

@pytest.mark.parametrize("name", ["../../x", "../../x.safetensors", "../lumix/lumix_tiny.safetensors",
                                  "/etc/passwd", "missing.safetensors"])
def test_names_outside_models_lumix_or_missing_are_refused_by_validation(client, models, name):
    """ComfyUI a125cd84 does not check V3 combo values in API mode, and folder_paths would
    normalise '../../x' to 'x' inside models/lumix (a not-found error at run time); the
    loader's validate_inputs refuses any unlisted name at POST /prompt, before queueing."""
    message = failure_message(client, lumix_graph(models, lumix=name))
    print(f"lumix_name {name!r}: {message}")
    assert message == (f"rejected: Custom validation failed for node: lumix_name - lumix_name {name!r} is not a "
                       f"LumiX checkpoint in models/lumix (it holds: {', '.join(sorted(LISTED))}). Put "
                       f"lumix.safetensors in ComfyUI/models/lumix and pick it from the list; names are relative "
                       f"to that folder and cannot point outside it.")


@pytest.mark.parametrize("name, expected", [
    (NAN_LUMIX, r"double_blocks\.1\.processor\.proj_tt_lora\.G2 holds 1 NaN or Inf values.*Use another file"),
    (CUT_LUMIX, r"lumix_cut\.safetensors is truncated.*Download lumix\.safetensors again"),
])
def test_bad_lumix_files_through_the_loader_name_the_problem(client, models, name, expected):
    message = failure_message(client, lumix_graph(models, lumix=name))
    print(f"{name}: {message}")
    assert message.startswith("failed: CheckpointError")
    import re
    assert re.search(expected, message), message


# ------------------------------------------------------------------ models

def test_schnell_is_refused_by_the_loader(client, models):
    graph = lumix_graph(models)
    graph["unet"]["inputs"]["unet_name"] = SCHNELL
    message = failure_message(client, graph)
    print(f"schnell: {message}")
    assert "ModelMismatchError" in message and "schnell" in message and "flux1-dev" in message


def test_flux_with_fewer_single_blocks_names_them(client, models):
    graph = lumix_graph(models)
    graph["unet"]["inputs"]["unet_name"] = SHALLOW
    message = failure_message(client, graph)
    print(f"2 double + 1 single: {message}")
    assert "block count mismatch" in message and "single_blocks [1]" in message


def test_flux_with_more_blocks_runs_with_qba_on_the_extra_blocks(client, models):
    graph = lumix_graph(models, seed=3, width=64, height=48, prefix="deeper")
    graph["unet"]["inputs"]["unet_name"] = DEEPER
    latent = latent_of(client, client.run(graph))
    assert latent.shape == (5, 16, 6, 8) and torch.isfinite(latent).all()


def test_lumix_loader_twice_replaces_cleanly(client, models):
    """unet -> LumiXLoader(A) -> LumiXLoader(B) samples exactly like unet -> LumiXLoader(B)."""
    once = lumix_graph(models, seed=4, steps=3, width=64, height=48, strength=0.5, qba=True, prefix="once")
    twice = lumix_graph(models, seed=4, steps=3, width=64, height=48, strength=0.5, qba=True, prefix="twice")
    twice["lumix0"] = {"class_type": "LumiXLoader", "inputs": {"model": ["unet", 0], "lumix_name": models.lumix_zero,
                                                               "strength": 2.0, "qba": False}}
    twice["lumix"]["inputs"]["model"] = ["lumix0", 0]
    probe(twice, ("lumix", 0), "twice")
    first, entry = latent_of(client, client.run(once)), client.run(twice)
    assert torch.equal(first, latent_of(client, entry))
    report = probe_report(entry)
    assert report["lumix_patches"] == 4 and report["dit_patches"] == 4   # 2 double + 2 single, once
    # Second loader off (strength 0, qba off) after a real one: the plain model's result.
    off = lumix_graph(models, seed=21, steps=3, cfg=2.0, guidance=3.5, width=64, height=48, strength=0.0,
                      qba=False, scheduler="simple", prefix="off")
    off["lumix0"] = {"class_type": "LumiXLoader", "inputs": {"model": ["unet", 0], "lumix_name": models.lumix,
                                                             "strength": 1.0, "qba": True}}
    off["lumix"]["inputs"]["model"] = ["lumix0", 0]
    lumix_off = latent_of(client, client.run(off))
    plain = latent_of(client, client.run(plain_graph(models, seed=21, advanced=False, prefix="off_plain")),
                      "save_plain")
    for row in range(5):
        torch.testing.assert_close(lumix_off[row], plain[0], atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ sampler settings

def test_width_not_divisible_by_16(client, models):
    """ComfyUI checks min/max but not the schema's step in API mode: the sampler's
    validate_inputs refuses at POST /prompt, before anything is queued."""
    message = failure_message(client, lumix_graph(models, width=72))
    print(f"width 72: {message}")
    assert message.startswith("rejected: ") and message.endswith(
        "width 72 is not a positive multiple of 16 (FLUX packs 2x2 latent pixels, and the VAE downsamples by 8); "
        "use 64.")


# width and height go through LumiXSampler.validate_inputs (ComfyUI then skips its own range
# check for them), so their message is the engine's check_size message.
@pytest.mark.parametrize("field, value, expected", [
    ("width", 4112, "rejected: Custom validation failed for node: width - width 4112 exceeds 4096, beyond what "
                    "FLUX.1 supports; use at most 4096."),
    ("height", 0, "rejected: Custom validation failed for node: width - height 0 is not a positive multiple of 16 "
                  "(FLUX packs 2x2 latent pixels, and the VAE downsamples by 8); use 16."),
    ("steps", 0, "rejected: Value 0 smaller than min of 1: steps"),
    ("steps", -5, "rejected: Value -5 smaller than min of 1: steps"),
    ("scenes", 0, "rejected: Value 0 smaller than min of 1: scenes"),
])
def test_out_of_range_settings_are_refused_by_validation(client, models, field, value, expected):
    graph = lumix_graph(models)
    graph["sampler"]["inputs"][field] = value
    message = failure_message(client, graph)
    print(f"{field} {value}: {message}")
    assert message.split("; Custom validation failed")[0] == expected


def test_condition_image_of_another_size_is_refused(client, models):
    """Documented behaviour: refuse (no silent resize), naming both sizes and the fix."""
    message = failure_message(client, lumix_graph(models, width=64, height=64, given={"color": "color_64x48.png"}))
    print(f"color 64x48 at 64x64: {message}")
    assert message == ("failed: InputError: the color image is 64x48 but the sampler is set to 64x64: set "
                       "width/height to the image size (a multiple of 16) or scale the image first (e.g. ImageScale)")


def test_condition_batch_that_disagrees_with_scenes_is_refused(client, models):
    message = failure_message(client, lumix_graph(models, width=64, height=48, scenes=2,
                                                  given={"color": "color_64x48.png"}))
    print(f"1 color image, scenes 2: {message}")
    assert message == ("failed: InputError: 1 color image(s) but scenes = 2: give one image per scene or set "
                       "scenes to 1")


def test_negative_prompt_of_another_token_length(client, models):
    """Different text lengths: ComfyUI runs cond and uncond as separate forwards of 5 per
    scene. (1) With LumiX off the result equals a plain KSampler with the same negative;
    (2) with real adapters, scene 0 of a 2-scene run equals a 1-scene run (the scene's noise
    is the same), so grouping by five is right whatever shares the forward."""
    def long_negative(graph):
        graph["negative"] = conditioning_node(models, seed=2, tokens=13)
        return graph
    off = long_negative(lumix_graph(models, seed=31, steps=3, cfg=2.0, guidance=3.5, width=64, height=48,
                                    strength=0.0, qba=False, scheduler="simple", prefix="neg13_off"))
    plain = long_negative(plain_graph(models, seed=31, advanced=False, prefix="neg13_plain"))
    lumix_off = latent_of(client, client.run(off))
    reference = latent_of(client, client.run(plain), "save_plain")
    for row in range(5):
        torch.testing.assert_close(lumix_off[row], reference[0], atol=1e-4, rtol=1e-4)

    one = latent_of(client, client.run(long_negative(lumix_graph(models, seed=32, steps=3, width=64, height=48,
                                                                 prefix="neg13_one"))))
    two = latent_of(client, client.run(long_negative(lumix_graph(models, seed=32, steps=3, width=64, height=48,
                                                                 scenes=2, prefix="neg13_two"))))
    assert torch.isfinite(two).all() and two.shape == (10, 16, 6, 8)
    torch.testing.assert_close(two[:5], one, atol=1e-4, rtol=1e-4)
    assert (two[:5] - two[5:]).abs().max() > 1e-3


# ------------------------------------------------------------------ split / recompose

def test_split_of_a_batch_that_is_not_five_per_scene(client, models):
    graph = {"load": {"class_type": "LoadImage", "inputs": {"image": "color_64x48.png"}},
             "split": {"class_type": "SplitIntrinsics", "inputs": {"images": ["load", 0]}},
             "save": {"class_type": "SaveImage", "inputs": {"images": ["split", 0], "filename_prefix": "split1"}}}
    message = failure_message(client, graph)
    print(f"split of 1 image: {message}")
    assert "BatchLayoutError" in message and "multiple of 5; got a batch of 1" in message


def test_recompose_of_maps_of_different_sizes(client, models):
    graph = {"a": {"class_type": "LoadImage", "inputs": {"image": "color_64x48.png"}},
             "b": {"class_type": "LoadImage", "inputs": {"image": "color_64x64.png"}},
             "re": {"class_type": "Recompose", "inputs": {"albedo": ["a", 0], "irradiance": ["b", 0], "exposure": 0.0}},
             "save": {"class_type": "SaveImage", "inputs": {"images": ["re", 0], "filename_prefix": "recompose"}}}
    message = failure_message(client, graph)
    print(f"recompose 64x48 with 64x64: {message}")
    assert "InputError" in message and "pixel-aligned" in message and "albedo 1x48x64, irradiance 1x64x64" in message


# ------------------------------------------------------------------ faults

def wait_until_running(client, prompt_id, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = client.queue().get("queue_running", [])
        if any(item[1] == prompt_id for item in running):
            return
        time.sleep(0.05)
    raise TimeoutError("the prompt never started")


SLOW = dict(steps=100, width=64, height=64)


def test_interrupt_during_sampling_leaves_nothing_behind(client, models):
    before = client.run(probe(plain_graph(models, seed=41, advanced=False, prefix="iso_before"), tag="before"))
    reference = latent_of(client, client.run(lumix_graph(models, seed=42, prefix="slow_ref", **SLOW), timeout_s=600))
    # The same run on another seed evicts seed 42 from the cache and times a run whose models
    # are already loaded (the first run's time is mostly loading): interrupt a third of the
    # way into such a run, well inside sampling.
    started = time.monotonic()
    client.run(lumix_graph(models, seed=43, prefix="evict", **SLOW), timeout_s=600)
    warm_s = time.monotonic() - started
    print(f"warm {SLOW['steps']}-step run: {warm_s:.2f} s")

    prompt_id = client.queue_prompt(lumix_graph(models, seed=42, prefix="slow_cut", **SLOW))
    wait_until_running(client, prompt_id)
    time.sleep(warm_s / 3)
    client.interrupt()
    cut = client.wait(prompt_id, timeout_s=120)
    kinds = [name for name, _ in cut["status"]["messages"]]
    assert "execution_interrupted" in kinds, kinds
    interrupted = dict(cut["status"]["messages"])["execution_interrupted"]
    print(f"interrupted a third into a {warm_s:.1f} s run, in node {interrupted.get('node_type')}")
    assert interrupted.get("node_type") == "LumiXSampler"

    again = latent_of(client, client.run(lumix_graph(models, seed=42, prefix="slow_again", **SLOW), timeout_s=600))
    assert torch.equal(again, reference)
    after = client.run(probe(plain_graph(models, seed=41, advanced=True, prefix="iso_after"), tag="after"))
    assert torch.equal(latent_of(client, before, "save_plain"), latent_of(client, after, "save_plain"))
    for report in (probe_report(before), probe_report(after)):
        assert report["lumix_patches"] == report["dit_patches"] == 0, report
        assert not report["model_function_wrapper"] and report["overridden_forwards"] == 0, report
        assert report["weight_patches"] == report["object_patches"] == 0, report
    assert probe_report(before)["wrappers"] == probe_report(after)["wrappers"]


def test_graph_isolation_plain_branch_is_bit_identical(client, models):
    """One graph: the UNETLoader MODEL feeds a plain KSampler AND LumiXLoader -> LumiXSampler."""
    alone = latent_of(client, client.run(plain_graph(models, seed=51, advanced=False, prefix="alone")), "save_plain")
    mixed = lumix_graph(models, seed=52, steps=3, width=64, height=48, prefix="mixed")
    plain = plain_graph(models, seed=51, advanced=True, prefix="mixed_plain")
    mixed.update(prefixed(plain, "p_", keep=("unet",)))
    entry = client.run(probe(mixed, tag="mixed"))
    assert torch.equal(latent_of(client, entry, "p_save_plain"), alone)
    assert latent_of(client, entry).shape == (5, 16, 6, 8)
    assert probe_report(entry)["lumix_patches"] == 0


def test_thirty_prompts_in_a_row_hold_memory_and_one_adapter_copy(client, models):
    rss, reports, seconds = [], [], []
    for i in range(30):
        # A new seed every time (no cache hit) and a new strength every third prompt
        # (LumiXLoader runs again: a new patched clone that must share the cached adapters).
        graph = probe(lumix_graph(models, seed=1000 + i, steps=2, width=64, height=48, strength=1.0 + (i // 3) * 0.01,
                                  prefix=f"long{i}"), ("lumix", 0), f"run{i}")
        started = time.monotonic()
        entry = client.run(graph)
        seconds.append(time.monotonic() - started)
        latent = latent_of(client, entry)
        assert latent.shape == (5, 16, 6, 8) and torch.isfinite(latent).all()
        reports.append(probe_report(entry))
        rss.append(rss_kib(client.server))
    growth = rss[29] / rss[2] - 1
    print(f"30 prompts: RSS after 3rd {rss[2] / 1024:.1f} MiB, after 30th {rss[29] / 1024:.1f} MiB "
          f"({growth * 100:+.2f}%), max {max(rss) / 1024:.1f} MiB; {np.mean(seconds):.2f} s/prompt; "
          f"adapter cache {[r['adapter_cache_entries'] for r in reports][-1]}, "
          f"live LumiXAdapters max {max(r['live_lumix_adapters'] for r in reports)}")
    assert abs(growth) <= 0.05, rss
    assert all(r["adapter_cache_entries"] == 1 for r in reports), reports
    assert all(r["live_lumix_adapters"] == 1 for r in reports), reports
    assert all(r["lumix_patches"] == 4 for r in reports)


# ------------------------------------------------------------------ API-mode load

def test_fifty_api_prompts_at_once(client, models, server):
    """50 prompts queued at once: text -> maps (1 or 2 scenes), decomposition, and 6 bad
    ones spread through the queue. Good ones complete with 5 finite maps per scene, bad
    ones fail with their clear error, and the ones after them run."""
    plan = []
    for i in range(50):
        seed = 5000 + i
        if i in (7, 29):
            plan.append(("bad: width 72", lumix_graph(models, seed=seed, width=72, prefix=f"load{i}"),
                         "width 72 is not a positive multiple of 16"))
        elif i in (13, 41):
            plan.append(("bad: missing lumix file", lumix_graph(models, seed=seed, lumix="nope.safetensors",
                                                                 prefix=f"load{i}"),
                         "lumix_name 'nope.safetensors' is not a LumiX checkpoint in models/lumix"))
        elif i in (21, 47):
            plan.append(("bad: image of the wrong size", lumix_graph(models, seed=seed, width=64, height=64,
                                                                    given={"color": "color_64x48.png"},
                                                                    prefix=f"load{i}"),
                         "the color image is 64x48 but the sampler is set to 64x64"))
        elif i % 4 == 1:
            plan.append(("decomposition", lumix_graph(models, seed=seed, steps=2, width=64, height=48,
                                                       given={"color": "color_64x48.png"}, prefix=f"load{i}"), 1))
        else:
            scenes = 2 if i % 5 == 0 else 1
            plan.append(("text -> maps", lumix_graph(models, seed=seed, steps=2, width=64, height=48, scenes=scenes,
                                                      prefix=f"load{i}"), scenes))

    started = time.monotonic()
    queued = []
    for kind, graph, expected in plan:
        try:
            queued.append((kind, client.queue_prompt(graph), expected))
        except PromptRejected as rejected:
            queued.append((kind, rejected, expected))
    post_s = time.monotonic() - started
    results, failures = [], []
    for index, (kind, handle, expected) in enumerate(queued):
        if isinstance(handle, PromptRejected):
            assert kind.startswith("bad"), handle
            detail = json.dumps(handle.body.get("node_errors"))
            assert expected in detail, detail
            first_error = next(iter(handle.body["node_errors"].values()))["errors"][0]["details"]
            failures.append((index, kind, "rejected at POST /prompt: " + first_error))
            continue
        entry = client.wait(handle, timeout_s=600)
        ok = entry["status"].get("status_str") == "success"
        if kind.startswith("bad"):
            assert not ok
            error = WorkflowFailed(entry)
            assert expected in error.details.get("exception_message", ""), error
            failures.append((index, kind, execution_error(error)))
            continue
        assert ok, WorkflowFailed(entry)
        latent = latent_of(client, entry)
        scenes = expected
        assert latent.shape == (5 * scenes, 16, 6, 8) and torch.isfinite(latent).all()
        for name in MAPS:
            files = client.output_files(entry, f"save_{name}")
            assert len(files) == scenes
            assert all(np.asarray(Image.open(p)).shape == (48, 64, 3) for p in files)
        results.append(kind)
    total_s = time.monotonic() - started
    good = len(results)
    print(f"\n50 API prompts: {good} good completed, {len(failures)} bad failed cleanly; POST of all 50 took "
          f"{post_s:.2f} s; all done in {total_s:.1f} s = {good / total_s:.2f} good prompts/s "
          f"({50 / total_s:.2f} prompts/s overall)")
    for index, kind, message in failures:
        print(f"  prompt {index:2d} ({kind}): {message}")
    assert good == 44 and len(failures) == 6
    assert results.count("decomposition") >= 8


@pytest.mark.parametrize("field, value", [("scheduler", "bogus"), ("sampler_name", "bogus")])
def test_unknown_scheduler_or_sampler_is_refused_by_validation(client, models, field, value):
    graph = lumix_graph(models)
    graph["sampler"]["inputs"][field] = value
    message = failure_message(client, graph)
    print(f"{field} {value!r}: {message}")
    # ComfyUI repeats a validate_inputs message under each input the function takes.
    assert message.startswith("rejected: Custom validation failed for node: ")
    assert f"{field} 'bogus' is not one of" in message and ("euler" in message if field == "sampler_name"
                                                            else "published" in message)
