"""GQA pictures: which query heads share which key/value head, what sharing saves, and how
alike the attention maps of heads that share a kv head are."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gpt2viz.core.resources import plural

GROUP_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf"]


def sharing_diagram(n_head: int, n_kv_head: int) -> go.Figure:
    """Query heads on top, kv heads below; query head h reads kv head h // (n_head/n_kv_head)."""
    group = n_head // n_kv_head
    fig = go.Figure()
    q_x = np.arange(n_head)
    kv_x = (np.arange(n_kv_head) + 0.5) * group - 0.5
    for h in range(n_head):
        kv = h // group
        fig.add_trace(go.Scatter(x=[q_x[h], kv_x[kv]], y=[1, 0], mode="lines", hoverinfo="skip",
                                 line=dict(color=GROUP_COLOURS[kv % 10], width=2), showlegend=False))
    fig.add_trace(go.Scatter(x=q_x, y=np.ones(n_head), mode="markers+text", name="query heads",
                             text=[f"Q{h}" for h in range(n_head)], textposition="top center",
                             marker=dict(size=22, symbol="circle",
                                         color=[GROUP_COLOURS[(h // group) % 10] for h in range(n_head)]),
                             hovertemplate="query head %{text}<extra></extra>"))
    fig.add_trace(go.Scatter(x=kv_x, y=np.zeros(n_kv_head), mode="markers+text", name="key/value heads",
                             text=[f"KV{j}" for j in range(n_kv_head)], textposition="bottom center",
                             marker=dict(size=30, symbol="square",
                                         color=[GROUP_COLOURS[j % 10] for j in range(n_kv_head)]),
                             hovertemplate="kv head %{text}<extra></extra>"))
    kind = "MHA" if n_kv_head == n_head else "MQA" if n_kv_head == 1 else "GQA"
    fig.update_layout(title=f"{kind}: {n_head} query heads share {plural(n_kv_head, 'key/value head')}, "
                            f"{group} per group", height=300, showlegend=False,
                      xaxis=dict(visible=False, range=[-1, n_head]),
                      yaxis=dict(visible=False, range=[-0.5, 1.5]), margin=dict(t=50, l=10, r=10, b=10))
    return fig


def cost_bars(rows: list[dict], context: int, slots: int | None = None) -> go.Figure:
    """rows: n_kv_head, kv_bytes_per_token, kv_bytes_context, params -> three panels; slots:
    the tokens a window lets the cache keep at that context (None: all of them)."""
    labels = [f"{r['n_kv_head']} ({r['kind']})" for r in rows]
    at_context = (f"KV cache at {context:,} tokens" if slots in (None, context)
                  else f"KV cache at {context:,} tokens<br>(window: {slots:,} slots kept)")
    fig = make_subplots(rows=1, cols=3, subplot_titles=["KV cache per token", at_context, "parameters"])
    for col, key, fmt in ((1, "kv_bytes_per_token", "KiB"), (2, "kv_bytes_context", "MiB"), (3, "params", "M")):
        scale = {"KiB": 1024, "MiB": 2**20, "M": 1e6}[fmt]
        fig.add_trace(go.Bar(x=labels, y=[r[key] / scale for r in rows], showlegend=False,
                             hovertemplate="%{x}: %{y:.3f} " + fmt + "<extra></extra>"), row=1, col=col)
        fig.update_yaxes(title_text=fmt, row=1, col=col)
    fig.update_xaxes(title_text="n_kv_head")
    fig.update_layout(title="What sharing saves, from MHA to MQA", height=360,
                      margin=dict(t=70, l=10, r=10, b=10))
    return fig


def head_similarity(probs) -> np.ndarray:
    """1 - mean total variation distance between two heads' attention rows, (n_head, T, T)
    -> (n_head, n_head): 1 where two heads attend identically, 0 where they never overlap.
    Query 0 is left out: it can only read itself, identically in every head."""
    probs = np.asarray(probs, float)[:, 1:]  # (n_head, T-1, T): queries 1 .. T-1
    tv = 0.5 * np.abs(probs[:, None] - probs[None, :]).sum(-1).mean(-1)  # (n_head, n_head)
    return 1.0 - tv


def within_vs_across(similarity: np.ndarray, group: int) -> tuple[float, float]:
    n = len(similarity)
    groups = np.arange(n) // group
    same = groups[:, None] == groups[None, :]
    off_diagonal = ~np.eye(n, dtype=bool)
    within = similarity[same & off_diagonal]
    across = similarity[~same]
    return (float(within.mean()) if within.size else float("nan"),
            float(across.mean()) if across.size else float("nan"))


def similarity_heatmap(similarity: np.ndarray, group: int, title: str) -> go.Figure:
    n = len(similarity)
    fig = go.Figure(go.Heatmap(z=similarity, x=[f"Q{h}" for h in range(n)], y=[f"Q{h}" for h in range(n)],
                               zmin=0, zmax=1, colorscale="Viridis",
                               hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>"))
    for start in range(0, n, group):  # outline each group of heads sharing one kv head
        fig.add_shape(type="rect", x0=start - 0.5, x1=start + group - 0.5, y0=start - 0.5,
                      y1=start + group - 0.5, line=dict(color="white", width=3))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, height=420, margin=dict(t=60, l=10, r=10, b=10))
    return fig


def conversion_curve(rows: list[dict], reference: dict | None = None) -> go.Figure:
    """rows: experiments.pooled_kv_losses's rows (n_kv_head, pooled_loss of the mean-pooled
    model); reference: label -> (n_kv_head, loss) of a model trained with that many kv heads,
    drawn as a star at its own n_kv_head."""
    fig = go.Figure(go.Scatter(x=[str(r["n_kv_head"]) for r in rows], y=[r["pooled_loss"] for r in rows],
                               mode="lines+markers", name="mean-pooled baseline, no retraining",
                               hovertemplate="n_kv_head %{x}: %{y:.3f} nats<extra></extra>"))
    for label, (n_kv_head, loss) in (reference or {}).items():
        fig.add_trace(go.Scatter(x=[str(n_kv_head)], y=[loss], mode="markers+text", name=label,
                                 marker=dict(symbol="star", size=16), text=[f"{label} {loss:.3f}"],
                                 textposition="middle right",
                                 hovertemplate=f"{label}, n_kv_head %{{x}}: %{{y:.3f}} nats<extra></extra>"))
    fig.update_xaxes(title_text="n_kv_head (MHA → MQA)", type="category")
    fig.update_yaxes(title_text="validation loss (nats)")
    fig.update_layout(title="What sharing costs before any retraining (Ainslie et al. 2023, §2.1)",
                      height=380, margin=dict(t=60, l=10, r=10, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def likeness_by_layer(within: list[float], across: list[float], title: str) -> go.Figure:
    """within[l], across[l]: within_vs_across of layer l's head_similarity -> two lines by
    layer: how alike heads that share a kv head attend, against heads of different groups."""
    layers = list(range(len(within)))
    fig = go.Figure()
    for name, values, dash in (("heads of one kv group", within, None),
                               ("heads of different groups", across, "dash")):
        fig.add_trace(go.Scatter(x=layers, y=values, mode="lines+markers", name=name, line=dict(dash=dash),
                                 hovertemplate=f"layer %{{x}}: %{{y:.3f}}<extra>{name}</extra>"))
    fig.update_xaxes(title_text="layer", dtick=1 if len(layers) <= 12 else 2)
    fig.update_yaxes(title_text="similarity (1 − TV distance)", range=[0, 1])
    fig.update_layout(title=title, height=340, margin=dict(t=60, l=10, r=10, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig
