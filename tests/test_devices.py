"""No float64 tensor on a device that lacks float64 (Apple MPS), checked on a Linux CPU.

There is no MPS device here, so the test builds the one property that matters: a device on
which any float64 tensor is refused, as MPS refuses it ("Cannot convert a MPS Tensor to
float64 dtype"). `NoFloat64Device` is a tensor subclass that holds real CPU data but reports
the `meta` device (a device torch knows on every build, standing in for MPS; the engine is
told that `meta`, like `mps`, lacks float64). A dispatch mode runs every aten operation on the
real data and raises (Float64OnDevice) the moment an operation would leave a float64 tensor on that device:
created there (`torch.arange(..., dtype=float64, device=x.device)`), cast there (`x.double()`,
`x.to(torch.float64)`) or computed there from float64 operands. Moving a tensor to the CPU
leaves the emulated device, as on a Mac. So an engine function that passes here with its
inputs on the emulated device creates no float64 tensor on a device without float64, and its
results are compared with the same function on CPU inputs. `test_the_emulator_refuses_...`
shows that the check fails on the pattern that was in the engine before (so it can fail).
"""
from __future__ import annotations

import contextlib

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map

from lumix_engine import devices

STAND_IN = torch.device("meta")


class NoFloat64Device(torch.Tensor):
    """Real CPU data (`held`) reported as living on STAND_IN."""

    @staticmethod
    def __new__(cls, held: torch.Tensor):
        tensor = torch.Tensor._make_wrapper_subclass(cls, held.shape, strides=held.stride(), dtype=held.dtype,
                                                     device=STAND_IN, requires_grad=False)
        tensor.held = held
        return tensor

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError("a NoFloat64Device tensor was used outside `emulated()`")


class Float64OnDevice(RuntimeError):
    """What MPS raises as a TypeError; a RuntimeError here, because torch turns a TypeError
    inside `a * b` into NotImplemented and the real cause would be lost."""


class _Emulator(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        on_device = any(isinstance(leaf, NoFloat64Device) for leaf in tree_leaves((args, kwargs)))
        if kwargs.get("device") is not None:   # a factory, or a .to(device=...) copy
            on_device = torch.device(kwargs["device"]).type == STAND_IN.type
            if on_device:
                kwargs["device"] = torch.device("cpu")

        def unwrap(value):
            return value.held if isinstance(value, NoFloat64Device) else value

        out = func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs))
        if not on_device:
            return out

        return tree_map(_on_device(func), out)


def _on_device(func):
    def wrap(value):
        if not isinstance(value, torch.Tensor):
            return value
        if value.dtype == torch.float64:
            raise Float64OnDevice(f"{func}: Cannot convert a MPS Tensor to float64 dtype as the MPS framework "
                                  f"doesn't support float64. Please use float32 instead.")
        return NoFloat64Device(value)
    return wrap


class _FromData(TorchFunctionMode):
    """`x.new_tensor(data)` and `torch.tensor(data, device=...)` build their tensor below the
    dispatcher's Python hooks, so they are caught here, one level up."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.new_tensor and isinstance(args[0], NoFloat64Device):
            data = torch.tensor(args[1], dtype=kwargs.get("dtype") or args[0].dtype)
            return _on_device(func)(data)
        if func in (torch.tensor, torch.as_tensor) and kwargs.get("device") is not None \
                and torch.device(kwargs["device"]).type == STAND_IN.type:
            kwargs.pop("device")
            return _on_device(func)(func(*args, **kwargs))
        return func(*args, **kwargs)


@contextlib.contextmanager
def _emulation():
    with _FromData(), _Emulator():
        yield


@pytest.fixture
def emulated(monkeypatch):
    """(put, mode): `put(cpu tensor)` places it on the emulated device; run the engine inside `mode`."""
    monkeypatch.setattr(devices, "DEVICES_WITHOUT_FLOAT64", devices.DEVICES_WITHOUT_FLOAT64 | {STAND_IN.type})
    return NoFloat64Device, _emulation()


def held(value):
    """A result as CPU data, wherever it is."""
    if isinstance(value, NoFloat64Device):
        return value.held
    return value


def test_mps_is_a_device_without_float64():
    assert not devices.has_float64("mps") and devices.float64_device("mps") == torch.device("cpu")
    assert devices.has_float64("cuda") and devices.float64_device("cuda:1") == torch.device("cuda:1")


def test_the_emulator_refuses_float64_on_the_device_as_mps_does(emulated):
    put, mode = emulated
    x = put(torch.rand(4))
    with mode:
        assert (x * 2).device == STAND_IN and float(x.sum()) == pytest.approx(float(x.held.sum()))
        for make_float64 in (lambda: x.double(), lambda: x.to(torch.float64),
                             lambda: torch.arange(3, dtype=torch.float64, device=x.device),
                             lambda: x * torch.ones(4, dtype=torch.float64)):
            with pytest.raises(Float64OnDevice, match="float64"):
                make_float64()
        on_cpu = devices.to_float64(x)   # the helper: moved off the device first, then cast
        assert on_cpu.device.type == "cpu" and on_cpu.dtype == torch.float64
        back = devices.to_device(on_cpu * 2, x.device)
        assert back.device == STAND_IN and back.dtype == torch.float32


def test_rope_tables_for_a_device_without_float64(emulated):
    from lumix_engine.flux.rotary import bfl_pe
    put, mode = emulated
    ids = torch.stack([torch.zeros(9), torch.arange(9.0) // 3, torch.arange(9.0) % 3], -1)[None]
    with mode:
        pe = bfl_pe(put(ids), [4, 6, 6])
    assert pe.device == STAND_IN and pe.dtype == torch.float32
    assert torch.equal(held(pe), bfl_pe(ids, [4, 6, 6]))   # the same table as on the CPU, bit for bit


def test_the_tiny_flux_forward_makes_no_float64_on_the_device(emulated):
    """The whole BFL-layout forward (rope, timestep embedding, blocks) on device activations."""
    from lumix_engine.tiny_random import TINY_FLUX, random_bfl_flux
    put, mode = emulated
    model = random_bfl_flux(TINY_FLUX).eval()
    g = torch.Generator().manual_seed(0)
    latent, context = torch.randn(5, 16, 4, 4, generator=g), torch.randn(5, 7, TINY_FLUX.context_in_dim, generator=g)
    y, t = torch.randn(5, TINY_FLUX.vec_in_dim, generator=g), torch.rand(5, generator=g)
    guidance = torch.full((5,), 3.5)
    with torch.no_grad():
        expected = model.forward_latent(latent, t, context, y, guidance)
        with mode:
            out = model.forward_latent(put(latent), put(t), put(context), put(y), put(guidance))
    assert out.device == STAND_IN and torch.allclose(held(out), expected, atol=1e-6, rtol=0)


def test_relighting_with_an_environment_on_a_device_without_float64(emulated):
    from lumix_engine.intrinsics.conventions import Light
    from lumix_engine.intrinsics.environment import procedural_sky
    from lumix_engine.intrinsics.recompose import irradiance_from_lights
    from lumix_engine.intrinsics.render import environment_irradiance
    put, mode = emulated
    normal = torch.rand(1, 6, 5, 3, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    sky = procedural_sky(8)
    lights = [Light("directional", (0.3, 1.0, 0.5))]
    with mode:
        relit = irradiance_from_lights(put(normal), lights, environment=sky)
        brute = environment_irradiance(devices.to_float64(put(normal) * 2 - 1), sky)
    assert relit.device == STAND_IN and relit.dtype == torch.float32
    assert torch.allclose(held(relit), irradiance_from_lights(normal, lights, environment=sky).float(), atol=1e-6)
    assert torch.allclose(brute, environment_irradiance(normal.double() * 2 - 1, sky), atol=1e-12)


def test_exports_from_a_device_without_float64(emulated):
    from lumix_engine.formats.exr import map_channels
    from lumix_engine.formats.mesh import depth_mesh, tangent_space_normals
    put, mode = emulated
    g = torch.Generator().manual_seed(2)
    depth = (torch.rand(1, 12, 10, 1, generator=g) * 0.8 + 0.2).expand(-1, -1, -1, 3).contiguous()
    normal = torch.nn.functional.normalize(torch.randn(1, 12, 10, 3, generator=g) + torch.tensor([0, 0, 2.0]), dim=-1)
    normal = (normal + 1) / 2
    albedo = torch.rand(1, 12, 10, 3, generator=g)
    with mode:
        channels = {name: map_channels(name, put(image)) for name, image in
                    (("albedo", albedo), ("depth", depth), ("normal", normal))}
        mesh = depth_mesh(put(depth), put(normal), max_side=8)
        tangent = tangent_space_normals(put(normal), mesh)
    for name, image in (("albedo", albedo), ("depth", depth), ("normal", normal)):
        for got, want in zip(channels[name], map_channels(name, image)):
            assert got.keys() == want.keys() and all((got[c] == want[c]).all() for c in got), name
    expected = depth_mesh(depth, normal, max_side=8)
    assert (mesh.vertices == expected.vertices).all() and (mesh.faces == expected.faces).all()
    assert torch.equal(held(tangent), tangent_space_normals(normal, expected))


def test_tiny_model_fit_and_depth_score_on_a_device_without_float64(emulated):
    from lumix_engine.tiny_trained.latent import BlockPCACodec
    from lumix_engine.tiny_trained.metrics import depth_absrel
    put, mode = emulated
    g = torch.Generator().manual_seed(3)
    images = torch.rand(4, 8, 8, 3, generator=g)
    predicted, metric = torch.rand(2, 8, 8, 3, generator=g), torch.rand(2, 8, 8, 1, generator=g) + 0.5
    with mode:
        codec = BlockPCACodec().fit(put(images))
        score = depth_absrel(put(predicted), put(metric))
    reference = BlockPCACodec().fit(images)
    assert torch.equal(codec.basis, reference.basis) and torch.equal(codec.scale, reference.scale)
    assert torch.equal(held(score), depth_absrel(predicted, metric))
