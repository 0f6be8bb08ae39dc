"""Deterministic cost of a forward: aten ops, fresh storage, weight copies and FLOPs.

Wall-clock time on a shared machine moves by a few per cent from run to run, so a 1-2 %
regression (an extra weight copy, an out-of-place add on full activations) is invisible in
timings. These counts are exact for a given shape and code path, so a test can pin them.

Under a TorchDispatchMode every aten op that runs is seen with its inputs and outputs:

- ops: how many aten ops ran;
- fresh bytes: the storage of outputs whose untyped storage is none of the op's inputs'
  (in-place ops and views allocate nothing; `out=` tensors count as inputs);
- weight copies: fresh outputs with exactly as many elements as a 2-D parameter the op read
  (a cast, clone or contiguous copy of a weight; reading a view of the weight counts);
- FLOPs: torch.utils.flop_counter.FlopCounterMode's count (matmuls, convolutions, attention).

`section(name)` attributes everything inside it to `name` as well (one block call, say), so
per-block counts come out of the same run as the totals. Works on real and meta tensors, so
full-width FLUX shapes can be counted on the meta device without computing anything.
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

MB = 1e6
# Ops that only describe existing storage or ask about it; never a cost.
_FREE = {"aten::detach", "aten::lift_fresh", "aten::_to_copy.no_alloc", "prim::device"}


@dataclass
class Cost:
    """What one region of code cost; `ops_by_name` says which aten ops made up `ops`."""
    ops: int = 0
    fresh_bytes: int = 0
    weight_copies: int = 0
    flops: int = 0
    calls: int = 0
    ops_by_name: Counter = field(default_factory=Counter)
    fresh_by_name: Counter = field(default_factory=Counter)
    copied: list = field(default_factory=list)

    @property
    def fresh_mb(self) -> float:
        return self.fresh_bytes / MB

    def summary(self) -> dict[str, Any]:
        return {"ops": self.ops, "fresh_mb": round(self.fresh_mb, 3), "weight_copies": self.weight_copies,
                "gflop": round(self.flops / 1e9, 4), "calls": self.calls}

    def per_call(self) -> dict[str, Any]:
        """The summary divided by the number of calls the section saw (one block call, say)."""
        calls = max(self.calls, 1)
        return {"ops": self.ops / calls, "fresh_mb": round(self.fresh_mb / calls, 3),
                "weight_copies": self.weight_copies / calls, "gflop": round(self.flops / 1e9 / calls, 4)}


def _storage_key(t: torch.Tensor) -> Optional[StorageWeakRef]:
    try:
        return StorageWeakRef(t.untyped_storage())
    except (NotImplementedError, RuntimeError):  # tensor subclasses without a storage
        return None


class _OpCounter(TorchDispatchMode):
    def __init__(self, counter: "CostCounter") -> None:
        super().__init__()
        self.counter = counter

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.counter._record(func, tree_leaves((args, kwargs)), tree_leaves(out))
        return out


class CostCounter:
    """`with CostCounter(parameters) as cost: model(...)`; then `cost.total` and `cost.sections`.

    `parameters`: the tensors whose copies count as weight copies (the model's and the
    adapters' parameters). Only 2-D ones are watched: a Linear's weight, not its bias or a
    norm scale, so "one copy per Linear" under a manual cast reads as one.
    """

    def __init__(self, parameters: Iterable[torch.Tensor] = ()) -> None:
        self._weights: dict[StorageWeakRef, int] = {}
        for p in parameters:
            key = _storage_key(p) if isinstance(p, torch.Tensor) and p.ndim == 2 else None
            if key is not None:
                self._weights[key] = p.numel()
        self.total = Cost()
        self.sections: dict[str, Cost] = {}
        self._open: list[Cost] = []
        self._flops: Optional[FlopCounterMode] = None
        self._modes: list = []

    def __enter__(self) -> "CostCounter":
        self._flops = FlopCounterMode(display=False)
        self._flops.__enter__()
        mode = _OpCounter(self)
        mode.__enter__()
        self._modes = [mode]
        self.total.calls += 1
        return self

    def __exit__(self, *exc) -> None:
        self._modes.pop().__exit__(*exc)
        self._flops.__exit__(*exc)

    @contextmanager
    def section(self, name: str) -> Iterator[Cost]:
        """Attribute what runs inside to `name` too; sections may nest and repeat (calls add up)."""
        cost = self.sections.setdefault(name, Cost())
        cost.calls += 1
        flops_before = self._flops.get_total_flops() if self._flops is not None else 0
        self._open.append(cost)
        try:
            yield cost
        finally:
            self._open.remove(cost)
            if self._flops is not None:
                cost.flops += self._flops.get_total_flops() - flops_before

    def _record(self, func, inputs: list, outputs: list) -> None:
        name = func.name()
        if name in _FREE:
            return
        input_keys = {_storage_key(t) for t in inputs if isinstance(t, torch.Tensor)}
        read_sizes = {self._weights[k] for k in input_keys if k in self._weights}
        fresh, copies, seen = 0, [], set()
        for t in outputs:
            if not isinstance(t, torch.Tensor):
                continue
            key = _storage_key(t)
            if key is None or key in input_keys or key in seen:
                continue
            seen.add(key)
            fresh += t.untyped_storage().nbytes()
            if t.numel() in read_sizes:
                copies.append(f"{name} {tuple(t.shape)} {t.dtype}")
        for cost in (self.total, *self._open):
            cost.ops += 1
            cost.ops_by_name[name] += 1
            cost.fresh_bytes += fresh
            cost.fresh_by_name[name] += fresh
            cost.weight_copies += len(copies)
            cost.copied.extend(copies)

    def finish(self) -> Cost:
        """The total, FLOPs filled in (call after the `with`)."""
        if self._flops is not None:
            self.total.flops = self._flops.get_total_flops()
        return self.total


def count_cost(fn, parameters: Iterable[torch.Tensor] = (), sections: Optional[dict[str, Any]] = None
               ) -> tuple[Any, CostCounter]:
    """Run `fn()` under a CostCounter; returns (its result, the counter with totals filled in)."""
    counter = CostCounter(parameters)
    with counter:
        result = fn()
    counter.finish()
    return result, counter


def section_hooks(counter: CostCounter, modules: dict[str, torch.nn.Module]) -> list:
    """Forward pre/post hooks that open `counter.section(name)` around each module's calls.

    Returns the hook handles (remove them after counting)."""
    handles = []
    for name, module in modules.items():
        state: dict[str, Any] = {}

        def pre(_module, _args, name=name, state=state):
            state.setdefault("stack", []).append(counter.section(name))
            state["stack"][-1].__enter__()

        def post(_module, _args, _out, state=state):
            state["stack"].pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return handles


class SectionCall:
    """A callable wrapped so that each call is a counter section (for block patches, which are
    not modules): `SectionCall(counter, "double_block", patch)(args, extra)`."""

    def __init__(self, counter: CostCounter, name: str, fn) -> None:
        self.counter, self.name, self.fn = counter, name, fn

    def __call__(self, *args, **kwargs):
        with self.counter.section(self.name):
            return self.fn(*args, **kwargs)


def grown(measured: dict[str, float], budget: dict[str, float]) -> list[str]:
    """The entries of `measured` above `budget`, each as 'name: measured > budget'."""
    return [f"{name}: {measured[name]} > budget {limit}" for name, limit in budget.items()
            if measured.get(name, 0) > limit]


def top_ops(cost: Cost, count: int = 8) -> str:
    """The ops that allocated most and the most frequent ops, for a failure message."""
    fresh = ", ".join(f"{name} {value / MB:.2f} MB" for name, value in cost.fresh_by_name.most_common(count) if value)
    ops = ", ".join(f"{name} x{value}" for name, value in cost.ops_by_name.most_common(count))
    return f"fresh storage by op: {fresh}\nops by name: {ops}"


def guard_problems(lumix: dict[str, float], unpatched: dict[str, float], budget: dict[str, float],
                   max_flop_ratio: Optional[float] = None, max_fresh_ratio: Optional[float] = None,
                   where: str = "forward") -> list[str]:
    """What is wrong with a patched forward's counts (`Cost.summary()` or `per_call()` dicts):
    weight copies other than the unpatched forward's, ops or fresh MB above the pinned
    `budget` ({"ops": n, "fresh_mb": mb}), FLOPs or fresh storage above the given ratios to
    the unpatched forward. Each message says what grew, by how much, and against what."""
    problems = []
    if lumix["weight_copies"] != unpatched["weight_copies"]:
        problems.append(f"{where}: {lumix['weight_copies']} weight copies, the unpatched forward makes "
                        f"{unpatched['weight_copies']} (a weight is cast, cloned or made contiguous once more)")
    for key, unit in (("ops", "aten ops"), ("fresh_mb", "MB of fresh storage")):
        if key in budget and lumix[key] > budget[key] + 1e-6:
            problems.append(f"{where}: {lumix[key]:g} {unit}, budget {budget[key]:g} (+{lumix[key] - budget[key]:g}; "
                            f"unpatched {unpatched[key]:g})")
    if max_flop_ratio is not None and lumix["gflop"] > max_flop_ratio * unpatched["gflop"]:
        problems.append(f"{where}: FLOP ratio {lumix['gflop'] / unpatched['gflop']:.4f} > {max_flop_ratio} "
                        f"({lumix['gflop']} / {unpatched['gflop']} GFLOP)")
    if max_fresh_ratio is not None and lumix["fresh_mb"] > max_fresh_ratio * unpatched["fresh_mb"]:
        problems.append(f"{where}: fresh storage ratio {lumix['fresh_mb'] / unpatched['fresh_mb']:.4f} > "
                        f"{max_fresh_ratio} ({lumix['fresh_mb']} / {unpatched['fresh_mb']} MB)")
    return problems
