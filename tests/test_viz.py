"""Figure builders are pure: check what they draw against the numbers they were given."""
import math

import numpy as np
import pytest
import torch

from gpt2viz.bench import fit_slope
from gpt2viz.positions import apply_rope, rope_cos_sin
from gpt2viz.viz.attention import allowed_cells, attention_difference, attention_grid, attention_heatmap
from gpt2viz.viz.gqa import head_similarity, sharing_diagram, within_vs_across
from gpt2viz.viz.performance import scaling_figure
from gpt2viz.viz.rope import (alibi_weight_by_distance, rope_score_by_distance, rotation_panels,
                              wavelength_bars)


def test_heatmap_blocks_exactly_the_cells_outside_causal_window():
    probs = np.tril(np.ones((6, 6))) / np.arange(1, 7)[:, None]
    fig = attention_heatmap(probs, list("abcdef"), "t", window=2)
    z = np.array(fig.data[0].z, float)
    assert np.array_equal(np.isnan(z), ~allowed_cells(6, 2))
    assert fig.data[0].x[0] == "0:a" and "p = %{customdata:.4f}" in fig.data[0].hovertemplate


def test_heatmap_keeps_the_sink_columns_open():
    probs = np.tril(np.ones((7, 7))) / np.arange(1, 8)[:, None]
    z = np.array(attention_heatmap(probs, list("abcdefg"), "t", window=2, sinks=2).data[0].z, float)
    i, j = np.arange(7)[:, None], np.arange(7)[None, :]
    assert np.array_equal(~np.isnan(z), (j <= i) & ((i - j < 2) | (j < 2)))


def test_alibi_weight_is_exp_of_minus_slope_times_distance():
    curves = alibi_weight_by_distance(8, 100)
    assert curves["factor"].shape == (8, 100)
    for h in range(8):  # slopes 1/2, 1/4, ..., 1/256 (Press et al., 8 heads)
        assert np.allclose(curves["factor"][h], np.exp(-np.arange(100) / 2 ** (h + 1)))


def test_grid_and_difference_shapes():
    attn = [np.random.rand(3, 5, 5) for _ in range(2)]
    assert len(attention_grid(attn, list("abcde"), "g").data) == 6
    diff = attention_difference(attn[0][0], attn[1][0], list("abcde"), "A", "B")
    assert diff.data[0].zmid == 0 and diff.data[0].zmin == -diff.data[0].zmax


def test_rotation_panels_put_points_on_circles_slowest_first():
    d, base = 16, 10000.0
    positions = torch.arange(20)[None]
    vec = torch.ones(1, 1, 20, d, dtype=torch.float64)
    rotated = apply_rope(vec, *rope_cos_sin(positions, d, base, torch.float64))[0, 0].numpy()
    fig = rotation_panels(rotated, positions[0].numpy(), base)
    points = [t for t in fig.data if t.name == "q rotated to each position"]
    assert len(points) == 8 and "pair 7" in fig.layout.annotations[0].text  # slowest first
    for trace in points:
        assert np.allclose(np.hypot(trace.x, trace.y), math.sqrt(2))  # rotation keeps the norm


def test_wavelengths_and_decay():
    fig = wavelength_bars(16, 10000.0, 256)
    wavelengths = np.array(fig.data[0].y)
    assert np.allclose(wavelengths, 2 * math.pi * 10000.0 ** (np.arange(0, 16, 2) / 16))
    assert "4 of 8 pairs never complete a turn" in fig.layout.title.text
    curves = rope_score_by_distance(16, 10000.0, 512)
    assert curves["ones"][0] == pytest.approx(1.0) and curves["ones"][200:].mean() < 0.5


def test_gqa_diagram_links_each_query_head_to_its_group():
    fig = sharing_diagram(8, 2)
    links = [t for t in fig.data if t.mode == "lines"]
    assert len(links) == 8
    kv_x = [t for t in fig.data if t.name == "key/value heads"][0].x
    for h, link in enumerate(links):
        assert link.x[1] == kv_x[h // 4]


def test_head_similarity_within_and_across():
    a = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    b = np.eye(4)
    sim = head_similarity(np.stack([a, a, b, b]))
    assert np.allclose(np.diag(sim), 1) and sim[0, 1] == pytest.approx(1)
    within, across = within_vs_across(sim, 2)
    assert within == pytest.approx(1) and across < within


def test_scaling_figure_reports_fitted_slopes():
    rows = [{"impl": "dense", "n": n, "median_s": 1e-6 * n ** 2, "peak_bytes": n * 10, "flops": n ** 2}
            for n in (512, 1024, 2048)]
    rows += [{"impl": "window", "n": n, "median_s": 1e-6 * n, "peak_bytes": n, "flops": n}
             for n in (512, 1024, 2048)]
    fig = scaling_figure(rows, "n", ["impl"], "t")
    names = [t.name for t in fig.data if t.name and "slope" in t.name]
    assert "dense (slope 2.00 over n=1024–2048)" in names and "window (slope 1.00 over n=1024–2048)" in names
    assert fit_slope([1, 10, 100], [3, 300, 30000]) == pytest.approx(2.0)
