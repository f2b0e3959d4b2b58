"""RoPE pictures: rotating q/k pairs, wavelengths against the context, and how q.k decays
with relative distance (RoFormer, section 3.4.3), beside ALiBi's linear bias."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gpt2viz.core.positions import alibi_slopes, rope_frequencies, rope_parameters
from gpt2viz.core.resources import format_number

from . import LOG_AXIS, integer_ticks, title_margin, wrap


def rotation_panels(trajectory, positions, base, keys=None, max_panels=8) -> go.Figure:
    """trajectory (T, head_dim): one vector rotated to each position (a circle per pair, the
    arc it covers showing how fast that pair turns); keys (T, head_dim) optional: the real
    rotated keys of the prompt, as grey dots. One panel per pair (x_i, x_{i+d/2}), slowest first."""
    trajectory = np.asarray(trajectory, float)
    positions = np.asarray(positions)
    half = trajectory.shape[-1] // 2
    theta = rope_frequencies(2 * half, base).numpy()
    pairs = np.unique(np.linspace(half - 1, 0, min(max_panels, half)).round().astype(int))[::-1]
    cols = min(4, len(pairs))
    n_rows = -(-len(pairs) // cols)
    fig = make_subplots(rows=n_rows, cols=cols, horizontal_spacing=0.04, vertical_spacing=0.12,
                        subplot_titles=[f"pair {i}: {2 * math.pi / theta[i]:,.0f} tokens/turn" for i in pairs])
    for n, i in enumerate(pairs):
        row, col = n // cols + 1, n % cols + 1
        if keys is not None:
            keys = np.asarray(keys, float)
            fig.add_trace(go.Scatter(x=keys[:, i], y=keys[:, i + half], mode="markers", name="real k",
                                     legendgroup="k", showlegend=n == 0, customdata=positions,
                                     marker=dict(size=5, color="lightgrey"),
                                     hovertemplate="k at position %{customdata}<extra></extra>"),
                          row=row, col=col)
        x, y = trajectory[:, i], trajectory[:, i + half]
        fig.add_trace(go.Scatter(x=[0, x[-1]], y=[0, y[-1]], mode="lines", showlegend=False,
                                 line=dict(color="black", width=2), hoverinfo="skip"), row=row, col=col)
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="markers+lines", name="q rotated to each position", legendgroup="q",
            showlegend=n == 0, line=dict(width=0.5, color="grey"), customdata=positions,
            marker=dict(size=7, color=positions, colorscale="Turbo", showscale=n == 0,
                        colorbar=dict(title="position", len=0.8)),
            hovertemplate="position %{customdata}: (%{x:.3f}, %{y:.3f})<extra>pair " + str(i) + "</extra>"),
            row=row, col=col)
        axis = f"x{n + 1 if n else ''}"
        fig.update_yaxes(scaleanchor=axis, scaleratio=1, row=row, col=col)
    fig.update_layout(title="One query vector placed at every position: each pair turns at its own speed",
                      height=300 * n_rows + 80, margin=dict(t=80, l=10, r=10, b=10),
                      legend=dict(orientation="h", y=-0.08))
    return fig


def wavelength_bars(head_dim: int, base: float, context: int) -> go.Figure:
    """2*pi/theta_i per pair, against the largest distance inside the context (context - 1
    tokens apart): pairs above it never turn once between two tokens of the context, so they
    carry (almost) absolute position."""
    theta = rope_frequencies(head_dim, base).numpy()
    wavelength = 2 * math.pi / theta
    farthest = context - 1
    inside = wavelength <= farthest
    fig = go.Figure(go.Bar(x=np.arange(len(theta)), y=wavelength,
                           marker_color=np.where(inside, "#1f77b4", "#d62728"),
                           hovertemplate="pair %{x}: %{y:.1f} tokens per turn<extra></extra>"))
    fig.add_trace(go.Scatter(x=[-0.5, len(theta) - 0.5], y=[farthest, farthest], mode="lines",
                             line=dict(dash="dash", color="black"), name=f"distance {farthest}",
                             hovertemplate=f"farthest distance in {context} tokens: "
                                           f"{farthest}<extra></extra>"))
    fig.update_yaxes(**LOG_AXIS, title_text="tokens per full turn")
    fig.update_layout(showlegend=False)
    fig.update_xaxes(title_text="pair i (theta_i = base^(-2i/d), fastest first)",
                     **integer_ticks(len(theta) - 1))
    fig.update_layout(title=f"Wavelengths: {int((~inside).sum())} of {len(theta)} pairs never "
                            f"complete a turn in {context} tokens (red; dashed: the farthest distance, "
                            f"{farthest})", height=360,
                      margin=dict(t=60, l=10, r=10, b=10))
    return fig


def rope_score_by_distance(head_dim: int, base: float, context: int) -> dict:
    """RoFormer's long-term decay: for q = k = ones, q_m . k_n = sum_i 2 cos((m-n) theta_i);
    and the paper's bound (1/(d/2)) sum_j |S_j|, S_j = sum_{i<j} e^{i (m-n) theta_i}."""
    theta = rope_frequencies(head_dim, base).numpy()
    distance = np.arange(context)
    phases = np.exp(1j * distance[:, None] * theta[None, :])  # (context, d/2)
    ones_score = 2 * phases.real.sum(1) / head_dim
    partial = np.cumsum(phases, axis=1)
    bound = np.abs(partial).mean(1)
    return {"distance": distance, "ones": ones_score, "bound": bound / bound[0]}


def alibi_weight_by_distance(n_head: int, context: int) -> dict:
    """ALiBi adds -m_h * distance to head h's scores, so a key's softmax weight is multiplied
    by exp(-m_h * distance) against a key at distance 0: (H, context) factors, head 0 first
    (steepest slope)."""
    distance = np.arange(context)
    slopes = alibi_slopes(n_head).numpy()
    return {"distance": distance, "slopes": slopes,
            "factor": np.exp(-slopes[:, None] * distance[None, :])}


def score_decay(curves: dict, head_dim: int, base: float) -> go.Figure:
    """curves: label -> (distance, value); the RoPE curves plus contrasting ones."""
    fig = go.Figure()
    for label, (x, y) in curves.items():
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=label))
    fig.update_xaxes(**LOG_AXIS, title_text="relative distance m - n (tokens)")
    fig.update_yaxes(title_text="normalised score")
    fig.update_layout(title=f"How the score depends on distance (head_dim {head_dim}, base {format_number(base)})",
                      height=440, margin=dict(t=60, l=10, r=10, b=10),
                      legend=dict(orientation="h", y=-0.25))  # long labels: below, not beside the chart
    return fig


def absolute_position_similarity(table) -> tuple[np.ndarray, np.ndarray]:
    """Mean over m of p_m . p_{m+Δ} / |p|^2 for an absolute position table (T, d): the
    learned or sinusoidal counterpart of the RoPE curve. Every Δ at once through the FFT
    (autocorrelation = inverse transform of the power spectrum): O(T log T), not O(T^2)."""
    table = np.asarray(table, float)  # (T, d)
    n_pos = len(table)
    norms = (table * table).sum(1).mean()
    spectrum = np.fft.rfft(table, n=2 * n_pos, axis=0)  # zero-padded: no wrap-around
    power = (spectrum.real ** 2 + spectrum.imag ** 2).sum(1)  # summed over the d columns
    lagged = np.fft.irfft(power, n=2 * n_pos)[:n_pos]  # sum over m of p_m . p_{m+Δ}, Δ = 0..T-1
    return np.arange(n_pos), lagged / (n_pos - np.arange(n_pos)) / norms


def pair_usage_figure(q_norms, k_norms, base: float, context: int, title: str | None = None) -> go.Figure:
    """q_norms, k_norms (n_layer, head_dim/2) from rope_usage.pair_norms -> two layer x pair
    heatmaps of which rotation pairs the real queries and keys use. Layers differ in scale, so
    the colour is each pair's length over its layer's mean pair length (1 = an average pair);
    the hover gives the length itself and the pair's wavelength. Pairs right of the dotted line
    turn less than once over the farthest distance in `context` tokens (context - 1): they carry
    (almost) no relative position, only content."""
    n_layer, half = np.shape(q_norms)
    wavelength = 2 * math.pi / rope_frequencies(2 * half, base).numpy()  # (head_dim/2,)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=["queries: |(q_k, q_k+d/2)|", "keys: |(k_k, k_k+d/2)|"])
    panels = []
    for name, norms in (("q", q_norms), ("k", k_norms)):
        norms = np.asarray(norms, float)
        panels.append((name, norms, norms / norms.mean(1, keepdims=True)))
    zmax = max(float(relative.max()) for _, _, relative in panels)
    for col, (name, norms, relative) in enumerate(panels, start=1):
        hover = np.stack([norms, np.broadcast_to(wavelength, norms.shape),  # (n_layer, half, 3)
                          np.broadcast_to(np.arange(half) + half, norms.shape)], -1)
        fig.add_trace(go.Heatmap(
            z=relative, x=list(range(half)), y=list(range(n_layer)), colorscale="Viridis", customdata=hover,
            zmin=0.0, zmax=zmax, showscale=col == 2,
            colorbar=dict(title=dict(text="length / layer's mean pair", side="right")),
            hovertemplate=f"layer %{{y}}, pair %{{x}} (dims %{{x}} and %{{customdata[2]}})<br>"
                          f"mean |{name}| = %{{customdata[0]:.3f}} (%{{z:.2f}} × the layer's mean pair)"
                          f"<br>wavelength %{{customdata[1]:,.1f}} tokens<extra></extra>"),
            row=1, col=col)
    farthest = context - 1
    beyond = np.nonzero(wavelength > farthest)[0]
    if len(beyond):
        line = dict(x=beyond[0] - 0.5, line_dash="dot", line_color="white", line_width=2, row=1)
        fig.add_vline(col=1, annotation_text=f"wavelength > {farthest}", annotation_position="top right",
                      annotation_font_color="white", **line)
        fig.add_vline(col=2, **line)
    fig.update_xaxes(title_text="pair k (fastest first)")
    fig.update_yaxes(title_text="layer", autorange="reversed", row=1, col=1)
    fig.update_layout(title=title or f"Which rotation pairs the model uses (base {format_number(base)}; right of the "
                                     f"dotted line: slower than one turn in {context} tokens)",
                      height=160 + max(18 * n_layer, 200), margin=dict(t=80, l=10, r=10, b=10))
    return fig


def measured_decay_figure(measured: dict, head_dim: int, base: float, title: str) -> go.Figure:
    """measured: rope_usage.qk_by_distance -> mean q.k / sqrt(d) against distance on the real
    vectors (as the model scores them, and rotated back to position 0 when given), beside
    RoFormer's analytic curve for q = k = ones at this base and head_dim (right axis)."""
    distance = np.asarray(measured["distance"])
    analytic = rope_score_by_distance(head_dim, base, len(distance))["ones"]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=distance, y=measured["rotated"], mode="lines", name="real q·k (rotated)",
                             customdata=measured["queries"],
                             hovertemplate="Δ = %{x}: %{y:.3f} (mean of %{customdata} pairs)<extra>rotated</extra>"))
    if measured.get("unrotated") is not None:
        fig.add_trace(go.Scatter(x=distance, y=measured["unrotated"], mode="lines",
                                 name="the same q, k without rotation", line=dict(dash="dash"),
                                 hovertemplate="Δ = %{x}: %{y:.3f}<extra>unrotated</extra>"))
    fig.add_trace(go.Scatter(x=distance, y=analytic, mode="lines", name="analytic, q = k = ones (right axis)",
                             line=dict(color="grey", dash="dot"),
                             hovertemplate="Δ = %{x}: %{y:.3f}<extra>analytic</extra>"), secondary_y=True)
    fig.update_xaxes(title_text="distance Δ = i − j (tokens)")
    fig.update_yaxes(title_text="mean q_i · k_(i−Δ) / √d", secondary_y=False)
    fig.update_yaxes(title_text="analytic score (1 at Δ = 0)", secondary_y=True, showgrid=False)
    fig.update_layout(title=title, height=400, margin=dict(t=60, l=10, r=10, b=10),
                      legend=dict(orientation="h", y=-0.2))
    return fig


# ------------------------------------------------------------------ RoPE scaling
SCALING_KINDS = ("kept", "in between", "interpolated")  # theta' = theta, between, theta / s
SCALING_COLORS = {"kept": "#1f77b4", "in between": "#ff7f0e", "interpolated": "#2ca02c"}


def scaling_pairs(config, seq_len: int | None = None) -> dict:
    """Per rotation pair k of a RoPE config under its rope_scaling (at seq_len tokens, which
    only dynamic reads; None = s x the trained length): "theta" (plain, rad/token) and "scaled"
    theta', "ratio" theta'/theta (1 = kept, i.e. extrapolated past the trained length; 1/s =
    interpolated), "kind" of each pair by that ratio (SCALING_KINDS, within 1e-9), "wavelength"
    2 pi / theta and "scaled_wavelength" (tokens per turn), "turns" over the trained context
    (theta L / 2 pi, YaRN's measure), plus "trained" L, "context" (s L), "factor",
    "attention_factor". numpy float64 arrays; kind a list of str."""
    s, trained = float(config.rope_factor), config.rope_trained_length
    context = int(round(s * trained))
    theta = rope_frequencies(config.head_dim, config.rope_base).numpy()
    scaled, attention = rope_parameters(config, context if seq_len is None else seq_len)
    scaled = scaled.numpy()
    ratio = scaled / theta
    kind = ["kept" if abs(r - 1) <= 1e-9 else "interpolated" if s > 1 and abs(r * s - 1) <= 1e-9
            else "in between" for r in ratio]
    return {"pair": np.arange(len(theta)), "theta": theta, "scaled": scaled, "ratio": ratio,
            "kind": kind, "wavelength": 2 * math.pi / theta, "scaled_wavelength": 2 * math.pi / scaled,
            "turns": theta * trained / (2 * math.pi), "trained": trained, "context": context,
            "factor": s, "attention_factor": attention}


def scaling_figure(config, seq_len: int | None = None) -> go.Figure:
    """Top: each pair's rotation per token, plain (line) and under the method (dots coloured by
    kept / in between / interpolated). Bottom: wavelengths against the trained context L and
    the new one s L: a pair whose plain wavelength exceeds L never turned fully in training;
    interpolation brings its angles back into the range it saw."""
    data = scaling_pairs(config, seq_len)
    method = config.rope_scaling
    pairs = data["pair"]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=["rotation per token (radians)", "tokens per full turn"])
    for row, plain, scaled, unit in ((1, data["theta"], data["scaled"], "rad/token"),
                                     (2, data["wavelength"], data["scaled_wavelength"], "tokens/turn")):
        fig.add_trace(go.Scatter(x=pairs, y=plain, mode="lines", name="plain RoPE",
                                 legendgroup="plain", showlegend=row == 1,
                                 line=dict(color="black", width=1.5),
                                 hovertemplate="pair %{x}: %{y:.4g} " + unit + " (plain)<extra></extra>"),
                      row=row, col=1)
        for kind in SCALING_KINDS:
            pick = np.array([k == kind for k in data["kind"]])
            if not pick.any():
                continue
            fig.add_trace(go.Scatter(
                x=pairs[pick], y=scaled[pick], mode="markers", name=f"{method}: {kind}",
                legendgroup=kind, showlegend=row == 1,
                marker=dict(size=8, color=SCALING_COLORS[kind]), customdata=data["ratio"][pick],
                hovertemplate="pair %{x}: %{y:.4g} " + unit + ", x%{customdata:.3f} of plain<extra>"
                              + kind + "</extra>"), row=row, col=1)
    for length, name, dash in ((data["trained"], "trained context L", "dash"),
                               (data["context"], "new context s·L", "dot")):
        fig.add_trace(go.Scatter(x=[pairs[0] - 0.5, pairs[-1] + 0.5], y=[length, length], mode="lines",
                                 name=f"{name} = {length:,}", line=dict(color="grey", dash=dash),
                                 hovertemplate=f"{name}: {length:,} tokens<extra></extra>"), row=2, col=1)
    fig.update_yaxes(**LOG_AXIS, row=1, col=1)
    fig.update_yaxes(**LOG_AXIS, row=2, col=1)
    fig.update_xaxes(title_text="pair k (fastest first)", **integer_ticks(len(pairs) - 1), row=2, col=1)
    counts = {k: data["kind"].count(k) for k in SCALING_KINDS}
    title = wrap(f"{method} × {data['factor']:g} over {data['trained']:,} tokens: "
                 f"{counts['kept']} pairs kept, {counts['in between']} in between, "
                 f"{counts['interpolated']} interpolated"
                 + (f"; cos and sin × {data['attention_factor']:.4f}" if data["attention_factor"] != 1 else ""),
                 80)
    fig.update_layout(title=title, height=620, margin=dict(t=title_margin(title) + 20, l=10, r=10, b=10),
                      legend=dict(orientation="h", y=-0.12))
    return fig


def scaled_score_by_distance(configs: dict, length: int) -> dict:
    """For q = k = ones under each config's rope_scaling (name -> config): the score
    q_m·k_n / d = attention_factor² · (2/d) Σ_k cos((m − n) θ'_k) at every distance up to
    `length` (dynamic read at that length), on 1,500 log-spaced distances (the axis is log):
    name -> (distance, score)."""
    distance = np.unique(np.geomspace(1, max(length - 1, 1), 1500).astype(np.int64))
    curves = {}
    for name, config in configs.items():
        theta, factor = rope_parameters(config, length)
        angles = distance[:, None] * theta.numpy()[None, :]  # (length, d/2)
        curves[name] = (distance, factor ** 2 * 2 * np.cos(angles).sum(1) / config.head_dim)
    return curves


def scaled_decay_figure(curves: dict, trained: int, factor: float) -> go.Figure:
    """q·k against distance for each method (scaled_score_by_distance), the trained context and
    the stretched one marked."""
    fig = go.Figure()
    for name, (x, y) in curves.items():
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name,
                                 hovertemplate="distance %{x}: %{y:.4f}<extra>" + name + "</extra>"))
    low = min(float(np.min(y)) for _, y in curves.values())
    high = max(float(np.max(y)) for _, y in curves.values())
    # vertical lines as traces: a shape on a log axis would take log10 coordinates
    for at, label, dash in ((trained, f"trained context L = {trained:,}", "dash"),
                            (int(round(factor * trained)), f"s·L = {factor * trained:,.0f}", "dot")):
        fig.add_trace(go.Scatter(x=[at, at], y=[low, high], mode="lines", name=label,
                                 line=dict(color="grey", dash=dash),
                                 hovertemplate=label + "<extra></extra>"))
    fig.update_xaxes(**LOG_AXIS, title_text="relative distance m − n (tokens)")
    fig.update_yaxes(title_text="q·k / d for q = k = ones")
    title = "q·k against distance under each method (plain RoPE past its context: angles it never saw)"
    fig.update_layout(title=wrap(title, 80), height=400, legend=dict(orientation="h", y=-0.25),
                      margin=dict(t=title_margin(wrap(title, 80)) + 10, l=10, r=10, b=10))
    return fig
