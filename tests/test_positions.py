import torch

from gpt2viz.positions import apply_rope, positions_from_mask, rope_cos_sin, rope_frequencies


def test_rope_is_the_complex_rotation_of_half_pairs():
    """Pair k is (x_k, x_{k+d/2}) read as x_k + i x_{k+d/2}, multiplied by e^{i m theta_k}."""
    torch.manual_seed(0)
    d, base = 16, 500.0
    x = torch.randn(1, 2, 7, d, dtype=torch.float64)
    pos = torch.arange(7)[None] * 3
    cos, sin = rope_cos_sin(pos, d, base, torch.float64)
    ours = apply_rope(x, cos, sin)
    theta = base ** (-2 * torch.arange(d // 2, dtype=torch.float64) / d)
    z = torch.complex(x[..., : d // 2], x[..., d // 2:])
    z = z * torch.polar(torch.ones_like(theta), pos[0, :, None].double() * theta)
    expected = torch.cat([z.real, z.imag], dim=-1)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    assert torch.allclose(rope_frequencies(d, base), theta)


def test_rope_scores_depend_on_relative_position_only():
    torch.manual_seed(1)
    d = 32
    q, k = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)

    def score(m, n):
        pos = torch.tensor([[m, n]])
        cos, sin = rope_cos_sin(pos, d, 10000.0, torch.float64)
        rq = apply_rope(q.expand(1, 1, 2, d), cos, sin)[0, 0, 0]
        rk = apply_rope(k.expand(1, 1, 2, d), cos, sin)[0, 0, 1]
        return float(rq @ rk)

    for m, n in [(5, 2), (9, 9), (3, 40)]:
        for shift in (1, 17, 1000):
            assert abs(score(m, n) - score(m + shift, n + shift)) < 1e-9
    assert abs(score(5, 2) - score(5, 3)) > 1e-3  # and it does depend on the distance


def test_positions_count_real_tokens_only():
    mask = torch.tensor([[False, False, True, True, True], [True, True, True, False, False]])
    pos = positions_from_mask(mask, 2, 5, "cpu")
    assert pos.tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 0, 0]]
