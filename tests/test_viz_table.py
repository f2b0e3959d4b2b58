"""A chart's CSV is what it draws: every point and every heatmap cell, labelled by its axes."""
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gpt2viz.viz.table import figure_table


def test_lines_and_bars_give_one_row_per_point_named_by_series():
    fig = go.Figure([go.Scatter(x=[1, 2, 3], y=[0.5, 0.25, 0.125], name="rope"),
                     go.Bar(x=["a", "b"], y=[3, 4], name="gpt2")])
    table = figure_table(fig)
    assert list(table.columns) == ["series", "x", "y"]
    assert table.values.tolist() == [["rope", 1, 0.5], ["rope", 2, 0.25], ["rope", 3, 0.125],
                                     ["gpt2", "a", 3], ["gpt2", "b", 4]]


def test_a_heatmap_gives_one_row_per_cell_at_its_row_and_column():
    z = np.arange(6, dtype=float).reshape(2, 3)  # 2 queries x 3 keys
    z[0, 2] = np.nan
    table = figure_table(go.Figure(go.Heatmap(z=z, x=["k0", "k1", "k2"], y=["q0", "q1"])))
    assert list(table.columns) == ["x", "y", "value"] and len(table) == 6
    cell = table.set_index(["y", "x"])["value"]
    assert cell["q1", "k0"] == 3.0 and cell["q0", "k1"] == 1.0 and np.isnan(cell["q0", "k2"])
    unlabelled = figure_table(go.Figure(go.Heatmap(z=z)))
    assert unlabelled.set_index(["y", "x"])["value"][1, 2] == 5.0  # indices where no labels


def test_subplots_are_named_by_their_titles():
    fig = make_subplots(rows=1, cols=2, subplot_titles=["layer 0", "layer 1"])
    fig.add_trace(go.Scatter(x=[0], y=[1.0], name="a"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[0], y=[2.0], name="a"), row=1, col=2)
    table = figure_table(fig)
    assert table[["panel", "y"]].values.tolist() == [["layer 0", 1.0], ["layer 1", 2.0]]
    assert figure_table(go.Figure()).empty
