"""viz.rope.scaling_pairs / scaling_figure: every number recomputed from the definitions."""
import math

import numpy as np
import pytest

from gpt2viz import ModelConfig
from gpt2viz.viz.rope import scaling_figure, scaling_pairs


def cfg(method, factor=4.0, head_dim=64, base=10000.0, trained=128, **extra):
    return ModelConfig(n_head=2, d_model=2 * head_dim, max_seq_len=trained, position="rope",
                       rope_base=base, rope_scaling=method, rope_factor=factor, **extra)


def plain_theta(head_dim, base):
    return base ** (-2 * np.arange(head_dim // 2) / head_dim)


def test_linear_interpolates_every_pair():
    data = scaling_pairs(cfg("linear"))
    assert np.allclose(data["theta"], plain_theta(64, 10000.0), rtol=1e-14)
    assert np.allclose(data["scaled"], data["theta"] / 4, rtol=1e-14)
    assert data["kind"] == ["interpolated"] * 32
    assert np.allclose(data["scaled_wavelength"], 4 * 2 * math.pi / data["theta"])
    assert data["trained"] == 128 and data["context"] == 512 and data["attention_factor"] == 1.0


def test_yarn_kinds_follow_turns_over_the_trained_context():
    data = scaling_pairs(cfg("yarn", factor=8.0, trained=256))
    turns = plain_theta(64, 10000.0) * 256 / (2 * math.pi)
    assert np.allclose(data["turns"], turns)
    kinds = np.array(data["kind"])
    assert (kinds[turns > 32] == "kept").all() and (kinds[turns < 1] == "interpolated").all()
    assert set(kinds) == {"kept", "in between", "interpolated"}
    between = kinds == "in between"
    assert ((data["ratio"][between] > 1 / 8) & (data["ratio"][between] < 1)).all()
    assert data["attention_factor"] == pytest.approx(0.1 * math.log(8) + 1)


def test_ntk_keeps_the_fastest_pair_and_interpolates_the_slowest_by_s():
    data = scaling_pairs(cfg("ntk", factor=4.0, head_dim=16))
    base = 10000.0 * 4 ** (16 / 14)
    assert np.allclose(data["scaled"], plain_theta(16, base), rtol=1e-14)
    assert data["kind"][0] == "kept" and data["kind"][-1] == "interpolated"
    assert set(data["kind"][1:-1]) == {"in between"}


def test_dynamic_reads_the_length():
    at_trained = scaling_pairs(cfg("dynamic"), seq_len=128)
    assert at_trained["kind"] == ["kept"] * 32
    s, length, d = 4.0, 512, 64
    base = 10000.0 * (s * length / 128 - (s - 1)) ** (d / (d - 2))
    assert np.allclose(scaling_pairs(cfg("dynamic"))["scaled"], plain_theta(d, base), rtol=1e-14)


def test_figure_draws_the_numbers_and_the_two_contexts():
    config = cfg("yarn", factor=8.0, trained=256)
    data, fig = scaling_pairs(config), scaling_figure(config)
    plain = [t for t in fig.data if t.name == "plain RoPE"]
    assert np.allclose(plain[0].y, data["theta"]) and np.allclose(plain[1].y, data["wavelength"])
    for kind in ("kept", "in between", "interpolated"):
        dots = [t for t in fig.data if t.name == f"yarn: {kind}"]
        pick = np.array(data["kind"]) == kind
        assert np.allclose(dots[0].y, data["scaled"][pick])
        assert np.allclose(dots[1].y, data["scaled_wavelength"][pick])
        assert list(dots[0].x) == list(np.flatnonzero(pick))
    lines = {t.name: t.y[0] for t in fig.data if "context" in (t.name or "")}
    assert lines == {"trained context L = 256": 256, "new context s·L = 2,048": 2048}
    counts = [data["kind"].count(k) for k in ("kept", "in between", "interpolated")]
    assert f"{counts[0]} pairs kept" in fig.layout.title.text.replace("<br>", " ")
    assert "× 1.2079" in fig.layout.title.text.replace("<br>", " ")


def test_scaled_score_is_the_cosine_sum_of_each_methods_angles():
    """q = k = ones: q·k / d = a² (2/d) Σ_k cos(Δ θ'_k), θ' and a from the definitions: linear
    θ/s; yarn's attention factor 0.1 ln s + 1; plain RoPE's own θ."""
    import math

    import numpy as np

    from gpt2viz import ModelConfig
    from gpt2viz.viz.rope import scaled_score_by_distance

    def config(scaling, factor=4.0):
        return ModelConfig(vocab_size=2, n_layer=1, n_head=1, d_model=16, max_seq_len=64,
                           position="rope", rope_base=100.0, rope_scaling=scaling,
                           rope_factor=1.0 if scaling == "none" else factor)

    curves = scaled_score_by_distance({m: config(m) for m in ("none", "linear", "yarn")}, 256)
    theta = 100.0 ** (-np.arange(0, 16, 2) / 16)
    distance, plain = curves["none"]
    assert distance[0] == 1 and distance[-1] == 255 and np.all(np.diff(distance) > 0)
    assert np.allclose(plain, 2 * np.cos(distance[:, None] * theta).sum(1) / 16)
    assert np.allclose(curves["linear"][1], 2 * np.cos(distance[:, None] * theta / 4).sum(1) / 16)
    # yarn: θ' as the model rotates (rope_parameters, equal to transformers' in
    # test_rope_scaling.py), and cos, sin each times 0.1 ln 4 + 1, so q·k by its square
    from gpt2viz.core.positions import rope_parameters

    yarn_theta, factor = rope_parameters(config("yarn"), 256)
    assert factor == pytest.approx(0.1 * math.log(4) + 1)
    assert np.allclose(curves["yarn"][1],
                       factor ** 2 * 2 * np.cos(distance[:, None] * yarn_theta.numpy()).sum(1) / 16)
