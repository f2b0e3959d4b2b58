"""The head atlas (one cell per layer and head, coloured by what the head does) and the head
ablation bars. Numbers come from gpt2viz.analysis.heads and `experiment ablate`."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from gpt2viz.analysis.heads import MEASURES

from . import signed

MEASURE_LABELS = {
    "first_token_mass": "mass on the first token",
    "prev_token": "previous-token score",
    "induction": "induction score",
    "entropy": "entropy (nats)",
    "mean_distance": "mean attention distance, first token left out (tokens)",
}
PROBABILITY_MEASURES = ("first_token_mass", "prev_token", "induction")  # 0 .. 1
LOSSES = {"prompt_loss": "prompt", "text_loss": "text", "induction_loss": "repeated random tokens"}


def head_atlas(stats: list[dict], measure: str, n_kv_head: int, title: str | None = None,
               selected: tuple[int, int] | None = None) -> go.Figure:
    """stats: head_stats rows -> a layer x head heatmap of `measure` (layer 0 on top), every
    head's numbers on hover, the heads that read one K/V head outlined together, `selected`
    (layer, head) framed. Clicks select cells through an invisible marker per cell (plotly
    heatmaps cannot be selected): customdata [layer, head, ...], read by selected_head."""
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose one of {', '.join(MEASURES)}.")
    n_layer = max(r["layer"] for r in stats) + 1
    n_head = max(r["head"] for r in stats) + 1
    group = n_head // n_kv_head
    values = np.full((n_layer, n_head, len(MEASURES)), np.nan)
    for r in stats:
        values[r["layer"], r["head"]] = [r[m] for m in MEASURES]
    z = values[..., MEASURES.index(measure)]  # (n_layer, n_head)
    zmax = 1.0 if measure in PROBABILITY_MEASURES else max(float(np.nanmax(z)), 1e-9)
    fig = go.Figure(go.Heatmap(z=z, x=list(range(n_head)), y=list(range(n_layer)), zmin=0.0, zmax=zmax,
                               colorscale="Viridis", xgap=1, ygap=1, hoverinfo="skip",
                               texttemplate="%{z:.2f}", textfont_size=10,
                               colorbar=dict(title=dict(text=MEASURE_LABELS[measure], side="right"))))
    layer, head = np.mgrid[0:n_layer, 0:n_head]
    customdata = np.concatenate([np.stack([layer, head, head // group], -1), values], -1)
    hover = "<br>".join(f"<b>{MEASURE_LABELS[m]}: %{{customdata[{3 + i}]:.3f}}</b>" if m == measure
                        else f"{MEASURE_LABELS[m]}: %{{customdata[{3 + i}]:.3f}}"
                        for i, m in enumerate(MEASURES))
    row_px = max(22, min(50, 400 // n_layer))  # 30 layers: 22 px a row; a 4-layer model: 50
    fig.add_trace(go.Scatter(
        x=head.ravel(), y=layer.ravel(), mode="markers", customdata=customdata.reshape(-1, customdata.shape[-1]),
        marker=dict(symbol="square", size=row_px - 4, color="rgba(0,0,0,0)"), showlegend=False,
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
        hovertemplate="layer %{customdata[0]}, head %{customdata[1]} (KV head %{customdata[2]})<br>"
                      + hover + "<extra></extra>"))
    if group > 1:  # MHA: every head reads its own K/V head, nothing to group
        for g in range(n_kv_head):
            fig.add_shape(type="rect", x0=g * group - 0.5, x1=(g + 1) * group - 0.5, y0=-0.5,
                          y1=n_layer - 0.5, line=dict(color="black", width=3), name=f"KV head {g}")
    if selected is not None:
        fig.add_shape(type="rect", x0=selected[1] - 0.5, x1=selected[1] + 0.5, y0=selected[0] - 0.5,
                      y1=selected[0] + 0.5, line=dict(color="#d62728", width=3), name="selected")
    kind = "MHA" if group == 1 else ("MQA" if n_kv_head == 1 else "GQA")
    fig.update_xaxes(tickvals=list(range(n_head)), side="top", showgrid=False, zeroline=False,
                     ticktext=[f"H{h}<br>kv{h // group}" if group > 1 else f"H{h}" for h in range(n_head)],
                     range=[-0.5, n_head - 0.5])
    fig.update_yaxes(tickvals=list(range(n_layer)), ticktext=[f"L{l}" for l in range(n_layer)],
                     range=[n_layer - 0.5, -0.5], showgrid=False, zeroline=False)  # layer 0 on top
    outline = f"; outlined: the {group} heads that read one K/V head" if group > 1 else ""
    fig.update_layout(title=title or f"Head atlas: {MEASURE_LABELS[measure]} ({kind}{outline})",
                      height=140 + row_px * n_layer, plot_bgcolor="white", hovermode="closest", hoverdistance=-1,
                      margin=dict(t=110, l=10, r=10, b=10))
    return fig


def selected_head(event) -> tuple[int, int] | None:
    """(layer, head) of the atlas cell chosen in st.plotly_chart(..., on_select="rerun"), or
    None. Streamlit hands back {"selection": {"points": [{"customdata": ...}, ...]}}, the
    customdata as a list or as a dict keyed "0", "1", ..."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, dict):
            data = [data.get(str(i)) for i in range(2)]
        if data is not None and len(data) >= 2 and None not in data[:2]:
            return int(data[0]), int(data[1])
    return None


def ablation_figure(results: list[dict]) -> go.Figure:
    """results: `experiment ablate` JSON ({"layer", "head", "kv_group", "base": {...},
    "ablated": {...}} with text_loss, induction_loss and optionally prompt_loss) -> grouped
    bars: loss of the intact model, then with each ablation, on each text, its change written on
    the bar."""
    if not results:
        raise ValueError("no ablation to show.")
    keys = [k for k in LOSSES if k in results[0]["base"]]
    texts = [LOSSES[k] for k in keys]
    fig = go.Figure(go.Bar(x=texts, y=[results[0]["base"][k] for k in keys], name="intact model",
                           marker_color="grey",
                           hovertemplate="intact model, %{x}: %{y:.3f} nats<extra></extra>"))
    for r in results:
        label = (f"layer {r['layer']}, head {r['head']} off" if r.get("head") is not None
                 else f"layer {r['layer']}, KV group {r['kv_group']} off")
        after = [r["ablated"][k] for k in keys]
        change = [a - r["base"][k] for a, k in zip(after, keys)]
        fig.add_trace(go.Bar(x=texts, y=after, name=label, customdata=change,
                             text=[signed(c) for c in change], textposition="outside",
                             hovertemplate=label + ", %{x}: %{y:.3f} nats (%{text})<extra></extra>"))
    fig.update_yaxes(title_text="loss (nats per token)")
    fig.update_layout(title="Switching heads off: loss before and after", barmode="group", height=400,
                      margin=dict(t=60, l=10, r=10, b=10))
    return fig
