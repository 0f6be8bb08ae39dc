"""LumiXPipeline end to end on tiny components (the demo's builders), through real files."""
import shutil

import pytest
import torch
from safetensors.torch import save_file

from lumix_engine.apps.loading import (
    MissingModelError,
    ModelFiles,
    load_text_encoders,
    load_transformer,
    load_vae,
    quiet_libraries,
)
from lumix_engine.apps.pipeline import LumiXPipeline, progress_bar
from lumix_engine.errors import InputError
from lumix_engine.method.patch import block_patches
from lumix_engine.method.sampling import NEGATIVE_PROMPT
from lumix_engine.modalities import MAP_NAMES
from lumix_engine.tiny_random import tiny_components, write_tiny_models

FAST = dict(steps=2, width=32, height=32)


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    with quiet_libraries():
        return write_tiny_models(tmp_path_factory.mktemp("models"), seed=0)


@pytest.fixture(scope="module")
def pipe(models):
    with quiet_libraries():
        pipeline = LumiXPipeline.from_files(flux_dir=models["flux_dir"], lumix=models["lumix"], device="cpu",
                                            dtype="fp32", progress=False)
    yield pipeline
    pipeline.close()


def test_same_seed_gives_identical_maps(pipe):
    first, second = pipe.generate("a red sphere", seed=3, **FAST), pipe.generate("a red sphere", seed=3, **FAST)
    assert all(torch.equal(first.as_dict()[n], second.as_dict()[n]) for n in MAP_NAMES)
    assert torch.equal(first.latents, second.latents)


def test_different_seeds_give_different_maps(pipe):
    first, second = pipe.generate("a red sphere", seed=3, **FAST), pipe.generate("a red sphere", seed=4, **FAST)
    assert all((first.as_dict()[n] - second.as_dict()[n]).abs().max() > 1e-3 for n in MAP_NAMES)


def test_maps_are_named_float_images_with_the_published_defaults_recorded(pipe):
    maps = pipe.generate(["a red sphere", "a blue cube"], **FAST)
    for name, image in maps.as_dict().items():
        assert image.shape == (2, 32, 32, 3) and image.dtype == torch.float32, name
        assert 0.0 <= image.min() and image.max() <= 1.0
    assert maps.latents.shape == (10, 16, 4, 4)
    settings = maps.settings
    assert (settings["cfg"], settings["guidance"], settings["negative_prompt"]) == (3.0, 3.5, NEGATIVE_PROMPT)
    assert (settings["steps"], settings["token_count"], settings["scenes"]) == (2, "published", 2)


def test_true_cfg_runs_negative_then_positive_scenes_as_one_batch(pipe, monkeypatch):
    seen = []
    original = pipe.velocity

    def spy(latents, timesteps, context, pooled, guidance):
        seen.append((latents.shape[0], context.clone()))
        return original(latents, timesteps, context, pooled, guidance)

    monkeypatch.setattr(pipe, "velocity", spy)
    pipe.generate(["a red sphere", "a blue cube"], **FAST)
    negative, _ = pipe.encode_prompt([NEGATIVE_PROMPT])
    positive, _ = pipe.encode_prompt(["a red sphere", "a blue cube"])
    batch, context = seen[0]
    assert len(seen) == FAST["steps"] and batch == 20
    assert torch.equal(context[:10], negative.expand(10, -1, -1))
    assert torch.equal(context[10:15], positive[0].expand(5, -1, -1))  # scene-major inside each chunk
    assert torch.equal(context[15:], positive[1].expand(5, -1, -1))


@pytest.mark.parametrize("given", ["color", "depth"])
def test_decomposition_leaves_the_given_map_latent_bit_identical(pipe, given):
    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(5))
    maps = pipe.decompose(image, prompt="a red sphere", given=given, steps=2, width=32, height=32)
    index = MAP_NAMES.index(given)
    assert torch.equal(maps.latents[index], pipe.encode_images(image)[0])
    assert maps.settings["guidance"] == 1.0 and maps.settings["cfg"] == 1.0 and maps.settings["given"] == [given]
    others = [i for i in range(5) if i != index]
    assert all((maps.latents[i] - maps.latents[index]).abs().max() > 1e-3 for i in others)


def test_several_given_maps_stay_fixed_together(pipe):
    g = torch.Generator().manual_seed(6)
    color, depth = torch.rand(2, 32, 32, 3, generator=g), torch.rand(2, 32, 32, 3, generator=g)
    maps = pipe.decompose(given={"color": color, "depth": depth}, steps=2, width=32, height=32)
    assert torch.equal(maps.latents[2::5], pipe.encode_images(color))
    assert torch.equal(maps.latents[3::5], pipe.encode_images(depth))


def test_pipeline_lumix_forward_equals_the_engine_bfl_layout_forward(pipe):
    """Same weights (the demo's seed-0 components): the patched diffusers transformer with
    the pipeline's packing against the BFL `Flux` with `block_patches`."""
    bfl = tiny_components(seed=0).flux_bfl
    g = torch.Generator().manual_seed(7)
    latents = torch.randn(10, 16, 4, 6, generator=g)
    timesteps = torch.rand(10, generator=g)
    context, pooled = pipe.encode_prompt(["a red sphere"] * 5 + ["a blue cube"] * 5)
    ours = pipe.velocity(latents, timesteps, context, pooled, 3.5)
    options = {"patches_replace": {"dit": block_patches(bfl, pipe.adapters)}}
    with torch.no_grad():
        engine = bfl.forward_latent(latents, timesteps, context, pooled, torch.full((10,), 3.5), options)
        plain = bfl.forward_latent(latents, timesteps, context, pooled, torch.full((10,), 3.5))
    assert rel(ours, engine) <= 1e-5
    assert rel(plain, engine) > 1e-3   # the adapters did something


def test_single_files_load_the_same_components_as_the_folder(pipe, models, tmp_path):
    """flux1-dev.safetensors (BFL layout), ae.safetensors, clip_l / t5xxl files next to the
    folder's configs: the same weights as the diffusers folder."""
    parts = tiny_components(seed=0)
    clip_file, t5_file, vae_file = tmp_path / "clip_l.safetensors", tmp_path / "t5xxl.safetensors", tmp_path / "ae.safetensors"
    # clip_l.safetensors as published: transformers' v4 key names (text_model.*), no projection.
    save_file({("" if k.startswith("text_model.") else "text_model.") + k: v.contiguous()
               for k, v in parts.text_encoder.state_dict().items()}, str(clip_file))
    save_file({k: v.contiguous() for k, v in parts.text_encoder_2.state_dict().items()
               if k != "encoder.embed_tokens.weight"}, str(t5_file))   # tied to shared.weight
    save_file({k: v.contiguous() for k, v in parts.vae.state_dict().items()}, str(vae_file))
    files = ModelFiles(flux_dir=models["flux_dir"], lumix=models["lumix"], transformer=models["transformer_single_file"],
                       vae=vae_file, clip_l=clip_file, t5xxl=t5_file).check()
    with quiet_libraries():
        transformer = load_transformer(files, torch.float32)
        vae = load_vae(files, torch.float32)
        clip, _, t5, _ = load_text_encoders(files, torch.float32)
    for loaded, reference in ((transformer, pipe.transformer), (vae, pipe.vae), (clip, pipe.text_encoder),
                              (t5, pipe.text_encoder_2)):
        mine, theirs = loaded.state_dict(), reference.state_dict()
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), type(loaded).__name__


def test_missing_model_names_the_file_where_to_put_it_and_its_source(models, tmp_path):
    with pytest.raises(MissingModelError) as missing:
        LumiXPipeline.from_files(flux_dir=models["flux_dir"], models=tmp_path / "models")
    message = str(missing.value)
    assert "lumix.safetensors" in message and str(tmp_path / "models" / "lumix" / "lumix.safetensors") in message
    assert "huggingface.co/hanx/LumiX_ckp" in message and "nothing is ever downloaded" in message

    configs_only = tmp_path / "FLUX.1-dev"
    shutil.copytree(models["flux_dir"], configs_only, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(MissingModelError) as missing:
        ModelFiles(flux_dir=configs_only, lumix=models["lumix"], clip_l=tmp_path / "clip_l.safetensors").check()
    message = str(missing.value)
    for expected in ("flux1-dev.safetensors", "ae.safetensors", "black-forest-labs/FLUX.1-dev",
                     f"not found at {tmp_path / 'clip_l.safetensors'}", "comfyanonymous/flux_text_encoders"):
        assert expected in message


def test_callback_sees_every_step(pipe):
    steps = []
    pipe.generate("a red sphere", callback=lambda step, total, x: steps.append((step, total, x.shape[0])),
                  steps=3, width=32, height=32)
    assert steps == [(0, 3, 5), (1, 3, 5), (2, 3, 5)]


@pytest.mark.parametrize("width,height", [(1001, 667), (200, 300)])
def test_a_photo_of_any_size_comes_back_at_its_size_recomposed_exactly(pipe, width, height):
    from lumix_engine.intrinsics import recompose
    photo = torch.rand(1, height, width, 3, generator=torch.Generator().manual_seed(8))
    maps = pipe.decompose(photo, steps=2, megapixels=0.0625, ensemble_size=2)
    assert maps.settings["ensemble_size"] == 2 and maps.settings["postprocess"] == ["grey_depth", "unit_normals"]
    work_w, work_h = maps.settings["working_size"]
    assert work_w % 16 == 0 == work_h % 16 and maps.settings["output_size"] == [width, height]
    assert maps.latents.shape == (2 * 5, 16, work_h // 8, work_w // 8)   # 2 runs = 2 scenes
    for name, image in maps.as_dict().items():
        assert image.shape == (1, height, width, 3), name
    assert torch.equal(maps.color, photo)
    assert (recompose(maps.albedo, maps.irradiance) - photo).abs().max() < 1 / 255
    assert set(maps.uncertainty) == {"albedo_uncertainty", "irradiance_uncertainty", "depth_uncertainty",
                                     "normal_uncertainty"}
    assert all(u.shape == (1, height, width, 3) and u.max() > 0 for u in maps.uncertainty.values())


@pytest.mark.parametrize("total, enabled", [(3, False), (0, True)])
def test_a_disabled_progress_bar_is_a_silent_tqdm(capsys, total, enabled):
    bar = progress_bar(total, enabled)
    bar.update(1)
    bar.set_postfix(failed=0, refresh=False)
    bar.close()
    assert bar.disable and capsys.readouterr().err == ""


def test_seeds_is_a_deprecated_name_of_ensemble_size(pipe):
    photo = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(9))
    small = dict(steps=1, width=32, height=32)
    with pytest.warns(DeprecationWarning, match="ensemble_size"):
        old = pipe.decompose(photo, seeds=2, **small)
    new = pipe.decompose(photo, ensemble_size=2, **small)
    assert old.settings == new.settings and all(torch.equal(old.as_dict()[n], new.as_dict()[n]) for n in MAP_NAMES)
    with pytest.raises(InputError, match="seeds is the old name of ensemble_size"):
        pipe.decompose(photo, seeds=2, ensemble_size=3, **small)


def test_postprocess_follows_the_numerics_unless_given(pipe):
    photo = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(10))
    small = dict(steps=1, width=32, height=32)
    engine = pipe.decompose(photo, **small)
    raw = pipe.decompose(photo, postprocess="none", **small)
    assert engine.settings["postprocess"] == ["grey_depth", "unit_normals"] and raw.settings["postprocess"] == []
    assert torch.equal(engine.latents, raw.latents) and torch.equal(engine.albedo, raw.albedo)
    assert not torch.equal(raw.depth[..., 0], raw.depth[..., 1])   # as decoded: channels differ
    assert torch.equal(engine.depth[..., 0], engine.depth[..., 1])
    # As decoded = the pipeline's own decoding of the returned latents.
    decoded = pipe.decode_latents(raw.latents)
    for k, name in enumerate(MAP_NAMES):
        if name != "color":
            assert torch.equal(raw.as_dict()[name], decoded[k:k + 1]), name
