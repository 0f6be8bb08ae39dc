"""Reading and writing LumiX checkpoints: safetensors only, validated before use.

Spec (Checkpoint file): keys `double_blocks.{i}.processor.{kv,proj}_tt_lora.G{1,2,3}` and
`single_blocks.{i}...`, optionally under one prefix (`diffusion_model.`,
`model.diffusion_model.`, `transformer.`). M, R and D follow from the shapes. Pickle files
are refused, whatever their name: loading one can run arbitrary code.

The header is read by safetensors itself (`safe_open`: keys, and each tensor's shape and
dtype through `get_slice`), which checks the JSON, the offsets and the file's length. Kept
here, because safe_open cannot do it: (1) refusing a pickle (by extension or by its first
bytes) before any parser sees the file, and saying why; (2) naming the common failures in
words a user can act on (not found, a directory, an empty or truncated download, a header
length that does not fit the file) instead of the parser's terse message, which is still
quoted for everything else.
"""
from __future__ import annotations

import os
import re
import struct
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..modalities import NUM_MAPS
from .adapters import DOUBLE, SINGLE, LumiXAdapters

ACCEPTED_PREFIXES = ("", "diffusion_model.", "model.diffusion_model.", "transformer.")
KEY_PATTERN = re.compile(r"^(double_blocks|single_blocks)\.(\d+)\.processor\.(kv|proj)_tt_lora\.G([123])$")
PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle"}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint holds, read from its header without loading tensors."""
    num_maps: int
    rank: int
    hidden_size: int
    double_ids: tuple[int, ...]
    single_ids: tuple[int, ...]
    prefix: str


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors header: its dtype name ("F32", "BF16", ...) and shape."""
    dtype: str
    shape: list[int]


def _refuse_pickle(path: Path, head: bytes) -> None:
    looks_pickled = head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or head[:4] == b"PK\x03\x04"
    if path.suffix.lower() in PICKLE_SUFFIXES or looks_pickled:
        raise CheckpointError(
            f"{path.name} is a pickle file ({'by its content' if looks_pickled else 'by its extension'}); "
            f"LumiX never unpickles files, because loading one can run arbitrary code. Use the published "
            f"lumix.safetensors, or convert the file to safetensors in a trusted environment.")


def _check_file(path: Path) -> None:
    """Clear errors for what a user can fix before safetensors looks at the file."""
    if not path.exists():
        raise CheckpointError(f"LumiX checkpoint not found: {path}. Put lumix.safetensors in the models/lumix folder "
                              f"(or give the full path).")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file; give the path of lumix.safetensors.")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
    _refuse_pickle(path, head)
    if size == 0:
        raise CheckpointError(f"{path.name} is empty (0 bytes): the download failed or was interrupted. "
                              f"Download lumix.safetensors again.")
    if len(head) < 8:
        raise CheckpointError(f"{path.name} is truncated ({size} bytes): not a safetensors file. Download it again.")
    (header_len,) = struct.unpack("<Q", head)
    if header_len == 0 or header_len > size - 8:
        raise CheckpointError(
            f"{path.name} has a corrupt or truncated safetensors header (declares {header_len} header bytes in "
            f"a {size}-byte file). Download lumix.safetensors again.")


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    detail = str(error)
    # safetensors' wording for "the header's tensors do not cover the data exactly" (0.4:
    # MetadataIncompleteBuffer; 0.5+: "incomplete metadata, file not fully covered"): the
    # usual cause is an interrupted download.
    if "incomplete" in detail.lower():
        return CheckpointError(f"{path.name} is truncated or has extra bytes: its data does not match what its "
                               f"header describes (safetensors: {detail}). Download lumix.safetensors again.")
    return CheckpointError(f"{path.name} has a corrupt safetensors header (safetensors: {detail}). "
                           f"Download lumix.safetensors again.")


def read_header(path: str | os.PathLike) -> dict[str, TensorEntry]:
    """{tensor name: TensorEntry} of a safetensors file, without loading tensors; clear errors."""
    path = Path(path)
    _check_file(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = {}
            for name in handle.keys():
                tensor = handle.get_slice(name)
                header[name] = TensorEntry(tensor.get_dtype(), list(tensor.get_shape()))
    except SafetensorError as error:
        raise _unreadable(path, error) from None
    for name, entry in header.items():
        if entry.dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{path.name}: tensor {name!r} has dtype {entry.dtype}; LumiX adapters are floating "
                                  f"point ({', '.join(sorted(FLOAT_DTYPES))}).")
    return header


def _strip_prefix(names: list[str], path: Path) -> str:
    for prefix in sorted(ACCEPTED_PREFIXES, key=len, reverse=True):
        if names and all(n.startswith(prefix) and KEY_PATTERN.match(n[len(prefix):]) for n in names):
            return prefix
    best = max(ACCEPTED_PREFIXES, key=lambda p: sum(n.startswith(p) and bool(KEY_PATTERN.match(n[len(p):]))
                                                    for n in names))
    bad = [n for n in names if not (n.startswith(best) and KEY_PATTERN.match(n[len(best):]))]
    if not names:
        raise CheckpointError(f"{path.name} holds no tensors: it is not a LumiX checkpoint.")
    raise CheckpointError(
        f"{path.name} is not a LumiX checkpoint: {len(bad)} of {len(names)} keys do not match "
        f"'double_blocks.N.processor.(kv|proj)_tt_lora.G(1|2|3)' / 'single_blocks.N...' (optionally under "
        f"{', '.join(repr(p) for p in ACCEPTED_PREFIXES if p)}). First keys that did not match: {bad[:5]}. "
        f"A FLUX model or an ordinary LoRA goes into a different loader.")


def inspect_checkpoint(path: str | os.PathLike) -> CheckpointInfo:
    """Validate names and shapes from the header alone and infer M, R, D and the blocks."""
    path = Path(path)
    header = read_header(path)
    names = list(header)
    prefix = _strip_prefix(names, path)
    shapes: dict[tuple[str, int, str], dict[str, list[int]]] = {}
    for name in names:
        kind, index, which, g = KEY_PATTERN.match(name[len(prefix):]).groups()
        shapes.setdefault((kind, int(index), which), {})[f"G{g}"] = header[name].shape

    first = min(shapes)
    first_g2 = shapes[first].get("G2")
    if first_g2 is None or len(first_g2) != 4:
        raise CheckpointError(f"{path.name}: {_key(prefix, first, 'G2')} is missing or not 4-D [M, D, R, R].")
    num_maps, hidden, rank = first_g2[0], first_g2[1], first_g2[2]
    if num_maps != NUM_MAPS:
        raise CheckpointError(
            f"{path.name} was trained for {num_maps} maps per scene, LumiX uses {NUM_MAPS} "
            f"(albedo, irradiance, color, depth, normal). Use the published lumix.safetensors.")
    for key, tensors in sorted(shapes.items()):
        kind, index, which = key
        missing = [g for g in ("G1", "G2", "G3") if g not in tensors]
        if missing:
            raise CheckpointError(f"{path.name}: {kind}.{index}.processor.{which}_tt_lora is missing "
                                  f"{', '.join(missing)}; the file is incomplete. Download it again.")
        d_out = 2 * hidden if which == "kv" else hidden
        expected = {"G1": [num_maps, num_maps, rank], "G2": [num_maps, hidden, rank, rank],
                    "G3": [num_maps, d_out, rank]}
        for g, shape in expected.items():
            if tensors[g] != shape:
                got = tensors[g]
                if len(got) == len(shape) and g == "G2" and got[1] == hidden and got[2] == got[3]:
                    reason = f"rank {got[2]} differs from rank {rank} of the first block; all blocks must share one rank"
                elif g == "G2" and len(got) == 4 and got[1] != hidden:
                    reason = f"width {got[1]} differs from width {hidden} of the first block"
                elif len(got) >= 1 and got[0] != num_maps:
                    reason = f"{got[0]} maps, the first block has {num_maps}"
                else:
                    reason = "wrong shape"
                raise CheckpointError(f"{path.name}: {_key(prefix, key, g)} has shape {got}, expected {shape} "
                                      f"({reason}). The file is not a consistent LumiX checkpoint.")
    pairs = {}
    for kind, index, which in shapes:
        pairs.setdefault((kind, index), set()).add(which)
    for (kind, index), present in sorted(pairs.items()):
        if present != {"kv", "proj"}:
            lacking = ({"kv", "proj"} - present).pop()
            raise CheckpointError(f"{path.name}: {kind}.{index} has no {lacking}_tt_lora; every adapted block needs "
                                  f"both kv_tt_lora and proj_tt_lora. The file is incomplete.")
    double_ids = tuple(sorted(i for k, i in pairs if k == DOUBLE))
    single_ids = tuple(sorted(i for k, i in pairs if k == SINGLE))
    return CheckpointInfo(num_maps, rank, hidden, double_ids, single_ids, prefix)


def _key(prefix: str, key: tuple[str, int, str], g: str) -> str:
    kind, index, which = key
    return f"{prefix}{kind}.{index}.processor.{which}_tt_lora.{g}"


def load_adapters(path: str | os.PathLike, alpha: float | None = None, check_finite: bool = True) -> LumiXAdapters:
    """Load a LumiX checkpoint (CPU, file dtype) after validating it; never unpickles."""
    path = Path(path)
    info = inspect_checkpoint(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for corrupt data
        raise CheckpointError(f"{path.name} could not be read as safetensors ({exc}). Download it again.") from None
    state = {name[len(info.prefix):]: tensor for name, tensor in tensors.items()}
    if check_finite:
        for name, tensor in state.items():
            if not torch.isfinite(tensor).all():
                bad = int((~torch.isfinite(tensor)).sum())
                raise CheckpointError(f"{path.name}: tensor {name} holds {bad} NaN or Inf values; the file is "
                                      f"corrupt or was saved from a diverged training run. Use another file.")
    adapters = LumiXAdapters(info.hidden_size, info.num_maps, info.rank, list(info.double_ids),
                             list(info.single_ids), alpha, device="meta")
    adapters.load_state_dict(state, strict=True, assign=True)
    adapters.requires_grad_(False)
    adapters.source = path.name
    return adapters


def save_adapters(adapters: LumiXAdapters, path: str | os.PathLike, dtype: torch.dtype | None = None) -> None:
    """Write adapters in the published key layout (no prefix)."""
    state = {k: (v.to(dtype) if dtype else v).detach().contiguous().cpu() for k, v in adapters.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt", "lumix_rank": str(adapters.rank),
                                          "lumix_maps": str(adapters.num_maps)})


class AdapterCache:
    """One loaded LumiXAdapters per file (path, size, mtime), shared by every user.

    Held weakly: once no patched model refers to the adapters, they are freed. A changed
    file (new size or mtime) is loaded again.
    """

    def __init__(self) -> None:
        self._entries: "weakref.WeakValueDictionary[tuple, LumiXAdapters]" = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def load(self, path: str | os.PathLike) -> LumiXAdapters:
        path = Path(path)
        try:
            stat = path.stat()
        except OSError:
            return load_adapters(path)  # raises the documented "not found" error
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._entries.get(key)
            if cached is None:
                cached = load_adapters(path)
                self._entries[key] = cached
            return cached

    def __len__(self) -> int:
        return len(self._entries)
