"""Figures of the synthetic tasks (analysis/tasks.py, analysis/task_models.py): accuracy of
each variant by distance, length or pairs; accuracy while training; the induction head's birth."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from . import title_margin, wrap

BY_TITLES = {"distance": "distance from the value to the question (tokens)",
             "length": "evaluated at × the training length", "pairs": "key–value pairs"}


def accuracy_heatmap(table: dict, by: str, chance: float, title: str) -> go.Figure:
    """table: variant -> {value: accuracy or None (refused)}, columns in the order of the first
    row. Each cell is written out; refused cells are grey and say so; chance in the title and
    the colour bar's tick."""
    columns = list(next(iter(table.values())))
    names = list(table)
    z = np.array([[np.nan if table[n].get(c) is None else table[n][c] for c in columns] for n in names])
    text = [["refused" if table[n].get(c) is None else f"{table[n][c]:.2f}" for c in columns] for n in names]
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(c) for c in columns], y=names, zmin=0, zmax=1, colorscale="Viridis", text=text,
        texttemplate="%{text}", customdata=np.full(z.shape, chance),
        colorbar=dict(title="accuracy", tickvals=[chance, 0.5, 1],
                      ticktext=[f"chance {chance:.3f}", "0.5", "1"]),
        hovertemplate="%{y}<br>" + by + " %{x}: %{text} (chance %{customdata:.3f})<extra></extra>"))
    fig.update_xaxes(title_text=BY_TITLES[by], type="category")
    fig.update_yaxes(autorange="reversed")
    full = wrap(f"{title} (chance {chance:.3f})", 80)
    fig.update_layout(title=full, height=140 + 48 * len(names), plot_bgcolor="#e5e5e5",
                      margin=dict(t=title_margin(full) + 10, l=10, r=10, b=10))
    return fig


def accuracy_curves(histories: dict, chance: float) -> go.Figure:
    """histories: variant -> TaskHistory. Held-out accuracy at each evaluation; a diamond where
    it first reached 50 % (learned_at_step)."""
    fig = go.Figure()
    for name, h in histories.items():
        fig.add_trace(go.Scatter(x=h.eval_steps, y=h.accuracy, mode="lines", name=name,
                                 legendgroup=name,
                                 hovertemplate=f"{name}<br>step %{{x}}: %{{y:.3f}}<extra></extra>"))
        if h.learned_at_step is not None:
            at = h.eval_steps.index(h.learned_at_step)
            fig.add_trace(go.Scatter(x=[h.learned_at_step], y=[h.accuracy[at]], mode="markers",
                                     marker=dict(symbol="diamond", size=11), legendgroup=name,
                                     showlegend=False,
                                     hovertemplate=f"{name} learned at step %{{x}}<extra></extra>"))
    fig.add_hline(y=chance, line=dict(color="grey", dash="dot"), annotation_text=f"chance {chance:.3f}",
                  annotation_position="bottom right")
    fig.add_hline(y=0.5, line=dict(color="grey", dash="dash"), annotation_text="50 %: learned",
                  annotation_position="top left")
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="held-out accuracy", range=[0, 1.02])
    fig.update_layout(title="Accuracy while training (diamond: first evaluation at ≥ 50 %)", height=380,
                      margin=dict(t=60, l=10, r=10, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def head_birth(history, name: str) -> go.Figure:
    """The strongest induction and previous-token head of each layer at every evaluation: an
    induction head appears in a later layer as a previous-token head forms in an earlier one."""
    fig = go.Figure()
    steps = [entry["step"] for entry in history.heads]
    layers = len(history.heads[0]["induction"]) if history.heads else 0
    for layer in range(layers):
        for measure, dash in (("induction", "solid"), ("prev_token", "dot")):
            values = [max(entry[measure][layer]) for entry in history.heads]
            label = f"layer {layer + 1}: {'induction' if measure == 'induction' else 'previous-token'}"
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=label,
                                     line=dict(dash=dash),
                                     hovertemplate=label + "<br>step %{x}: best head %{y:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="best head's score", range=[0, 1.02])
    title = wrap(f"{name}: the strongest head of each kind, layer by layer, during training", 80)
    fig.update_layout(title=title, height=380, legend=dict(orientation="h", y=-0.2),
                      margin=dict(t=title_margin(title) + 10, l=10, r=10, b=10))
    return fig
