"""RoPE on real vectors (gpt2viz.analysis.rope_usage): pair lengths and q.k by distance recomputed
with plain loops over a small model's traced q and k."""
import math

import numpy as np
import pytest
import torch
from conftest import tiny_model

from gpt2viz.analysis.rope_usage import pair_norms, qk_by_distance


def traced(**overrides):
    model = tiny_model(**overrides)
    ids = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return model, model.trace(ids)


def test_pair_norms_match_loops_and_ignore_the_rotation():
    model, tr = traced(position="rope", n_kv_head=2)
    half = model.config.head_dim // 2
    for vectors in (tr.q, tr.k):
        norms = pair_norms(vectors)
        assert norms.shape == (model.config.n_layer, half)
        for layer, x in enumerate(vectors):
            b, h, t, _ = x.shape
            for k in range(half):
                lengths = [math.hypot(x[i, j, p, k], x[i, j, p, k + half])
                           for i in range(b) for j in range(h) for p in range(t)]
                assert norms[layer, k] == pytest.approx(sum(lengths) / len(lengths), rel=1e-12)
    # the same vectors rotated back to position 0 have the same pair lengths
    base = model.config.rope_base
    unrotated = [torch.stack([rotate(x[:, :, p], -p, base) for p in range(x.shape[2])], 2) for x in tr.q]
    assert torch.allclose(pair_norms(unrotated), pair_norms(tr.q), rtol=1e-12)


def test_pair_norms_refuse_odd_head_dim():
    with pytest.raises(ValueError, match="odd"):
        pair_norms([torch.ones(1, 1, 2, 5)])


def rotate(x, position, base):
    """x (..., d) rotated by position * theta_k on pairs (k, k + d/2), written out pair by pair."""
    d = x.shape[-1]
    out = x.clone()
    for k in range(d // 2):
        angle = position * base ** (-2 * k / d)
        a, b = x[..., k], x[..., k + d // 2]
        out[..., k] = a * math.cos(angle) - b * math.sin(angle)
        out[..., k + d // 2] = a * math.sin(angle) + b * math.cos(angle)
    return out


def loop_scores(q, k, positions=None, base=None):
    """mean over (sequence, query i >= Δ) of q_i . k_{i-Δ} / sqrt(d), optionally after rotating
    every vector back by its own position."""
    b, t, d = q.shape
    if base is not None:
        q = torch.stack([rotate(q[:, p], -p, base) for p in range(t)], 1)
        k = torch.stack([rotate(k[:, p], -p, base) for p in range(t)], 1)
    out = []
    for delta in range(t):
        terms = [float(q[s, i] @ k[s, i - delta]) / math.sqrt(d) for s in range(b) for i in range(delta, t)]
        out.append(sum(terms) / len(terms))
    return np.array(out)


@pytest.mark.parametrize("head", [0, 3])
def test_qk_by_distance_matches_loops_on_the_head_kv_pair(head):
    model, tr = traced(position="rope", n_kv_head=2)  # 4 query heads on 2 kv heads
    layer, base = 1, model.config.rope_base
    got = qk_by_distance(tr, layer, head, base)
    q, k = tr.q[layer][:, head], tr.k[layer][:, head // 2]
    assert np.allclose(got["distance"], np.arange(12))
    assert list(got["queries"]) == [2 * (12 - d) for d in range(12)]
    assert np.allclose(got["rotated"], loop_scores(q, k), rtol=1e-10, atol=1e-12)
    assert np.allclose(got["unrotated"], loop_scores(q, k, base=base), rtol=1e-10, atol=1e-12)


def test_without_rope_there_is_only_the_real_score():
    model, tr = traced(position="alibi", n_kv_head=1)
    got = qk_by_distance(tr, 0, 2)
    assert got["unrotated"] is None
    assert np.allclose(got["rotated"], loop_scores(tr.q[0][:, 2], tr.k[0][:, 0]), rtol=1e-10, atol=1e-12)
