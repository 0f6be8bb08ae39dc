"""Training: the loss falls on a tiny config, checkpoints resume exactly, the adapters
learn through the engine's own block patches, and the per-map LoRA ablation stays per-map."""
from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from lumix_engine.method.adapters import new_adapters
from lumix_engine.tiny_trained.data import render_scenes
from lumix_engine.tiny_trained.model import VARIANTS, TinyBase, TinyConfig, tiny_flux_config
from lumix_engine.train import ConditionPolicy, LoopConfig, Trainer
from lumix_engine.train.tiny import adapter_loss_fn, base_loss_fn, keep_per_map, prepare_data

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
