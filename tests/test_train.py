"""Training: the loss falls on a tiny config, checkpoints resume exactly, the adapters
learn through the engine's own block patches, and the per-map LoRA ablation stays per-map."""
from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from lumix_engine.method.adapters import new_adapters
from lumix_engine.tiny_trained.data import render_scenes
from lumix_engine.tiny_trained.latent import DeblockingDecoder
from lumix_engine.tiny_trained.model import VARIANTS, TinyBase, TinyConfig, tiny_flux_config
from lumix_engine.train import ConditionPolicy, LoopConfig, Trainer
from lumix_engine.train.tiny import (
    TEXT_ONLY,
    TinyRecipe,
    adapter_loss_fn,
    base_loss_fn,
    keep_per_map,
    prepare_data,
    train_decoder,
)

SIZE = 32


@pytest.fixture(scope="module")
def scenes():
    return render_scenes(range(6), SIZE)


def small_base(scenes, seed: int = 0):
    torch.manual_seed(seed)
    config = TinyConfig(flux=asdict(tiny_flux_config(hidden=32, heads=2, depth=1, single=1, text_dim=16)),
                        text_dim=16, size=SIZE)
    base = TinyBase(config)
    data = prepare_data(base, scenes)
    base.codec.requires_grad_(False)
    return base, data


def small_adapters(base, rank: int = 4):
    torch.manual_seed(1)
    config = base.flux.config
    return new_adapters(config.hidden_size, config.depth, config.depth_single_blocks, rank=rank)


def early_and_late(history: list[float], window: int = 8) -> tuple[float, float]:
    return sum(history[:window]) / window, sum(history[-window:]) / window


def test_base_training_loss_decreases(scenes):
    base, data = small_base(scenes)
    trainer = Trainer(base, base_loss_fn(base, data, batch=6), LoopConfig(60, lr=3e-3, warmup=5))
    first, last = early_and_late(trainer.run())
    assert last < 0.8 * first, (first, last)


def test_adapter_training_loss_decreases_with_base_frozen(scenes):
    base, data = small_base(scenes)
    base.requires_grad_(False)
    frozen = {k: v.clone() for k, v in base.flux.state_dict().items()}
    adapters = small_adapters(base)
    trainer = Trainer(adapters, adapter_loss_fn(base, adapters, VARIANTS["a"], data, scenes=2),
                      LoopConfig(40, lr=1e-2, warmup=5))
    first, last = early_and_late(trainer.run())
    assert last < 0.9 * first, (first, last)
    assert all(torch.equal(frozen[k], v) for k, v in base.flux.state_dict().items())
    # Every Tensor LoRA factor learnt (the fold kept the autograd graph).
    assert all(p.abs().sum() > 0 for name, p in adapters.named_parameters() if name.endswith("G3"))


def test_resume_from_checkpoint_gives_identical_next_steps(scenes, tmp_path):

    def trainer(folder):
        base, data = small_base(scenes)
        base.requires_grad_(False)
        adapters = small_adapters(base)
        return Trainer(adapters, adapter_loss_fn(base, adapters, VARIANTS["a"], data, scenes=2),
                       LoopConfig(6, lr=1e-2, warmup=2, checkpoint_every=3), folder), adapters

    straight, straight_adapters = trainer(tmp_path / "straight")
    straight_losses = straight.run()

    interrupted, _ = trainer(tmp_path / "resumed")
    interrupted.run(until=3)
    resumed, resumed_adapters = trainer(tmp_path / "resumed")   # a new process would do exactly this
    assert resumed.step == 3
    resumed_losses = resumed.run()
    assert resumed_losses == straight_losses[3:]
    for (name, a), (_, b) in zip(straight_adapters.state_dict().items(), resumed_adapters.state_dict().items()):
        assert torch.equal(a, b), name


def test_per_map_lora_reads_only_its_own_map(scenes):
    base, data = small_base(scenes)
    base.requires_grad_(False)
    adapters = small_adapters(base)
    keep_per_map(adapters)
    Trainer(adapters, adapter_loss_fn(base, adapters, VARIANTS["c"], data, scenes=2),
            LoopConfig(5, lr=1e-2, warmup=1)).run()
    for name, p in adapters.named_parameters():
        if name.endswith("G1"):
            off_diagonal = p * (1 - torch.eye(p.shape[0])[:, :, None])
            assert torch.count_nonzero(off_diagonal) == 0, name
            assert torch.count_nonzero(torch.diagonal(p)) > 0, name


def test_condition_policy_never_holds_all_maps():
    held = ConditionPolicy(color=0.3, any_subset=0.7).sample(500, torch.Generator().manual_seed(0))
    assert not held.all(dim=1).any()
    assert held.any(dim=1).all()
    assert (held.sum(1) == 1).sum() > 0 and (held.sum(1) > 1).sum() > 0


def test_text_only_variants_never_hold_a_map_in_training():
    assert not TEXT_ONLY.sample(200, torch.Generator().manual_seed(0)).any()
    assert [v.qba for v in (VARIANTS["e"], VARIANTS["f"])] == [True, False]
    assert not VARIANTS["e"].held_maps_in_training and VARIANTS["a"].held_maps_in_training


def test_learned_decoder_starts_as_the_linear_decoding_and_training_beats_it(scenes, tmp_path):
    base, _ = small_base(scenes)
    latents = base.codec.encode(scenes.maps[:, 0])
    linear = base.codec.decode(latents)
    base.codec.learned = DeblockingDecoder()
    assert torch.equal(base.codec.decode(latents), linear)   # zero-initialised residual: exactly the transpose

    images = scenes.maps.flatten(0, 1)
    noisy = base.codec.encode(images) + 0.2 * torch.randn(len(images), 16, SIZE // 4, SIZE // 4,
                                                            generator=torch.Generator().manual_seed(5))
    base.codec.learned = None
    before = float(((base.codec.decode(noisy) - images) ** 2).mean())
    train_decoder(base, scenes, TinyRecipe(decoder_steps=80, decoder_batch=8, decoder_lr=3e-3), tmp_path / "trained")
    after = float(((base.codec.decode(noisy) - images) ** 2).mean())
    assert after < 0.8 * before, (before, after)
    assert base.config.learned_decoder and not any(p.requires_grad for p in base.codec.parameters())


def test_cosine_decay_and_per_prefix_learning_rates():
    module = torch.nn.ModuleDict({"adapters": torch.nn.Linear(2, 2), "flux": torch.nn.Linear(2, 2)})
    config = LoopConfig(100, lr=1.0, warmup=10, final_lr_fraction=0.1)
    trainer = Trainer(module, lambda g: sum((p ** 2).sum() for p in module.parameters()), config,
                      lr_scales={"flux.": 0.25})
    assert trainer.lr_at(0) == pytest.approx(0.1) and trainer.lr_at(9) == pytest.approx(1.0)
    assert trainer.lr_at(55) == pytest.approx(0.55) and trainer.lr_at(99) == pytest.approx(0.1, abs=1e-3)
    assert LoopConfig(100, lr=1.0, warmup=10).final_lr_fraction == 1.0
    assert Trainer(module, trainer.loss_fn, LoopConfig(100, lr=1.0, warmup=10)).lr_at(80) == 1.0   # constant
    trainer.step = 40
    trainer.train_step()
    rates = sorted(group["lr"] for group in trainer.optimizer.param_groups)
    assert rates == pytest.approx([0.25 * trainer.lr_at(40), trainer.lr_at(40)])


def test_stage_two_can_fine_tune_the_base_at_its_own_rate(scenes, tmp_path):
    from lumix_engine.train.tiny import train_adapters
    base, data = small_base(scenes)
    before = {k: v.clone() for k, v in base.flux.state_dict().items()}
    recipe = TinyRecipe(adapter_steps=3, adapter_scenes=2, adapter_base_lr=0.5, rank=4)
    train_adapters(base, data, recipe, VARIANTS["a"], tmp_path)
    changed = [k for k, v in base.flux.state_dict().items() if not torch.equal(before[k], v)]
    assert changed and not any(p.requires_grad for p in base.parameters())
    frozen_base, frozen_data = small_base(scenes)
    frozen = TinyRecipe(adapter_steps=3, adapter_scenes=2, rank=4, adapter_base_lr=0.0)
    train_adapters(frozen_base, frozen_data, frozen, VARIANTS["a"], tmp_path / "frozen")
    assert all(torch.equal(before[k], v) for k, v in frozen_base.flux.state_dict().items())


def test_held_share_reaches_the_stage_two_loss_except_for_text_only_variants(scenes):
    base, data = small_base(scenes)
    base.requires_grad_(False)
    adapters = small_adapters(base)

    def loss(name: str, held: ConditionPolicy) -> float:
        fn = adapter_loss_fn(base, adapters, VARIANTS[name], data, scenes=3, held=held)
        return float(fn(torch.Generator().manual_seed(3)))

    always_color, never = ConditionPolicy(color=1.0, any_subset=0.0), ConditionPolicy(color=0.0, any_subset=0.0)
    assert loss("a", always_color) != pytest.approx(loss("a", never), rel=1e-4)
    assert loss("e", always_color) == loss("e", never)
    assert TinyRecipe().held_color + TinyRecipe().held_subset <= 1.0
