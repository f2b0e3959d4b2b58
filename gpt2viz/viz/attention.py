"""Attention heatmaps. Cells a query can never attend (the future, outside the window and
not a sink) are left empty (NaN) on a grey background, so the causal triangle and the window band show as
what they are, distinct from an allowed key that got ~0 probability."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

BLOCKED_COLOUR = "#d9d9d9"
SCALE = "Viridis"


def allowed_cells(t: int, window: int | None, sinks: int = 0) -> np.ndarray:
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    allowed = j <= i
    return allowed if window is None else allowed & ((i - j < window) | (j < sinks))


def _masked(probs, window, sinks=0) -> np.ndarray:
    probs = np.asarray(probs, dtype=float)
    return np.where(allowed_cells(probs.shape[-1], window, sinks), probs, np.nan)


def _heatmap(z, labels, zmax, colorscale=SCALE, zmid=None, showscale=True, name=""):
    ticks = [f"{i}:{lab}" for i, lab in enumerate(labels)]
    return go.Heatmap(z=z, x=ticks, y=ticks, zmin=None if zmid is not None else 0.0,
                      zmax=zmax, zmid=zmid, colorscale=colorscale, showscale=showscale,
                      name=name, hoverongaps=False,
                      hovertemplate="query %{y}<br>key %{x}<br>p = %{z:.4f}<extra>" + name + "</extra>")


def _square_axes(fig, rows=1, cols=1, show_ticks=True):
    fig.update_xaxes(showgrid=False, tickangle=-60, showticklabels=show_ticks, tickfont_size=9)
    fig.update_yaxes(showgrid=False, autorange="reversed", showticklabels=show_ticks, tickfont_size=9)
    fig.update_layout(plot_bgcolor=BLOCKED_COLOUR, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def attention_heatmap(probs, labels, title, window=None, zmax=None, sinks=0) -> go.Figure:
    """probs (T, T) for one layer and head."""
    fig = go.Figure(_heatmap(_masked(probs, window, sinks), labels, zmax, name=title))
    fig.update_layout(title=title, height=520, xaxis_title="key (attended to)", yaxis_title="query")
    return _square_axes(fig)


def attention_grid(attn, labels, title, window=None, zmax=None, row_titles=None,
                   cell_titles=None, sinks=0) -> go.Figure:
    """attn: list over rows (layers, or kv groups) of (heads, T, T) -> a grid of small heatmaps.
    Rows default to layers L0.., columns to heads H0..; cell_titles names each cell instead."""
    n_layer, n_head = len(attn), attn[0].shape[0]
    fig = make_subplots(rows=n_layer, cols=n_head, horizontal_spacing=0.01, vertical_spacing=0.04,
                        row_titles=row_titles or [f"L{l}" for l in range(n_layer)],
                        column_titles=None if cell_titles else [f"H{h}" for h in range(n_head)],
                        subplot_titles=cell_titles)
    for layer in range(n_layer):
        for head in range(n_head):
            fig.add_trace(_heatmap(_masked(attn[layer][head], window, sinks), labels, zmax,
                                   showscale=layer == head == 0, name=f"L{layer} H{head}"),
                          row=layer + 1, col=head + 1)
    fig.update_layout(title=title, height=140 * n_layer + 80)
    return _square_axes(fig, show_ticks=False)


def attention_difference(probs_a, probs_b, labels, name_a, name_b, window_a=None,
                         window_b=None, sinks_a=0, sinks_b=0) -> go.Figure:
    """probs_a - probs_b, diverging colours centred on 0; blocked only where both block."""
    allowed = (allowed_cells(len(labels), window_a, sinks_a)
               | allowed_cells(len(labels), window_b, sinks_b))
    diff = np.where(allowed, np.asarray(probs_a, float) - np.asarray(probs_b, float), np.nan)
    limit = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 1.0
    fig = go.Figure(_heatmap(diff, labels, limit or 1.0, colorscale="RdBu", zmid=0.0,
                             name=f"{name_a} − {name_b}"))
    fig.data[0].zmin = -(limit or 1.0)
    fig.update_layout(title=f"{name_a} − {name_b} (red: {name_a} attends more)", height=520,
                      xaxis_title="key", yaxis_title="query")
    return _square_axes(fig)
