"""The planner: which photos are done, which fail at the header, and the batches (units of
work) that every executor runs: photos in key order, grouped by working size, cut into
`batch_size` runs, whatever is done already (see the package docstring)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InputError
from .inputs import Inputs, Item
from .manifest import Manifest, error_message, failed_record, is_done
from .probe import probe_file
from .settings import BatchSettings, working_size


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


def sort_done(inputs: Inputs, manifest: Manifest, key: str, out: Path,
              verify: bool = False) -> tuple[list[Item], list[Item], dict[str, int]]:
    """(done, to do, why each kind of photo is done again) by the resume rule (`is_done`)."""
    done, todo, reasons = [], [], {}
    for item in inputs.items:
        record = manifest.records.get(item.key)
        if is_done(record, item, out, key, verify):
            done.append(item)
            continue
        if record is not None:
            reason = ("tried again: failed before" if record.get("status") == "failed" else
                      "settings changed" if record.get("settings_key") != key else
                      "source or output changed")
            reasons[reason] = reasons.get(reason, 0) + 1
        todo.append(item)
    return done, todo, reasons


def plan_work(inputs: Inputs, manifest: Manifest, settings: BatchSettings, key: str, out: Path,
              verify: bool = False) -> Plan:
    """Which photos are done, which fail at the header, and the batches: photos in key order,
    grouped by working size, cut into `batch_size` runs, whatever is done already."""
    done, todo, reasons = sort_done(inputs, manifest, key, out, verify)
    done_keys = {item.key for item in done}
    failed, sized = {}, []
    for item in inputs.items:
        try:   # done photos too: the batches never depend on what is done
            size = working_size(probe_file(item.source, settings.max_pixels), settings)
        except (OSError, InputError) as exc:
            if item.key in done_keys:
                continue
            failed[item.key] = failed_record(item, error_message(exc))
            continue
        sized.append((item, size))
    units: dict[tuple[int, int], list[list[Item]]] = {}
    for item, size in sized:
        groups = units.setdefault(size, [[]])
        if len(groups[-1]) == settings.batch_size:
            groups.append([])
        groups[-1].append(item)
    plan_units = [Unit(group, size, {i.key for i in group} - done_keys)
                  for size, groups in units.items() for group in groups]
    return Plan([unit for unit in plan_units if unit.todo], [item.key for item in done], failed, reasons)
