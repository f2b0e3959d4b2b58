"""gpt2viz.core.positions: RoPE as the complex rotation, relative positions only, positions of real
tokens only, the sinusoidal table as Vaswani et al. define it."""
import math

import torch
from conftest import tiny_model

from gpt2viz.core.positions import (
    apply_rope,
    positions_from_mask,
    rope_cos_sin,
    rope_frequencies,
    sinusoidal_table,
)


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


def test_sinusoidal_table_is_vaswanis_definition():
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    d = 10
    table = sinusoidal_table(torch.tensor([[0, 1, 7, 300]]), d, torch.float64)[0]
    for row, pos in enumerate([0, 1, 7, 300]):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert abs(float(table[row, 2 * i]) - math.sin(angle)) < 1e-12
            assert abs(float(table[row, 2 * i + 1]) - math.cos(angle)) < 1e-12


def test_sinusoidal_model_adds_the_table_on_the_token_embeddings_scale():
    """What the first block reads is wte(idx) + 0.02 * PE: the table on the token embeddings'
    init scale (std 0.02), not 35 times above it."""
    model = tiny_model(position="sinusoidal")
    seen = []
    model.blocks[0].register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    idx = torch.randint(0, 97, (1, 9))
    with torch.no_grad():
        model(idx)
        table = sinusoidal_table(torch.arange(9)[None], 32, torch.float64)
        torch.testing.assert_close(seen[0], model.wte(idx) + 0.02 * table)
