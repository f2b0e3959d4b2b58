"""gpt2viz.viz.rope: rotation panels against complex rotations, wavelengths against the
context, RoFormer's decay and bound, absolute-position similarity, ALiBi's weights."""
import cmath
import math

import numpy as np
import pytest
import torch

from gpt2viz.core.positions import apply_rope, rope_cos_sin
from gpt2viz.viz.rope import (
    absolute_position_similarity,
    alibi_weight_by_distance,
    rope_score_by_distance,
    rotation_panels,
    score_decay,
    wavelength_bars,
)


def test_rotation_panels_put_points_on_circles_slowest_first():
    d, base = 16, 10000.0
    positions = torch.arange(20)[None]
    vec = torch.ones(1, 1, 20, d, dtype=torch.float64)
    rotated = apply_rope(vec, *rope_cos_sin(positions, d, base, torch.float64))[0, 0].numpy()
    fig = rotation_panels(rotated, positions[0].numpy(), base)
    points = [t for t in fig.data if t.name == "q rotated to each position"]
    assert len(points) == 8 and "pair 7" in fig.layout.annotations[0].text  # slowest first
    for trace in points:
        assert np.allclose(np.hypot(trace.x, trace.y), math.sqrt(2))  # rotation keeps the norm


def test_rotation_panels_are_the_complex_rotation_of_each_pair():
    d, base, t = 8, 100.0, 12
    rng = np.random.default_rng(0)
    query = rng.normal(size=d)
    # the model's rotation, done here by complex numbers: pair i = x_i + i x_{i+d/2}
    trajectory = np.zeros((t, d))
    for m in range(t):
        for i in range(d // 2):
            z = complex(query[i], query[i + d // 2]) * cmath.exp(1j * m * base ** (-2 * i / d))
            trajectory[m, i], trajectory[m, i + d // 2] = z.real, z.imag
    fig = rotation_panels(trajectory, np.arange(t), base)
    panels = [tr for tr in fig.data if tr.name == "q rotated to each position"]
    titles = [a.text for a in fig.layout.annotations]
    for panel, title in zip(panels, titles):
        i = int(title.split(":")[0].split()[1])
        assert np.allclose(panel.x, trajectory[:, i]) and np.allclose(panel.y, trajectory[:, i + d // 2])
        assert f"{2 * math.pi * base ** (2 * i / d):,.0f} tokens/turn" in title


def test_a_pair_completes_a_turn_only_within_context_minus_one():
    head_dim, base, context = 128, 500.0, 128
    never = sum(1 for i in range(head_dim // 2)
                if (context - 1) * base ** (-2 * i / head_dim) < 2 * math.pi)  # farthest distance: T-1
    assert never == 33
    fig = wavelength_bars(head_dim, base, context)
    assert f"{never} of {head_dim // 2} pairs never complete a turn" in fig.layout.title.text


def test_wavelengths_and_decay():
    fig = wavelength_bars(16, 10000.0, 256)
    wavelengths = np.array(fig.data[0].y)
    assert np.allclose(wavelengths, 2 * math.pi * 10000.0 ** (np.arange(0, 16, 2) / 16))
    assert "4 of 8 pairs never complete a turn" in fig.layout.title.text
    curves = rope_score_by_distance(16, 10000.0, 512)
    assert curves["ones"][0] == pytest.approx(1.0) and curves["ones"][200:].mean() < 0.5


def test_rope_decay_is_roformers_sum_and_bound():
    d, base, context = 16, 10000.0, 64
    curves = rope_score_by_distance(d, base, context)
    thetas = [base ** (-2 * i / d) for i in range(d // 2)]
    for delta in (0, 1, 7, 63):
        ones = sum(2 * math.cos(delta * th) for th in thetas) / d  # q = k = ones, rotated
        assert curves["ones"][delta] == pytest.approx(ones)
        partial = [abs(sum(cmath.exp(1j * delta * th) for th in thetas[:j + 1])) for j in range(d // 2)]
        bound0 = sum(range(1, d // 2 + 1)) / (d // 2)
        assert curves["bound"][delta] == pytest.approx(np.mean(partial) / bound0)


def test_absolute_position_similarity_is_the_mean_dot_product_at_each_distance():
    table = np.random.default_rng(1).normal(size=(6, 4))
    x, y = absolute_position_similarity(table)
    mean_norm = np.mean([table[m] @ table[m] for m in range(6)])
    assert list(x) == list(range(6)) and y[0] == pytest.approx(1.0)
    for delta in range(1, 6):
        expected = np.mean([table[m] @ table[m + delta] for m in range(6 - delta)]) / mean_norm
        assert y[delta] == pytest.approx(expected)
    fig = score_decay({"s": (x, y)}, 4, 100.0)
    assert np.allclose(fig.data[0].y, y) and "head_dim 4, base 100" in fig.layout.title.text


def test_alibi_weight_is_exp_of_minus_slope_times_distance():
    curves = alibi_weight_by_distance(8, 100)
    assert curves["factor"].shape == (8, 100)
    for h in range(8):  # slopes 1/2, 1/4, ..., 1/256 (Press et al., 8 heads)
        assert np.allclose(curves["factor"][h], np.exp(-np.arange(100) / 2 ** (h + 1)))
