"""The worker: decomposes batches of photos (their bytes) on one pipeline and returns the maps
as PNG bytes. It lives where the model is: in the driver for a single process, in each Ray
actor otherwise; only the driver writes files and the manifest."""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

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
    size: Optional[tuple[int, int]] = None
    files: dict[str, bytes] = field(default_factory=dict)   # map name -> PNG bytes
    scores: Optional[dict[str, Any]] = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str = ""
    worker: str = ""


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

        from ...image_io import encode_png16, load_image_bytes, resize_images
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
    from ...intrinsics import coherence_report
    report = coherence_report(**maps)
    return {"structural_alignment": report.structural_alignment, "alignment_per_map": report.alignment_per_map,
            "recomposition_rmse": report.recomposition_rmse,
            "normal_depth_error_degrees": report.normal_depth_error_degrees}
