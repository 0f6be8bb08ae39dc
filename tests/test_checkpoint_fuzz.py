"""Fuzzing the checkpoint loader: byte flips and truncations of a valid tiny file.

Fixed seed, 2,400 cases, about 10 s on the 2-core CI machine. Every case must end in one of:

- `CheckpointError` (a clean, documented error), or
- a correct load. The rule for "correct": the loaded tensors are exactly what the ORIGINAL
  header says the mutated file holds, i.e. every tensor equals the mutated file's bytes at
  the original offsets, in the original dtype and shape, and all values are finite. So a
  load may differ from the original only in elements whose bytes were flipped (flips in
  tensor data that still decode to finite numbers: a corrupted but valid-looking file,
  which no format without checksums can detect), and a flip in the header may only be
  accepted where it does not change how the file is read (e.g. a padding space turned into
  another whitespace, a metadata value).

Nothing else is allowed: no other exception type, no crash, no case over 2 s. The counts
per outcome go into tests/RELIABILITY.md (run with `-s` to print them).
"""
import json
import random
import struct
import time
from collections import Counter

import numpy as np
import torch
from safetensors.torch import save_file

from lumix_engine.errors import CheckpointError
from lumix_engine.method.checkpoint import load_adapters
from lumix_engine.tiny_random import random_adapters
from tests.factories import TEST_FLUX

SEED = 20260507
CASES = 2400
MAX_CASE_S = 2.0
NUMPY_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def expected_tensors(data: bytes, header: dict, header_end: int) -> dict[str, torch.Tensor]:
    """The tensors the original header describes, read from `data` (possibly mutated)."""
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        array = np.frombuffer(data[header_end + start:header_end + end], dtype=NUMPY_DTYPES[entry["dtype"]])
        out[name] = torch.from_numpy(array.copy()).reshape(entry["shape"])
    return out


def mutate(rng: random.Random, data: bytes, header_end: int) -> tuple[str, bytes]:
    roll = rng.random()
    buffer = bytearray(data)
    if roll < 0.25:   # truncation anywhere (header, its length prefix, or tensor data)
        keep = rng.randrange(0, len(data))
        return "truncate", bytes(buffer[:keep])
    if roll < 0.30:   # garbage appended
        return "append", bytes(buffer) + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if roll < 0.65:   # one flip in the length prefix or the JSON header
        region, low, high, flips = "header-flip", 0, header_end, 1
    elif roll < 0.90:  # 1-4 flips in tensor data
        region, low, high, flips = "data-flip", header_end, len(data), rng.randrange(1, 5)
    else:              # 2-8 flips anywhere
        region, low, high, flips = "multi-flip", 0, len(data), rng.randrange(2, 9)
    for _ in range(flips):
        position = rng.randrange(low, high)
        buffer[position] ^= rng.randrange(1, 256)
    return region, bytes(buffer)


def test_fuzzed_checkpoints_give_a_clean_error_or_a_correct_load(tmp_path):
    # One metadata entry: safetensors writes a metadata map in hash order, which changes from
    # process to process; with one entry the file, and so every count below, is reproducible.
    original = tmp_path / "lumix.safetensors"
    state = random_adapters(TEST_FLUX, rank=2, double_ids=[0], single_ids=[0]).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(original), metadata={"format": "pt"})
    data = original.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header_end = 8 + length
    header = json.loads(data[8:header_end])
    reference = expected_tensors(data, header, header_end)
    assert {k: v for k, v in load_adapters(original).state_dict().items()}.keys() == reference.keys()

    rng = random.Random(SEED)
    path = tmp_path / "fuzzed.safetensors"
    outcomes, failures, slowest = Counter(), [], (0.0, "")
    started = time.monotonic()
    for case in range(CASES):
        kind, mutated = mutate(rng, data, header_end)
        path.write_bytes(mutated)
        t0 = time.monotonic()
        try:
            adapters = load_adapters(path)
        except CheckpointError as error:
            message = str(error).replace(path.name, "<file>")
            outcomes[(kind, "CheckpointError: " + _category(message))] += 1
        except BaseException as error:  # noqa: BLE001 -- anything else is the finding
            failures.append(f"case {case} ({kind}): {type(error).__name__}: {error}")
        else:
            state = adapters.state_dict()
            want = expected_tensors(mutated, header, header_end)
            if state.keys() != want.keys() or not all(
                    torch.equal(state[k], want[k]) and torch.isfinite(state[k]).all() for k in want):
                failures.append(f"case {case} ({kind}): loaded tensors differ from the file's bytes")
            same = all(torch.equal(state[k], reference[k]) for k in reference)
            outcomes[(kind, "loaded, identical" if same else "loaded, finite values changed by the flips")] += 1
        seconds = time.monotonic() - t0
        slowest = max(slowest, (seconds, f"case {case} ({kind})"))
    total = time.monotonic() - started

    print(f"\nfuzz: {CASES} cases in {total:.1f} s, slowest {slowest[0] * 1000:.0f} ms ({slowest[1]}), "
          f"file {len(data)} bytes (header {header_end})")
    for (kind, outcome), count in sorted(outcomes.items()):
        print(f"  {kind:12s} {outcome}: {count}")
    assert not failures, "\n".join(failures[:20])
    assert slowest[0] < MAX_CASE_S, slowest
    assert sum(outcomes.values()) == CASES
    # The fuzzer reached every outcome it is meant to reach.
    seen = {outcome for _, outcome in outcomes}
    assert "loaded, finite values changed by the flips" in seen and "CheckpointError: NaN or Inf" in seen
    assert any(o.startswith("CheckpointError: corrupt") for o in seen)
    assert any(o.startswith("CheckpointError: truncated") for o in seen)


def _category(message: str) -> str:
    """A short name for each CheckpointError message, for the counts."""
    checks = [("NaN or Inf", "NaN or Inf"), ("is empty", "empty file"),
              ("corrupt or truncated safetensors header", "corrupt header length"), ("truncated", "truncated"),
              ("corrupt safetensors header", "corrupt header (safetensors)"),
              ("could not be read as safetensors", "rejected by safetensors"),
              ("is a pickle file", "looks like a pickle"),
              ("is not a LumiX checkpoint", "keys do not match"), ("has dtype", "non-float dtype"),
              ("has shape", "wrong shape"), ("trained for", "wrong map count"), ("is missing", "missing tensor"),
              ("has no", "half a block"), ("holds no tensors", "no tensors")]
    for needle, name in checks:
        if needle in message:
            return name
    return "other: " + message[:80]
