"""The five LumiX maps, their order inside a batch, and the scene grouping."""
from __future__ import annotations

import torch

from .errors import BatchLayoutError

MAP_NAMES: tuple[str, ...] = ("albedo", "irradiance", "color", "depth", "normal")
# The names the authors' checkpoint and data use for the same maps, same order.
CHECKPOINT_MAP_NAMES: tuple[str, ...] = (
    "diffuse_reflectance", "diffuse_illumination", "color", "depth", "normal",
)
NUM_MAPS: int = len(MAP_NAMES)
# QBA broadcasts this map's queries to every map of its scene.
QUERY_SOURCE: int = MAP_NAMES.index("color")


def map_index(name: str) -> int:
    """Index of a map inside a scene, accepting our names and the checkpoint's names."""
    if name in MAP_NAMES:
        return MAP_NAMES.index(name)
    if name in CHECKPOINT_MAP_NAMES:
        return CHECKPOINT_MAP_NAMES.index(name)
    raise BatchLayoutError(f"unknown map name {name!r}; use one of {', '.join(MAP_NAMES)}")


def scene_count(batch_size: int, num_maps: int = NUM_MAPS) -> int:
    """Number of scenes in a batch laid out scene-major, `num_maps` entries per scene.

    Several guidance chunks ([uncond scenes..., cond scenes...]) are fine: each chunk is a
    whole number of scenes, so consecutive groups of `num_maps` are always one scene.
    """
    if batch_size <= 0 or batch_size % num_maps:
        raise BatchLayoutError(
            f"LumiX needs {num_maps} maps per scene ({', '.join(MAP_NAMES[:num_maps]) if num_maps == NUM_MAPS else num_maps}), "
            f"in that order, so the batch must be a multiple of {num_maps}; got a batch of {batch_size}. "
            f"Use a LumiX sampler (it lays out {num_maps} maps per scene) or set the batch size to "
            f"{num_maps} x scenes."
        )
    return batch_size // num_maps


def broadcast_to_scene(per_scene: torch.Tensor) -> torch.Tensor:
    """[k, ...] -> [5k, ...]: each scene's tensor repeated for its five maps."""
    scenes = per_scene.shape[0]
    return per_scene.unsqueeze(1).expand(scenes, NUM_MAPS, *per_scene.shape[1:]).reshape(
        scenes * NUM_MAPS, *per_scene.shape[1:])


def split_maps(batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """[5k, ...] scene-major -> {"albedo": [k, ...], ...}: each map's batch over the scenes."""
    scenes = scene_count(batch.shape[0])
    grouped = batch.reshape(scenes, NUM_MAPS, *batch.shape[1:])
    return {name: grouped[:, index] for index, name in enumerate(MAP_NAMES)}


def join_maps(maps: dict[str, torch.Tensor]) -> torch.Tensor:
    """Inverse of split_maps: {"albedo": [k, ...], ...} -> [5k, ...] scene-major."""
    missing = [name for name in MAP_NAMES if name not in maps]
    if missing:
        raise BatchLayoutError(f"missing maps {missing}; all five of {', '.join(MAP_NAMES)} are needed")
    shapes = {tuple(maps[name].shape) for name in MAP_NAMES}
    if len(shapes) > 1:
        raise BatchLayoutError(f"the five maps have different shapes {sorted(shapes)}; they must be pixel-aligned")
    stacked = torch.stack([maps[name] for name in MAP_NAMES], dim=1)
    return stacked.reshape(-1, *stacked.shape[2:])


def scene_strip(latents: torch.Tensor, scene: int = 0) -> torch.Tensor:
    """The five maps of one scene side by side: [5k, C, h, w] -> [1, C, h, 5w] (previews)."""
    maps = latents[scene * NUM_MAPS:(scene + 1) * NUM_MAPS]
    return maps.permute(1, 2, 0, 3).reshape(1, maps.shape[1], maps.shape[2], -1)
