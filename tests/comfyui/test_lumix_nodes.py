"""The LumiX nodes in a real ComfyUI server, on tiny models, through POST /prompt."""
import time

import numpy as np
import pytest
import torch
from comfyui_graphs import core_flux_graph, lumix_graph
from comfyui_harness import WorkflowFailed
from PIL import Image
from safetensors.torch import load_file

MAPS = ("albedo", "irradiance", "color", "depth", "normal")


def latent_of(comfyui, entry) -> torch.Tensor:
    files = [p for p in comfyui.output_files(entry, "save_latent") if p.suffix == ".latent"]
    assert len(files) == 1, entry["outputs"]
    return load_file(str(files[0]))["latent_tensor"]


def images_of(comfyui, entry, name):
    return [np.asarray(Image.open(p)) for p in comfyui.output_files(entry, f"save_{name}")]


@pytest.mark.parametrize("scenes", [1, 2])
def test_text_to_maps_gives_five_finite_maps_per_scene(comfyui, tiny_models, scenes):
    started = time.monotonic()
    entry = comfyui.run(lumix_graph(tiny_models, seed=11, steps=3, scenes=scenes, width=64, height=48,
                                    prefix=f"t2m{scenes}"), timeout_s=300)
    print(f"text -> maps, {scenes} scene(s), 3 steps, cfg 3 (auto): {time.monotonic() - started:.2f} s")
    latent = latent_of(comfyui, entry)
    assert latent.shape == (5 * scenes, 16, 6, 8)
    assert torch.isfinite(latent).all()
    for name in MAPS:
        images = images_of(comfyui, entry, name)
        assert len(images) == scenes and all(i.shape == (48, 64, 3) for i in images)
    # The five maps of a scene are different images (the adapters differ per map).
    assert all((latent[0] - latent[i]).abs().max() > 1e-3 for i in range(1, 5))


def test_same_seed_same_maps_and_different_seed_different_maps(comfyui, tiny_models):
    first = latent_of(comfyui, comfyui.run(lumix_graph(tiny_models, seed=5, prefix="seed5a")))
    again = latent_of(comfyui, comfyui.run(lumix_graph(tiny_models, seed=5, steps=2, prefix="seed5b",
                                                       strength=1.0000001)))
    other = latent_of(comfyui, comfyui.run(lumix_graph(tiny_models, seed=6, prefix="seed6")))
    assert torch.allclose(first, again, atol=1e-5)
    assert (first - other).abs().max() > 1e-2


def test_authors_numerics_start_from_the_authors_noise(comfyui, tiny_models):
    # On the CPU in float32 (the tiny model) their draw of scene 0, randn(1, ...) from the
    # seed, is the engine's first scene too; scene 1 is their run with seed + 1, which the
    # engine's one stream of two scenes is not. (On a GPU in bf16 every scene differs.)
    engine = latent_of(comfyui, comfyui.run(lumix_graph(tiny_models, seed=5, steps=1, scenes=2,
                                                        prefix="engine5")))
    authors = latent_of(comfyui, comfyui.run(lumix_graph(tiny_models, seed=5, steps=1, scenes=2, numerics="authors",
                                                         prefix="authors5")))
    seed6 = latent_of(comfyui, comfyui.run(lumix_graph(tiny_models, seed=6, steps=1, numerics="authors",
                                                       prefix="authors6")))
    assert torch.allclose(authors[:5], engine[:5], atol=1e-5)
    assert (authors[5:] - engine[5:]).abs().max() > 1e-2
    assert torch.allclose(authors[5:], seed6, atol=1e-5)


def test_strength_zero_with_qba_off_reproduces_the_unpatched_model(comfyui, tiny_models):
    """Each of the five maps equals a plain KSampler run from the same noise and sigmas."""
    lumix = latent_of(comfyui, comfyui.run(lumix_graph(tiny_models, seed=21, steps=3, cfg=2.0, guidance=3.5,
                                                       strength=0.0, qba=False, scheduler="simple",
                                                       prefix="plain_lumix")))
    core = core_flux_graph(tiny_models, seed=21, steps=3, cfg=2.0, width=64, height=64, batch_size=1)
    core["save_latent"] = {"class_type": "SaveLatent",
                           "inputs": {"samples": ["sampler", 0], "filename_prefix": "latents/plain_core"}}
    plain = latent_of(comfyui, comfyui.run(core))
    assert plain.shape == (1, 16, 8, 8)
    for row in range(5):
        assert torch.allclose(lumix[row], plain[0], atol=1e-4, rtol=1e-4), (lumix[row] - plain[0]).abs().max()
    # ... while the real adapters change the maps.
    patched = latent_of(comfyui, comfyui.run(lumix_graph(tiny_models, seed=21, steps=3, cfg=2.0, guidance=3.5,
                                                         scheduler="simple", prefix="real_lumix")))
    assert (patched[0] - plain[0]).abs().max() > 1e-3


def test_decomposition_holds_the_given_color_map_exactly(comfyui, comfyui_server, tiny_models):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(comfyui_server.input_dir / "color.png")
    entry = comfyui.run(lumix_graph(tiny_models, seed=2, steps=3, width=64, height=48, given={"color": "color.png"},
                                    prefix="decomp"))
    latent = latent_of(comfyui, entry)
    reference = latent_of(comfyui, comfyui.run(lumix_graph(tiny_models, seed=9, steps=2, width=64, height=48,
                                                           given={"color": "color.png"}, prefix="decomp2")))
    assert torch.equal(latent[2], reference[2])  # the VAE latent of the given image, untouched
    assert (latent[0] - reference[0]).abs().max() > 1e-3  # generated maps follow the seed


def test_plain_model_into_the_sampler_gets_a_clear_error(comfyui, tiny_models):
    graph = lumix_graph(tiny_models)
    graph["sampler"]["inputs"]["model"] = ["unet", 0]
    with pytest.raises(WorkflowFailed, match="not patched by LumiX"):
        comfyui.run(graph)


def test_size_not_divisible_by_16_is_refused_before_running(comfyui, tiny_models):
    from comfyui_harness import PromptRejected
    with pytest.raises((PromptRejected, WorkflowFailed)):
        comfyui.run(lumix_graph(tiny_models, width=72))
