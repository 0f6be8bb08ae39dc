"""The memory simulator (evaluation/memory_sim.py) counts what a GPU would hold, and the
standalone pipeline's step, simulated at FLUX.1-dev width with one block pair, scales as
its tensors say it must. The full table: python -m benchmarks.memory_simulation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evaluation.lumix_memory import FLUX_DEV, simulate_pipeline, small_shape
from evaluation.memory_sim import FAKE_GPU, PeakMemory, fake_cuda

MB = 1 << 20


def test_peak_counts_live_storages_once_and_frees_them():
    with fake_cuda():
        resident = torch.empty(MB, dtype=torch.uint8, device=FAKE_GPU)
        tracker = PeakMemory("cuda")
        with tracker:
            tracker.track([resident])
            a = torch.empty(2 * MB, dtype=torch.uint8, device=FAKE_GPU)
            view = a[: MB]                   # a view: no new storage
            a.add_(1)                        # in place: no new storage
            b = torch.empty(4 * MB, dtype=torch.uint8, device=FAKE_GPU)
            peak_with_a = tracker.current
            del a, view
            c = torch.empty(3 * MB, dtype=torch.uint8, device=FAKE_GPU)
            on_host = torch.empty(64 * MB, dtype=torch.uint8)  # host memory is not the GPU's
            after = tracker.current
    assert tracker.resident == MB
    assert peak_with_a == (1 + 2 + 4) * MB
    assert after == (1 + 4 + 3) * MB          # a was freed before c was made
    assert tracker.peak == 8 * MB and tracker.report().activations == 7 * MB
    assert on_host.device.type == "cpu" and b.device.type == c.device.type == "cuda"


def test_attention_on_the_fake_gpu_runs_a_fused_kernel_not_the_scores_matrix():
    batch, heads, length, head_dim = 5, 24, 4096, 128
    scores = batch * heads * length * length * 2
    with fake_cuda():
        q = torch.empty(batch, heads, length, head_dim, dtype=torch.bfloat16, device=FAKE_GPU)
        tracker = PeakMemory("cuda")
        with tracker:
            tracker.track([q])
            out = F.scaled_dot_product_attention(q, q, q)
    assert out.shape == q.shape and out.device.type == "cuda"
    # the output and the log-sum-exp only; the scores would be 32 times the output
    assert tracker.report().activations < q.numel() * 2 * 1.1 < scores / 20
    # Control: without the kernel choice the fake device would materialise the scores.
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        q = torch.empty(batch, heads, length, head_dim, dtype=torch.bfloat16, device=FAKE_GPU)
        math = PeakMemory("cuda")
        with math:
            math.track([q])
            F.scaled_dot_product_attention(q, q, q)
    assert math.report().activations >= scores


def test_indexing_and_host_values_work_on_the_fake_gpu():
    with fake_cuda():
        x = torch.zeros(10, 4, device=FAKE_GPU)
        x[2:4] = torch.ones(2, 4, device=FAKE_GPU)
        rows = x[torch.tensor([0, 0, 1], device=FAKE_GPU)]
        sigmas = torch.linspace(1, 0, 3).to(FAKE_GPU)     # real on the host, twinned on the "GPU"
        assert rows.shape == (3, 4) and x[1].shape == (4,)
        assert float(sigmas[1]) == 0.5 and bool(sigmas[0] > 0.9)
        assert torch.count_nonzero(torch.zeros(5, device="cpu").to(FAKE_GPU)).item() == 0


@pytest.fixture(scope="module")
def pipeline_steps():
    return simulate_pipeline([(256, 256), (512, 512), (1024, 1024)], small_shape(1))


def test_pipeline_step_counts_the_real_weights(pipeline_steps):
    from lumix_engine.method.adapters import new_adapters
    shape = small_shape(1)
    # one double + one single FLUX.1-dev block, embedders and final layer, bf16: 2 bytes each
    assert all(step.weights == pipeline_steps[0].weights for step in pipeline_steps)
    assert 1.0e9 < pipeline_steps[0].weights < 1.2e9
    adapters = new_adapters(shape.hidden_size, shape.depth, shape.depth_single_blocks, rank=shape.rank)
    vae_and_caches = pipeline_steps[0].resident - pipeline_steps[0].weights
    assert 0.1e9 < vae_and_caches < 0.2e9 + 2 * adapters.num_parameters() * 2


def test_pipeline_step_activations_grow_with_the_token_count(pipeline_steps):
    small, medium, large = pipeline_steps
    text = FLUX_DEV.text_tokens
    for a, b in ((small, medium), (medium, large)):
        tokens_a, tokens_b = (a.width // 16) * (a.height // 16), (b.width // 16) * (b.height // 16)
        ratio = b.activations / a.activations
        # at least as fast as the sequence (text + image), at most as fast as the image tokens
        assert (text + tokens_b) / (text + tokens_a) * 0.95 <= ratio <= tokens_b / tokens_a * 1.05, (a, b)
    # the largest block working set at 1024x1024 (4096 image + 512 text tokens, 5 maps):
    # the single block's linear1 output (7 x 3072 per token) alone is 5 * 4608 * 21504 * 2 bytes
    assert large.activations > 5 * 4608 * 21504 * 2
    assert large.peak == large.resident + large.activations
