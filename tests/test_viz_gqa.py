"""gpt2viz.viz.gqa: the sharing diagram, cost bars, head similarity (recomputed as one minus
the mean total variation) and the pooling curve."""
import numpy as np
import pytest
from conftest import random_attention

from gpt2viz.viz.gqa import (
    conversion_curve,
    cost_bars,
    head_similarity,
    sharing_diagram,
    similarity_heatmap,
    within_vs_across,
)


def test_gqa_diagram_links_each_query_head_to_its_group():
    fig = sharing_diagram(8, 2)
    links = [t for t in fig.data if t.mode == "lines"]
    assert len(links) == 8
    kv_x = [t for t in fig.data if t.name == "key/value heads"][0].x
    for h, link in enumerate(links):
        assert link.x[1] == kv_x[h // 4]


def test_cost_bars_are_the_rows_in_their_units():
    rows = [{"n_kv_head": 8, "kind": "MHA", "kv_bytes_per_token": 8192, "kv_bytes_context": 2**25,
             "params": 1_500_000},
            {"n_kv_head": 1, "kind": "MQA", "kv_bytes_per_token": 1024, "kv_bytes_context": 2**22,
             "params": 1_400_000}]
    per_token, at_context, params = cost_bars(rows, 4096).data
    assert list(per_token.y) == [8.0, 1.0] and list(at_context.y) == [32.0, 4.0]
    assert list(params.y) == [1.5, 1.4] and list(per_token.x) == ["8 (MHA)", "1 (MQA)"]


def test_head_similarity_within_and_across():
    a = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    b = np.eye(4)
    sim = head_similarity(np.stack([a, a, b, b]))
    assert np.allclose(np.diag(sim), 1) and sim[0, 1] == pytest.approx(1)
    within, across = within_vs_across(sim, 2)
    assert within == pytest.approx(1) and across < within


def test_head_similarity_is_one_minus_mean_total_variation():
    probs = random_attention(5, heads=4, seed=3)
    sim = head_similarity(probs)
    for a in range(4):
        for b in range(4):
            tv = [0.5 * sum(abs(probs[a, i, j] - probs[b, i, j]) for j in range(5)) for i in range(1, 5)]
            assert sim[a, b] == pytest.approx(1 - sum(tv) / 4)  # query 0 left out
    within, across = within_vs_across(sim, 2)
    assert within == pytest.approx((sim[0, 1] + sim[1, 0] + sim[2, 3] + sim[3, 2]) / 4)
    assert across == pytest.approx(np.mean([sim[a, b] for a in range(4) for b in range(4)
                                            if a // 2 != b // 2]))


def test_similarity_heatmap_outlines_each_group():
    fig = similarity_heatmap(np.eye(8), 4, "t")
    boxes = [(s.x0, s.x1, s.y0, s.y1) for s in fig.layout.shapes]
    assert boxes == [(-0.5, 3.5, -0.5, 3.5), (3.5, 7.5, 3.5, 7.5)]


def test_conversion_curve_draws_pooled_losses_and_the_reference_at_its_own_kv_heads():
    rows = [{"n_kv_head": k, "pooled_loss": 4 + 0.1 * i} for i, k in enumerate((8, 4, 2, 1))]
    fig = conversion_curve(rows, {"gqa trained from scratch": (2, 3.95)})
    pooled, ref = fig.data
    assert list(pooled.x) == ["8", "4", "2", "1"] and list(pooled.y) == [4.0, 4.1, 4.2, 4.3]
    assert list(ref.x) == ["2"] and list(ref.y) == [3.95]
