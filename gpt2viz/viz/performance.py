"""Latency and memory scaling, measured next to the analytic cost, on log-log axes."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gpt2viz.analysis.bench import fit_slope

from . import LOG_AXIS, SERIES_COLOURS


def series_label(row: dict, keys: list[str]) -> str:
    """A legend entry a person can read: "sdpa · 12 kv heads · full causal"."""
    words = {"n_kv_head": lambda v: f"{v} kv heads",
             "window": lambda v: "full causal" if v is None else f"window {v}"}
    return " · ".join(words.get(k, str)(row[k]) for k in keys)


def fitted_range(xs) -> slice:
    """The points a slope is fitted on: the upper half of the sizes (at least the two
    largest), where fixed per-call overheads no longer hide the growth."""
    return slice(len(xs) - max(2, -(-len(xs) // 2)), len(xs))


def scaling_figure(rows: list[dict], x: str, series: list[str], title: str) -> go.Figure:
    """rows: bench rows; x: "n" or "window"; series: the keys that name one line.
    Left: median latency with the fastest..slowest repeat as error bars, the slope fitted on
    the upper half of x, a warning where a series does not grow with x, and the analytic
    FLOPs as a dashed line through the series' mean rate (what constant-efficiency scaling
    would give). Right: peak memory."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[
        "median latency (bars: fastest–slowest repeat)",
        "peak memory: tensors (solid), process (dotted)"])
    groups: dict = {}
    for row in rows:
        groups.setdefault(series_label(row, series), []).append(row)
    for i, (name, group) in enumerate(groups.items()):
        group = sorted(group, key=lambda r: r[x])
        xs = np.array([r[x] for r in group], float)
        times = np.array([r["median_s"] for r in group])
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        label = name
        if len(xs) > 1:
            fit = fitted_range(xs)
            label += f" (slope {fit_slope(xs[fit], times[fit]):.2f} over {x}={xs[fit][0]:.0f}–{xs[-1]:.0f})"
            if (np.diff(times) <= 0).any():
                label += " ⚠ not monotonic: timing noise or overhead dominates somewhere"
        ran = sorted({f"{r['ran']} at {x}={r[x]}" for r in group
                      if "ran" in r and r["ran"] != r["impl"]})
        if ran:
            label += f" [ran {', '.join(ran)}]"
        spread = {}
        if all("min_s" in r for r in group):
            spread = dict(error_y=dict(type="data", symmetric=False,
                                       array=[(r["max_s"] - r["median_s"]) * 1e3 for r in group],
                                       arrayminus=[(r["median_s"] - r["min_s"]) * 1e3 for r in group]))
        fig.add_trace(go.Scatter(x=xs, y=times * 1e3, mode="lines+markers", legendgroup=name,
                                 name=label, line=dict(color=colour), **spread,
                                 hovertemplate=f"{x}=%{{x}}: %{{y:.2f}} ms<extra>{name}</extra>"),
                      row=1, col=1)
        flops = np.array([r.get("flops") or np.nan for r in group], float)
        if np.isfinite(flops).all():
            rate = np.exp(np.mean(np.log(flops / times)))
            fig.add_trace(go.Scatter(x=xs, y=flops / rate * 1e3, mode="lines", legendgroup=name,
                                     name=f"{name}: FLOPs at {rate / 1e9:.0f} GFLOP/s",
                                     line=dict(color=colour, dash="dash", width=1), showlegend=False,
                                     hovertemplate="analytic: %{y:.2f} ms<extra></extra>"),
                          row=1, col=1)
        for key, dash, what in (("peak_bytes", "solid", "tensors"),
                                ("process_peak_bytes", "dot", "process")):
            peaks = [r.get(key) for r in group]
            if all(p is not None for p in peaks):
                fig.add_trace(go.Scatter(x=xs, y=np.array(peaks) / 2**20, mode="lines+markers",
                                         legendgroup=name, showlegend=False,
                                         line=dict(color=colour, dash=dash),
                                         hovertemplate=f"{x}=%{{x}}: %{{y:.1f}} MiB ({what})"
                                                       f"<extra>{name}</extra>"),
                              row=1, col=2)
    fig.update_xaxes(**LOG_AXIS, title_text=x)
    fig.update_yaxes(**LOG_AXIS, title_text="ms", row=1, col=1)
    fig.update_yaxes(**LOG_AXIS, title_text="MiB", row=1, col=2)
    fig.update_layout(title=title, height=500, margin=dict(t=70, l=10, r=10, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def decode_figure(rows: list[dict], analytic: dict[str, list[tuple[int, int]]]) -> go.Figure:
    """Generation with a KV cache. Left: median latency of one new token against the tokens
    already in the cache (bars: fastest–slowest step). Right: the cache's bytes — the analytic
    figure as a dashed line for every variant (drawn before anything is measured), the bytes
    its tensors were allocated as markers where measured.
    analytic: variant -> [(context, bytes)]."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[
        "latency per new token (bars: fastest–slowest step)",
        "KV cache: analytic (dashed), allocated (markers)"])
    names = list(dict.fromkeys(list(analytic) + [r["variant"] for r in rows]))
    for i, name in enumerate(names):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        group = sorted((r for r in rows if r["variant"] == name), key=lambda r: r["context"])
        if group:
            fig.add_trace(go.Scatter(
                x=[r["context"] for r in group], y=[r["ms_per_token"] for r in group],
                mode="lines+markers", name=name, legendgroup=name, line=dict(color=colour),
                error_y=dict(type="data", symmetric=False,
                             array=[r["max_ms"] - r["ms_per_token"] for r in group],
                             arrayminus=[r["ms_per_token"] - r["min_ms"] for r in group]),
                hovertemplate=f"after %{{x}} tokens: %{{y:.2f}} ms<extra>{name}</extra>"),
                row=1, col=1)
            fig.add_trace(go.Scatter(
                x=[r["context"] for r in group], y=[r["cache_bytes"] / 2**20 for r in group],
                mode="markers", legendgroup=name, showlegend=False, marker=dict(color=colour, size=9),
                hovertemplate=f"after %{{x}} tokens: %{{y:.2f}} MiB allocated<extra>{name}</extra>"),
                row=1, col=2)
        if name in analytic:
            contexts, sizes = zip(*analytic[name])
            fig.add_trace(go.Scatter(
                x=contexts, y=np.array(sizes) / 2**20, mode="lines", legendgroup=name,
                name=name, showlegend=not group, line=dict(color=colour, dash="dash"),
                hovertemplate=f"after %{{x}} tokens: %{{y:.2f}} MiB analytic<extra>{name}</extra>"),
                row=1, col=2)
    fig.update_xaxes(**LOG_AXIS, title_text="tokens in the cache")
    fig.update_yaxes(**LOG_AXIS, title_text="ms", row=1, col=1)  # one slow step must not flatten the rest
    fig.update_yaxes(**LOG_AXIS, title_text="MiB", row=1, col=2)
    fig.update_layout(title="Generation with a KV cache: cost of each new token", height=520,
                      margin=dict(t=70, l=10, r=10, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def analytic_figure(series: dict[str, list[tuple[int, float]]], x: str, y: str,
                    title: str) -> go.Figure:
    """What a run would measure, before it runs: one dashed line per series (x, y)."""
    fig = go.Figure()
    for i, (name, points) in enumerate(series.items()):
        xs, ys = zip(*points)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name,
                                 line=dict(color=SERIES_COLOURS[i % len(SERIES_COLOURS)], dash="dash")))
    fig.update_xaxes(**LOG_AXIS, title_text=x)
    fig.update_yaxes(**LOG_AXIS, title_text=y)
    fig.update_layout(title=title, height=420, margin=dict(t=60, l=10, r=10, b=10))
    return fig
