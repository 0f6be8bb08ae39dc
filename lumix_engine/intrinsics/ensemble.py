"""Ensembles: several runs of one decomposition (different seeds) combined per map, with
an uncertainty map per map, in the manner of Marigold's test-time ensembling (Ke et al.,
CVPR 2024, sec. 3.4), each map combined the way its values mean:

- albedo, irradiance: the mean in LINEAR light (averaging sRGB codes would darken);
  uncertainty = the standard deviation across runs in linear light, averaged over channels;
- depth: the maps are relative (normalised disparity, each run has its own scale and
  offset), so each run is first aligned to the per-pixel median of the runs by a
  least-squares scale and shift (closed form), then the aligned runs are averaged;
  uncertainty = their standard deviation. (Marigold optimises all alignments jointly; one
  closed-form pass onto the median is deterministic and is what is tested here.)
- normal: the mean of the decoded unit vectors, renormalised; uncertainty = the mean angle
  between each run and the result, in degrees / 90 (so 1 = a right angle);
- color (given, identical in every run): the first run.
Standard deviations use N in the denominator (the spread of these N runs). Uncertainty maps
are grey images [.., H, W, 3] clipped to [0, 1]. An ensemble of one run is no ensemble:
`combine_ensemble` returns its maps unchanged, as decoded, with zero uncertainty (the
named post-processing steps of `intrinsics.postprocess` are separate from the combination).

Runs are grouped scene-major: entries k * N ... (k + 1) * N - 1 of a batch are the N runs of
scene k (how the pipeline and the node batch an ensemble of size N as scenes).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError
from .color_space import linear_to_srgb, srgb_to_linear
from .normals import decode_normals, encode_normals

UNCERTAINTY_SUFFIX = "_uncertainty"


def _grey(values: torch.Tensor) -> torch.Tensor:
    """[H, W] -> a grey image [1, H, W, 3] in [0, 1]."""
    return values.clamp(0, 1)[None, ..., None].expand(1, *values.shape, 3).contiguous()


def combine_linear(runs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sRGB runs [N, H, W, 3] -> (linear-light mean, sRGB [1, H, W, 3]; spread [1, H, W, 3])."""
    linear = srgb_to_linear(runs)
    mean = linear.mean(0)
    spread = linear.std(0, unbiased=False).mean(-1)
    return linear_to_srgb(mean)[None], _grey(spread)


def align_scale_shift(values: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """[N, P] runs, [P] reference -> s_i values_i + t_i with (s_i, t_i) minimising
    sum_p (s values_ip + t - reference_p)^2: s = cov(v, r) / var(v), t = mean(r) - s mean(v).
    A constant run gets s = 0 (it carries no relative depth)."""
    mean_v, mean_r = values.mean(1, keepdim=True), reference.mean()
    centred = values - mean_v
    variance = (centred * centred).mean(1, keepdim=True)
    covariance = (centred * (reference - mean_r)).mean(1, keepdim=True)
    scale = torch.where(variance > 0, covariance / variance.clamp_min(torch.finfo(values.dtype).tiny),
                        torch.zeros_like(variance))
    return scale * values + (mean_r - scale * mean_v)


def combine_depth(runs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Near-white disparity runs [N, H, W, 3] -> (aligned mean [1, H, W, 3]; spread)."""
    _, height, width, _ = runs.shape
    disparity = runs.mean(-1).flatten(1)
    reference = disparity.median(0).values if len(runs) > 2 else disparity.mean(0)
    aligned = align_scale_shift(disparity, reference)
    mean = aligned.mean(0).reshape(height, width)
    spread = aligned.std(0, unbiased=False).reshape(height, width)
    return _grey(mean), _grey(spread)


def combine_normals(runs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenGL-encoded normal runs [N, H, W, 3] -> (renormalised mean; mean angle / 90 deg)."""
    vectors = F.normalize(decode_normals(runs), dim=-1, eps=1e-8)
    mean = F.normalize(vectors.mean(0), dim=-1, eps=1e-8)
    # atan2(|v x m|, v . m): exact near 0 degrees, where acos of a rounded cosine is not.
    angle = torch.atan2(torch.linalg.cross(vectors, mean.expand_as(vectors)).norm(dim=-1), (vectors * mean).sum(-1))
    spread = torch.rad2deg(angle).mean(0) / 90.0
    return encode_normals(mean)[None], _grey(spread)


def combine_runs(maps: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """{name: runs [N, H, W, 3]} of ONE scene -> ({name: [1, H, W, 3]}, {name: uncertainty})."""
    combined, uncertainty = {}, {}
    for name, runs in maps.items():
        if name in ("albedo", "irradiance"):
            combined[name], uncertainty[name] = combine_linear(runs)
        elif name == "depth":
            combined[name], uncertainty[name] = combine_depth(runs)
        elif name == "normal":
            combined[name], uncertainty[name] = combine_normals(runs)
        else:
            combined[name] = runs[:1]
            uncertainty[name] = _grey((runs - runs[:1]).abs().amax(0).mean(-1))
    return combined, uncertainty


def combine_ensemble(maps: dict[str, torch.Tensor], ensemble_size: int
                     ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """{name: [S * ensemble_size, H, W, 3]}, scene-major -> ({name: [S, H, W, 3]}, {name:
    uncertainty [S, H, W, 3]}). An ensemble of 1 is no ensemble: the maps come back
    unchanged (the same tensors), with zero uncertainty."""
    if ensemble_size < 1:
        raise InputError(f"an ensemble needs at least 1 run, got {ensemble_size}")
    batch = next(iter(maps.values())).shape[0]
    if batch % ensemble_size:
        raise InputError(f"{batch} images are not a whole number of scenes of {ensemble_size} runs each")
    if ensemble_size == 1:
        return dict(maps), {name: torch.zeros_like(images) for name, images in maps.items()}
    per_scene = [combine_runs({name: images[k:k + ensemble_size] for name, images in maps.items()})
                 for k in range(0, batch, ensemble_size)]
    combined = {name: torch.cat([scene[0][name] for scene in per_scene]) for name in maps}
    uncertainty = {name: torch.cat([scene[1][name] for scene in per_scene]) for name in maps}
    return combined, uncertainty
