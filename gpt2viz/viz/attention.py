"""Attention heatmaps. Cells a query can never attend (the future, outside the window and
not a sink) are left empty (NaN) on a grey background, so the causal triangle and the window band show as
what they are, distinct from an allowed key that got ~0 probability."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gpt2viz.core.attention import key_allowed

from . import title_margin, wrap

BLOCKED_COLOUR = "#d9d9d9"
SCALE = "Viridis"
DIVERGING = "RdBu_r"  # plotly's RdBu runs red -> blue; reversed, positive values are red
LOG_FLOOR = 1e-3  # the log colour scale shows probabilities from 0.001 to 1


def allowed_cells(t: int, window: int | None, sinks: int = 0) -> np.ndarray:
    """(t, t) bool: the cells the kernels let a query see, from their own rule."""
    return key_allowed(np.arange(t)[:, None], np.arange(t)[None, :], window, sinks)


def _masked(probs, window, sinks=0) -> np.ndarray:
    probs = np.asarray(probs, dtype=float)
    return np.where(allowed_cells(probs.shape[-1], window, sinks), probs, np.nan)


def _heatmap(probs, labels, log=False, showscale=True, name=""):
    """Probabilities on 0..1, or log10 of them on -3..0 (the colour, not the hover, is logged)."""
    ticks = [f"{i}:{lab}" for i, lab in enumerate(labels)]
    z = np.log10(np.clip(probs, LOG_FLOOR, None)) if log else probs
    colorbar = dict(tickvals=[-3, -2, -1, 0], ticktext=["≤0.001", "0.01", "0.1", "1"]) if log else None
    return go.Heatmap(z=z, customdata=probs, x=ticks, y=ticks, zmin=-3.0 if log else 0.0,
                      zmax=0.0 if log else 1.0, colorscale=SCALE, showscale=showscale,
                      colorbar=colorbar, name=name, hoverongaps=False,
                      hovertemplate="query %{y}<br>key %{x}<br>p = %{customdata:.4f}<extra>"
                                    + name + "</extra>")


def _square_axes(fig, rows=1, cols=1, show_ticks=True):
    fig.update_xaxes(showgrid=False, tickangle=-60, showticklabels=show_ticks, tickfont_size=9)
    fig.update_yaxes(showgrid=False, autorange="reversed", showticklabels=show_ticks, tickfont_size=9)
    fig.update_layout(plot_bgcolor=BLOCKED_COLOUR, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def attention_heatmap(probs, labels, title, window=None, log=False, sinks=0, title_width=48) -> go.Figure:
    """probs (T, T) for one layer and head; log=True colours log10(p) from 0.001 to 1."""
    fig = go.Figure(_heatmap(_masked(probs, window, sinks), labels, log, name=title))
    fig.update_layout(title=wrap(title, title_width), height=520, xaxis_title="key (attended to)",
                      yaxis_title="query")
    return _square_axes(fig).update_layout(margin_t=title_margin(wrap(title, title_width)))


def attention_grid(attn, labels, title, window=None, log=False, row_titles=None,
                   cell_titles=None, sinks=0) -> go.Figure:
    """attn: list over rows (layers, or kv groups) of (heads, T, T) -> a grid of small heatmaps.
    Rows default to layers L0.., columns to heads H0..; cell_titles names each cell instead
    (row-major), and the hover names the cell as its row and cell titles do."""
    n_layer, n_head = len(attn), attn[0].shape[0]
    row_titles = row_titles or [f"L{l}" for l in range(n_layer)]
    height = (140 + (24 if cell_titles else 0)) * n_layer + 80
    gap = 44 / height if cell_titles else 0.04  # a cell's own title needs room above its map
    fig = make_subplots(rows=n_layer, cols=n_head, horizontal_spacing=0.01, vertical_spacing=gap,
                        row_titles=row_titles,
                        column_titles=None if cell_titles else [f"H{h}" for h in range(n_head)],
                        subplot_titles=cell_titles)
    for layer in range(n_layer):
        for head in range(n_head):
            cell = cell_titles[layer * n_head + head] if cell_titles else f"H{head}"
            fig.add_trace(_heatmap(_masked(attn[layer][head], window, sinks), labels, log,
                                   showscale=layer == head == 0, name=f"{row_titles[layer]} {cell}"),
                          row=layer + 1, col=head + 1)
    fig.update_layout(title=wrap(title, 80), height=height)
    return _square_axes(fig, show_ticks=False).update_layout(margin_t=title_margin(wrap(title, 80)))


def attention_difference(probs_a, probs_b, labels, name_a, name_b, window_a=None,
                         window_b=None, sinks_a=0, sinks_b=0) -> go.Figure:
    """probs_a - probs_b, diverging colours centred on 0; blocked only where both block."""
    allowed = (allowed_cells(len(labels), window_a, sinks_a)
               | allowed_cells(len(labels), window_b, sinks_b))
    diff = np.where(allowed, np.asarray(probs_a, float) - np.asarray(probs_b, float), np.nan)
    limit = (float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0) or 1.0
    ticks = [f"{i}:{lab}" for i, lab in enumerate(labels)]
    name = f"{name_a} − {name_b}"
    fig = go.Figure(go.Heatmap(z=diff, x=ticks, y=ticks, zmin=-limit, zmax=limit, zmid=0.0,
                               colorscale=DIVERGING, name=name, hoverongaps=False,
                               hovertemplate="query %{y}<br>key %{x}<br>" + name
                                             + " = %{z:+.4f}<extra></extra>"))
    fig.update_layout(title=f"{name_a} − {name_b} (red: {name_a} attends more, blue: {name_b})", height=520,
                      xaxis_title="key", yaxis_title="query")
    return _square_axes(fig)
