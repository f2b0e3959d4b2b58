"""Figures of the experiments (gpt2viz.analysis.experiments): plain data in, plotly Figure out."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from gpt2viz.analysis.specs import streaming_label
from gpt2viz.core.resources import plural

from . import LOG_AXIS, integer_ticks, signed

COLOURS = qualitative.Plotly
GAP_TOLERANCE = 1e-4  # nats: float32 rounding between two passes over the same tokens is ~1e-6


def length_figure(curves: dict, train_len: int, bucket: int) -> go.Figure:
    """curves: name -> LengthCurve. Top: loss by position, with the whole block as context
    (solid) and with the context cut to the training length (dotted). Bottom: their
    difference, what positions past the training length cost on the same tokens; a difference
    under GAP_TOLERANCE is rounding (a window shorter than the training length sees the same
    keys either way) and is drawn as 0. Each point sits at the middle of its bucket."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.08,
                        subplot_titles=["loss by position (bucket mean)",
                                        "whole block as context − context cut to the training length "
                                        f"(|Δ| < {GAP_TOLERANCE:g} nats, rounding, drawn as 0)"])
    for i, (name, c) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        middle = [p + (bucket - 1) / 2 for p in c.positions]
        spans = [f"{p}–{p + bucket - 1}" for p in c.positions]
        whole = len(c.loss)
        fig.add_trace(go.Scatter(x=middle[:whole], y=c.loss, mode="lines+markers", name=name, legendgroup=name,
                                 line=dict(color=colour), customdata=spans[:whole],
                                 hovertemplate=f"{name}<br>positions %{{customdata}}: %{{y:.3f}} nats"
                                               "<extra>whole block</extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=middle, y=c.sliding_loss, mode="lines", legendgroup=name,
                                 name=f"{name}, context ≤ {train_len}", line=dict(color=colour, dash="dot"),
                                 customdata=spans,
                                 hovertemplate=f"{name}<br>positions %{{customdata}}: %{{y:.3f}} nats"
                                               f"<extra>context ≤ {train_len}</extra>"), row=1, col=1)
        gap = [0.0 if abs(a - b) < GAP_TOLERANCE else a - b for a, b in zip(c.loss, c.sliding_loss)]
        fig.add_trace(go.Scatter(x=middle[:whole], y=gap, mode="lines+markers", legendgroup=name,
                                 showlegend=False, line=dict(color=colour), customdata=spans[:whole],
                                 hovertemplate=f"{name}<br>positions %{{customdata}}: %{{y:+.3f}} nats"
                                               "<extra>difference</extra>"), row=2, col=1)
        if c.limit is not None:
            _both_rows_vline(fig, c.limit, f"{name}: learned positions end at {c.limit}", "bottom right",
                             line_dash="dash", line_color=colour)
    _both_rows_vline(fig, train_len, f"training length {train_len}", "top right", line_color="grey")
    fig.add_hline(y=0, line_color="grey", line_width=1, row=2, col=1)
    fig.update_xaxes(title_text="position in the block", row=2, col=1)
    fig.update_yaxes(title_text="loss (nats)", row=1, col=1)
    fig.update_yaxes(title_text="Δ loss (nats)", tickformat=".2f", row=2, col=1)
    fig.update_layout(title="Length generalization: past the training length", height=620,
                      margin=dict(t=70, l=10, r=10, b=10))
    return fig


def _both_rows_vline(fig, x, text, where, **line):
    """A vertical line through both panels, labelled once (in the top one)."""
    fig.add_vline(x=x, row=1, col=1, annotation_text=text, annotation_position=where, **line)
    fig.add_vline(x=x, row=2, col=1, **line)


def window_figure(results: dict) -> go.Figure:
    """results: name -> window_losses(...). Loss against the inference window, one line per
    variant and sinks count (dashed with sinks), full attention as a dotted level."""
    fig = go.Figure()
    for i, (name, r) in enumerate(results.items()):
        colour = COLOURS[i % len(COLOURS)]
        for j, s in enumerate(sorted({row["sinks"] for row in r["rows"]})):
            rows = sorted((row for row in r["rows"] if row["sinks"] == s), key=lambda row: row["window"])
            label = f"{name}, {s} sink{'s' if s != 1 else ''}"
            fig.add_trace(go.Scatter(x=[row["window"] for row in rows], y=[row["loss"] for row in rows],
                                     mode="lines+markers", name=label, legendgroup=name,
                                     line=dict(color=colour, dash="solid" if s == 0 else ["dash", "dashdot", "longdash"][j % 3]),
                                     hovertemplate=f"{label}<br>window %{{x}}: %{{y:.3f}} nats<extra></extra>"))
        fig.add_hline(y=r["full_loss"], line_dash="dot", line_color=colour,
                      annotation_text=f"{name}, full attention {r['full_loss']:.2f}")
        if r["trained_window"] is not None:  # a trace, not a shape: shapes on a log axis take log10(x)
            losses = [row["loss"] for row in r["rows"]] + [r["full_loss"]]
            fig.add_trace(go.Scatter(x=[r["trained_window"]] * 2, y=[min(losses), max(losses)], mode="lines",
                                     line=dict(color=colour, dash="dash", width=1), legendgroup=name,
                                     name=f"{name}: trained with {r['trained_window']}", hoverinfo="skip"))
    windows = sorted({row["window"] for r in results.values() for row in r["rows"]})
    fig.update_xaxes(title_text="window at inference (keys per query, itself included)", **LOG_AXIS,
                     tickvals=windows, ticktext=[str(w) for w in windows])
    fig.update_yaxes(title_text="validation loss (nats)")
    fig.update_layout(title="Window at inference, with and without attention sinks", height=460,
                      margin=dict(t=60, l=10, r=10, b=10))
    return fig


def receptive_figure(influence, window: int | None, theory: list[int], title: str,
                     sinks: int = 0) -> go.Figure:
    """influence: (n_layer, P + 1) bool, [l, j] True where input j reaches layer l + 1 at P.
    The theory's first reachable position P - theory[l] is marked on each row; with sinks
    (theory: the whole prefix) the window band's edge P - l·(w−1) is marked too."""
    influence = np.asarray(influence, bool)
    n_layer, length = influence.shape
    position = length - 1
    layers = [f"layer {l + 1}" for l in range(n_layer)]
    fig = go.Figure(go.Heatmap(z=influence.astype(float), x=list(range(length)), y=layers, zmin=0, zmax=1,
                               colorscale=[[0, "#f4f4f4"], [1, "#1f77b4"]], showscale=False,
                               hovertemplate="%{y}, input %{x}: %{z:.0f}<extra>1 = influences</extra>"))
    name = ("theory: every earlier position" if not window else
            f"theory: the first {plural(sinks, 'token')} (sinks) reach every layer" if sinks else "theory: P − l·(w−1)")
    edges = {name: [position - r - 0.5 for r in theory]}
    if window and sinks:
        edges["window band: P − l·(w−1)"] = [position - min(position, (l + 1) * (window - 1)) - 0.5
                                              for l in range(n_layer)]
    for (label, x), dash in zip(edges.items(), ("dot", "dash")):
        fig.add_trace(go.Scatter(x=x, y=layers, mode="markers+lines", name=label,
                                 marker=dict(symbol="line-ns-open", size=18, color="#d62728", line=dict(width=3)),
                                 line=dict(color="#d62728", width=1, dash=dash)))
    fig.update_xaxes(title_text="input position", range=[-0.5, length - 0.5], **integer_ticks(position))
    fig.update_yaxes(automargin=True)  # "layer 4", not "ayer 4"
    fig.update_layout(title=title, height=140 + 50 * n_layer, showlegend=True,
                      legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"),
                      margin=dict(t=60, l=10, r=10, b=10))
    return fig


def frontier_figure(rows: list[dict], base_loss: float, scratch: dict | None = None) -> go.Figure:
    """Validation loss against KV-cache bytes per token: mean-pooled, uptrained, and (where
    cached) trained from scratch with that many kv heads; the trade-off frontier."""
    x = [r["kv_bytes_per_token"] for r in rows]
    labels = [f"n_kv_head {r['n_kv_head']}" for r in rows]
    fig = go.Figure(go.Scatter(x=x, y=[r["pooled_loss"] for r in rows], mode="lines+markers+text",
                               name="mean-pooled (to_gqa), no retraining", text=labels,
                               textposition="top center",
                               hovertemplate="%{text}: %{x} B/token, %{y:.3f} nats<extra>pooled</extra>"))
    up = [(xx, r["uptrained_loss"], lab) for xx, r, lab in zip(x, rows, labels) if r["uptrained_loss"] is not None]
    if up:
        fig.add_trace(go.Scatter(x=[u[0] for u in up], y=[u[1] for u in up], mode="lines+markers",
                                 name="pooled, then uptrained", text=[u[2] for u in up],
                                 hovertemplate="%{text}: %{x} B/token, %{y:.3f} nats<extra>uptrained</extra>"))
    if scratch:
        fig.add_trace(go.Scatter(x=[s["kv_bytes_per_token"] for s in scratch.values()],
                                 y=[s["loss"] for s in scratch.values()], mode="markers",
                                 marker=dict(symbol="star", size=14), name="trained from scratch",
                                 text=list(scratch),
                                 hovertemplate="%{text}: %{x} B/token, %{y:.3f} nats<extra>scratch</extra>"))
    fig.add_hline(y=base_loss, line_dash="dot", line_color="grey", annotation_position="bottom left",
                  annotation_text=f"MHA as trained {base_loss:.3f}")
    fig.update_xaxes(title_text="KV cache bytes per token (fp32, all layers)", **LOG_AXIS,
                     tickvals=x, ticktext=[f"{b:,} B" for b in x])
    fig.update_yaxes(title_text="validation loss (nats)")
    fig.update_layout(title="GQA frontier: quality against KV-cache size", height=440,
                      margin=dict(t=60, l=10, r=10, b=10))
    return fig


def logit_lens_figure(lenses: dict) -> go.Figure:
    """lenses: name -> (probs (n_layer + 1, T), top-1 token labels (n_layer + 1, T), the
    input's token labels (T,): each model's own tokens); one heatmap per variant, positions
    across, layers up, the token on hover."""
    names = list(lenses)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names,
                        horizontal_spacing=0.1)  # room for the next map's "embeddings" label
    for col, name in enumerate(names, start=1):
        probs, tokens, labels = lenses[name]
        probs = np.asarray(probs, float)
        rows = ["embeddings"] + [f"layer {l}" for l in range(1, len(probs))]
        fig.add_trace(go.Heatmap(z=probs, x=list(range(probs.shape[1])), y=rows, zmin=0, zmax=1,
                                 colorscale="Viridis", showscale=col == len(names),
                                 customdata=np.array(tokens, dtype=object),
                                 text=np.array([labels] * len(rows), dtype=object),
                                 hovertemplate="%{y}, after %{text} (position %{x}):<br>top-1 "
                                               "%{customdata} p=%{z:.3f}<extra>" + name + "</extra>"),
                      row=1, col=col)
    fig.update_xaxes(title_text="position")
    fig.update_layout(title="Logit lens: the top-1 next-token probability read after every layer",
                      height=200 + 40 * max(len(lens[0]) for lens in lenses.values()),
                      margin=dict(t=70, l=10, r=10, b=10))
    return fig


def _running_mean(values, span: int) -> np.ndarray:
    """Mean of the last `span` values at every position (fewer at the start)."""
    values = np.asarray(values, float)
    total = np.concatenate([[0.0], np.cumsum(values)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - span, 0)
    return (total[end] - total[start]) / (end - start)


def streaming_figure(result: dict, smooth: int = 64, context: int | None = None,
                     joins: list[int] = ()) -> go.Figure:
    """result: `experiment streaming` JSON, each row also holding "per_token": the loss at
    every position i (nats; predicting token i + 1 from the tokens that setting lets it see).
    Top: one line per setting, the running mean over the last `smooth` positions, and each
    bucket's mean as a flat dotted step over its positions. Bottom (with per-position losses):
    each windowed setting minus full attention on the same tokens, so a sink line lying on the
    full line no longer hides it. Dashed lines where the windows end, (given) the model's own
    context, and dotted lines where the text's unrelated pieces join."""
    rows = result["rows"]
    full = next((r for r in rows if r["window"] is None and r.get("per_token") is not None), None)
    two = full is not None and any(r is not full and r.get("per_token") is not None for r in rows)
    fig = make_subplots(rows=2 if two else 1, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.62, 0.38] if two else None,
                        subplot_titles=[f"loss (running mean of {smooth}; dotted: bucket means)",
                                        "minus full attention, same tokens"] if two else None)
    for n, row in enumerate(rows):
        colour, label = COLOURS[n % len(COLOURS)], streaming_label(row)
        if row.get("per_token") is not None:
            fig.add_trace(go.Scatter(
                x=np.arange(len(row["per_token"])), y=_running_mean(row["per_token"], smooth), mode="lines",
                name=f"{label} ({row['loss']:.3f})", legendgroup=label, line=dict(color=colour, width=1.5),
                hovertemplate=f"{label}<br>position %{{x}}: %{{y:.3f}} nats (mean of the last "
                              f"{smooth})<extra></extra>"), row=1, col=1)
        for span, value in (row.get("buckets") or {}).items():
            if value is None:
                continue
            lo, hi = (int(p) for p in span.split("-"))
            hi = min(hi, result["tokens"] - 1)  # a bucket the text ends in stops where it ends
            fig.add_trace(go.Scatter(x=[lo, hi], y=[value, value], mode="lines+markers", legendgroup=label,
                                     name=label, showlegend=row.get("per_token") is None and span.startswith("0-"),
                                     line=dict(color=colour, dash="dot", width=2.5), marker=dict(size=5),
                                     hovertemplate=f"{label}<br>positions {lo}–{hi}: mean {value:.3f} nats"
                                                   "<extra>bucket</extra>"), row=1, col=1)
        if two and row is not full and row.get("per_token") is not None:
            gap = np.asarray(row["per_token"]) - np.asarray(full["per_token"])
            cost = row.get("cost_past_window")
            fig.add_trace(go.Scatter(
                x=np.arange(len(gap)), y=_running_mean(gap, smooth), mode="lines", legendgroup=label,
                showlegend=False, line=dict(color=colour, width=1.5),
                hovertemplate=f"{label} − full<br>position %{{x}}: %{{y:+.3f}} nats (mean of the last "
                              f"{smooth})" + (f"<br>positions ≥ {row['window']}: {signed(cost)}" if cost is not None else "")
                              + "<extra></extra>"), row=2, col=1)
    lines = [(w, dict(line_dash="dash", line_color="grey", line_width=1), f"window {w}", "top left")
             for w in sorted({row["window"] for row in rows if row["window"] is not None})]
    if context is not None:
        lines.append((context, dict(line_color="black", line_width=1), f"model context {context}", "top right"))
    lines += [(j, dict(line_dash="dot", line_color="#b0b0b0", line_width=1), "pieces join" if k == 0 else None,
               "bottom right") for k, j in enumerate(joins) if j < result["tokens"]]
    for x, style, text, where in lines:
        label = dict(annotation_text=text, annotation_position=where) if text else {}  # else plotly writes "new text"
        fig.add_vline(x=x, row=1, col=1, **label, **style)
        if two:
            fig.add_vline(x=x, row=2, col=1, **style)
    if two:
        fig.add_hline(y=0, line_color="grey", line_width=1, row=2, col=1)
        fig.update_yaxes(title_text="Δ nats", row=2, col=1)
    fig.update_xaxes(title_text="position in the text", row=2 if two else 1, col=1)
    fig.update_yaxes(title_text="loss (nats)" if two else f"loss (nats; running mean of {smooth})", row=1, col=1)
    fig.update_layout(title=f"Loss along {result['tokens']:,} tokens: full attention, windows, windows + "
                            f"sinks ({result['variant']}" + ("" if two else "; dotted: bucket means") + ")",
                      height=620 if two else 440, margin=dict(t=60, l=10, r=10, b=10))
    return fig


def extension_figure(result: dict, trained: int, smooth: int = 32) -> go.Figure:
    """Context extension (analysis.extension.extension_losses): top, each method's loss along
    the block (running mean over `smooth` positions); bottom, each method minus plain RoPE on
    the same tokens, so what a method buys past the trained length (and costs inside it) is
    read off one line. The trained length is marked."""
    rows = result["rows"]
    plain = next((r for r in rows if r["method"] == "none"), None)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.08,
                        subplot_titles=[f"loss by position (running mean of {smooth})",
                                        "minus plain RoPE on the same tokens" if plain else
                                        "add 'none' to compare with plain RoPE"])
    for i, row in enumerate(rows):
        colour = COLOURS[i % len(COLOURS)]
        per_position = np.asarray(row["per_position"])
        x = np.arange(len(per_position))
        fig.add_trace(go.Scatter(x=x, y=_running_mean(per_position, smooth), mode="lines",
                                 name=row["method"], legendgroup=row["method"], line=dict(color=colour),
                                 hovertemplate=f"{row['method']}<br>position %{{x}}: %{{y:.3f}} nats"
                                               "<extra></extra>"), row=1, col=1)
        if plain is not None and row is not plain:
            gap = _running_mean(per_position - np.asarray(plain["per_position"]), smooth)
            fig.add_trace(go.Scatter(x=x, y=gap, mode="lines", legendgroup=row["method"],
                                     showlegend=False, line=dict(color=colour),
                                     hovertemplate=f"{row['method']} − plain<br>position %{{x}}: "
                                                   "%{y:+.3f} nats<extra></extra>"), row=2, col=1)
    _both_rows_vline(fig, trained, f"trained length {trained}", "top right", line_dash="dash", line_color="grey")
    fig.update_xaxes(title_text="position in the block", row=2, col=1)
    fig.update_yaxes(title_text="nats", row=1, col=1)
    fig.update_yaxes(title_text="Δ nats", zeroline=True, row=2, col=1)
    fig.update_layout(title=f"RoPE past its context: {result['tokens']:,} tokens, "
                            f"{plural(result['blocks'], 'block')}", height=560,
                      margin=dict(t=70, l=10, r=10, b=10), legend=dict(orientation="h", y=-0.12))
    return fig
