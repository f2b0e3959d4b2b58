"""Every kernel against the eager reference, and eager against torch's own SDPA."""
import pytest
import torch
import torch.nn.functional as F

from gpt2viz.attention import BANDED_MIN_KEYS, attention, choose_impl, eager_attention


def qkv(b, hq, hkv, t, d=16, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, t, d, generator=g, dtype=dtype) for h in (hq, hkv, hkv))


def definition_mask(t, window):
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    allowed = j <= i
    return allowed if window is None else allowed & (i - window < j)


@pytest.mark.parametrize("window", [None, 1, 3, 16])
@pytest.mark.parametrize("hkv", [4, 2, 1])
def test_eager_equals_torch_sdpa_with_repeated_heads(window, hkv):
    q, k, v = qkv(2, 4, hkv, 33, dtype=torch.float64)
    g = 4 // hkv
    ref = F.scaled_dot_product_attention(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1),
                                         attn_mask=definition_mask(33, window))
    out, probs = eager_attention(q, k, v, window)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    assert torch.allclose(probs.sum(-1), torch.ones(()).double())
    assert (probs[..., ~definition_mask(33, window)] == 0).all()


@pytest.mark.parametrize("impl", ["sdpa", "banded", "auto"])
@pytest.mark.parametrize("t", [1, 7, 100, 600])
@pytest.mark.parametrize("window", [None, 1, 5, 64, 600])
@pytest.mark.parametrize("hkv", [4, 2, 1])  # groups of 1, 2 and n_head
def test_fast_paths_equal_eager(impl, t, window, hkv):
    q, k, v = qkv(2, 4, hkv, t, seed=t)
    ref = eager_attention(q, k, v, window)[0]
    out = attention(q, k, v, window=window, impl=impl)
    assert (out - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("impl", ["eager", "sdpa", "banded"])
@pytest.mark.parametrize("window", [None, 3])
def test_padding_keys_are_never_attended(impl, window):
    q, k, v = qkv(2, 4, 2, 70)
    key_mask = torch.ones(2, 70, dtype=torch.bool)
    key_mask[0, :20] = False  # left padding
    key_mask[1, 60:] = False  # right padding
    ref = eager_attention(q, k, v, window, key_mask)
    out = attention(q, k, v, window=window, impl=impl, key_mask=key_mask)
    real = key_mask[:, None, :, None]
    assert ((out - ref[0]).abs() * real).max() <= 1e-5
    probs = ref[1]
    assert (probs[0][:, 20:, :20] == 0).all()  # real queries of row 0 never see its padding


def test_flex_equals_eager():
    pytest.importorskip("torch.nn.attention.flex_attention")
    q, k, v = qkv(1, 4, 2, 300, seed=3)
    ref = eager_attention(q, k, v, 37)[0]
    assert (attention(q, k, v, window=37, impl="flex") - ref).abs().max() <= 1e-5


def test_decode_query_sees_every_cached_key():
    q, k, v = qkv(1, 4, 2, 9)
    last = attention(q[:, :, -1:], k, v)
    full = eager_attention(q, k, v)[0][:, :, -1:]
    assert (last - full).abs().max() <= 1e-6


def test_query_head_h_reads_kv_head_h_over_group_size():
    b, hq, hkv, t, d = 1, 8, 2, 5, 4
    q, k, _ = qkv(b, hq, hkv, t, d)
    v = torch.arange(hkv, dtype=torch.float32).view(1, hkv, 1, 1).expand(b, hkv, t, d)
    for impl in ("eager", "sdpa"):
        out = attention(q, k, v, impl=impl)
        for h in range(hq):
            assert torch.allclose(out[0, h], torch.full((t, d), float(h // (hq // hkv))))


@pytest.mark.parametrize("shapes, fragment", [
    (((1, 4, 5, 8), (1, 3, 5, 8), (1, 3, 5, 8)), "Hq % Hkv"),
    (((1, 4, 5, 8), (1, 2, 5, 8), (1, 2, 6, 8)), "shapes do not fit"),
    (((1, 4, 5, 8), (2, 2, 5, 8), (2, 2, 5, 8)), "shapes do not fit"),
    (((4, 5, 8), (1, 2, 5, 8), (1, 2, 5, 8)), "4-D"),
])
def test_mismatched_shapes_name_the_shapes(shapes, fragment):
    q, k, v = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match=fragment) as err:
        attention(q, k, v)
    assert str(tuple(shapes[1])) in str(err.value) or str(tuple(shapes[0])) in str(err.value)


def test_auto_picks_banded_only_for_long_windowed_inference_on_cpu():
    long = BANDED_MIN_KEYS
    assert choose_impl(long, long, 64) == "banded"
    assert choose_impl(long - 1, long - 1, 64) == "sdpa"
    assert choose_impl(long, long, None) == "sdpa"
    assert choose_impl(1, long, 64) == "sdpa"  # decoding from a cache
    assert choose_impl(long, long, 64, needs_grad=True) == "sdpa"
    assert choose_impl(long, long, 64, device_type="cuda") == "sdpa"
