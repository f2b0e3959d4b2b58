"""The one masking rule (key_allowed) against its definition written as loops; every mask
built from it (kernels' boolean masks, the heatmap's cells); flex compiled once per shape
whatever the window, sinks or ALiBi slopes; and which kernel runs where."""
import numpy as np
import pytest
import torch

from gpt2viz.core import attention as attn
from gpt2viz.core.attention import (
    FLEX_MIN_KEYS_CUDA,
    allowed_mask,
    attention,
    flex_is_compiled,
    key_allowed,
    resolve,
    sdpa_repeats_kv,
    sliding_block_mask,
)
from gpt2viz.core.positions import alibi_slopes
from gpt2viz.viz.attention import allowed_cells


def loop_definition(t, window, sinks):
    """Query i attends key j iff j <= i and (i - window < j or j < sinks), one cell at a time."""
    return np.array([[j <= i and (window is None or i - window < j or j < sinks)
                      for j in range(t)] for i in range(t)])


@pytest.mark.parametrize("window, sinks", [(None, 0), (1, 0), (3, 0), (3, 2), (5, 9), (20, 1)])
def test_rule_is_the_definition_on_numpy_and_torch(window, sinks):
    t = 12
    want = loop_definition(t, window, sinks)
    assert np.array_equal(key_allowed(np.arange(t)[:, None], np.arange(t)[None, :], window, sinks),
                          want)
    as_tensors = (torch.tensor(window), torch.tensor(sinks)) if window else (window, sinks)
    got = key_allowed(torch.arange(t)[:, None], torch.arange(t)[None, :], *as_tensors)
    assert np.array_equal(got.numpy(), want)


@pytest.mark.parametrize("window, sinks", [(None, 0), (2, 0), (4, 3)])
def test_heatmap_grey_cells_are_the_kernels_mask(window, sinks):
    t = 10
    kernels = allowed_mask(t, t, window, None, "cpu", sinks)[0, 0].numpy()
    assert np.array_equal(allowed_cells(t, window, sinks), kernels)
    assert np.array_equal(kernels, loop_definition(t, window, sinks))


def test_padded_rows_take_their_first_real_tokens_as_sinks():
    key_mask = torch.tensor([[False, False, True, True, True, True, True, True]])
    allowed = allowed_mask(8, 8, 2, key_mask, "cpu", sinks=1)[0, 0]
    assert allowed[7].tolist() == [False, False, True, False, False, False, True, True]
    assert allowed[1].tolist() == [False, True] + [False] * 6  # padding sees itself only


def test_block_masks_are_cached_per_length_window_sinks_and_device():
    pytest.importorskip("torch.nn.attention.flex_attention")
    sliding_block_mask.cache_clear()
    first = sliding_block_mask(256, 37, 5, torch.device("cpu"))
    assert sliding_block_mask(256, 37, 5, torch.device("cpu")) is first
    assert sliding_block_mask(256, 38, 5, torch.device("cpu")) is not first
    assert sliding_block_mask.cache_info().hits == 1
    assert sliding_block_mask.cache_info().maxsize is not None  # bounded


@pytest.mark.slow
def test_flex_compiles_once_for_every_window_sinks_and_slopes():
    """New windows, sinks and slopes on one shape: no new graph, and each output equals eager."""
    pytest.importorskip("torch.nn.attention.flex_attention")
    from torch._dynamo.utils import counters

    q, k, v = (torch.randn(1, h, 160, 8, generator=torch.Generator().manual_seed(h))
               for h in (4, 2, 2))
    shape = (q.shape, 2, q.dtype, "cpu", True)
    settings = [(37, 5, alibi_slopes(4)), (50, 0, alibi_slopes(4) / 3),
                (9, 2, alibi_slopes(4) * 2), (100, 7, alibi_slopes(4))]
    graphs = []
    for window, sinks, slopes in settings:
        out = attention(q, k, v, window=window, sinks=sinks, impl="flex", alibi=slopes.float())
        ref = attention(q, k, v, window=window, sinks=sinks, impl="eager", alibi=slopes.float())
        assert (out - ref).abs().max() <= 1e-5
        assert flex_is_compiled(*shape)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[1:] == graphs[:1] * 3, f"flex recompiled: graphs after each call {graphs}"
    assert not flex_is_compiled((1, 4, 161, 8), 2, q.dtype, "cpu", True)


def test_cpu_choice_is_unchanged_and_cuda_runs_flex_for_long_windows():
    n = FLEX_MIN_KEYS_CUDA
    assert resolve(n, n, 256) == "banded"  # the CPU as before
    assert resolve(n, n, 256, alibi=True) == "sdpa"
    assert resolve(n, n, 256, device_type="cuda") == "flex"
    assert resolve(n, n, 256, device_type="cuda", alibi=True) == "flex"  # ALiBi in the kernel
    assert resolve(n - 1, n - 1, 256, device_type="cuda") == "sdpa"  # below the crossover
    assert resolve(n, n, None, device_type="cuda") == "sdpa"  # full causal: flash
    assert resolve(1, n, 256, device_type="cuda") == "sdpa"  # decoding
    assert resolve(n, n, 256, device_type="cuda", needs_grad=True) == "sdpa"


def test_gqa_repeats_kv_only_for_fp32_on_cuda():
    assert sdpa_repeats_kv("cuda", torch.float32)
    assert not sdpa_repeats_kv("cuda", torch.bfloat16)
    assert not sdpa_repeats_kv("cuda", torch.float16)
    assert not sdpa_repeats_kv("cpu", torch.float32)


def test_repeated_kv_sdpa_equals_grouped(monkeypatch):
    """The fp32 CUDA path (K/V repeated), run on the CPU, against the grouped one."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, h, 40, 16, generator=g) for h in (6, 2, 2))
    grouped = attention(q, k, v, window=7, sinks=2, impl="sdpa")
    monkeypatch.setattr(attn, "sdpa_repeats_kv", lambda device_type, dtype: True)
    assert (attention(q, k, v, window=7, sinks=2, impl="sdpa") - grouped).abs().max() <= 1e-5


@pytest.mark.parametrize("impl", ["sdpa", "flex"])
def test_bf16_alibi_keeps_distances_past_256_exact(impl):
    """bf16 cannot hold position 599 (it rounds to 600): the bias must come from exact
    distances, so a bf16 run is off by bf16's rounding only."""
    if impl == "flex":
        pytest.importorskip("torch.nn.attention.flex_attention")
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, h, 600, 16, generator=g).bfloat16() for h in (4, 2, 2))
    slopes = torch.tensor([0.5, 0.25, 0.125, 0.0625])
    out = attention(q, k, v, window=300, sinks=2, impl=impl, alibi=slopes)
    ref = attention(q.double(), k.double(), v.double(), window=300, sinks=2, impl="eager",
                    alibi=slopes.double())
    assert (out.double() - ref).abs().max() <= 3e-2
