"""Training curves and comparison bars."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import integer_ticks


def loss_curves(histories: dict, unigram_loss: float | None = None) -> go.Figure:
    """histories: name -> History. Train loss thin, validation loss with markers."""
    fig = go.Figure()
    for name, h in histories.items():
        fig.add_trace(go.Scatter(x=h.steps, y=h.train_loss, mode="lines", name=f"{name} train",
                                 line=dict(width=1), opacity=0.5, legendgroup=name))
        fig.add_trace(go.Scatter(x=h.eval_steps, y=h.val_loss, mode="lines+markers",
                                 name=f"{name} validation", legendgroup=name))
    if unigram_loss is not None:
        fig.add_hline(y=unigram_loss, line_dash="dash", line_color="grey",
                      annotation_text=f"unigram baseline {unigram_loss:.2f}")
    last_step = max((max(h.steps, default=0) for h in histories.values()), default=0)
    fig.update_xaxes(title_text="step", **integer_ticks(last_step))
    fig.update_layout(title="Loss (nats per token)", yaxis_title="loss (nats)",
                      height=420, margin=dict(t=50, l=10, r=10, b=10))
    return fig


def next_token_bars(predictions: dict) -> go.Figure:
    """predictions: name -> (token labels, probabilities), one panel per variant, all on one
    probability scale so that equal-looking bars are equal."""
    names = list(predictions)
    top = max(max(probs, default=0.0) for _, probs in predictions.values()) or 1.0
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=False)
    for col, name in enumerate(names, start=1):
        labels, probs = predictions[name]
        fig.add_trace(go.Bar(x=probs[::-1], y=[f"{lab} " for lab in labels[::-1]], orientation="h",
                             name=name, hovertemplate="%{y}: %{x:.4f}<extra>" + name + "</extra>"),
                      row=1, col=col)
    fig.update_xaxes(range=[0, 1.05 * top], title_text="probability", exponentformat="none")
    fig.update_layout(title="Next-token probabilities (top k)", showlegend=False, height=420,
                      margin=dict(t=70, l=10, r=10, b=10))
    return fig
