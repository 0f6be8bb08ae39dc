"""Decompose a folder, a glob or a list of photos: resumable, one process or many.

    python -m lumix_engine batch photos/ --out maps/ --config lumix.toml

Layout of `--out`: the input tree mirrored, one folder per photo holding its maps as 16-bit
PNGs (`photos/a/kitchen.jpg` -> `maps/a/kitchen/albedo.png` ...), plus `manifest.jsonl` (one
JSON record per photo and attempt: source, size, working size, output size, seed, settings,
timings, coherence scores, status) and `summary.json`.

One photo path: each photo is decomposed as `decompose` and the ComfyUI node do it
(`apps/photo.py`): at a working size chosen from its own size (`--megapixels`), as an
ensemble with uncertainty maps (`--seeds`), brought back to its own size (`--upsample`);
`--width`/`--height` fix one working and output size instead. With one photo per forward
its files equal `decompose`'s byte for byte.

Nothing lost, nothing redone:
- every file is written under a temporary name, flushed to disk and renamed, so a final name
  always holds a whole file; a photo's record is appended to the manifest (and flushed)
  only after all its maps are in place, so a record always describes files that exist;
- each photo is read once: the driver hashes those bytes and the worker decodes the same
  bytes, so the record vouches for what was decomposed, and a photo edited during the run
  is done again on resume;
- a rerun of the same command skips a photo only when its last record says done, the
  source still has the recorded content (size and modification time as found before it was
  read, or its SHA-256 with `--verify`), the settings are the same, and every recorded output file is there with its
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

Modules, one concern each: `inputs` (what to decompose), `settings` (what decides the maps),
`probe` (a photo's size from its header), `manifest` (records, locks, hashes, atomic
writes, the resume rule), `worker` (the Decomposer), `planner` (units of work) and `run`
(executing a plan, recording results, the summary). Local runs, Ray (`ray`) and the
ComfyUI-server client (`tools/comfy_batch.py`) share the manifest, the worker and the planner.
"""
from .inputs import IMAGE_EXTENSIONS, LIST_EXTENSIONS, Inputs, Item, find_inputs, prompt_for
from .manifest import (
    LOCK,
    MANIFEST,
    BatchStopped,
    Manifest,
    append_line,
    error_message,
    exclusive,
    failed_record,
    file_sha256,
    is_done,
    read_source,
    record_done,
    remove_partials,
    write_file,
)
from .planner import Plan, Unit, plan_work, sort_done
from .probe import probe_file, probe_size
from .run import SUMMARY, Executor, Summary, local_executor, run_batch
from .settings import DEFAULT_MAX_PIXELS, BatchSettings, settings_key, working_size
from .worker import Decomposer, Job, Result

__all__ = [
    "IMAGE_EXTENSIONS", "LIST_EXTENSIONS", "Inputs", "Item", "find_inputs", "prompt_for",
    "LOCK", "MANIFEST", "BatchStopped", "Manifest", "append_line", "error_message", "exclusive", "failed_record",
    "file_sha256", "is_done", "read_source", "record_done", "remove_partials", "write_file",
    "Plan", "Unit", "plan_work", "sort_done", "probe_file", "probe_size",
    "SUMMARY", "Executor", "Summary", "local_executor", "run_batch",
    "DEFAULT_MAX_PIXELS", "BatchSettings", "settings_key", "working_size",
    "Decomposer", "Job", "Result",
]
