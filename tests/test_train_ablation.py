"""The multi-seed ablation end to end on a tiny base: parallel worker subprocesses train two
variants on two stage-2 seeds (real training, 3 steps), evaluate them on 2 held-out scenes,
aggregate over seeds; seed 0 equals train_adapters called directly (the shipped stage 2); a
second run skips every finished model and evaluation, and a half-written model folder does
not count as finished."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace

import pytest
import torch

from evaluation import ablation_stats
from lumix_engine.tiny_trained.data import render_scenes
from lumix_engine.tiny_trained.model import TinyBase, TinyConfig, load_base, save_base, tiny_flux_config
from lumix_engine.train.tiny import TinyRecipe, prepare_data, train_adapters, variant
from tools import train_ablation

SIZE = 16


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory):
    torch.manual_seed(0)
    config = TinyConfig(flux=asdict(tiny_flux_config(hidden=32, heads=2, depth=1, single=1, text_dim=16)),
                        text_dim=16, size=SIZE, rank=2)
    base = TinyBase(config)
    prepare_data(base, render_scenes(range(8), SIZE))   # fits the latent mapping on these renders
    folder = tmp_path_factory.mktemp("base")
    save_base(base, folder)
    return folder


def arguments(base_folder, runs, out, *extra):
    return [f"--base={base_folder}", f"--runs={runs}", "--variants=ad", "--seeds=2", "--jobs=2", "--scenes=2",
            "--steps=2", "--set=scenes=8", "--set=adapter_steps=3", "--set=adapter_scenes=2", f"--out={out}", *extra]


def stamps(runs):
    return {p.relative_to(runs): p.stat().st_mtime_ns for p in runs.glob("model_*/*") if p.is_file()}


def test_parallel_multi_seed_ablation_resumes(base_folder, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out" / "ablation.json"
    assert train_ablation.main(arguments(base_folder, runs, out)) == 0

    models = sorted(p.name for p in runs.glob("model_*"))
    assert models == ["model_a_s0", "model_a_s1", "model_d_s0", "model_d_s1"]
    recipe = json.loads((runs / "model_a_s1" / "recipe.json").read_text())["recipe"]
    assert recipe["seed"] == 1 and recipe["rank"] == 2 and recipe["hidden"] == 32   # rank and width from the base
    assert recipe["adapter_steps"] == 3
    config = json.loads((runs / "model_d_s0" / "config.json").read_text())
    assert config["variant"]["name"] == "d" and not config["variant"]["shared_noise"]
    # Two seeds train different adapters.
    from safetensors.torch import load_file
    s0, s1 = (load_file(str(runs / f"model_a_s{s}" / "lumix.safetensors")) for s in (0, 1))
    assert any(not torch.equal(s0[k], s1[k]) for k in s0)

    # Seed 0 is exactly stage 2 of the shipped recipe: train_adapters in this process, on data
    # rendered here, gives the same weights as the worker with the cached data (one thread both).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = load_base(base_folder)
        data = prepare_data(base, render_scenes(range(8), SIZE), fit_codec=False)
        recipe = replace(TinyRecipe(), scenes=8, adapter_steps=3, adapter_scenes=2, rank=2, hidden=32)
        direct = train_adapters(base, data, recipe, variant("a"), tmp_path / "direct").state_dict()
    finally:
        torch.set_num_threads(threads)
    assert direct.keys() == s0.keys() and all(torch.equal(direct[k], s0[k]) for k in s0)

    # Every worker leaves a log a reader can check the results against (they used to be empty).
    for name in ("evaluate_a_s0", "evaluate_d_s1", "references"):
        assert "held-out scenes" in (runs / "logs" / f"{name}.log").read_text(), name

    results = json.loads(out.read_text())
    assert results["stage2_seeds"] == [0, 1] and results["scenes"] == 2 and results["steps"] == 2
    assert set(results["runs"]) == {"a", "d"} and set(results["runs"]["a"]) == {"0", "1"}
    alignment = results["summary"]["a"]["generation"]["structural_alignment"]
    assert alignment["n"] == 2 and len(alignment["values"]) == 2 and alignment["sd"] is not None
    values = [results["runs"]["a"][s]["generation"]["structural_alignment"] for s in ("0", "1")]
    assert alignment["values"] == values
    assert results["rule"] == ablation_stats.RULE
    pairs = [(p["x"], p["y"]) for p in results["comparisons"]]
    assert pairs == [("a", "d")]   # the only claim pair among the trained variants
    assert set(results["comparisons"][0]["metrics"]) == {metric for _, metric, _, _ in ablation_stats.COLUMNS}
    assert any(name.startswith("trivial decomposition") for name in results["references"])
    assert set(results["below_trivial_on_every_seed"]) == {"albedo_si_rmse", "irradiance_si_rmse", "depth_absrel",
                                                           "normal_degrees"}
    text = out.with_suffix(".md").read_text()
    assert "| (a) QBA + Tensor LoRA | 2 |" in text and "±" in text and "| (a) vs (d)" in text

    # Resume: nothing is retrained or re-evaluated; a half-written folder does not count.
    before = stamps(runs)
    shutil.rmtree(runs / "model_d_s1")
    (runs / "model_d_s1").mkdir()
    (runs / "model_d_s1" / "config.json").write_text("{}")   # weights missing: not finished
    (runs / "model_d_s1.partial").mkdir()                    # a killed worker's leftover
    assert train_ablation.main(arguments(base_folder, runs, out)) == 0
    after = stamps(runs)
    assert {k: v for k, v in after.items() if k.parts[0] != "model_d_s1"} == \
        {k: v for k, v in before.items() if k.parts[0] != "model_d_s1"}
    assert (runs / "model_d_s1" / "lumix.safetensors").exists() and not (runs / "model_d_s1.partial").exists()
    # Same seed, same recipe: the retrained model is the same model.
    again = json.loads(out.read_text())
    assert again["runs"]["d"]["1"]["generation"] == results["runs"]["d"]["1"]["generation"]

    # Another recipe in the same runs folder is refused, not mixed in.
    with pytest.raises(SystemExit, match="trained with recipe"):
        train_ablation.main(arguments(base_folder, runs, out, "--set=adapter_lr=0.5"))


@pytest.mark.parametrize("bad", ["--variants=az", "--seeds=0", "--jobs=0", "--set=seed=3", "--set=steps=3"])
def test_bad_arguments_are_refused_with_the_fix(base_folder, tmp_path, bad):
    with pytest.raises(SystemExit, match="--variants|--set"):
        train_ablation.main([f"--base={base_folder}", f"--runs={tmp_path / 'runs'}", bad])
    assert not (tmp_path / "runs").exists()   # refused before anything is written


def test_a_folder_without_a_base_is_refused_with_the_command_that_makes_one(tmp_path):
    with pytest.raises(SystemExit, match="lumix_engine.train tiny --work runs/tiny"):
        train_ablation.main([f"--base={tmp_path / 'nothing'}", f"--runs={tmp_path / 'runs'}"])
    assert not (tmp_path / "runs").exists()
