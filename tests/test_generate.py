"""KV-cache generation: identical to recomputing everything, rolling buffer for windows."""
import pytest
import torch
from conftest import VARIANTS, tiny_model

from gpt2viz.core.kv_cache import KVCache


def test_cached_greedy_equals_uncached(variant):
    _, fields = variant
    model = tiny_model(**fields)
    prompt = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(0))
    cached = model.generate(prompt, 20, temperature=0.0)
    uncached = model.generate(prompt, 20, temperature=0.0, use_cache=False)
    assert cached.shape == (2, 29) and torch.equal(cached[:, :9], prompt)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("fields", [VARIANTS["swa"], VARIANTS["rope+gqa+swa"], VARIANTS["rope"],
                                    VARIANTS["swa+sinks"], VARIANTS["alibi+mqa+swa+sinks"]])
def test_left_padded_batch_generates_what_each_prompt_generates_alone(fields):
    model = tiny_model(**fields)
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, 97, (n,), generator=gen) for n in (3, 12)]  # 12 > window
    idx = torch.zeros(2, 12, dtype=torch.long)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    for row, p in enumerate(prompts):
        idx[row, 12 - len(p):], mask[row, 12 - len(p):] = p, True
    batched = model.generate(idx, 15, temperature=0.0, padding_mask=mask)
    for row, p in enumerate(prompts):
        alone = model.generate(p[None], 15, temperature=0.0)
        assert torch.equal(batched[row, 12:], alone[0, len(p):])


def test_window_cache_is_a_rolling_buffer_of_window_slots():
    model = tiny_model(**VARIANTS["rope+gqa+swa"])
    cfg = model.config
    cache = KVCache(cfg, 1, 100, "cpu", torch.float64)
    assert cache.k.shape == (cfg.n_layer, 1, cfg.n_kv_head, cfg.window, cfg.head_dim)
    assert cache.nbytes == cfg.kv_cache_bytes(100, dtype_bytes=8)
    full = KVCache(cfg.replace(window=None), 1, 100, "cpu", torch.float64)
    assert full.nbytes == 100 // cfg.window * cache.nbytes
    sinks = KVCache(cfg.replace(sinks=3), 1, 100, "cpu", torch.float64)
    assert sinks.slots == cfg.window + 3 and sinks.nbytes == cfg.replace(sinks=3).kv_cache_bytes(100, dtype_bytes=8)


def test_cache_keeps_the_sinks_and_rolls_the_rest_at_true_positions():
    model = tiny_model(**VARIANTS["alibi+mqa+swa+sinks"])  # window 4, sinks 3
    cfg = model.config
    cache = KVCache(cfg, 2, 40, "cpu", torch.float64)
    mask = torch.tensor([[False] * 4 + [True] * 6, [True] * 10])  # 6 and 10 real prompt tokens
    model._run(torch.randint(0, 97, (2, 10)), mask, cache)
    for _ in range(5):
        model._run(torch.randint(0, 97, (2, 1)), None, cache)
    _, _, key_mask, positions = cache.keys_values(0)
    held = [sorted(positions[row][key_mask[row] if key_mask is not None else slice(None)].tolist())
            for row in range(2)]
    assert held == [[0, 1, 2, 7, 8, 9, 10], [0, 1, 2, 11, 12, 13, 14]]


def test_sampling_is_seeded_and_top_k_limits_choices():
    model = tiny_model()
    prompt = torch.randint(0, 97, (1, 4))
    a = model.generate(prompt, 12, temperature=1.0, seed=7)
    b = model.generate(prompt, 12, temperature=1.0, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, model.generate(prompt, 12, temperature=1.0, seed=8))
    top1 = model.generate(prompt, 12, temperature=1.0, top_k=1, seed=3)
    assert torch.equal(top1, model.generate(prompt, 12, temperature=0.0))


def test_requests_that_cannot_fit_are_refused_before_starting():
    model = tiny_model(position="rope")
    with pytest.raises(MemoryError, match="needs an estimated"):
        model.generate(torch.zeros(1, 4, dtype=torch.long), max_new_tokens=10**12)
    with pytest.raises(ValueError, match="max_seq_len"):
        tiny_model().generate(torch.zeros(1, 60, dtype=torch.long), max_new_tokens=10)
