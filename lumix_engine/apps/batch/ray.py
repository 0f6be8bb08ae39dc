"""Batch decomposition on Ray: one pipeline per GPU (or per CPU worker), on one machine or many.

Ray is an optional extra (`pip install ray`, or the pack's `[ray]` extra); nothing else in the
engine imports it. The driver (the process that runs the command) plans the work, reads
each photo and sends its bytes with the batch, and alone writes files and the manifest,
exactly as a single process does (run.py): so the resume rule, the manifest and the
output bytes are the same, and workers need neither the input nor the output folder, only
the model files at the same paths and this package importable.

Each worker is a Ray actor holding one LumiXPipeline; a unit of work is one batch of scenes
(one photo with the default --batch-size 1). Every worker, once its pipeline is loaded, has
up to two units queued so that it never waits for the driver.
"""
from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from ...errors import InputError
from ..loading import ModelFiles
from .manifest import BatchStopped
from .planner import Unit
from .run import Executor
from .settings import BatchSettings
from .worker import Decomposer, Job, Result

PACKAGE_ROOT = Path(__file__).resolve().parents[3]   # the folder that holds lumix_engine/
IN_FLIGHT_PER_WORKER = 2


class Worker:
    """A pipeline in a Ray actor; built once, then runs batches."""

    def __init__(self, files: Optional[ModelFiles], settings: BatchSettings, device: Optional[str],
                 dtype: Optional[str], threads: Optional[int], numerics: str = "engine") -> None:
        from ..loading import quiet_libraries
        from ..pipeline import LumiXPipeline
        from ..tiny import TinyPhotoPipeline
        with quiet_libraries():
            pipe = (TinyPhotoPipeline.load(progress=False) if files is None else   # --tiny
                    LumiXPipeline.from_files(files, device=device, dtype=dtype, progress=False, numerics=numerics))
        self.decomposer = Decomposer(pipe, settings, threads=threads)

    def ready(self) -> str:
        return self.decomposer.worker

    def run(self, jobs: list[Job], size: tuple[int, int]) -> list[Result]:
        return self.decomposer.run(jobs, size)


def import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray, an optional extra: pip install ray (or pip install '.[ray]'); without "
                         "--ray the batch runs in this process") from None
    return ray


def connect(address: str = "local", num_cpus: Optional[int] = None) -> Any:
    """Start a Ray instance here ('local') or join a cluster ('auto', 'ray://host:10001')."""
    ray = import_ray()
    if not ray.is_initialized():
        # Workers import lumix_engine from the same path (on every node of a cluster).
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
            p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p)}}
        if address == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env,
                     configure_logging=False, log_to_driver=False)
        else:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    return ray


def ray_executor(files: Optional[ModelFiles], settings: BatchSettings, address: str = "local", workers: Optional[int] = None,
                 device: Optional[str] = None, dtype: Optional[str] = None, gpus_per_worker: Optional[float] = None,
                 cpus_per_worker: int = 1, threads: Optional[int] = None,
                 start_timeout_s: float = 900.0, numerics: str = "engine") -> Callable[[], Executor]:
    """A factory for run_batch: connects and starts the workers only when there is work.
    Work goes only to workers that have loaded their pipeline; if none has after
    `start_timeout_s` (the cluster lacks the CPUs or GPUs asked for), the run stops."""

    def factory() -> Executor:
        on_gpu = device is None or str(device).startswith("cuda")
        local_cpus = None
        if address == "local":
            local_cpus = max(os.cpu_count() or 1, (workers or 2) * cpus_per_worker)
        ray = connect(address, local_cpus)
        gpus = ray.cluster_resources().get("GPU", 0) if on_gpu else 0
        per_gpu = gpus_per_worker if gpus_per_worker is not None else (1.0 if gpus else 0.0)
        count = workers or (int(gpus // per_gpu) if per_gpu else 2)
        if count < 1:
            raise InputError(f"no Ray workers to start (cluster GPUs {gpus}, --gpus-per-worker {per_gpu}); give "
                             f"--workers or --device cpu")
        actor = ray.remote(num_cpus=cpus_per_worker, num_gpus=per_gpu)(Worker)
        worker_device = device or ("cuda" if per_gpu else "cpu")
        pool = [actor.remote(files, settings, worker_device, dtype, threads or cpus_per_worker, numerics)
                for _ in range(count)]
        return lambda work: _execute(ray, pool, work, start_timeout_s)

    return factory


def _execute(ray: Any, pool: list, work: Iterable[tuple[Unit, list[Job]]],
             start_timeout_s: float) -> Iterator[tuple[Unit, list[Result]]]:
    """Keep every started worker busy; yield each unit's results as it finishes (in any
    order). A worker that dies fails its unit's photos (recorded) and leaves the pool."""
    work = iter(work)
    starting = {worker.ready.remote(): worker for worker in pool}
    free: deque = deque()
    running: dict[Any, tuple[Unit, list[Job], Any]] = {}
    alive, exhausted, since = len(pool), False, time.monotonic()
    while True:
        while free and not exhausted:
            unit_jobs = next(work, None)
            if unit_jobs is None:
                exhausted = True
                break
            worker = free.popleft()
            running[worker.run.remote(unit_jobs[1], unit_jobs[0].size)] = (*unit_jobs, worker)
        if not running and (exhausted or not starting):
            if not exhausted:
                raise BatchStopped("stopped: no Ray worker could start; see the Ray log (ray status) and rerun")
            return
        ready, _ = ray.wait([*running, *starting], num_returns=1, timeout=10.0)
        if not ready:
            if not running and time.monotonic() - since > start_timeout_s:
                raise BatchStopped(f"stopped: no Ray worker started within {start_timeout_s:.0f} s (does the "
                                   f"cluster have the CPUs and GPUs asked for? `ray status`); rerun to resume")
            continue
        if ready[0] in starting:
            worker = starting.pop(ready[0])
            try:
                ray.get(ready[0])
                free.extend([worker] * IN_FLIGHT_PER_WORKER)
            except ray.exceptions.RayActorError:
                alive -= 1
            continue
        unit, jobs, worker = running.pop(ready[0])
        try:
            results = ray.get(ready[0])
            free.append(worker)
        except ray.exceptions.RayActorError as exc:
            alive -= 1
            free = deque(w for w in free if w is not worker)
            if not alive:
                raise BatchStopped(f"stopped: every Ray worker died (last: {exc}); finished images are recorded, "
                                   f"run the same command again to resume") from exc
            results = [Result(job.key, False, error=f"the Ray worker died: {exc}") for job in jobs]
        yield unit, results
