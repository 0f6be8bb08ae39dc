"""Peak GPU memory of real code, simulated: fake CUDA tensors and a live-storage count.

Under torch's FakeTensorMode every tensor carries its shape, dtype and device but no data,
so FLUX.1-dev (12 B parameters) and its activations at any working size "run" on a CPU in
seconds, with tensors on a fake `cuda` device (no GPU or CUDA build needed). `PeakMemory`,
a TorchDispatchMode stacked on top, sees every aten op and adds up the bytes of the
storages alive on that device: what `torch.cuda.max_memory_allocated` would report, minus
the allocator's rounding and the kernels' private workspaces (cuBLAS, flash attention).

Storages are followed with `StorageWeakRef` (a weak reference to the C++ storage): the
Python storage object of a tensor is recreated on every `untyped_storage()` call, so a
weakref finalizer on it fires at once; the C++ storage lives exactly as long as some
tensor uses it. Expired storages are dropped before each op, so a peak is what is alive
just after an op has allocated its outputs.

`fake_cuda()` is FakeTensorMode plus what a CPU-only torch build lacks for fake CUDA tensors
(`_CudaKernels`): `F.scaled_dot_product_attention` dispatches as on an NVIDIA GPU (flash
attention for fp16 / bf16, the memory-efficient kernel otherwise; without this the fake
device falls back to the "math" attention, which materialises the L x L scores), and the
few Tensor methods whose binding wants a CUDA device guard are rerouted to aten ops. Work
that involves no GPU tensor (schedules, seeds, noise drawn on the CPU) runs for real, and
small tensors moved to the GPU keep a real twin (`ShadowValues`), so code that reads values
back (`float(sigma)`, `count_nonzero(latent) > 0`) takes the branch it takes on a GPU.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

GB = 1e9
FAKE_GPU = "cuda:0"  # with its index: resolving a bare "cuda" would ask the (absent) CUDA runtime


def _storage_key(tensor: torch.Tensor) -> tuple[int, int]:
    storage = tensor.untyped_storage()
    return storage._cdata, storage.nbytes()


@dataclass
class PeakReport:
    """Bytes on the tracked device: `resident` when tracking began (weights, inputs),
    `peak` the most alive at once, `activations` = peak - resident, `peak_op` the op that
    allocated last before the peak, `peak_live` the largest storages alive then (bytes)."""
    resident: int
    peak: int
    peak_op: str
    peak_live: list[int] = field(default_factory=list)
    ops: int = 0

    @property
    def activations(self) -> int:
        return self.peak - self.resident

    def as_dict(self) -> dict[str, Any]:
        return {"resident_gb": self.resident / GB, "peak_gb": self.peak / GB, "activations_gb": self.activations / GB,
                "peak_op": self.peak_op, "largest_live_at_peak_gb": [b / GB for b in self.peak_live], "ops": self.ops}


class PeakMemory(TorchDispatchMode):
    """Counts the storages alive on `device_type` ("cuda") over every aten op run inside.

    `track(tensors)` counts tensors that exist before the run (weights): the peak then
    includes them although no op has touched them yet. Tensors first seen as an op's
    input are counted from then on (they were alive already; counting them late only
    matters if they were created outside the mode).
    """

    def __init__(self, device_type: str = "cuda", keep_largest: int = 8) -> None:
        super().__init__()
        self.device_type = device_type
        self.keep_largest = keep_largest
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.resident = 0
        self.peak = 0
        self.peak_op = ""
        self.peak_live: list[int] = []
        self.ops = 0

    def _count(self, tensor: Any) -> None:
        if not isinstance(tensor, torch.Tensor) or tensor.device.type != self.device_type:
            return
        key, nbytes = _storage_key(tensor)
        if key not in self._live:
            self._live[key] = (StorageWeakRef(tensor.untyped_storage()), nbytes)
            self.current += nbytes

    def _drop_expired(self) -> None:
        for key in [key for key, (ref, _) in self._live.items() if ref.expired()]:
            self.current -= self._live.pop(key)[1]

    def track(self, tensors: Iterable[torch.Tensor]) -> None:
        """Count tensors that already exist (a model's weights) as resident."""
        self._drop_expired()
        for tensor in tensors:
            self._count(tensor)
        self.resident = self.current
        self.peak = max(self.peak, self.current)

    def reset_peak(self) -> None:
        """Start a new measurement: what is alive now is the new resident set."""
        self._drop_expired()
        self.resident = self.peak = self.current
        self.peak_op, self.peak_live = "", []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self._drop_expired()
        for tensor in tree_leaves((args, kwargs)):
            self._count(tensor)
        out = func(*args, **kwargs)
        for tensor in tree_leaves(out):
            self._count(tensor)
        self.ops += 1
        if self.current > self.peak:
            self.peak, self.peak_op = self.current, str(func)
            self.peak_live = sorted((n for _, n in self._live.values()), reverse=True)[:self.keep_largest]
        return out

    def report(self) -> PeakReport:
        return PeakReport(self.resident, self.peak, self.peak_op, list(self.peak_live), self.ops)


SHADOW_LIMIT = 1 << 23  # elements: latents, sigmas and masks get values; activations never do


def _cpu_args(value: Any) -> Any:
    if isinstance(value, torch.device) and value.type == "cuda" or isinstance(value, str) and value.startswith("cuda"):
        return torch.device("cpu")
    return value


class ShadowValues(TorchDispatchMode):
    """Real values for the small tensors that steer a run, on a fake device.

    Sampling code reads values from the GPU to decide what to do (`sigma > 0`,
    `count_nonzero(latent)`, ...); a fake tensor has none. Every real tensor that enters
    the fake device keeps a real CPU twin, and an op whose tensor inputs all have twins
    (and whose result is at most SHADOW_LIMIT elements) is also computed on the twins, so
    `.item()`, `bool()` and `float()` answer as on the GPU. Anything touching a weight has
    no twin, so activations are never computed for real.
    """

    def __init__(self) -> None:
        super().__init__()
        from torch.utils.weak import WeakTensorKeyDictionary
        self.twins = WeakTensorKeyDictionary()

    def _twin(self, value: Any) -> Any:
        if isinstance(value, FakeTensor):
            return self.twins.get(value)
        if isinstance(value, torch.Tensor):
            return value  # a real tensor is its own value
        return _cpu_args(value)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves = tree_leaves((args, kwargs))
        fakes = [leaf for leaf in leaves if isinstance(leaf, FakeTensor)]
        if func is torch.ops.aten._local_scalar_dense.default and fakes and fakes[0] in self.twins:
            with unset_fake_temporarily(), torch.utils._python_dispatch._disable_current_modes():
                return self.twins[fakes[0]].item()
        out = func(*args, **kwargs)
        outputs = [o for o in tree_leaves(out) if isinstance(o, FakeTensor) and o.numel() <= SHADOW_LIMIT]
        tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
        if outputs and tensors and all(not isinstance(t, FakeTensor) or t in self.twins for t in tensors):
            twin_args, twin_kwargs = torch.utils._pytree.tree_map(self._twin, (args, kwargs))
            with unset_fake_temporarily(), torch.utils._python_dispatch._disable_current_modes():
                twin_out = func(*twin_args, **twin_kwargs)
            for fake, twin in zip(tree_leaves(out), tree_leaves(twin_out)):
                if isinstance(fake, FakeTensor) and isinstance(twin, torch.Tensor) and fake.numel() <= SHADOW_LIMIT:
                    self.twins[fake] = twin
        return out


def _flash_eligible(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Any, dropout_p: float) -> bool:
    return (attn_mask is None and dropout_p == 0.0 and q.dtype in (torch.float16, torch.bfloat16)
            and q.dtype == k.dtype == v.dtype and q.shape[-1] <= 256 and q.shape[-1] % 8 == 0)


def _sdpa(args: tuple, kwargs: dict) -> Optional[torch.Tensor]:
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
    bound = dict(zip(names, args), **kwargs)
    q, k, v = bound["query"], bound["key"], bound["value"]
    if q.device.type != "cuda" or bound.get("enable_gqa"):
        return None
    mask, dropout = bound.get("attn_mask"), bound.get("dropout_p", 0.0)
    causal, scale = bound.get("is_causal", False), bound.get("scale")
    if _flash_eligible(q, k, v, mask, dropout):
        return torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, dropout, causal, False, scale=scale)[0]
    if mask is not None and mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(~mask, float("-inf"))
    if mask is not None:
        mask = mask.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    return torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, mask, False, dropout, causal,
                                                                   scale=scale)[0]


def _on_meta(index: Any) -> Any:
    if isinstance(index, torch.Tensor):
        return torch.empty(index.shape, dtype=index.dtype, device="meta")
    if isinstance(index, (tuple, list)):
        return type(index)(_on_meta(i) for i in index)
    return index


def _index_geometry(tensor: torch.Tensor, index: Any) -> tuple[torch.Tensor, bool]:
    """tensor[index] on a meta twin: (the result's geometry, whether it is a view)."""
    twin = torch.empty(0, dtype=tensor.dtype, device="meta")
    twin.set_(torch.empty(tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1) or 1,
                          dtype=tensor.dtype, device="meta").untyped_storage(),
              tensor.storage_offset(), tensor.size(), tensor.stride())
    result = twin[_on_meta(index)]
    return result, result.untyped_storage()._cdata == twin.untyped_storage()._cdata


def _getitem(tensor: torch.Tensor, index: Any) -> torch.Tensor:
    geometry, is_view = _index_geometry(tensor, index)
    if is_view:
        return torch.as_strided(tensor, geometry.size(), geometry.stride(), geometry.storage_offset())
    return torch.empty_strided(geometry.size(), geometry.stride(), dtype=tensor.dtype, device=tensor.device)


def _setitem(tensor: torch.Tensor, index: Any, value: Any) -> None:
    geometry, is_view = _index_geometry(tensor, index)
    if not is_view:
        indices = index if isinstance(index, tuple) else (index,)
        if not all(isinstance(i, torch.Tensor) for i in indices):
            raise NotImplementedError(f"simulated CUDA: mixed advanced assignment {index!r} is not modelled")
        value = value if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=tensor.dtype)
        tensor.index_put_(indices, value.to(tensor.device, tensor.dtype))
        return
    view = torch.as_strided(tensor, geometry.size(), geometry.stride(), geometry.storage_offset())
    if isinstance(value, torch.Tensor):
        torch.ops.aten.copy_(view, value)
    else:
        view.fill_(value)


def _is_gpu_device(value: Any) -> bool:
    return (isinstance(value, str) and value.startswith("cuda")) or \
        (isinstance(value, torch.device) and value.type == "cuda")


def _on_fake_gpu(args: tuple, kwargs: dict) -> bool:
    """Whether a call involves fake tensors or makes tensors on the GPU."""
    for leaf in tree_leaves((args, kwargs)):
        if isinstance(leaf, FakeTensor) or _is_gpu_device(leaf):
            return True
    return torch.get_default_device().type == "cuda"


def _indexed_device(value: Any) -> Any:
    if isinstance(value, str) and value == "cuda" or isinstance(value, torch.device) and value == torch.device("cuda"):
        return torch.device(FAKE_GPU)
    return value


def _contiguous(tensor: torch.Tensor, memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    if tensor.is_contiguous(memory_format=memory_format):
        return tensor
    return torch.ops.aten.clone(tensor, memory_format=memory_format)


_SCALAR_READS = {torch.Tensor.item: lambda v: v, torch.Tensor.__float__: float, torch.Tensor.__int__: int,
                 torch.Tensor.__bool__: bool, torch.Tensor.__index__: int}


class _CudaKernels(TorchFunctionMode):
    """What a CPU-only torch build cannot do with fake CUDA tensors, done as a GPU would.

    - attention kernel selection (see the module docstring);
    - the few Tensor methods whose Python binding takes a CUDA device guard, which this
      build does not have: indexing (`t[...]`, `t[...] = v`; worked out on a meta twin: a
      view of the same storage, or a fresh tensor of the result's shape), `copy_`,
      `contiguous`, reading a scalar (`item`, `float(t)`, `bool(t)`), and moves to a bare
      "cuda" (given the index of the one fake GPU).
    All others (checked: factories, views, casts, matmuls, norms, convolutions, cat, ...)
    run unchanged.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not _on_fake_gpu(args, kwargs):
            # Host-side work (schedules, seeds, noise drawn on the CPU) runs for real, as on a
            # GPU machine: its values steer the run (float(t), loops), and fake CPU tensors
            # have none. It allocates no GPU memory.
            with unset_fake_temporarily():
                return func(*args, **kwargs)
        if func is F.scaled_dot_product_attention:
            out = _sdpa(args, kwargs)
            if out is not None:
                return out
        elif func in (torch.Tensor.to, torch.Tensor.cuda):
            if func is torch.Tensor.cuda:
                func, args, kwargs = torch.Tensor.to, (args[0], FAKE_GPU), {}
            args = tuple(_indexed_device(a) for a in args)
            kwargs = {k: _indexed_device(v) for k, v in kwargs.items()}
        elif isinstance(args[0] if args else None, torch.Tensor) and args[0].device.type == "cuda":
            if func is torch.Tensor.__getitem__:
                return _getitem(args[0], args[1])
            if func is torch.Tensor.__setitem__:
                return _setitem(*args)
            if func is torch.Tensor.copy_:
                return torch.ops.aten.copy_(*args, **kwargs)
            if func is torch.Tensor.contiguous:
                return _contiguous(*args, **kwargs)
            if func in _SCALAR_READS:
                return _SCALAR_READS[func](torch.ops.aten._local_scalar_dense.default(args[0]))
        return func(*args, **kwargs)


@contextlib.contextmanager
def cuda_attention_kernels() -> Iterator[None]:
    """SDPA and indexing on fake CUDA tensors behave as on a GPU (see _CudaKernels)."""
    with _CudaKernels():
        yield


@contextlib.contextmanager
def _modules_convert_fake_parameters() -> Iterator[None]:
    # nn.Module.to() swaps a fake parameter for its converted self (swap_tensors), which
    # refuses tensors the fake mode holds weak references to; assigning .data instead is
    # what Module.to() does for ordinary tensors, so the module ends up the same.
    swap = torch.utils.swap_tensors

    def swap_or_assign(t1: torch.Tensor, t2: torch.Tensor) -> None:
        try:
            swap(t1, t2)
        except RuntimeError:
            t1.data = t2.data
    torch.utils.swap_tensors = swap_or_assign
    try:
        yield
    finally:
        torch.utils.swap_tensors = swap


@contextlib.contextmanager
def fake_cuda(allow_real_inputs: bool = True) -> Iterator[FakeTensorMode]:
    """FakeTensorMode in which `device="cuda:0"` works without a GPU, with GPU attention kernels.

    allow_real_inputs: real (CPU) tensors met inside become fake ones, as a .to("cuda") of a
    real tensor would copy it (noise drawn on the CPU, adapters read from a file).
    """
    mode = FakeTensorMode(allow_non_fake_inputs=allow_real_inputs)
    with mode, ShadowValues(), cuda_attention_kernels(), _modules_convert_fake_parameters():
        yield mode


def materialize(module: torch.nn.Module, device: str | torch.device, dtype_of: Any = None) -> torch.nn.Module:
    """Give a module built on the meta device empty parameters and buffers on `device`
    (call inside fake_cuda: then they are fake). dtype_of(name, tensor) -> dtype or None
    (keep). Parameters are replaced, not converted, so no initialiser runs."""
    for prefix, sub in module.named_modules():
        for store in (sub._parameters, sub._buffers):
            for name, tensor in list(store.items()):
                if tensor is None:
                    continue
                dtype = (dtype_of(f"{prefix}.{name}".lstrip("."), tensor) if dtype_of else None) or tensor.dtype
                empty = torch.empty(tensor.shape, dtype=dtype, device=device)
                store[name] = torch.nn.Parameter(empty, requires_grad=False) if store is sub._parameters else empty
    return module


def module_tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(), *module.buffers()]


def photo_working_sizes(megapixels: Iterable[float], aspects: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (width, height) the photo path works at for a photo of each aspect at each budget."""
    from lumix_engine.method.resolution import working_size
    return [working_size(aw * 1000, ah * 1000, mp) for mp in megapixels for aw, ah in aspects]


def engine_table(rows: list[dict], estimates: list[dict]) -> dict:
    """What lumix_engine.method.memory reads: per weights dtype, the resident weights and,
    per image-token count, the activations of the ComfyUI path (the larger over trees)."""
    table = {"source": "python -m benchmarks.memory_simulation (fake CUDA, FLUX.1-dev, 5 maps, no CFG, 1 step)",
             "weights_gb": {}, "activations_gb": {}}
    for row in rows:
        if row["path"] != "comfyui":
            continue
        dtype, tokens = row["weights_dtype"], (row["width"] // 16) * (row["height"] // 16)
        table["weights_gb"][dtype] = max(table["weights_gb"].get(dtype, 0.0), round(row["resident_gb"], 3))
        per = table["activations_gb"].setdefault(dtype, {})
        per[str(tokens)] = max(per.get(str(tokens), 0.0), round(row["activations_gb"], 3))
    for dtype, per in table["activations_gb"].items():
        table["activations_gb"][dtype] = dict(sorted(per.items(), key=lambda kv: int(kv[0])))
    return table
