"""A small training loop with logging, checkpoints and exact resume.

A checkpoint holds the trainable modules' state, the optimizer's state, the step, the
data/noise generator's state and torch's global RNG state, so a resumed run takes exactly
the steps the uninterrupted run would have taken (tests/test_train.py checks it). It is
written with torch.save and read back with `weights_only=True` (no arbitrary unpickling).
The weights meant for use are written separately, as safetensors, by the callers.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class LoopConfig:
    steps: int
    lr: float = 1e-3
    warmup: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    log_every: int = 25
    checkpoint_every: int = 200
    seed: int = 0
    final_lr_fraction: float = 1.0   # 1.0: constant after warm-up; below 1: cosine decay to lr * fraction


class Trainer:
    """Runs `loss_fn(generator) -> loss` for `config.steps` steps on `module`'s trainable
    parameters (AdamW, linear warm-up, then constant or a cosine decay). `folder` receives `checkpoint.pt`
    and `log.jsonl`; if a checkpoint is there, training resumes from it."""

    def __init__(self, module: nn.Module, loss_fn: Callable[[torch.Generator], torch.Tensor], config: LoopConfig,
                 folder: Optional[Path] = None,
                 after_step: Optional[Callable[[], None]] = None,
                 lr_scales: Optional[dict[str, float]] = None) -> None:
        self.module, self.loss_fn, self.config = module, loss_fn, config
        self.folder = Path(folder) if folder else None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.after_step = after_step
        # lr_scales {name prefix: factor}: parameters under that prefix train at factor * lr.
        groups: dict[float, list[nn.Parameter]] = {}
        for name, p in module.named_parameters():
            if p.requires_grad:
                scale = next((f for prefix, f in (lr_scales or {}).items() if name.startswith(prefix)), 1.0)
                groups.setdefault(scale, []).append(p)
        self.params = [p for group in groups.values() for p in group]
        self.optimizer = torch.optim.AdamW([{"params": ps, "lr_scale": scale} for scale, ps in groups.items()],
                                           lr=config.lr, weight_decay=config.weight_decay)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.history: list[float] = []
        if self.folder and (self.folder / "checkpoint.pt").exists():
            self.load(self.folder / "checkpoint.pt")

    def lr_at(self, step: int) -> float:
        config = self.config
        if step < config.warmup:
            return config.lr * (step + 1) / config.warmup
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return config.lr * (config.final_lr_fraction + (1 - config.final_lr_fraction) * cosine)

    def train_step(self) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step) * group["lr_scale"]
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.generator)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        if self.after_step:
            self.after_step()
        self.step += 1
        value = float(loss.detach())
        self.history.append(value)
        return value

    def run(self, until: Optional[int] = None) -> list[float]:
        until = self.config.steps if until is None else min(until, self.config.steps)
        started, window = time.perf_counter(), []
        while self.step < until:
            window.append(self.train_step())
            if self.step % self.config.log_every == 0 or self.step == until:
                record = {"step": self.step, "loss": sum(window) / len(window), "lr": self.lr_at(self.step - 1),
                          "seconds": round(time.perf_counter() - started, 1)}
                log.info("step %d loss %.4f (%.0f s)", record["step"], record["loss"], record["seconds"])
                if self.folder:
                    with open(self.folder / "log.jsonl", "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                window = []
            if self.folder and (self.step % self.config.checkpoint_every == 0 or self.step == until):
                self.save(self.folder / "checkpoint.pt")
        return self.history

    def state(self) -> dict:
        return {"step": self.step, "module": {k: v for k, v in self.module.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state()}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        torch.save(self.state(), partial)
        os.replace(partial, path)   # never a half-written checkpoint

    def load(self, path: Path) -> None:
        state = torch.load(path, weights_only=True)
        self.module.load_state_dict(state["module"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        log.info("resumed from %s at step %d", path, self.step)
