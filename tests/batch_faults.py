"""`python -m tests.batch_faults MODE N -- <batch arguments>`: run `python -m lumix_engine batch`
with a fault at the Nth write of this process (map files and manifest lines counted
together), to test resuming. Modes:

- exit-before: the process dies (os._exit, no clean-up) just before the Nth write;
- exit-mid: it dies halfway through the Nth write, leaving a half-written temporary file
  (or a manifest line cut in the middle);
- exit-after: it dies just after the Nth write;
- enospc: the Nth write fails with "No space left on device" after writing half its bytes;
- edit-after:PATH: just before the Nth write the photo at PATH is overwritten with other
  pixels (an edit while the run works on it); the write is done, then the process dies.

Only the two writing functions of lumix_engine.apps.batch.manifest are wrapped; everything else is
the real command.
"""
from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lumix_engine.apps.batch import manifest
from lumix_engine.apps.cli import main
from lumix_engine.image_io import atomic_path

KILLED = 70


def install(mode: str, n: int) -> None:
    count = 0

    def due() -> bool:
        nonlocal count
        count += 1
        return count == n

    def fail() -> None:
        if mode == "exit-mid":
            os._exit(KILLED)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def half_file(path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as partial:
            partial.write_bytes(data[:len(data) // 2])
            fail()

    def half_line(path, line: str) -> None:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line[:len(line) // 2])
        fail()

    def edit(path: Path) -> None:
        with Image.open(path) as opened:
            size, fmt = opened.size, opened.format
        pixels = np.random.default_rng(1234).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, format=fmt)

    def faulty(real, half):
        def write(path, data):
            if not due():
                return real(path, data)
            if mode == "exit-before":
                os._exit(KILLED)
            if mode.startswith("edit-after:"):
                edit(Path(mode.split(":", 1)[1]))
            if mode in ("exit-mid", "enospc"):
                half(path, data)
            real(path, data)
            os._exit(KILLED)
        return write

    manifest.write_file = faulty(manifest.write_file, half_file)
    manifest.append_line = faulty(manifest.append_line, half_line)


if __name__ == "__main__":
    mode, n, separator, *argv = sys.argv[1:]
    assert separator == "--" and (mode in ("exit-before", "exit-mid", "exit-after", "enospc")
                                  or mode.startswith("edit-after:")), sys.argv
    torch.set_num_threads(2)   # as tests/conftest.py: equal thread counts give bit-equal results
    install(mode, int(n))
    sys.exit(main(argv))
