"""The manifest and the files it vouches for: `manifest.jsonl` (one JSON record per photo and
attempt, appended and flushed), atomic file writes, source and output hashes, the resume
rule (`is_done`), clean-up after a kill, and the lock that allows one run per output folder.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from ...errors import InputError, LumiXError
from ...image_io import atomic_path
from .inputs import Item

MANIFEST = "manifest.jsonl"
LOCK = ".lumix-batch.lock"
_PARTIAL = re.compile(r"^\..+\.partial-\d+$")   # atomic_path's temporary names


class BatchStopped(LumiXError):
    """The run cannot go on (a write failed: full disk, no permission); rerun to resume."""


class Manifest:
    """`manifest.jsonl`: one JSON record per line, the last record of a key wins. A line cut
    short by a kill is ignored; `repair` (run under the lock) cuts the file back to its last
    whole line so that the next record starts on a line of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        self.dropped = 0
        data = path.read_bytes() if path.exists() else b""
        self._whole = data.rfind(b"\n") + 1
        self.dropped = int(self._whole != len(data))
        for line in data[:self._whole].decode("utf-8", "replace").splitlines():
            try:
                record = json.loads(line)
                self.records[record["key"]] = record
            except (ValueError, KeyError, TypeError):
                self.dropped += 1

    def repair(self) -> None:
        if self.path.exists() and self.path.stat().st_size != self._whole:
            with open(self.path, "r+b") as handle:
                handle.truncate(self._whole)

    def append(self, record: dict[str, Any]) -> None:
        append_line(self.path, json.dumps(record, sort_keys=True) + "\n")
        self.records[record["key"]] = record


def append_line(path: Path, line: str) -> None:
    """Append one line and flush it to disk before returning."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def write_file(path: Path, data: bytes) -> None:
    """Write `data` under a temporary name, flush it to disk, rename it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_source(path: Path) -> tuple[bytes, dict[str, Any]]:
    """A photo's bytes, read once, and the manifest's account of them: size and time as
    found before reading (so that an edit during the run shows as a change on resume) and
    the SHA-256 of exactly these bytes, the ones that are decomposed."""
    size, mtime = _stat(path)
    data = path.read_bytes()
    return data, {"bytes": size, "mtime_ns": mtime, "sha256": hashlib.sha256(data).hexdigest()}


def _stat(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def is_done(record: Optional[dict[str, Any]], item: Item, out: Path, key: str, verify: bool) -> bool:
    """The resume rule: done, same source content, same settings, every output whole."""
    if not record or record.get("status") != "done" or record.get("settings_key") != key:
        return False
    try:
        source = record["source"]
        if (source["bytes"], source["mtime_ns"]) != _stat(item.source) or verify:
            if file_sha256(item.source) != source["sha256"]:
                return False
        for output in record["outputs"].values():
            path = out / output["path"]
            if (output["bytes"], output["mtime_ns"]) != _stat(path):
                return False
            if verify and file_sha256(path) != output["sha256"]:
                return False
    except (OSError, KeyError, TypeError):
        return False
    return True


def remove_partials(out: Path) -> int:
    """Temporary files left by a killed run (never a finished file)."""
    removed = 0
    for folder, _, names in os.walk(out):
        for name in names:
            if _PARTIAL.match(name):
                Path(folder, name).unlink(missing_ok=True)
                removed += 1
    return removed


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """One run per output folder (two would interleave the manifest). The operating system
    drops the lock with the process, however it ends; `filelock` because Windows has no fcntl."""
    from filelock import FileLock, Timeout
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise InputError(f"another batch run is writing to {out}; wait for it to finish or use another "
                         f"--out") from None
    try:
        yield
    finally:
        lock.release()


def failed_record(item: Item, error: str, worker: str = "") -> dict[str, Any]:
    return {"key": item.key, "path": str(item.source), "status": "failed", "error": error, "worker": worker,
            "finished_at": time.time()}


def record_done(item: Item, files: dict[str, bytes], out: Path, manifest: Manifest, settings: dict[str, Any],
                key: str, source: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Write a photo's files as `<folder>/<name>.png`, then append the record that vouches
    for them (the source as it was read (`read_source`), output sizes, times and hashes, the
    settings and their key)."""
    started = time.perf_counter()
    outputs = {}
    for name, data in files.items():
        relative = f"{item.folder}/{name}.png"
        try:
            write_file(out / relative, data)
            written, mtime = _stat(out / relative)
        except OSError as exc:
            raise BatchStopped(write_failure(out / relative, exc)) from exc
        outputs[name] = {"path": relative, "bytes": written, "mtime_ns": mtime,
                         "sha256": hashlib.sha256(data).hexdigest()}
    timings = {**fields.pop("timings", {}), "write_s": time.perf_counter() - started}
    entry = {"key": item.key, "path": str(item.source), "status": "done",
             "source": source,
             **fields, "settings": settings, "settings_key": key, "outputs": outputs, "timings": timings,
             "finished_at": time.time()}
    try:
        manifest.append(entry)
    except OSError as exc:
        raise BatchStopped(write_failure(manifest.path, exc)) from exc
    return entry


def write_failure(path: Path, exc: OSError) -> str:
    what = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else f"{type(exc).__name__}: {exc}"
    return (f"stopped: could not write {path}: {what}. Every file already written is whole and recorded; "
            f"fix the cause and run the same command again to resume")


def error_message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, LumiXError) else f"{type(exc).__name__}: {text}"
