"""`python -m tests.batch_faults MODE N -- <batch arguments>`: run `python -m lumix_engine batch`
with a fault at the Nth write of this process (map files and manifest lines counted
together), to test resuming. Modes:

- exit-before: the process dies (os._exit, no clean-up) just before the Nth write;
- exit-mid: it dies halfway through the Nth write, leaving a half-written temporary file
  (or a manifest line cut in the middle);
- exit-after: it dies just after the Nth write;
- enospc: the Nth write fails with "No space left on device" after writing half its bytes.

Only the two writing functions of lumix_engine.apps.batch are wrapped; everything else is
the real command.
"""
from __future__ import annotations

import errno
import os
import sys

import torch

from lumix_engine.apps import batch
from lumix_engine.apps.cli import main
from lumix_engine.image_io import atomic_path

KILLED = 70


def install(mode: str, n: int) -> None:
    count = 0
    real_write, real_append = batch.write_file, batch.append_line

    def due() -> bool:
        nonlocal count
        count += 1
        return count == n

    def fail_halfway(write_half) -> None:
        write_half()
        if mode == "exit-mid":
            os._exit(KILLED)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write_file(path, data: bytes) -> None:
        if not due():
            return real_write(path, data)
        if mode == "exit-before":
            os._exit(KILLED)
        if mode in ("exit-mid", "enospc"):
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as partial:
                fail_halfway(lambda: partial.write_bytes(data[:len(data) // 2]))
        real_write(path, data)
        os._exit(KILLED)

    def append_line(path, line: str) -> None:
        if not due():
            return real_append(path, line)
        if mode == "exit-before":
            os._exit(KILLED)
        if mode in ("exit-mid", "enospc"):
            def write_half() -> None:
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write(line[:len(line) // 2])
            fail_halfway(write_half)
        real_append(path, line)
        os._exit(KILLED)

    batch.write_file, batch.append_line = write_file, append_line


if __name__ == "__main__":
    mode, n, separator, *argv = sys.argv[1:]
    assert separator == "--" and mode in ("exit-before", "exit-mid", "exit-after", "enospc"), sys.argv
    torch.set_num_threads(2)   # as tests/conftest.py: equal thread counts give bit-equal results
    install(mode, int(n))
    sys.exit(main(argv))
