"""The worker: decomposes batches of photos (their bytes) on one pipeline and returns the maps
as PNG bytes. It lives where the model is: in the driver for a single process, in each Ray
actor otherwise; only the driver writes files and the manifest."""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from ...errors import InputError
from .manifest import error_message
from .probe import probe_size
from .settings import BatchSettings


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
    size: Optional[tuple[int, int]] = None             # the photo's (width, height)
    files: dict[str, bytes] = field(default_factory=dict)   # map name -> PNG bytes
    scores: Optional[dict[str, Any]] = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str = ""
    worker: str = ""
    working_size: Optional[tuple[int, int]] = None
    output_size: Optional[tuple[int, int]] = None
    warnings: list[str] = field(default_factory=list)


class Decomposer:
    """Runs batches of jobs on one pipeline. Lives where the model is: in the driver for a
    single process, in each Ray actor otherwise. Returns PNG bytes; the driver writes.

    Each photo goes through the path of `decompose` and the node (`apps.photo`): its working
    size from its own size, an ensemble of `ensemble_size` runs, its maps brought back to its
    own size; photos sharing a working size share one forward."""

    def __init__(self, pipe: Any, settings: BatchSettings, threads: Optional[int] = None) -> None:
        import torch
        if threads:
            torch.set_num_threads(threads)
        self.pipe, self.settings = pipe, settings
        self.pipe.progress = False
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def run(self, jobs: Sequence[Job], size: tuple[int, int]) -> list[Result]:
        """Decompose `jobs` together at working size `size` (the planner's, from the header);
        a photo that cannot be read fails alone, the others still run as one batch."""
        results, groups = {}, {}
        for job in jobs:
            started = time.perf_counter()
            try:
                source_size = probe_size(job.data, self.settings.max_pixels)
                prepared = self._prepare(job.data)
            except Exception as exc:   # any decoder error is this file's problem, not the run's
                results[job.key] = Result(job.key, False, error=error_message(exc), worker=self.worker)
                continue
            # A decoded photo may plan otherwise than its header said (an EXIF rotation): it
            # then runs in a forward of its own, never stretched to the planned size.
            working = tuple(prepared.plan.working)
            groups.setdefault(working, []).append((job, prepared, source_size, time.perf_counter() - started))
        for group in sorted(groups.values(), key=lambda g: tuple(g[0][1].plan.working) != tuple(size)):
            results.update(self._decompose(group))
        return [results[job.key] for job in jobs if job.key in results]

    def _prepare(self, data: bytes) -> Any:
        from ...image_io import load_image_bytes
        from ...intrinsics.postprocess import default_steps
        from ..photo import prepare_photos
        settings = self.settings
        try:
            image = load_image_bytes(data, settings.max_pixels)
        except (OSError, ValueError, SyntaxError) as exc:   # PIL's errors for damaged or foreign data
            raise InputError(f"cannot decode it as an image ({type(exc).__name__}: {exc}); give a PNG, JPEG, "
                             f"WebP or TIFF photo") from None
        # The post-processing decompose would apply with this pipeline's numerics, so one photo
        # gives the same maps through batch as through decompose.
        return prepare_photos({"color": image}, settings.megapixels, settings.ensemble_size,
                              settings.max_output_megapixels, settings.fixed_size,
                              default_steps(getattr(self.pipe, "numerics", "engine")))

    def _decompose(self, group: list[tuple[Job, Any, tuple[int, int], float]]) -> dict[str, Result]:
        from ...image_io import encode_png16
        settings = self.settings
        started = time.perf_counter()
        try:
            decomposed = self.pipe.decompose_prepared(
                [prepared for _, prepared, _, _ in group], [[job.prompt] for job, _, _, _ in group],
                [settings.seed] * len(group), upsample=settings.upsample, **settings.sampling_overrides())
        except Exception as exc:   # e.g. out of memory: these photos fail, the run goes on
            message = error_message(exc) + ("; try --batch-size 1" if len(group) > 1 else "")
            return {job.key: Result(job.key, False, error=message, worker=self.worker) for job, _, _, _ in group}
        sample_s = (time.perf_counter() - started) / len(group)
        results = {}
        for (job, prepared, source_size, load_s), maps in zip(group, decomposed):
            if not job.write:
                continue
            started = time.perf_counter()
            images = maps.as_dict()
            chosen = {name: images[name] for name in settings.maps}
            chosen.update({name: image for name, image in maps.uncertainty.items()
                           if settings.ensemble_size > 1 and name.rsplit("_", 1)[0] in settings.maps})
            files = {name: encode_png16(image[0].float().clamp(0, 1), text={"lumix_map": name})
                     for name, image in chosen.items()}
            encode_s = time.perf_counter() - started
            scores = _scores(images) if settings.scores else None
            plan = prepared.plan
            results[job.key] = Result(job.key, True, source_size, files, scores,
                                      {"load_s": load_s, "sample_s": sample_s, "encode_s": encode_s,
                                       "scores_s": time.perf_counter() - started - encode_s, "batch": len(group)},
                                      worker=self.worker, working_size=tuple(plan.working),
                                      output_size=tuple(plan.output), warnings=list(plan.warnings))
        return results


def _scores(maps: dict[str, Any]) -> dict[str, Any]:
    from ...intrinsics import coherence_report
    report = coherence_report(**maps)
    return {"structural_alignment": report.structural_alignment, "alignment_per_map": report.alignment_per_map,
            "recomposition_rmse": report.recomposition_rmse,
            "normal_depth_error_degrees": report.normal_depth_error_degrees}
