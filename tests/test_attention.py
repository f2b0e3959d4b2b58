"""Every kernel against the eager reference, and eager against torch's own SDPA; sinks and
ALiBi against references written from their definitions."""
import math

import pytest
import torch
import torch.nn.functional as F

from gpt2viz.core.attention import BANDED_MIN_KEYS, attention, eager_attention, resolve
from gpt2viz.core.positions import alibi_slopes


def qkv(b, hq, hkv, t, d=16, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, t, d, generator=g, dtype=dtype) for h in (hq, hkv, hkv))


def definition_mask(t, window, sinks=0):
    """Query i attends key j iff j <= i and (i - window < j or j < sinks)."""
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    allowed = j <= i
    return allowed if window is None else allowed & ((i - window < j) | (j < sinks))


def reference(q, k, v, window=None, sinks=0, slopes=None):
    """softmax(q·kᵀ/√d − m_h·(i − j)) under the definition mask, K/V repeated per query head."""
    t, g = q.shape[2], q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, 1).double(), v.repeat_interleave(g, 1).double()
    scores = q.double() @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if slopes is not None:
        i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
        scores = scores - slopes.double()[:, None, None] * (i - j)
    scores = scores.masked_fill(~definition_mask(t, window, sinks), float("-inf"))
    return scores.softmax(-1) @ v


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
@pytest.mark.parametrize("t", [1, 7, 100, pytest.param(600, marks=pytest.mark.slow)])
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


@pytest.mark.slow
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
    assert resolve(long, long, 64) == "banded"
    assert resolve(long - 1, long - 1, 64) == "sdpa"
    assert resolve(long, long, None) == "sdpa"
    assert resolve(1, long, 64) == "sdpa"  # decoding from a cache
    assert resolve(long, long, 64, needs_grad=True) == "sdpa"
    assert resolve(long, long, 64, device_type="cuda") == "sdpa"


@pytest.mark.parametrize("impl", ["eager", "sdpa", "banded", "auto"])
@pytest.mark.parametrize("t", [100, pytest.param(600, marks=pytest.mark.slow)])
@pytest.mark.parametrize("window, sinks", [(1, 1), (5, 4), (64, 100)])
@pytest.mark.parametrize("hkv", [4, 2, 1])
def test_sinks_equal_the_reference_mask(impl, t, window, sinks, hkv):
    q, k, v = qkv(2, 4, hkv, t, seed=t + sinks)
    out = attention(q, k, v, window=window, sinks=sinks, impl=impl)
    assert (out.double() - reference(q, k, v, window, sinks)).abs().max() <= 1e-5
    if impl == "eager":
        probs = eager_attention(q, k, v, window, sinks=sinks)[1]
        assert (probs[..., ~definition_mask(t, window, sinks)] == 0).all()


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_sinks_are_each_rows_first_real_tokens_under_padding(impl):
    q, k, v = qkv(2, 4, 2, 40, seed=5)
    key_mask = torch.ones(2, 40, dtype=torch.bool)
    key_mask[0, :9] = False  # left padding
    key_mask[1, 33:] = False  # right padding
    out = attention(q, k, v, window=6, sinks=3, impl=impl, key_mask=key_mask)
    for row in range(2):
        real = key_mask[row]
        alone = reference(q[row:row + 1, :, real], k[row:row + 1, :, real],
                          v[row:row + 1, :, real], 6, 3)
        assert (out[row:row + 1, :, real].double() - alone).abs().max() <= 1e-5


def test_alibi_slopes_are_the_papers():
    assert alibi_slopes(8).tolist() == [2.0 ** -e for e in range(1, 9)]
    # 12 heads: the 8 slopes of H=8, then every other slope of H=16 (2^-0.5, 2^-1.5, ...)
    assert alibi_slopes(12).tolist() == [2.0 ** -e for e in range(1, 9)] + \
        [2.0 ** -(e + 0.5) for e in range(4)]
    # 6 heads: the 4 slopes of H=4, then 2^-1 and 2^-3 from H=8
    assert alibi_slopes(6).tolist() == [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8, 2.0 ** -1,
                                        2.0 ** -3]


@pytest.mark.parametrize("impl", ["eager", "sdpa", "auto"])
@pytest.mark.parametrize("window, sinks", [(None, 0), (5, 0), (5, 2), (600, 0)])
@pytest.mark.parametrize("hkv", [4, 2, 1])
@pytest.mark.parametrize("t", [9, 100])
def test_alibi_equals_the_reference(impl, window, sinks, hkv, t):
    q, k, v = qkv(2, 4, hkv, t, seed=hkv)
    slopes = alibi_slopes(4).float()
    out = attention(q, k, v, window=window, sinks=sinks, impl=impl, alibi=slopes)
    assert (out.double() - reference(q, k, v, window, sinks, slopes)).abs().max() <= 1e-5
    if impl == "eager":  # and the bias is really there: without it the result differs
        assert (out - attention(q, k, v, window=window, sinks=sinks, impl="eager")).abs().max() > 1e-3


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_alibi_depends_on_relative_position_only(impl):
    q, k, v = qkv(1, 4, 2, 30, seed=7)
    slopes = alibi_slopes(4).float()
    at = torch.arange(30)[None]
    base = attention(q, k, v, window=8, impl=impl, alibi=slopes)
    for shift in (1, 1000):
        moved = attention(q, k, v, window=8, impl=impl, alibi=slopes, positions=(at + shift, at + shift))
        assert (moved - base).abs().max() <= 1e-5
    stretched = attention(q, k, v, window=8, impl=impl, alibi=slopes, positions=(2 * at, 2 * at))
    assert (stretched - base).abs().max() > 1e-3  # the distances themselves do matter


def test_alibi_is_never_dropped_by_a_kernel_that_cannot_add_it():
    q, k, v = qkv(1, 4, 2, BANDED_MIN_KEYS, seed=2)
    slopes = alibi_slopes(4).float()
    with pytest.raises(ValueError, match="impl='auto'"):
        attention(q, k, v, window=16, impl="banded", alibi=slopes)
    assert resolve(BANDED_MIN_KEYS, BANDED_MIN_KEYS, 16, alibi=True) == "sdpa"
    with pytest.raises(ValueError, match="one slope per query head"):
        attention(q, k, v, alibi=slopes[:2])
    with pytest.raises(ValueError, match="sinks"):
        attention(q, k, v, window=4, sinks=-1)


@pytest.mark.slow
def test_flex_with_sinks_and_alibi_equals_the_reference():
    pytest.importorskip("torch.nn.attention.flex_attention")
    q, k, v = qkv(1, 4, 2, 200, seed=4)
    slopes = alibi_slopes(4).float()
    out = attention(q, k, v, window=37, sinks=5, impl="flex", alibi=slopes)
    assert (out.double() - reference(q, k, v, 37, 5, slopes)).abs().max() <= 1e-5


def test_one_decision_picks_the_kernel_for_attention_the_model_and_bench(monkeypatch):
    """attention(), the model's trace and dropout, and bench's labels all go through resolve():
    record what it returned for each call and compare with what each caller says ran."""
    import gpt2viz.core.attention as attention_module
    from gpt2viz import GPT2, ModelConfig
    from gpt2viz.analysis.bench import kernel_that_runs

    decided = []
    original = attention_module.resolve
    monkeypatch.setattr(attention_module, "resolve",
                        lambda *a, **kw: decided.append(original(*a, **kw)) or decided[-1])
    cfg = ModelConfig(vocab_size=50, n_layer=1, n_head=2, d_model=16, max_seq_len=1024,
                      position="rope", window=8, dropout=0.1)
    model = GPT2(cfg)
    idx = torch.randint(0, 50, (1, BANDED_MIN_KEYS))
    with torch.no_grad():
        model.eval().trace(idx)
        assert decided[-1] == "eager"  # a trace needs the probabilities
        model.eval()(idx)
        assert decided[-1] == "banded" == kernel_that_runs("auto", BANDED_MIN_KEYS, 8)
    model.train()(idx)
    assert decided[-1] == "eager"  # attention dropout drops probabilities
    assert resolve(BANDED_MIN_KEYS, BANDED_MIN_KEYS, 8, probs=True, impl="flex") == "eager"
    assert kernel_that_runs("banded", 512, 8, "cuda") == resolve(512, 512, 8, "cuda", impl="banded") == "sdpa"


def test_dropout_in_attention_drops_probabilities_like_the_definition():
    q, k, v = (torch.randn(1, 2, 6, 4, dtype=torch.float64) for _ in range(3))
    torch.manual_seed(3)
    out = attention(q, k, v, dropout=0.5)
    probs = eager_attention(q, k, v)[1]
    torch.manual_seed(3)
    dropped = torch.nn.functional.dropout(probs, 0.5, training=True)
    assert torch.allclose(out, dropped @ v)
    assert not torch.allclose(out, probs @ v)
