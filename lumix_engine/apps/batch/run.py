"""Running a batch: the local executor, the jobs fed to any executor (each photo's bytes read
once by the driver), the manifest records of the results, and the summary."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..pipeline import progress_bar
from .inputs import Inputs, Item, prompt_for
from .manifest import (
    MANIFEST,
    BatchStopped,
    Manifest,
    error_message,
    exclusive,
    failed_record,
    read_source,
    record_done,
    remove_partials,
    write_failure,
    write_file,
)
from .planner import Unit, plan_work
from .settings import BatchSettings, settings_key
from .worker import Decomposer, Job, Result

SUMMARY = "summary.json"


Executor = Callable[[Iterable[tuple[Unit, list[Job]]]], Iterator[tuple[Unit, list[Result]]]]


def local_executor(decomposer: Decomposer) -> Executor:
    def execute(work: Iterable[tuple[Unit, list[Job]]]) -> Iterator[tuple[Unit, list[Result]]]:
        for unit, jobs in work:
            yield unit, decomposer.run(jobs, unit.size)
    return execute


def _jobs(units: Sequence[Unit], settings: BatchSettings, on_failed: Callable[[Item, str], None],
          sources: dict[str, dict[str, Any]]) -> Iterator[tuple[Unit, list[Job]]]:
    """Each photo's bytes, read once: the worker decodes exactly these bytes, and `sources`
    keeps their account (`read_source`) for the record."""
    for unit in units:
        jobs = []
        for item in unit.items:
            try:
                data, source = read_source(item.source)
            except OSError as exc:
                if item.key in unit.todo:
                    on_failed(item, error_message(exc))
                continue
            sources[item.key] = source
            jobs.append(Job(item.key, data, prompt_for(item, settings.prompt, settings.captions), item.key in unit.todo))
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
                sources: dict[str, dict[str, Any]] = {}
                for unit, results in execute(_jobs(plan.units, settings, fail, sources)):
                    for result in results:
                        if result.key not in unit.todo:
                            continue
                        item = items[result.key]
                        if result.ok:
                            _store(item, result, sources.pop(result.key), out, settings, record, key, manifest)
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


def _store(item: Item, result: Result, source: dict[str, Any], out: Path, settings: BatchSettings,
           record: dict[str, Any], key: str, manifest: Manifest) -> None:
    fields = {"warnings": result.warnings} if result.warnings else {}
    record_done(item, result.files, out, manifest, record, key, source, size=list(result.size),
                working_size=list(result.working_size), output_size=list(result.output_size), seed=settings.seed,
                scores=result.scores, timings=result.timings, worker=result.worker, **fields)


def _write_summary(summary: Summary, record: dict[str, Any], key: str) -> None:
    data = {"found": summary.found, "decomposed_now": summary.done, "already_done": summary.skipped,
            "failed": summary.failed, "seconds": round(summary.seconds, 3),
            "images_per_second": round(summary.images_per_second, 4), "notes": summary.notes,
            "settings": record, "settings_key": key}
    try:
        write_file(summary.out / SUMMARY, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    except OSError as exc:
        raise BatchStopped(write_failure(summary.out / SUMMARY, exc)) from exc
