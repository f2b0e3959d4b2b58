"""RoPE pictures: rotating q/k pairs, wavelengths against the context, and how q.k decays
with relative distance (RoFormer, section 3.4.3), beside ALiBi's linear bias."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..positions import alibi_slopes, rope_frequencies
from . import LOG_AXIS, integer_ticks


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
    fig.update_layout(title=f"How the score depends on distance (head_dim {head_dim}, base {base:g})",
                      height=380, margin=dict(t=60, l=10, r=10, b=10))
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
