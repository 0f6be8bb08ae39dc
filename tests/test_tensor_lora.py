import pytest
import torch

from evaluation.reference import tensor_lora_authors_order, tensor_lora_plain
from lumix_engine.errors import BatchLayoutError
from lumix_engine.method.tensor_lora import TensorLoRA


def random_adapter(maps, d_in, d_out, rank, dtype, seed=0, alpha=None):
    torch.manual_seed(seed)
    adapter = TensorLoRA(maps, d_in, d_out, rank, alpha=alpha, dtype=dtype).requires_grad_(False)
    adapter.G3.normal_()
    return adapter



def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("maps,rank,d_in,d_out,length,scenes", [
    (5, 8, 32, 64, 9, 1), (5, 4, 48, 48, 5, 3), (3, 2, 16, 40, 7, 2), (5, 1, 8, 16, 3, 2), (2, 6, 24, 12, 11, 1),
])
def test_fast_contraction_matches_plain_sum_float64(maps, rank, d_in, d_out, length, scenes):
    adapter = random_adapter(maps, d_in, d_out, rank, torch.float64)
    x = torch.randn(maps * scenes, length, d_in, dtype=torch.float64)
    assert rel(adapter(x), tensor_lora_plain(adapter, x)) <= 1e-10


@pytest.mark.parametrize("maps,rank,d_in,d_out,length", [(5, 8, 64, 128, 16), (4, 3, 32, 32, 8)])
def test_fast_contraction_matches_plain_sum_float32(maps, rank, d_in, d_out, length):
    adapter = random_adapter(maps, d_in, d_out, rank, torch.float32)
    x = torch.randn(2 * maps, length, d_in)
    out = adapter(x)
    assert out.dtype == torch.float32
    assert rel(out, tensor_lora_plain(adapter, x)) <= 1e-5


def test_authors_order_is_the_same_function():
    adapter = random_adapter(5, 16, 24, 4, torch.float64)
    x = torch.randn(5, 6, 16, dtype=torch.float64)
    got = tensor_lora_authors_order(x, adapter.G1, adapter.G2, adapter.G3, adapter.scale)
    assert rel(got, tensor_lora_plain(adapter, x)) <= 1e-12


def test_strength_and_alpha_scale_the_output():
    adapter = random_adapter(5, 16, 16, 4, torch.float64, alpha=2.0)
    assert adapter.scale == pytest.approx(2.0 / 2.0)
    x = torch.randn(5, 3, 16, dtype=torch.float64)
    assert rel(adapter(x, strength=0.3), tensor_lora_plain(adapter, x, 0.3)) <= 1e-10


def test_fresh_adapter_is_a_no_op_and_uses_published_init():
    torch.manual_seed(0)
    adapter = TensorLoRA(5, 3072 // 16, 2 * 3072 // 16, 8)
    assert adapter.G3.abs().max() == 0
    assert adapter.G1.std().item() == pytest.approx(0.02, rel=0.2)
    assert adapter.G2.std().item() == pytest.approx(1 / (192 * 8) ** 0.5, rel=0.1)
    with torch.no_grad():
        assert adapter(torch.randn(5, 4, 192)).abs().max() == 0


def test_output_in_input_dtype_computed_in_input_dtype():
    adapter = random_adapter(5, 32, 32, 4, torch.float32)
    x = torch.randn(5, 4, 32, dtype=torch.bfloat16)
    out = adapter(x)
    assert out.dtype == torch.bfloat16
    assert rel(out, tensor_lora_plain(adapter, x)) < 2e-2


def test_fold_cache_follows_parameter_changes():
    adapter = random_adapter(5, 16, 16, 4, torch.float64)
    x = torch.randn(5, 3, 16, dtype=torch.float64)
    before = adapter(x)
    adapter.G1.mul_(2.0)  # in place: the cached fold must notice
    assert rel(adapter(x), 2 * before) <= 1e-10


def test_gradients_reach_every_core():
    adapter = random_adapter(5, 16, 16, 4, torch.float64).requires_grad_(True)
    adapter(torch.randn(5, 3, 16, dtype=torch.float64)).square().sum().backward()
    for g in (adapter.G1, adapter.G2, adapter.G3):
        assert g.grad is not None and g.grad.abs().sum() > 0


def test_batch_that_is_not_whole_scenes_is_refused():
    adapter = random_adapter(5, 8, 8, 2, torch.float32)
    with pytest.raises(BatchLayoutError, match="multiple of 5"):
        adapter(torch.randn(7, 3, 8))


def test_adapter_loaded_in_inference_mode_works():
    with torch.inference_mode():
        adapter = random_adapter(5, 16, 16, 4, torch.float64)
        x = torch.randn(5, 3, 16, dtype=torch.float64)
        assert rel(adapter(x), tensor_lora_plain(adapter, x)) <= 1e-10
        assert rel(adapter(x), tensor_lora_plain(adapter, x)) <= 1e-10  # cached fold
