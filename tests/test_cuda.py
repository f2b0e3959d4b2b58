"""The CUDA paths, on a machine with a GPU (skipped elsewhere; docs/gpu_check.py checks and
measures more): flex compiles in fp32 with head_dim 64, auto runs it for long windows, fp32
GQA through SDPA repeats K/V, and memory checks read the GPU's free memory."""
import pytest
import torch

from gpt2viz.core.attention import (
    FLEX_MIN_KEYS_CUDA,
    attention,
    eager_attention,
    flex_is_compiled,
    resolve,
)
from gpt2viz.core.positions import alibi_slopes
from gpt2viz.core.resources import available_memory_bytes

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: the CUDA kernel paths need a GPU")


def qkv(t, hq=12, hkv=2, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, h, t, 64, generator=g).to(dtype).float() for h in (hq, hkv, hkv)]


def reference(q, k, v, window, sinks=0, alibi=None):
    return eager_attention(q.double(), k.double(), v.double(), window, None, sinks,
                           None if alibi is None else alibi.double())[0]


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 2e-4), (torch.bfloat16, 3e-2)])
def test_auto_runs_flex_for_long_windows_and_equals_eager(dtype, tolerance):
    n = FLEX_MIN_KEYS_CUDA
    q, k, v = qkv(n, dtype=dtype)
    slopes = alibi_slopes(12).float()
    assert resolve(n, n, 256, "cuda", alibi=True) == "flex"
    with torch.inference_mode():
        out = attention(*(x.cuda().to(dtype) for x in (q, k, v)), window=256, sinks=4,
                        alibi=slopes.cuda())
    assert flex_is_compiled((1, 12, n, 64), 2, dtype, "cuda", alibi=True)
    assert (out.double().cpu() - reference(q, k, v, 256, 4, slopes)).abs().max() <= tolerance


def test_fp32_flex_with_head_dim_64_compiles_and_equals_eager():
    q, k, v = qkv(1000, hq=4, hkv=4)
    out = attention(*(x.cuda() for x in (q, k, v)), window=37, sinks=2, impl="flex")
    assert (out.double().cpu() - reference(q, k, v, 37, 2)).abs().max() <= 2e-4


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 2e-4), (torch.bfloat16, 3e-2)])
def test_gqa_sdpa_equals_eager(dtype, tolerance):
    q, k, v = qkv(512, dtype=dtype)
    out = attention(*(x.cuda().to(dtype) for x in (q, k, v)), impl="sdpa")
    assert (out.double().cpu() - reference(q, k, v, None)).abs().max() <= tolerance


def test_memory_checks_read_the_gpus_free_memory():
    free, _ = torch.cuda.mem_get_info()
    assert free <= available_memory_bytes("cuda") <= free + torch.cuda.memory_reserved()
