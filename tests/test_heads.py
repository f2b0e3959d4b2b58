"""Head statistics (gpt2viz.analysis.heads): every measure recomputed with plain loops over the traced
probabilities, hand-built heads whose scores are known, and window properties."""
import math

import pytest
import torch
from conftest import tiny_model

from gpt2viz.analysis.heads import (
    INDUCTION_COUNT,
    MEASURES,
    PRETRAINED_LOW_ID,
    head_stats,
    induction_ids,
    induction_score,
    repeated_random_tokens,
    text_measures,
)

FIELDS = ["layer", "head", "kv_head", *MEASURES]


def loop_measures(attn_text, attn_repeated, layer, head):
    """The module docstring's definitions, one query at a time, in float64."""
    first, prev, entropy, distance, off_first, n = 0.0, 0.0, 0.0, 0.0, 0.0, 0
    for p in attn_text[layer][:, head].tolist():  # each sequence: (T, T)
        for i in range(1, len(p)):
            first += p[i][0]
            prev += p[i][i - 1]
            entropy -= sum(x * math.log(x) for x in p[i] if x > 0)
            distance += sum(p[i][j] * (i - j) for j in range(1, len(p)))  # key 0 left out
            off_first += sum(p[i][1:])
            n += 1
    induction, m = 0.0, 0
    for p in attn_repeated[layer][:, head].tolist():
        length = len(p) // 2
        for i in range(length, 2 * length):
            induction += p[i][i - length + 1]
            m += 1
    return {"first_token_mass": first / n, "prev_token": prev / n, "entropy": entropy / n,
            "mean_distance": distance / off_first, "induction": induction / m}


@pytest.mark.parametrize("overrides", [dict(position="rope", n_kv_head=2),
                                       dict(position="alibi", n_kv_head=1, window=4, sinks=1),
                                       dict(position="learned", window=6)],
                         ids=["rope+gqa", "alibi+mqa+swa+sinks", "learned+swa"])
def test_every_measure_matches_plain_loops(overrides):
    model = tiny_model(**overrides)
    text = torch.randint(0, 97, (2, 19), generator=torch.Generator().manual_seed(1))
    repeated = repeated_random_tokens(model.config, length=9, count=3, seed=2)
    rows = head_stats(model, text, repeated)
    cfg = model.config
    assert [(r["layer"], r["head"]) for r in rows] == [(l, h) for l in range(cfg.n_layer)
                                                     for h in range(cfg.n_head)]
    text_attn, repeated_attn = model.trace(text).attn, model.trace(repeated).attn
    for row in rows:
        assert list(row) == FIELDS
        assert row["kv_head"] == row["head"] // (cfg.n_head // cfg.n_kv_head)
        expected = loop_measures(text_attn, repeated_attn, row["layer"], row["head"])
        for name in MEASURES:
            assert row[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-12), name


def test_window_of_one_sees_only_itself():
    model = tiny_model(position="alibi", window=1)
    rows = head_stats(model, torch.arange(20), repeated_random_tokens(model.config, 8))
    for row in rows:
        for name in MEASURES:
            assert row[name] == pytest.approx(0.0, abs=1e-12), name


def test_window_of_one_with_a_sink_splits_between_itself_and_the_first_token():
    model = tiny_model(position="rope", window=1, sinks=1)
    for row in head_stats(model, torch.arange(20), repeated_random_tokens(model.config, 8)):
        assert row["first_token_mass"] > 0.0
        assert row["mean_distance"] == 0.0  # off the first token it reads only itself
        # query 1 reads keys 0 and 1 (its previous token is the sink); later ones never do
        assert row["prev_token"] <= 1 / 19 + 1e-12
        assert row["entropy"] <= math.log(2) + 1e-12


def test_hand_built_heads():
    t = 6
    prev = torch.zeros(t, t)
    prev[0, 0] = 1.0
    prev[torch.arange(1, t), torch.arange(t - 1)] = 1.0  # query i reads i - 1
    uniform = torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1)[:, None]
    sink = torch.zeros(t, t)
    sink[:, 0] = 1.0
    m = text_measures(torch.stack([prev, uniform, sink])[None])  # (1, 3, T, T)
    queries = range(1, t)
    uniform_p = sum(1 / (i + 1) for i in queries) / (t - 1)  # p(i -> any key) = 1 / (i + 1)
    assert m["prev_token"].tolist() == pytest.approx([1.0, uniform_p, 1 / (t - 1)])
    assert m["first_token_mass"].tolist() == pytest.approx([1 / (t - 1), uniform_p, 1.0])
    assert m["entropy"].tolist() == pytest.approx(
        [0.0, sum(math.log(i + 1) for i in queries) / (t - 1), 0.0])
    assert m["mean_distance"].tolist() == pytest.approx(
        [1.0,  # query 1's previous token is token 0, left out
         sum(i * (i - 1) / 2 / (i + 1) for i in queries) / sum(i / (i + 1) for i in queries),
         0.0])  # nothing off the first token


def test_hand_built_induction_head():
    length = 5
    t = 2 * length
    head = torch.zeros(t, t)
    head[torch.arange(t), torch.arange(t)] = 1.0  # first copy: itself
    second = torch.arange(length, t)
    head[second] = 0.0
    head[second, second - length + 1] = 1.0  # second copy: the token after the earlier one
    prev = torch.zeros(t, t)
    prev[0, 0] = 1.0
    prev[torch.arange(1, t), torch.arange(t - 1)] = 1.0
    assert induction_score(torch.stack([head, prev])[None]).tolist() == [1.0, 0.0]


def test_repeated_random_tokens():
    model = tiny_model(position="learned")  # max_seq_len 64: L defaults to 32
    ids = repeated_random_tokens(model.config, count=3, seed=5)
    assert ids.shape == (3, 64)
    assert torch.equal(ids[:, :32], ids[:, 32:])
    assert all(len(set(row[:32].tolist())) == 32 for row in ids)
    assert torch.equal(ids, repeated_random_tokens(model.config, count=3, seed=5))
    assert not torch.equal(ids, repeated_random_tokens(model.config, count=3, seed=6))
    with pytest.raises(ValueError, match="max_seq_len"):
        repeated_random_tokens(model.config, length=40)
    with pytest.raises(ValueError, match="distinct"):
        repeated_random_tokens(model.config.replace(position="rope"), length=98)


def test_ids_from_low_up_and_a_pretrained_model_skips_byte_tokens():
    model = tiny_model(position="rope")
    ids = repeated_random_tokens(model.config, length=30, low=60, seed=3)
    assert ids.min() >= 60 and ids.max() < 97
    assert all(len(set(row[:30].tolist())) == 30 for row in ids)
    with pytest.raises(ValueError, match="distinct"):
        repeated_random_tokens(model.config, length=30, low=80)  # 17 ids from 80 up
    assert induction_ids(model).min() < PRETRAINED_LOW_ID  # a small model: the whole vocabulary
    real = tiny_model(position="rope", vocab_size=400)
    real.pretrained = "smollm2-135m"
    ids = induction_ids(real, seed=1)
    assert ids.shape == (INDUCTION_COUNT, 64) and ids.min() >= PRETRAINED_LOW_ID
    assert torch.equal(ids, repeated_random_tokens(real.config, seed=1, low=PRETRAINED_LOW_ID))


def test_bad_input_gets_one_message():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"\[r, r\]"):
        head_stats(model, torch.arange(10), torch.arange(10)[None])
    with pytest.raises(ValueError, match="at least 2 tokens"):
        head_stats(model, torch.arange(1), repeated_random_tokens(model.config, 4))
