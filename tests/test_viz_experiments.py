"""gpt2viz.viz.experiments: the receptive-field, frontier and window figures plot the data
they are given."""
import pytest
import torch
from conftest import tiny_model

from gpt2viz.analysis.experiments import receptive_field, theory_reach


def test_receptive_figure_draws_the_influence_and_the_theory_edge():
    from gpt2viz.viz.experiments import receptive_figure

    model = tiny_model(n_layer=3, window=4, position="rope")
    influence = receptive_field(model, torch.randint(0, 97, (30,)), 20)
    fig = receptive_figure(influence.numpy(), 4, theory_reach(3, 4, 20), "t")
    heat, edge = fig.data
    assert (heat.z == influence.numpy()).all()
    # the edge sits just left of the first reachable input, 20 - l*3, at every layer
    assert list(edge.x) == [20 - 3 * l - 0.5 for l in (1, 2, 3)]
    assert [row.tolist().index(True) for row in influence] == [17, 14, 11]


def test_frontier_and_window_figures_plot_the_rows_they_are_given():
    from gpt2viz.viz.experiments import frontier_figure, window_figure

    rows = [{"n_kv_head": 4, "kv_bytes_per_token": 512, "pooled_loss": 3.0, "uptrained_loss": 2.9},
            {"n_kv_head": 1, "kv_bytes_per_token": 128, "pooled_loss": 3.5, "uptrained_loss": 3.1}]
    fig = frontier_figure(rows, 3.0, {"MQA from scratch": {"kv_bytes_per_token": 128, "loss": 3.05}})
    pooled, uptrained, scratch = fig.data
    assert list(pooled.x) == [512, 128] and list(pooled.y) == [3.0, 3.5]
    assert list(uptrained.y) == [2.9, 3.1] and list(scratch.y) == [3.05]
    result = {"full_loss": 3.0, "trained_window": 16,
              "rows": [{"window": w, "sinks": s, "loss": 3 + s / 10 + 1 / w} for s in (0, 4) for w in (64, 4, 16)]}
    fig = window_figure({"swa": result})
    assert [t.name for t in fig.data] == ["swa, 0 sinks", "swa, 4 sinks", "swa: trained with 16"]
    assert list(fig.data[1].x) == [4, 16, 64] and fig.data[1].y[0] == 3 + 0.4 + 0.25


def test_length_gap_below_the_tolerance_is_drawn_as_zero_and_said():
    """Issue 31.3: a windowed model sees the same keys with the whole block or the cut context;
    the float32 difference (~1e-6) is drawn as 0, a real gap as it is."""
    from gpt2viz.analysis.experiments import LengthCurve
    from gpt2viz.viz.experiments import GAP_TOLERANCE, length_figure

    noise = LengthCurve(positions=[0, 8, 16], loss=[3.0, 3.0 + 2e-6, 3.0 - 3e-7],
                        sliding_loss=[3.0, 3.0, 3.0], limit=None)
    real = LengthCurve(positions=[0, 8, 16], loss=[3.0, 3.2, 3.5], sliding_loss=[3.0, 3.0, 3.1], limit=None)
    fig = length_figure({"swa": noise, "rope": real}, 8, 8)
    gaps = [t for t in fig.data if t.hovertemplate.endswith("<extra>difference</extra>")]
    assert list(gaps[0].y) == [0.0, 0.0, 0.0]
    assert list(gaps[1].y) == pytest.approx([0.0, 0.2, 0.4])
    assert f"|Δ| < {GAP_TOLERANCE:g}" in fig.layout.annotations[1].text
    assert fig.layout.yaxis2.tickformat == ".2f"  # no "1μ" or "−200n" ticks
