"""Axes and titles a reader can trust (issue 24, items 10, 11 and 13): shared scales, whole
numbers on log and count axes, titles that wrap instead of being clipped."""
import numpy as np
import pytest

from gpt2viz.training.train import History
from gpt2viz.viz.attention import attention_heatmap
from gpt2viz.viz.charts import loss_curves, next_token_bars
from gpt2viz.viz.experiments import frontier_figure, receptive_figure, window_figure
from gpt2viz.viz.performance import analytic_figure, scaling_figure
from gpt2viz.viz.rope import score_decay, wavelength_bars


def axes(fig):
    layout = fig.to_plotly_json()["layout"]
    return {name: axis for name, axis in layout.items() if name.startswith(("xaxis", "yaxis"))}


def test_next_token_panels_share_one_plain_probability_scale():
    fig = next_token_bars({"a": (["x", "y"], [0.6, 0.1]), "b": (["x", "y"], [0.0003, 0.0002])})
    ranges = [axis["range"] for name, axis in axes(fig).items() if name.startswith("xaxis")]
    assert len(ranges) == 2 and ranges[0] == ranges[1]  # equal bars are equal probabilities
    assert ranges[0][0] == 0 and ranges[0][1] >= 0.6
    assert all(axis["exponentformat"] == "none" for name, axis in axes(fig).items()
               if name.startswith("xaxis"))  # 0.0002, not 200μ


def log_figures():
    rows = [{"impl": "dense", "n": n, "median_s": 1e-6 * n ** 2, "peak_bytes": n * 10, "flops": n ** 2}
            for n in (512, 1024, 2048)]
    window = {"full_loss": 3.0, "trained_window": 16,
              "rows": [{"window": w, "sinks": 0, "loss": 3 + 1 / w} for w in (4, 16, 64)]}
    frontier = [{"n_kv_head": 4, "kv_bytes_per_token": 512, "pooled_loss": 3.0, "uptrained_loss": None}]
    return {"wavelengths": wavelength_bars(16, 10000.0, 32768),
            "score decay": score_decay({"x": (np.arange(1, 100), np.ones(99))}, 16, 10000.0),
            "analytic": analytic_figure({"s": [(1, 1.0), (1000, 5.0)]}, "n", "ms", "t"),
            "scaling": scaling_figure(rows, "n", ["impl"], "t"),
            "window": window_figure({"swa": window}), "frontier": frontier_figure(frontier, 3.0)}


@pytest.mark.parametrize("name", list(log_figures()))
def test_every_log_axis_writes_whole_numbers(name):
    logs = [axis for axis in axes(log_figures()[name]).values() if axis.get("type") == "log"]
    assert logs
    for axis in logs:  # "500" and "2,000", not a bare "5" under "1000", nor "200μ"
        assert axis["minorloglabels"] == "complete" and axis["exponentformat"] == "none"


def test_count_axes_tick_whole_numbers_only():
    short = History(steps=[1, 2, 3], train_loss=[5.0, 4.0, 3.0], eval_steps=[3], val_loss=[3.5])
    long = History(steps=list(range(1, 241)), train_loss=[4.0] * 240, eval_steps=[240], val_loss=[4.0])
    for history, largest in ((short, 3), (long, 240)):
        x = loss_curves({"m": history}).layout.xaxis
        assert x.dtick >= 1 and float(x.dtick).is_integer() and x.tick0 == 0
        assert largest / x.dtick <= 10 and x.title.text == "step"
    assert loss_curves({"m": short}).layout.yaxis.title.text == "loss (nats)"
    pairs = wavelength_bars(8, 10000.0, 256).layout.xaxis  # 4 pairs: 0, 1, 2, 3
    assert pairs.dtick == 1 and pairs.tickformat == ",d"
    receptive = receptive_figure(np.ones((4, 6), bool), None, [5] * 4, "t")
    assert receptive.layout.xaxis.dtick == 1 and receptive.layout.yaxis.automargin is True


def test_long_heatmap_titles_wrap_instead_of_being_clipped():
    title = "custom 1: rope · GQA-2 · w=16 · layer 0 · mean over heads"
    fig = attention_heatmap(np.eye(3), list("abc"), title)
    lines = fig.layout.title.text.split("<br>")
    assert len(lines) > 1 and all(len(line) <= 48 for line in lines)
    assert " ".join(lines) == title  # every word kept, in order
    assert fig.layout.margin.t >= 30 + 22 * len(lines)
