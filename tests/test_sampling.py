import math

import pytest
import torch

from lumix_engine.errors import InputError
from lumix_engine.method.sampling import (
    GivenMaps,
    check_size,
    check_steps,
    guided_velocity,
    mu_for_tokens,
    sample_euler,
    schedule,
    shared_noise,
    token_count,
)


def test_published_token_count_quirk_and_true_count():
    assert token_count(512, 512, "published") == 16
    assert token_count(512, 512, "true") == 1024
    assert mu_for_tokens(16) == pytest.approx(0.459375)
    assert mu_for_tokens(1024) == pytest.approx(0.63)
    assert mu_for_tokens(256) == pytest.approx(0.5) and mu_for_tokens(4096) == pytest.approx(1.15)


def test_schedule_is_the_time_shifted_linspace():
    ts = schedule(50, 512, 512)
    assert ts.shape == (51,) and ts[0] == 1 and ts[-1] == 0
    assert torch.all(ts[1:] < ts[:-1])
    mu = mu_for_tokens(16)
    t = 0.3
    expected = math.exp(mu) / (math.exp(mu) + (1 / t - 1))
    assert schedule(10, 512, 512)[7].item() == pytest.approx(expected, rel=1e-12)
    assert not torch.allclose(schedule(10, 512, 512, "true"), schedule(10, 512, 512))


def test_bad_sizes_and_steps_get_clear_errors():
    with pytest.raises(InputError, match="multiple of 16.*use 512"):
        check_size(513, 512)
    with pytest.raises(InputError, match="steps must be at least 1"):
        schedule(0, 512, 512)


def test_one_noise_per_scene_shared_by_its_five_maps():
    noise = shared_noise(3, (4, 6, 6), seed=7)
    assert noise.shape == (15, 4, 6, 6)
    for scene in range(3):
        block = noise[scene * 5:(scene + 1) * 5]
        assert torch.equal(block, block[:1].expand_as(block))
    assert not torch.equal(noise[0], noise[5])
    assert torch.equal(noise, shared_noise(3, (4, 6, 6), seed=7))
    assert not torch.equal(noise, shared_noise(3, (4, 6, 6), seed=8))


def test_true_cfg():
    pos, neg = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.allclose(guided_velocity(pos, neg, 3.0), neg + 3.0 * (pos - neg))
    assert torch.allclose(guided_velocity(pos, neg, 1.0), pos, atol=1e-6)


def test_euler_integrates_a_constant_velocity_exactly():
    target = torch.randn(5, 2, 4, 4)
    noise = torch.randn(5, 2, 4, 4)
    # v = noise - data is constant along the straight path x_t = t noise + (1 - t) data.
    out = sample_euler(lambda x, t: noise - target, noise, schedule(7, 64, 64))
    assert torch.allclose(out, target, atol=1e-6)


def test_given_maps_are_held_at_t0_and_bit_identical():
    color = torch.randn(2, 4, 6, 6)
    given = GivenMaps({"color": color})
    seen = []

    def velocity(x, t):
        seen.append(t.clone())
        return torch.randn_like(x)

    out = sample_euler(velocity, shared_noise(2, (4, 6, 6), 0), schedule(4, 96, 96), given)
    assert torch.equal(out[2], color[0]) and torch.equal(out[7], color[1])
    for t in seen:
        assert torch.all(t[[2, 7]] == 0) and torch.all(t[[0, 1, 3, 4]] > 0)


def test_given_maps_validate_counts_and_sizes():
    with pytest.raises(InputError, match="scene"):
        GivenMaps({"depth": torch.randn(3, 4, 6, 6)}).hold(torch.randn(10, 4, 6, 6))
    with pytest.raises(InputError, match="resize"):
        GivenMaps({"depth": torch.randn(2, 4, 8, 8)}).hold(torch.randn(10, 4, 6, 6))
    with pytest.raises(InputError, match="nothing to generate"):
        GivenMaps({n: torch.randn(1, 4, 2, 2) for n in ("albedo", "irradiance", "color", "depth", "normal")})


def test_given_maps_hold_every_guidance_chunk():
    color = torch.randn(2, 4, 6, 6)
    x = torch.randn(20, 4, 6, 6)
    held = GivenMaps({"color": color}).hold(x, chunks=2)
    for row, scene in ((2, 0), (7, 1), (12, 0), (17, 1)):
        assert torch.equal(held[row], color[scene])
    assert torch.equal(held[0], x[0]) and torch.equal(held[19], x[19])


def test_auto_settings_follow_the_published_modes():
    from lumix_engine.method.sampling import AUTO, resolve_guidance
    assert resolve_guidance(AUTO, AUTO, decomposing=False) == (3.0, 3.5)
    assert resolve_guidance(AUTO, AUTO, decomposing=True) == (1.0, 1.0)
    assert resolve_guidance(2.0, AUTO, decomposing=True) == (2.0, 1.0)


@pytest.mark.parametrize("width, height, message", [
    (72, 64, "width 72 is not a positive multiple of 16.*use 64"),
    (64, 8, "height 8 is not a positive multiple of 16.*use 16"),
    (0, 64, "width 0 is not a positive multiple of 16"),
    (-16, 64, "width -16 is not a positive multiple of 16"),
    (4112, 64, "width 4112 exceeds 4096"),
])
def test_sizes_are_checked(width, height, message):
    with pytest.raises(InputError, match=message):
        check_size(width, height)


@pytest.mark.parametrize("steps", [0, -1, -50])
def test_zero_or_negative_steps_are_refused(steps):
    with pytest.raises(InputError, match=f"steps must be at least 1, got {steps}"):
        check_steps(steps)
    with pytest.raises(InputError, match="steps must be at least 1"):
        schedule(steps, 64, 64)


def test_given_maps_of_different_sizes_are_refused():
    with pytest.raises(InputError, match="different latent shapes"):
        GivenMaps({"color": torch.zeros(1, 16, 8, 8), "depth": torch.zeros(1, 16, 6, 8)})


def test_given_map_latent_of_another_size_than_the_sample_is_refused():
    given = GivenMaps({"color": torch.zeros(1, 16, 6, 8)})
    with pytest.raises(InputError, match=r"the given color latent is \(16, 6, 8\).*\(16, 8, 8\).*resize"):
        given.hold(torch.zeros(5, 16, 8, 8))


def test_given_map_batch_that_disagrees_with_the_scene_count_is_refused():
    given = GivenMaps({"color": torch.zeros(3, 16, 8, 8)})
    with pytest.raises(InputError, match=r"3 given image\(s\) per map but 2 scene\(s\)"):
        given.hold(torch.zeros(10, 16, 8, 8))
    with pytest.raises(InputError, match="1 scene"):
        given.hold(torch.zeros(10, 16, 8, 8), chunks=2)


def test_all_five_maps_given_is_refused():
    with pytest.raises(InputError, match="nothing to generate"):
        GivenMaps({name: torch.zeros(1, 16, 4, 4) for name in ("albedo", "irradiance", "color", "depth", "normal")})
