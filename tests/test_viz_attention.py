"""gpt2viz.viz.attention: heatmaps, grids and differences against an independent
recomputation from the definition (own masks, own colour interpolation; never the helper that drew it)."""
import math
import re

import numpy as np
import pytest
from conftest import causal_allowed, random_attention

from gpt2viz.viz.attention import (
    allowed_cells,
    attention_difference,
    attention_grid,
    attention_heatmap,
)


def rgb(colour):
    return [int(c) for c in re.findall(r"\d+", colour)[:3]]


def colour_at(colorscale, fraction):
    """Linear interpolation in a plotly colorscale [(pos, 'rgb(..)'), ...]."""
    for (p0, c0), (p1, c1) in zip(colorscale, colorscale[1:]):
        if p0 <= fraction <= p1:
            w = (fraction - p0) / (p1 - p0) if p1 > p0 else 0.0
            return [a + w * (b - a) for a, b in zip(rgb(c0), rgb(c1))]
    raise ValueError(fraction)


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


def test_heatmap_draws_each_allowed_probability_and_nothing_else():
    t, window = 7, 3
    probs = random_attention(t, window=window)[0]
    for log in (False, True):
        fig = attention_heatmap(probs, list("abcdefg"), "t", window=window, log=log)
        z, shown = np.array(fig.data[0].z, float), np.array(fig.data[0].customdata, float)
        for i in range(t):
            for j in range(t):
                if j <= i and i - j < window:
                    assert shown[i, j] == pytest.approx(probs[i, j])  # the hover's p
                    expected = math.log10(max(probs[i, j], 1e-3)) if log else probs[i, j]
                    assert z[i, j] == pytest.approx(expected)
                else:
                    assert math.isnan(z[i, j])


def test_grid_cell_rc_holds_row_r_head_c():
    attn = [random_attention(5, heads=3, seed=s) for s in range(2)]
    fig = attention_grid(attn, list("abcde"), "g")
    for trace in fig.data:
        layer, head = (int(s[1:]) for s in trace.name.split())
        assert np.allclose(np.nan_to_num(np.array(trace.z, float)), attn[layer][head])
        axis_number = layer * 3 + head + 1  # make_subplots numbers axes row-major
        assert trace.xaxis == ("x" if axis_number == 1 else f"x{axis_number}")


def test_grid_and_difference_shapes():
    attn = [np.random.rand(3, 5, 5) for _ in range(2)]
    assert len(attention_grid(attn, list("abcde"), "g").data) == 6
    diff = attention_difference(attn[0][0], attn[1][0], list("abcde"), "A", "B")
    assert diff.data[0].zmid == 0 and diff.data[0].zmin == -diff.data[0].zmax


def test_gqa_grid_hover_names_kv_head_and_query_head():
    n_head, n_kv = 8, 2
    group = n_head // n_kv
    probs = random_attention(4, heads=n_head)
    by_group = [probs[g * group:(g + 1) * group] for g in range(n_kv)]
    fig = attention_grid(by_group, list("abcd"), "t", row_titles=[f"KV{g}" for g in range(n_kv)],
                         cell_titles=[f"Q{h}" for h in range(n_head)])
    names = [t.name for t in fig.data]
    assert names == [f"KV{h * n_kv // n_head} Q{h}" for h in range(n_head)]  # query h reads kv h // group
    for h, trace in enumerate(fig.data):
        assert np.allclose(np.nan_to_num(np.array(trace.z, float)), probs[h])


def test_difference_is_red_where_a_attends_more():
    t = 6
    pa, pb = random_attention(t, seed=1)[0], random_attention(t, seed=2, window=2)[0]
    fig = attention_difference(pa, pb, list("abcdef"), "A", "B", None, 2)
    trace = fig.data[0]
    z = np.array(trace.z, float)
    assert np.allclose(z[causal_allowed(t)], (pa - pb)[causal_allowed(t)])
    assert np.isnan(z[~causal_allowed(t)]).all()  # blocked only where both block
    limit = np.abs(pa - pb)[causal_allowed(t)].max()
    assert trace.zmax == pytest.approx(limit) and trace.zmin == pytest.approx(-limit)
    # The cell where A attends most over B is drawn red, the one where B does most blue.
    scale = trace.colorscale
    i, j = np.unravel_index(np.nanargmax(z), z.shape)
    red, _, blue = colour_at(scale, (z[i, j] - trace.zmin) / (trace.zmax - trace.zmin))
    assert red > blue
    i, j = np.unravel_index(np.nanargmin(z), z.shape)
    red, _, blue = colour_at(scale, (z[i, j] - trace.zmin) / (trace.zmax - trace.zmin))
    assert blue > red
    assert "red: A attends more" in fig.layout.title.text


def test_difference_hover_names_a_difference_not_a_probability():
    pa, pb = random_attention(4, seed=1)[0], random_attention(4, seed=2)[0]
    hover = attention_difference(pa, pb, list("abcd"), "A", "B").data[0].hovertemplate
    assert "p =" not in hover and "A − B =" in hover


def test_cell_titles_sit_in_the_gap_above_their_maps():
    """Issue 31.10: GQA's Q4–Q7 titles sat on the second row's maps."""
    import numpy as np

    from gpt2viz.viz.attention import attention_grid

    probs = np.tril(np.ones((6, 6))) / np.arange(1, 7)[:, None]
    fig = attention_grid([np.stack([probs] * 4)] * 2, list("abcdef"), "t",
                         row_titles=["KV0", "KV1"], cell_titles=[f"Q{h}" for h in range(8)])
    top_of_second_row = fig.layout.yaxis5.domain[1]  # Q4's map
    bottom_of_first_row = fig.layout.yaxis.domain[0]
    margin = fig.layout.margin
    plot_px = fig.layout.height - margin.t - (80 if margin.b is None else margin.b)  # plotly's default b
    assert (bottom_of_first_row - top_of_second_row) * plot_px >= 25  # a title's line fits between


def test_a_narrow_column_wraps_the_title_instead_of_clipping_it():
    """Issue 31.10: with three variants side by side the third title read "…· head :"."""
    import numpy as np

    from gpt2viz.viz.attention import attention_heatmap

    title = "rope+gqa+swa · layer 3 · mean over heads"
    fig = attention_heatmap(np.eye(3), list("abc"), title, title_width=100 // 3)
    lines = fig.layout.title.text.split("<br>")
    assert " ".join(lines) == title and all(len(line) <= 33 for line in lines) and len(lines) == 2
