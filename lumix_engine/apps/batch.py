"""Decompose a folder, a glob or a list of photos: resumable, one process or many.

    python -m lumix_engine batch photos/ --out maps/ --config lumix.toml

Layout of `--out`: the input tree mirrored, one folder per photo holding its maps as 16-bit
PNGs (`photos/a/kitchen.jpg` -> `maps/a/kitchen/albedo.png` ...), plus `manifest.jsonl` (one
JSON record per photo and attempt: source, size, working size, seed, settings, timings,
coherence scores, status) and `summary.json`.

Nothing lost, nothing redone:
- every file is written under a temporary name, flushed to disk and renamed, so a final name
  always holds a whole file; a photo's record is appended to the manifest (and flushed)
  only after all its maps are in place, so a record always describes files that exist;
- a rerun of the same command skips a photo only when its last record says done, the
  source still has the recorded content (size and modification time, or its SHA-256 with
  `--verify`), the settings are the same, and every recorded output file is there with its
  recorded size and time (or hash); anything else is done again;
- a photo that cannot be read (corrupt, not an image, too large, unreadable) is recorded as
  failed with the reason and the run goes on; a failure to write (a full disk) stops the run
  with the reason, leaving every file already written whole.

Results do not depend on how the work was cut up. Each photo's noise comes from its own
seed (`shared_noise` with one seed per scene), and photos are grouped into batches of
`batch_size` scenes by a rule that depends only on the full list of inputs and their working
sizes, never on what is already done: a resumed run, or several Ray workers, run exactly the
batches an uninterrupted single process runs (a batch with any photo left to do is run
whole, and only the photos left to do are written). This matters because matrix-multiply
kernels choose their blocking, and so their rounding, by batch shape and thread count: the
same photo in a batch of 4 and alone differs in the last bits (about 1e-7 relative on CPU).
"""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import io
import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from ..errors import InputError, LumiXError
from ..image_io import atomic_path
from ..method.sampling import DECOMPOSITION, Settings, check_size
from ..modalities import MAP_NAMES
from .pipeline import progress_bar

MANIFEST = "manifest.jsonl"
SUMMARY = "summary.json"
LOCK = ".lumix-batch.lock"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
LIST_EXTENSIONS = (".txt", ".lst", ".list")
DEFAULT_MAX_PIXELS = 64_000_000
_PARTIAL = re.compile(r"^\..+\.partial-\d+$")   # atomic_path's temporary names


class BatchStopped(LumiXError):
    """The run cannot go on (a write failed: full disk, no permission); rerun to resume."""


# -- inputs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One photo: `key` is its path relative to the input root (the manifest's key, '/'
    separated) and `folder` the output folder for its maps, relative to --out."""
    source: Path
    key: str
    folder: str


@dataclass
class Inputs:
    items: list[Item]
    root: Path
    notes: list[str] = field(default_factory=list)


def _is_glob(text: str) -> bool:
    return any(char in text for char in "*?[")


def find_inputs(spec: str | Path, out: Path, recursive: bool = True) -> Inputs:
    """A folder (recursive unless told otherwise), a glob (`photos/**/*.jpg`), a list file
    (.txt/.lst/.list: one path per line, relative to the list's folder, `#` comments), or one
    image -> the photos, sorted, each with a unique output folder."""
    text = str(spec)
    path = Path(text).expanduser()
    out = Path(out).expanduser().resolve()
    notes: list[str] = []
    if path.is_dir():
        root = path.resolve()
        _check_folders(root, out)
        files = _walk(root, recursive)
        what = f"folder {path}"
    elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        files, notes = _read_list(path)
        root = Path(os.path.commonpath([str(f.parent) for f in files])) if files else path.parent.resolve()
        what = f"list file {path}"
    elif path.is_file():
        files, root, what = [path.resolve()], path.parent.resolve(), f"file {path}"
    elif _is_glob(text):
        parts = Path(text).parts
        fixed = next((i for i, part in enumerate(parts) if _is_glob(part)), len(parts))
        root = Path(*parts[:fixed]).expanduser().resolve() if fixed else Path.cwd()
        files = sorted(Path(f).resolve() for f in glob.glob(str(Path(text).expanduser()), recursive=True)
                       if not Path(f).is_dir())
        what = f"glob {text!r}"
    else:
        raise InputError(f"input {text!r} is not a folder, a list file ({', '.join(LIST_EXTENSIONS)}), an image "
                         f"or a glob pattern; check the path")
    inside_out = [f for f in files if _is_within(f, out)]
    if inside_out or _is_within(out, root):
        notes.append(f"the output folder {out} is inside the input {root}; files in it are not inputs")
        files = [f for f in files if not _is_within(f, out)]
    if not files:
        raise InputError(f"no images in the {what} (looked for {', '.join(IMAGE_EXTENSIONS)}"
                         f"{'' if recursive else ', top level only: drop --no-recursive to look in subfolders'})")
    keys = [f.relative_to(root).as_posix() for f in files]
    return Inputs(_with_folders(files, keys, notes), root, notes)


def _check_folders(root: Path, out: Path) -> None:
    if out == root:
        raise InputError(f"the output folder is the input folder ({root}); choose another, e.g. {root}_lumix")
    if _is_within(root, out):
        raise InputError(f"the input folder {root} is inside the output folder {out}; the mirrored tree could "
                         f"write over the photos. Choose an output folder outside the input")


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _walk(root: Path, recursive: bool) -> list[Path]:
    found = []
    for folder, subfolders, names in os.walk(root, followlinks=False):
        subfolders.sort()
        if not recursive:
            subfolders.clear()
        found += [Path(folder) / name for name in names if name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def _read_list(path: Path) -> tuple[list[Path], list[str]]:
    files, seen, notes = [], set(), []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        file = Path(line).expanduser()
        file = (file if file.is_absolute() else path.parent / file).resolve()
        if file in seen:
            notes.append(f"{path}:{number}: {line} is listed twice; decomposed once")
            continue
        seen.add(file)
        files.append(file)
    return sorted(files), notes


def _with_folders(files: list[Path], keys: list[str], notes: list[str]) -> list[Item]:
    """Output folder = the key without its extension; photos whose names differ only in the
    extension (`a.jpg`, `a.png`) keep it (`a_jpg/`, `a_png/`) so that no two share a folder."""
    stems = [str(Path(key).with_suffix("")) for key in keys]
    clashing = {stem for stem in stems if stems.count(stem) > 1}
    folders = []
    for key, stem in zip(keys, stems):
        if stem in clashing:
            folders.append(stem + "_" + Path(key).suffix.lstrip(".").lower())
        else:
            folders.append(stem)
    if clashing:
        notes.append(f"{len(clashing)} name(s) differ only in the extension (e.g. {sorted(clashing)[0]}); their "
                     f"output folders keep the extension (name_jpg/, name_png/)")
    if len(set(folders)) != len(folders):
        repeated = sorted({f for f in folders if folders.count(f) > 1})
        raise InputError(f"these inputs would share an output folder: {repeated[:5]}; rename one of each")
    return [Item(file, key, folder) for file, key, folder in zip(files, keys, folders)]


# -- settings -----------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchSettings:
    """What decides a photo's maps (plus `batch_size`, which decides how photos are grouped).
    Unset sampling values are the published decomposition settings."""
    prompt: str = ""
    captions: bool = False
    seed: int = 0
    steps: Optional[int] = None
    cfg: Optional[float] = None
    guidance: Optional[float] = None
    width: Optional[int] = None
    height: Optional[int] = None
    negative_prompt: Optional[str] = None
    token_count: Optional[str] = None
    maps: tuple[str, ...] = MAP_NAMES
    batch_size: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    scores: bool = True

    def sampling(self) -> Settings:
        values = asdict(DECOMPOSITION)
        values.update({k: getattr(self, k) for k in values if getattr(self, k, None) is not None})
        return Settings(**values)

    def check(self) -> "BatchSettings":
        unknown = [name for name in self.maps if name not in MAP_NAMES]
        if unknown or not self.maps:
            raise InputError(f"--maps {','.join(self.maps)}: name some of {', '.join(MAP_NAMES)}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: give 1 or more scenes per forward")
        sampling = self.sampling()
        check_size(sampling.width, sampling.height)
        return self

    def record(self, models: dict[str, str]) -> dict[str, Any]:
        """Everything that decides the maps, as recorded in the manifest; its hash is the
        settings key a resumed run compares."""
        return {"mode": "decompose", "given": "color", "prompt": self.prompt, "captions": self.captions,
                "seed": self.seed, **asdict(self.sampling()), "maps": list(self.maps),
                "working_size": "fixed (width x height)", "models": models}


def working_size(size: tuple[int, int], settings: BatchSettings) -> tuple[int, int]:
    """The (width, height) a photo of `size` is decomposed at: the one place that decides it.
    Today the pipeline's fixed size (--width/--height, else the published 1536 x 1152)."""
    sampling = settings.sampling()
    return sampling.width, sampling.height


def settings_key(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- manifest -----------------------------------------------------------------------------

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
    """One run per output folder (two would interleave the manifest). The lock goes with
    the process, however it ends."""
    import fcntl
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError(f"another batch run is writing to {out}; wait for it to finish or use another "
                             f"--out") from None
        yield


# -- work ---------------------------------------------------------------------------------

@dataclass
class Job:
    """One photo as a worker sees it: everything needed, including the file's bytes, so
    that a worker on another machine needs no access to the input folder."""
    key: str
    data: bytes
    prompt: str
    write: bool          # False: in the batch only so that the batch is the same as before


@dataclass
class Result:
    key: str
    ok: bool
    size: Optional[tuple[int, int]] = None
    files: dict[str, bytes] = field(default_factory=dict)   # map name -> PNG bytes
    scores: Optional[dict[str, Any]] = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str = ""
    worker: str = ""


def probe_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the header alone; refuses what is not an image or too large."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
    except UnidentifiedImageError:
        raise InputError("not an image Pillow can read (unknown or damaged format)") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"too large: {exc}") from None
    if width * height > max_pixels:
        raise InputError(f"too large: {width} x {height} = {width * height / 1e6:.1f} MP, over the limit of "
                         f"{max_pixels / 1e6:.1f} MP; downscale it or raise --max-pixels")
    return width, height


class Decomposer:
    """Runs batches of jobs on one pipeline. Lives where the model is: in the driver for a
    single process, in each Ray actor otherwise. Returns PNG bytes; the driver writes."""

    def __init__(self, pipe: Any, settings: BatchSettings, threads: Optional[int] = None) -> None:
        import torch
        if threads:
            torch.set_num_threads(threads)
        self.pipe, self.settings = pipe, settings
        self.pipe.progress = False
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def run(self, jobs: Sequence[Job], size: tuple[int, int]) -> list[Result]:
        """Decompose `jobs` together at working size `size`; a photo that cannot be read fails
        alone, the others still run as one batch."""
        import torch

        from ..image_io import encode_png16, load_image_bytes, resize_images
        results, loaded = {}, []
        for job in jobs:
            started = time.perf_counter()
            try:
                source_size = probe_size(job.data, self.settings.max_pixels)
                image = resize_images(load_image_bytes(job.data), *size)
            except Exception as exc:   # any decoder error is this file's problem, not the run's
                results[job.key] = Result(job.key, False, error=error_message(exc), worker=self.worker)
                continue
            loaded.append((job, image, source_size, time.perf_counter() - started))
        if loaded:
            settings = self.settings
            started = time.perf_counter()
            try:
                maps = self.pipe.decompose(torch.cat([image for _, image, _, _ in loaded]),
                                           prompt=[job.prompt for job, _, _, _ in loaded], given="color",
                                           seed=[settings.seed] * len(loaded), steps=settings.steps,
                                           cfg=settings.cfg, guidance=settings.guidance, width=size[0],
                                           height=size[1], negative_prompt=settings.negative_prompt,
                                           token_count=settings.token_count)
            except Exception as exc:   # e.g. out of memory: these photos fail, the run goes on
                message = error_message(exc) + ("; try --batch-size 1" if len(loaded) > 1 else "")
                return [results.get(job.key) or Result(job.key, False, error=message, worker=self.worker)
                        for job in jobs]
            sample_s = (time.perf_counter() - started) / len(loaded)
            images = maps.as_dict()
            for k, (job, _, source_size, load_s) in enumerate(loaded):
                if not job.write:
                    continue
                started = time.perf_counter()
                files = {name: encode_png16(images[name][k], text={"lumix_map": name}) for name in settings.maps}
                encode_s = time.perf_counter() - started
                scores = _scores({name: image[k:k + 1] for name, image in images.items()}) if settings.scores \
                    else None
                results[job.key] = Result(job.key, True, source_size, files, scores,
                                          {"load_s": load_s, "sample_s": sample_s, "encode_s": encode_s,
                                           "scores_s": time.perf_counter() - started - encode_s,
                                           "batch": len(loaded)}, worker=self.worker)
        return [results[job.key] for job in jobs if job.key in results]


def _scores(maps: dict[str, Any]) -> dict[str, Any]:
    from ..intrinsics import coherence_report
    report = coherence_report(**maps)
    return {"structural_alignment": report.structural_alignment, "alignment_per_map": report.alignment_per_map,
            "recomposition_rmse": report.recomposition_rmse,
            "normal_depth_error_degrees": report.normal_depth_error_degrees}


def error_message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, LumiXError) else f"{type(exc).__name__}: {text}"


# -- planning and the run -----------------------------------------------------------------

@dataclass
class Unit:
    """One batch of photos at one working size: the unit given to a worker."""
    items: list[Item]
    size: tuple[int, int]
    todo: set[str]


@dataclass
class Plan:
    units: list[Unit]
    done: list[str]
    failed: dict[str, dict[str, Any]]     # key -> failed record (found at planning)
    redo_reasons: dict[str, int]


def plan_work(inputs: Inputs, manifest: Manifest, settings: BatchSettings, key: str, out: Path,
              verify: bool = False) -> Plan:
    """Which photos are done, which fail at the header, and the batches: photos in key order,
    grouped by working size, cut into `batch_size` runs, whatever is done already."""
    done, failed, sized, reasons = [], {}, [], {}
    for item in inputs.items:
        record = manifest.records.get(item.key)
        if is_done(record, item, out, key, verify):
            done.append(item.key)
            sized.append((item, tuple(record["working_size"])))
            continue
        if record is not None:
            reason = ("tried again: failed before" if record.get("status") == "failed" else
                      "settings changed" if record.get("settings_key") != key else
                      "source or output changed")
            reasons[reason] = reasons.get(reason, 0) + 1
        try:
            with open(item.source, "rb") as handle:
                head = handle.read(1 << 16)
            size = _header_size(head, item.source, settings.max_pixels)
        except (OSError, InputError) as exc:
            failed[item.key] = failed_record(item, error_message(exc))
            continue
        sized.append((item, working_size(size, settings)))
    units: dict[tuple[int, int], list[list[Item]]] = {}
    for item, size in sized:
        groups = units.setdefault(size, [[]])
        if len(groups[-1]) == settings.batch_size:
            groups.append([])
        groups[-1].append(item)
    done_set = set(done)
    plan_units = [Unit(group, size, {i.key for i in group} - done_set)
                  for size, groups in units.items() for group in groups]
    return Plan([unit for unit in plan_units if unit.todo], done, failed, reasons)


def _header_size(head: bytes, path: Path, max_pixels: int) -> tuple[int, int]:
    """Size from the first bytes; a header too long for them is read from the whole file."""
    try:
        return probe_size(head, max_pixels)
    except InputError as exc:
        if str(exc).startswith("too large"):
            raise
        return probe_size(path.read_bytes(), max_pixels)


def failed_record(item: Item, error: str, worker: str = "") -> dict[str, Any]:
    return {"key": item.key, "path": str(item.source), "status": "failed", "error": error, "worker": worker,
            "finished_at": time.time()}


Executor = Callable[[Iterable[tuple[Unit, list[Job]]]], Iterator[tuple[Unit, list[Result]]]]


def local_executor(decomposer: Decomposer) -> Executor:
    def execute(work: Iterable[tuple[Unit, list[Job]]]) -> Iterator[tuple[Unit, list[Result]]]:
        for unit, jobs in work:
            yield unit, decomposer.run(jobs, unit.size)
    return execute


def _prompt_for(item: Item, settings: BatchSettings) -> str:
    """--prompt, or with --captions the text of `<photo name>.txt` beside the photo if present."""
    if settings.captions:
        caption = item.source.with_suffix(".txt")
        if caption.is_file():
            return " ".join(caption.read_text(errors="replace").split())
    return settings.prompt


def _jobs(units: Sequence[Unit], settings: BatchSettings,
          on_failed: Callable[[Item, str], None]) -> Iterator[tuple[Unit, list[Job]]]:
    for unit in units:
        jobs = []
        for item in unit.items:
            try:
                data = item.source.read_bytes()
            except OSError as exc:
                if item.key in unit.todo:
                    on_failed(item, error_message(exc))
                continue
            jobs.append(Job(item.key, data, _prompt_for(item, settings), item.key in unit.todo))
        if any(job.write for job in jobs):
            yield unit, jobs


@dataclass
class Summary:
    found: int
    skipped: int
    done: int
    failed: dict[str, str]
    seconds: float
    notes: list[str]
    out: Path

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        lines = [f"{self.found} image(s): {self.done} decomposed now, {self.skipped} already done, "
                 f"{len(self.failed)} failed; {self.seconds:.1f} s, {self.images_per_second:.3f} images/s",
                 *self.notes]
        for key, error in list(self.failed.items())[:20]:
            lines.append(f"failed {key}: {error}")
        if len(self.failed) > 20:
            lines.append(f"... and {len(self.failed) - 20} more failed (status \"failed\" in {MANIFEST})")
        lines.append(f"manifest {self.out / MANIFEST}, summary {self.out / SUMMARY}")
        return lines


def run_batch(inputs: Inputs, out: Path, settings: BatchSettings, models: dict[str, str],
              executor_factory: Callable[[], Executor], verify: bool = False, progress: bool = True) -> Summary:
    """Plan, run and record a batch (see the module docstring). `executor_factory` is called
    only when there is work, so a finished batch reruns without loading a model."""
    started = time.perf_counter()
    out = Path(out)
    settings.check()
    record = settings.record(models)
    key = settings_key(record)
    with exclusive(out):
        notes = list(inputs.notes)
        removed = remove_partials(out)
        manifest = Manifest(out / MANIFEST)
        manifest.repair()
        if removed or manifest.dropped:
            notes.append(f"resumed after an interruption: removed {removed} partial file(s), "
                         f"{manifest.dropped} cut-off manifest line(s)")
        plan = plan_work(inputs, manifest, settings, key, out, verify)
        for reason, count in sorted(plan.redo_reasons.items()):
            notes.append(f"{count} image(s) {reason if reason.startswith('tried') else 'done again: ' + reason}")
        items = {item.key: item for item in inputs.items}
        failed: dict[str, str] = {}

        def fail(item: Item, error: str, worker: str = "") -> None:
            manifest.append(failed_record(item, error, worker))
            failed[item.key] = error

        for key_failed, early in plan.failed.items():
            manifest.append(early)
            failed[key_failed] = early["error"]
        todo = sum(len(unit.todo) for unit in plan.units)
        execute = executor_factory() if todo else None   # loads the model(s) before the clock of the bar
        bar = progress_bar(todo, progress, desc="LumiX batch", unit="img")   # images/s and ETA
        done = 0
        try:
            if execute is not None:
                for unit, results in execute(_jobs(plan.units, settings, fail)):
                    for result in results:
                        if result.key not in unit.todo:
                            continue
                        item = items[result.key]
                        if result.ok:
                            _store(item, result, unit.size, out, settings, record, key, manifest)
                            done += 1
                        else:
                            fail(item, result.error, result.worker)
                        bar.update(1)
                        bar.set_postfix(failed=len(failed), refresh=False)
        finally:
            bar.close()
        summary = Summary(len(inputs.items), len(plan.done), done, failed, time.perf_counter() - started, notes,
                          out)
        _write_summary(summary, record, key)
    return summary


def _store(item: Item, result: Result, size: tuple[int, int], out: Path, settings: BatchSettings,
           record: dict[str, Any], key: str, manifest: Manifest) -> None:
    record_done(item, result.files, out, manifest, record, key, size=list(result.size), working_size=list(size),
                seed=settings.seed, scores=result.scores, timings=result.timings, worker=result.worker)


def record_done(item: Item, files: dict[str, bytes], out: Path, manifest: Manifest, settings: dict[str, Any],
                key: str, **fields: Any) -> dict[str, Any]:
    """Write a photo's files as `<folder>/<name>.png`, then append the record that vouches
    for them (source and output sizes, times and hashes, the settings and their key)."""
    started = time.perf_counter()
    outputs = {}
    for name, data in files.items():
        relative = f"{item.folder}/{name}.png"
        try:
            write_file(out / relative, data)
            written, mtime = _stat(out / relative)
        except OSError as exc:
            raise BatchStopped(_write_failure(out / relative, exc)) from exc
        outputs[name] = {"path": relative, "bytes": written, "mtime_ns": mtime,
                         "sha256": hashlib.sha256(data).hexdigest()}
    source_bytes, source_mtime = _stat(item.source)
    timings = {**fields.pop("timings", {}), "write_s": time.perf_counter() - started}
    entry = {"key": item.key, "path": str(item.source), "status": "done",
             "source": {"bytes": source_bytes, "mtime_ns": source_mtime, "sha256": file_sha256(item.source)},
             **fields, "settings": settings, "settings_key": key, "outputs": outputs, "timings": timings,
             "finished_at": time.time()}
    try:
        manifest.append(entry)
    except OSError as exc:
        raise BatchStopped(_write_failure(manifest.path, exc)) from exc
    return entry


def _write_failure(path: Path, exc: OSError) -> str:
    what = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else f"{type(exc).__name__}: {exc}"
    return (f"stopped: could not write {path}: {what}. Every file already written is whole and recorded; "
            f"fix the cause and run the same command again to resume")


def _write_summary(summary: Summary, record: dict[str, Any], key: str) -> None:
    data = {"found": summary.found, "decomposed_now": summary.done, "already_done": summary.skipped,
            "failed": summary.failed, "seconds": round(summary.seconds, 3),
            "images_per_second": round(summary.images_per_second, 4), "notes": summary.notes,
            "settings": record, "settings_key": key}
    try:
        write_file(summary.out / SUMMARY, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    except OSError as exc:
        raise BatchStopped(_write_failure(summary.out / SUMMARY, exc)) from exc
