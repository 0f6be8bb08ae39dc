"""Procedural ground-truth scenes: exact, pixel-aligned albedo, irradiance, color, depth, normal.

This renderer is the oracle the tests and the demo use. It ray-casts spheres, boxes and
two planes (a checkered floor and a back wall) from a seed, shades them Lambertian under
one directional light, one point light and ambient light, with hard shadows, and can add
a non-diffuse (Blinn-Phong specular) residual.

Map conventions and the camera and light types are in `conventions.py`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..devices import to_float64
from ..errors import InputError
from .color_space import linear_to_srgb, srgb_to_linear
from .conventions import Light, PinholeCamera
from .depth import depth_to_image
from .normals import encode_normals

# Named sRGB colours, so that a scene description reads as a caption ("a red sphere").
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.15, 0.12), "orange": (0.92, 0.52, 0.12), "yellow": (0.90, 0.80, 0.22),
    "green": (0.22, 0.66, 0.26), "teal": (0.14, 0.58, 0.60), "blue": (0.16, 0.32, 0.82),
    "purple": (0.52, 0.26, 0.72), "pink": (0.92, 0.52, 0.66), "white": (0.88, 0.88, 0.86),
    "grey": (0.50, 0.50, 0.50), "brown": (0.52, 0.33, 0.19),
}
FLOOR_Y = -1.0        # the floor plane y = FLOOR_Y; objects rest on it
WALL_Z = -11.0        # the back wall z = WALL_Z closes the view: every ray hits something
CHECKER_SIZE = 1.0    # floor checker period in scene units
_FAR = 1e9


@dataclass(frozen=True)
class SceneObject:
    """One object. kind: 'sphere' | 'box' | 'plane'. Sizes and positions in camera space."""
    kind: str
    color_name: str
    albedo_srgb: tuple[float, float, float]
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)   # plane: a point on it
    radius: float = 0.0                                     # sphere
    half_size: tuple[float, float, float] = (0.0, 0.0, 0.0)  # box, before yaw
    yaw: float = 0.0                                        # box rotation about +Y, radians
    plane_normal: tuple[float, float, float] = (0.0, 1.0, 0.0)
    checker_srgb: tuple[float, float, float] | None = None  # plane: second checker colour
    checker_name: str | None = None
    glossy: bool = False                                    # receives the specular residual

    def describe(self) -> str:
        if self.kind == "plane" and self.checker_name:
            return f"a {self.checker_name} and {self.color_name} checkered floor"
        if self.kind == "plane":
            return f"a {self.color_name} wall"
        article = "an" if self.color_name[0] in "aeiou" else "a"
        return f"{article} {self.color_name} {'cube' if self._is_cube() else self.kind}"

    def _is_cube(self) -> bool:
        return self.kind == "box" and max(self.half_size) - min(self.half_size) < 1e-9


@dataclass(frozen=True)
class SceneDescription:
    """Everything needed to render a scene again and to caption it."""
    seed: int
    objects: tuple[SceneObject, ...]   # objects[0] is the floor, objects[1] the wall
    lights: tuple[Light, ...]
    ambient: tuple[float, float, float]  # linear RGB irradiance everywhere

    @property
    def key_light_direction(self) -> tuple[float, float, float]:
        """Unit direction toward the directional (key) light, camera space."""
        return next(light.vector for light in self.lights if light.kind == "directional")

    def light_direction_words(self) -> str:
        x, y, z = self.key_light_direction
        vertical = "above" if y > 0.75 else ("upper" if y > 0.3 else "")
        horizontal = "left" if x < -0.3 else ("right" if x > 0.3 else "front")
        return f"{vertical} {horizontal}".strip() if vertical != "above" else "above"

    def caption(self) -> str:
        things = [o.describe() for o in self.objects[2:]]
        listed = things[0] if len(things) == 1 else ", ".join(things[:-1]) + " and " + things[-1]
        return (f"{listed} on {self.objects[0].describe()} in front of {self.objects[1].describe()}, "
                f"lit from {'above' if (words := self.light_direction_words()) == 'above' else 'the ' + words}")


@dataclass
class RenderedScene:
    """Exact maps of one scene, batch of 1. See the module docstring for encodings."""
    albedo: torch.Tensor       # [1, H, W, 3] sRGB-encoded
    irradiance: torch.Tensor   # [1, H, W, 3] sRGB-encoded
    color: torch.Tensor        # [1, H, W, 3] sRGB-encoded
    depth: torch.Tensor        # [1, H, W, 1] scene units along the view axis
    normal: torch.Tensor       # [1, H, W, 3] unit vectors, camera space
    residual: torch.Tensor     # [1, H, W, 3] linear, signed
    object_id: torch.Tensor    # [1, H, W] int64 index into scene.objects
    scene: SceneDescription
    camera: PinholeCamera

    def images(self) -> dict[str, torch.Tensor]:
        """The five maps as ComfyUI images [1, H, W, 3] in [0, 1], in LumiX's map order:
        depth as min-max near-white disparity, normals OpenGL-encoded."""
        return {
            "albedo": self.albedo, "irradiance": self.irradiance, "color": self.color,
            "depth": depth_to_image(self.depth, normalization="minmax"),
            "normal": encode_normals(self.normal),
        }


def make_scene(seed: int) -> SceneDescription:
    """A random scene from `seed`: 3 to 5 spheres and boxes on a floor before a wall."""
    rng = np.random.default_rng(seed)
    names = list(PALETTE)
    floor_a, floor_b, wall = rng.choice(names, size=3, replace=False)
    objects = [
        SceneObject("plane", str(floor_a), PALETTE[floor_a], center=(0.0, FLOOR_Y, 0.0),
                    plane_normal=(0.0, 1.0, 0.0), checker_srgb=PALETTE[floor_b], checker_name=str(floor_b)),
        SceneObject("plane", str(wall), PALETTE[wall], center=(0.0, 0.0, WALL_Z), plane_normal=(0.0, 0.0, 1.0)),
    ]
    footprints: list[tuple[float, float, float]] = []   # (x, z, radius) to avoid overlaps
    for _ in range(int(rng.integers(3, 6))):
        for _attempt in range(30):
            kind = "sphere" if rng.random() < 0.5 else "box"
            size = float(rng.uniform(0.35, 0.8))
            x, z = float(rng.uniform(-2.6, 2.6)), float(rng.uniform(-8.5, -4.5))
            reach = size * (1.75 if kind == "box" else 1.0)
            if all(math.hypot(x - fx, z - fz) > reach + fr + 0.1 for fx, fz, fr in footprints):
                break
        else:
            continue
        footprints.append((x, z, reach))
        name = str(rng.choice(names))
        if kind == "sphere":
            objects.append(SceneObject("sphere", name, PALETTE[name], center=(x, FLOOR_Y + size, z),
                                       radius=size, glossy=True))
        else:
            half = (size, size * float(rng.uniform(0.7, 1.4)), size) if rng.random() < 0.5 else (size, size, size)
            objects.append(SceneObject("box", name, PALETTE[name], center=(x, FLOOR_Y + half[1], z),
                                       half_size=half, yaw=float(rng.uniform(0, math.pi / 2))))
    # Light budget: ambient + key + point <= 0.95 per channel, so irradiance stays in [0, 1]
    # and the sRGB encoding of irradiance and color is exact (no clipping in the oracle).
    ambient_level = float(rng.uniform(0.08, 0.18))
    key_level = float(rng.uniform(0.45, 0.62))
    point_level = 0.95 - ambient_level - key_level
    azimuth = float(rng.uniform(-1.2, 1.2))        # radians from straight ahead (+Z)
    elevation = float(rng.uniform(0.5, 1.2))
    key_direction = (math.sin(azimuth) * math.cos(elevation), math.sin(elevation),
                     math.cos(azimuth) * math.cos(elevation))
    warm = tuple(float(c) for c in (1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 0.95)))
    cool = tuple(float(c) for c in (rng.uniform(0.7, 0.95), rng.uniform(0.85, 1.0), 1.0))
    lights = (
        Light("directional", key_direction, warm, key_level),
        Light("point", (float(rng.uniform(-3, 3)), float(rng.uniform(1.5, 3.0)), float(rng.uniform(-5, -2))),
              cool, point_level),
    )
    ambient = (ambient_level, ambient_level, ambient_level)
    return SceneDescription(seed, tuple(objects), lights, ambient)


def _intersect(obj: SceneObject, origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray parameter t of the first hit in front of the origin ([N], _FAR if none) and the
    outward normal there ([N, 3]). Rays are origins + t * dirs; dirs need not be unit."""
    eps = 1e-9
    center = origins.new_tensor(obj.center)
    if obj.kind == "plane":
        normal = origins.new_tensor(obj.plane_normal)
        denom = dirs @ normal
        t = ((center - origins) @ normal) / torch.where(denom.abs() < eps, torch.full_like(denom, eps), denom)
        t = torch.where(t > eps, t, torch.full_like(t, _FAR))
        return t, normal.expand_as(dirs)
    if obj.kind == "sphere":
        oc = origins - center
        a = (dirs * dirs).sum(-1)
        half_b = (oc * dirs).sum(-1)
        c = (oc * oc).sum(-1) - obj.radius ** 2
        disc = half_b ** 2 - a * c
        root = torch.sqrt(disc.clamp_min(0))
        near, far = (-half_b - root) / a, (-half_b + root) / a
        t = torch.where(near > eps, near, far)   # far: the origin is inside (never for camera rays)
        t = torch.where((disc >= 0) & (t > eps), t, torch.full_like(t, _FAR))
        normal = (origins + t[:, None] * dirs - center) / obj.radius
        return t, normal
    if obj.kind == "box":
        # Slab test in the box's own frame (rotated by yaw about +Y).
        cos, sin = math.cos(obj.yaw), math.sin(obj.yaw)
        rotation = origins.new_tensor([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]])  # local -> camera
        local_origin = (origins - center) @ rotation
        local_dir = dirs @ rotation
        safe_dir = torch.where(local_dir.abs() < eps, torch.full_like(local_dir, eps), local_dir)
        half = origins.new_tensor(obj.half_size)
        t1, t2 = (-half - local_origin) / safe_dir, (half - local_origin) / safe_dir
        t_enter_axes = torch.minimum(t1, t2)
        t_enter, axis = t_enter_axes.max(dim=-1)
        t_exit = torch.maximum(t1, t2).min(dim=-1).values
        hit = (t_exit >= t_enter) & (t_enter > eps)
        t = torch.where(hit, t_enter, torch.full_like(t_enter, _FAR))
        local_normal = torch.zeros_like(local_dir)
        sign = -torch.sign(local_dir.gather(-1, axis[:, None]))
        local_normal.scatter_(-1, axis[:, None], sign)
        return t, local_normal @ rotation.T
    raise InputError(f"unknown object kind {obj.kind!r}; use 'sphere', 'box' or 'plane'.")


def _first_hit(objects: tuple[SceneObject, ...], origins: torch.Tensor, dirs: torch.Tensor):
    """Nearest hit over all objects: (t [N], normal [N, 3], object index [N])."""
    t_all = torch.stack([_intersect(obj, origins, dirs)[0] for obj in objects])   # [objects, N]
    t, index = t_all.min(dim=0)
    # Normals only where each object is the visible one: cheaper than for every ray.
    normal = torch.empty_like(dirs)
    for k, obj in enumerate(objects):
        mine = (index == k).nonzero()[:, 0]
        normal[mine] = _intersect(obj, origins[mine], dirs[mine])[1]
    return t, normal, index


def _occluded(objects: tuple[SceneObject, ...], origins: torch.Tensor, dirs: torch.Tensor,
              t_max: float | torch.Tensor) -> torch.Tensor:
    """True where a shadow ray hits a sphere or box before t_max. The floor and the wall
    never occlude: every light is above the floor and in front of the wall (make_scene),
    so skipping them is exact and halves the cost."""
    blocked = torch.zeros(len(origins), dtype=torch.bool)
    for obj in objects:
        if obj.kind != "plane":
            blocked |= _intersect(obj, origins, dirs)[0] < t_max
    return blocked


def render(scene: SceneDescription, width: int = 512, height: int = 512, *, specular: float = 0.0,
           shininess: float = 48.0, fov_y_degrees: float = 50.0, dtype: torch.dtype = torch.float32) -> RenderedScene:
    """Render `scene` exactly; returns maps in `dtype`.

    specular: strength of a Blinn-Phong highlight on glossy objects, stored as the
    residual (0 = purely diffuse, color = albedo x irradiance exactly).
    """
    if width < 8 or height < 8:
        raise InputError(f"render size {width}x{height} is too small; use at least 8x8 pixels.")
    camera = PinholeCamera.from_fov(width, height, fov_y_degrees)
    # Geometry in float32 (half the memory traffic of float64, and ample for ray casting);
    # shading in float64, so the maps satisfy color = albedo x irradiance to float precision.
    dirs = camera.rays(torch.float32).reshape(-1, 3)
    origins = torch.zeros_like(dirs)
    t, normal, index = _first_hit(scene.objects, origins, dirs)
    normal = torch.where(((normal * dirs).sum(-1) > 0)[:, None], -normal, normal)  # planes: face the camera
    normal = normal / normal.norm(dim=-1, keepdim=True)   # (P - C) / R drifts from unit length in float32
    points = t[:, None] * dirs
    # Shadow rays start a little off the surface so a surface never shadows itself.
    shadow_origins = points + normal * 1e-4 * t[:, None].clamp_min(1.0)
    view = -points / points.norm(dim=-1, keepdim=True)

    albedo_table = srgb_to_linear(torch.tensor([o.albedo_srgb for o in scene.objects], dtype=torch.float64))
    albedo = albedo_table[index]
    floor = scene.objects[0]
    if floor.checker_srgb is not None:
        parity = (torch.floor(points[:, 0] / CHECKER_SIZE) + torch.floor(points[:, 2] / CHECKER_SIZE)) % 2 == 1
        second = srgb_to_linear(torch.tensor(floor.checker_srgb, dtype=torch.float64))
        albedo = torch.where(((index == 0) & parity)[:, None], second, albedo)

    irradiance = torch.tensor(scene.ambient, dtype=torch.float64).expand_as(points).clone()
    highlight = torch.zeros_like(points)
    glossy = torch.tensor([o.glossy for o in scene.objects])[index]
    for light in scene.lights:
        vector = torch.tensor(light.vector, dtype=torch.float32)
        if light.kind == "directional":
            to_light = (vector / vector.norm()).expand_as(points)
            falloff = torch.ones_like(t)
            t_max: float | torch.Tensor = _FAR / 2
        else:
            offset = vector - points
            distance = offset.norm(dim=-1)
            to_light = offset / distance[:, None]
            # Bounded falloff (<= 1), so the light budget in make_scene holds everywhere.
            falloff = 9.0 / (9.0 + distance ** 2)
            t_max = distance
        cosine = (normal * to_light).sum(-1).clamp_min(0)
        # Shadow rays only where the surface faces the light; the rest is unlit anyway.
        facing = (cosine > 0).nonzero()[:, 0]
        lit = torch.zeros_like(cosine, dtype=torch.bool)
        lit[facing] = ~_occluded(scene.objects, shadow_origins[facing], to_light[facing],
                                 t_max if isinstance(t_max, float) else t_max[facing])
        radiance = torch.tensor(light.color, dtype=torch.float64) * light.intensity
        irradiance = irradiance + (lit * cosine * falloff)[:, None] * radiance
        if specular > 0:
            half_vector = to_light + view
            half_vector = half_vector / half_vector.norm(dim=-1, keepdim=True)
            lobe = (normal * half_vector).sum(-1).clamp_min(0) ** shininess
            highlight = highlight + (specular * lit * glossy * lobe * falloff)[:, None] * radiance

    diffuse = albedo * irradiance
    color = (diffuse + highlight).clamp(0, 1)
    residual = color - diffuse   # after clipping, so recompose(+residual) restores color exactly

    def image(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(1, height, width, -1).to(dtype)

    return RenderedScene(
        albedo=image(linear_to_srgb(albedo)), irradiance=image(linear_to_srgb(irradiance)),
        color=image(linear_to_srgb(color)), depth=image(t[:, None]), normal=image(normal),
        residual=image(residual), object_id=index.reshape(1, height, width),
        scene=scene, camera=camera,
    )


def render_scene(seed: int, width: int = 512, height: int = 512, **options) -> RenderedScene:
    """make_scene(seed) then render(...): the one-call oracle used by tests and the demo."""
    return render(make_scene(seed), width, height, **options)


def environment_irradiance(normal: torch.Tensor, environment: torch.Tensor, rotation: float = 0.0,
                           chunk: int = 4096) -> torch.Tensor:
    """Exact diffuse irradiance from an equirectangular environment, by brute force.

    E(n) / pi = (1 / pi) sum over environment pixels of L(w) max(0, n . w) dw, for unit
    normals [..., 3] -> linear [..., 3] in float64; no visibility (every direction of the
    upper hemisphere is seen), the same assumption as the SH9 fit it checks. Direction and
    scale conventions: `environment.py`.
    """
    from .environment import check_environment, environment_directions  # sibling, not a base
    environment = to_float64(check_environment(environment), "cpu")
    directions, solid_angle = environment_directions(*environment.shape[:2], rotation=rotation)
    weighted = (environment * solid_angle[..., None]).reshape(-1, 3) / math.pi
    directions = directions.reshape(-1, 3)
    flat = to_float64(normal.reshape(-1, 3), "cpu")
    out = torch.empty_like(flat)
    for start in range(0, len(flat), chunk):
        cosine = (flat[start:start + chunk] @ directions.T).clamp_min(0)
        out[start:start + chunk] = cosine @ weighted
    return out.reshape(normal.shape)
