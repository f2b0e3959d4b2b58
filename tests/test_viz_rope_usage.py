"""RoPE figures on real vectors (viz.rope.pair_usage_figure, measured_decay_figure): what they
draw recomputed from their input and from the definition of the rotation."""
import math

import numpy as np

from gpt2viz.viz.rope import measured_decay_figure, pair_usage_figure


def test_pair_usage_draws_the_norms_with_wavelengths_and_marks_the_context():
    rng = np.random.default_rng(0)
    q, k = rng.uniform(0, 2, (30, 32)), rng.uniform(0, 2, (30, 32))  # head_dim 64
    base, context = 100000.0, 8192
    fig = pair_usage_figure(q, k, base, context)
    heat_q, heat_k = fig.data
    wavelength = [2 * math.pi * base ** (2 * p / 64) for p in range(32)]
    for heat, norms in ((heat_q, q), (heat_k, k)):
        for layer in range(30):  # colour: length over the layer's mean pair length
            assert np.allclose(heat.z[layer], [x / (sum(norms[layer]) / 32) for x in norms[layer]])
        custom = np.array(heat.customdata)
        assert np.array_equal(custom[:, :, 0], norms)  # the length itself on hover
        assert np.allclose(custom[:, :, 1], wavelength) and (custom[:, :, 2] == np.arange(32) + 32).all()
    assert heat_q.zmax == heat_k.zmax == max(np.max(heat_q.z), np.max(heat_k.z))
    assert "wavelength" in heat_q.hovertemplate and "|q|" in heat_q.hovertemplate
    assert "|k|" in heat_k.hovertemplate
    first_beyond = next(p for p in range(32) if wavelength[p] > context - 1)
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 2 and all(s.x0 == first_beyond - 0.5 for s in lines)
    assert [a.text for a in fig.layout.annotations if "wavelength" in a.text] == ["wavelength > 8191"]
    assert not [a for a in fig.layout.annotations if a.text == "new text"]
    assert fig.layout.yaxis.autorange == "reversed"


def test_pair_usage_without_slow_pairs_draws_no_mark():
    fig = pair_usage_figure(np.ones((2, 4)), np.ones((2, 4)), 10.0, 10000)  # wavelengths ≤ 2π·10^1.5
    assert not [s for s in fig.layout.shapes if s.type == "line"]


def test_measured_decay_beside_the_analytic_curve():
    distance = np.arange(50)
    measured = {"distance": distance, "rotated": np.cos(distance / 7.0), "unrotated": np.full(50, 0.3),
                "queries": 2 * (50 - distance)}
    fig = measured_decay_figure(measured, 64, 100000.0, "L3 H2")
    rotated, unrotated, analytic = fig.data
    assert np.allclose(rotated.y, measured["rotated"]) and np.allclose(unrotated.y, 0.3)
    theta = [100000.0 ** (-2 * p / 64) for p in range(32)]
    expected = [2 * sum(math.cos(d * t) for t in theta) / 64 for d in distance]  # q = k = ones
    assert np.allclose(analytic.y, expected) and analytic.yaxis == "y2"
    assert list(rotated.customdata) == list(2 * (50 - distance))
    without = measured_decay_figure({**measured, "unrotated": None}, 64, 100000.0, "t")
    assert len(without.data) == 2
