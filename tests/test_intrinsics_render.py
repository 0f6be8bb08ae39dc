"""The ground-truth renderer satisfies its own identities (render.py conventions)."""
import torch
import torch.nn.functional as F

from lumix_engine.intrinsics import normals_from_depth, render_scene, srgb_to_linear


def test_albedo_times_irradiance_equals_color_in_linear_light():
    for seed in (0, 1, 2):
        scene = render_scene(seed, 96, 72)
        product = srgb_to_linear(scene.albedo.double()) * srgb_to_linear(scene.irradiance.double())
        # float32 storage of three sRGB-encoded maps: agreement to ~1e-7, tolerance 2e-6.
        assert (product - srgb_to_linear(scene.color.double())).abs().max() < 2e-6
        assert scene.residual.abs().max() == 0   # purely diffuse by default


def test_specular_residual_restores_color_exactly():
    scene = render_scene(5, 96, 96, specular=0.6)
    product = srgb_to_linear(scene.albedo.double()) * srgb_to_linear(scene.irradiance.double())
    assert scene.residual.max() > 0.05          # the highlight is really there
    restored = product + scene.residual.double()
    assert (restored - srgb_to_linear(scene.color.double())).abs().max() < 2e-6


def test_maps_are_images_in_range_and_normals_unit_length():
    scene = render_scene(3, 80, 64)
    for image in (scene.albedo, scene.irradiance, scene.color):
        assert image.shape == (1, 64, 80, 3) and image.dtype == torch.float32
        assert image.min() >= 0 and image.max() <= 1
    assert scene.depth.shape == (1, 64, 80, 1) and scene.depth.min() > 0
    assert (scene.normal.norm(dim=-1) - 1).abs().max() < 1e-5
    # Every visible normal faces the camera (+Z toward the viewer).
    rays = scene.camera.rays(torch.float32)
    assert ((scene.normal[0] * rays).sum(-1) < 0).all()
    images = scene.images()
    assert list(images) == ["albedo", "irradiance", "color", "depth", "normal"]
    assert all(image.shape == (1, 64, 80, 3) for image in images.values())


def test_normals_from_depth_match_analytic_normals_away_from_edges():
    for seed in (0, 2):
        scene = render_scene(seed, 160, 120)
        estimate = normals_from_depth(scene.depth, scene.camera)
        ids = scene.object_id[:, None].double()
        one_object = (F.max_pool2d(ids, 5, 1, 2) == -F.max_pool2d(-ids, 5, 1, 2))[:, 0]
        normal = scene.normal.permute(0, 3, 1, 2)
        spread = (F.max_pool2d(normal, 5, 1, 2) + F.max_pool2d(-normal, 5, 1, 2)).amax(1)
        away_from_edges = one_object & (spread < 0.5)   # 2 px from silhouettes and creases
        angle = torch.rad2deg(torch.acos((estimate * scene.normal).sum(-1).clamp(-1, 1)))[away_from_edges]
        assert away_from_edges.float().mean() > 0.8
        # Tolerances: mean 0.05 deg, 99th percentile 0.5 deg, worst pixel 4 deg (a few
        # one-sided differences on curved surfaces).
        assert angle.mean() < 0.05
        assert angle.quantile(0.99) < 0.5
        assert angle.max() < 4.0


def test_renders_are_deterministic_per_seed_and_differ_across_seeds():
    first, again, other = render_scene(7, 64, 64), render_scene(7, 64, 64), render_scene(8, 64, 64)
    for name in ("albedo", "irradiance", "color", "depth", "normal"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert (first.color - other.color).abs().mean() > 0.02
    assert first.scene == again.scene and first.scene != other.scene


def test_scene_description_names_objects_and_light():
    scene = render_scene(4, 32, 32).scene
    caption = scene.caption()
    assert all(obj.color_name in caption for obj in scene.objects)
    assert "lit from" in caption
    direction = torch.tensor(scene.key_light_direction, dtype=torch.float64)
    assert abs(direction.norm() - 1) < 1e-9 and direction[1] > 0
