"""The set of Tensor LoRAs of a LumiX checkpoint, laid out so its state dict IS the file.

`state_dict()` gives exactly `double_blocks.{i}.processor.{kv,proj}_tt_lora.G{1,2,3}` and
`single_blocks.{i}...`, so loading is a strict `load_state_dict` and saving (training)
writes the published format.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelMismatchError
from .qba import BlockAdapters
from .tensor_lora import TensorLoRA

DOUBLE, SINGLE = "double_blocks", "single_blocks"


class LumiXProcessor(nn.Module):
    """The two adapters of one block: k/v delta (D -> 2D) and output delta (D -> D)."""

    def __init__(self, hidden_size: int, num_maps: int, rank: int, alpha: float | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.kv_tt_lora = TensorLoRA(num_maps, hidden_size, 2 * hidden_size, rank, alpha, device=device)
        self.proj_tt_lora = TensorLoRA(num_maps, hidden_size, hidden_size, rank, alpha, device=device)


class _Block(nn.Module):
    def __init__(self, processor: LumiXProcessor) -> None:
        super().__init__()
        self.processor = processor


class LumiXAdapters(nn.Module):
    """All adapters of one checkpoint. Shared, never copied: see `__deepcopy__`."""

    def __init__(self, hidden_size: int, num_maps: int, rank: int, double_ids: list[int], single_ids: list[int],
                 alpha: float | None = None, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.hidden_size, self.num_maps, self.rank, self.alpha = hidden_size, num_maps, rank, alpha
        self.double_blocks = nn.ModuleDict(
            {str(i): _Block(LumiXProcessor(hidden_size, num_maps, rank, alpha, device)) for i in sorted(double_ids)})
        self.single_blocks = nn.ModuleDict(
            {str(i): _Block(LumiXProcessor(hidden_size, num_maps, rank, alpha, device)) for i in sorted(single_ids)})
        self.source = "<in memory>"

    def __deepcopy__(self, memo: dict) -> "LumiXAdapters":
        # ComfyUI deep-copies model_options on every MODEL clone; 133M parameters must exist
        # once per loaded file, not once per clone. Adapters are read-only during inference.
        return self

    def copy(self) -> "LumiXAdapters":
        """A real, independent copy (for training or tests)."""
        dtype = next(self.parameters()).dtype
        twin = LumiXAdapters(self.hidden_size, self.num_maps, self.rank, self.double_ids, self.single_ids,
                             self.alpha).to(dtype)
        twin.load_state_dict(self.state_dict())
        twin.source = self.source
        return twin

    @property
    def double_ids(self) -> list[int]:
        return sorted(int(i) for i in self.double_blocks)

    @property
    def single_ids(self) -> list[int]:
        return sorted(int(i) for i in self.single_blocks)

    def processor(self, kind: str, index: int) -> LumiXProcessor | None:
        blocks = self.double_blocks if kind == DOUBLE else self.single_blocks
        holder = blocks[str(index)] if str(index) in blocks else None
        return None if holder is None else holder.processor

    def block(self, kind: str, index: int, strength: float = 1.0, qba: bool = True) -> BlockAdapters:
        processor = self.processor(kind, index)
        if processor is None:
            return BlockAdapters(None, None, strength, qba)
        return BlockAdapters(processor.kv_tt_lora, processor.proj_tt_lora, strength, qba)

    def release_cache(self) -> None:
        for module in self.modules():
            if isinstance(module, TensorLoRA):
                module.release_cache()

    def check_fits(self, hidden_size: int, num_heads: int, num_double: int, num_single: int,
                   model_name: str = "the model") -> None:
        """Refuse a model this checkpoint does not fit, naming both sides."""
        if hidden_size != self.hidden_size:
            raise ModelMismatchError(
                f"width mismatch: the LumiX checkpoint {self.source} has hidden size {self.hidden_size}, "
                f"{model_name} has hidden size {hidden_size}. Use the checkpoint made for this model "
                f"(the published lumix.safetensors fits FLUX.1-dev, hidden size 3072).")
        if (2 * hidden_size) % num_heads:
            raise ModelMismatchError(f"{model_name} has {num_heads} heads, which do not divide its width {hidden_size}")
        for kind, ids, count in ((DOUBLE, self.double_ids, num_double), (SINGLE, self.single_ids, num_single)):
            beyond = [i for i in ids if i >= count]
            if beyond:
                raise ModelMismatchError(
                    f"block count mismatch: the LumiX checkpoint {self.source} has adapters for {kind} "
                    f"{beyond[:5]}, but {model_name} has only {count} {kind} (0..{count - 1}). "
                    f"The published checkpoint needs FLUX.1-dev's 19 double and 38 single blocks.")

    def missing_blocks(self, num_double: int, num_single: int) -> dict[str, list[int]]:
        """Blocks of a model with num_double / num_single blocks that this checkpoint has no
        adapters for: {"double_blocks": [...], "single_blocks": [...]}."""
        return {DOUBLE: [i for i in range(num_double) if str(i) not in self.double_blocks],
                SINGLE: [i for i in range(num_single) if str(i) not in self.single_blocks]}

    def coverage_report(self, num_double: int, num_single: int, qba: bool = True) -> str:
        """One sentence on which blocks run without Tensor LoRA adapters ("holes"), and what
        still applies there. A checkpoint with holes is valid: the authors' loader attaches
        adapters only where the file has them, and the query broadcast, which has no
        weights, acts in every block."""
        missing = self.missing_blocks(num_double, num_single)
        holes = [f"{kind} {_ranges(ids)}" for kind, ids in missing.items() if ids]
        if not holes:
            return (f"{self.source}: adapters on all {num_double} double and {num_single} single blocks.")
        there = ("Query-Broadcast Attention still applies there (it has no weights), so those blocks run QBA "
                 "without a Tensor LoRA delta" if qba else
                 "QBA is off, so those blocks run as plain FLUX")
        return (f"{self.source} has no adapters for {' and '.join(holes)} "
                f"({sum(len(ids) for ids in missing.values())} of {num_double + num_single} blocks); {there}.")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def describe(self) -> str:
        return (f"LumiX adapters: {self.num_maps} maps, rank {self.rank}, hidden {self.hidden_size}, "
                f"{len(self.double_blocks)} double + {len(self.single_blocks)} single blocks, "
                f"{self.num_parameters() / 1e6:.1f}M parameters")


def new_adapters(hidden_size: int, num_double: int, num_single: int, rank: int = 8, num_maps: int = 5,
                 alpha: float | None = None) -> LumiXAdapters:
    """Freshly initialised adapters on every block (a no-op until trained: G3 = 0)."""
    return LumiXAdapters(hidden_size, num_maps, rank, list(range(num_double)), list(range(num_single)), alpha)


def _ranges(ids: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)
