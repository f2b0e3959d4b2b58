"""Position information: learned and sinusoidal tables added to the embeddings, rotary on
q/k, ALiBi's linear bias on the scores (its slopes live here, the bias in attention.py).

RoPE pairing: we rotate dimension k with dimension k + head_dim/2 (the "halves" layout of
GPT-NeoX and Llama), by the angle position * theta_k with theta_k = base^(-2k/head_dim),
k = 0 .. head_dim/2 - 1. RoFormer's paper pairs neighbours (2k, 2k+1) instead; the two are
the same rotation up to a fixed permutation of head dimensions, which learned q/k projections
absorb. tests/test_positions.py checks ours against the complex-number definition.
"""
from __future__ import annotations

import math

import torch


def positions_from_mask(padding_mask: torch.Tensor | None, batch: int, seq_len: int,
                        device, offset: torch.Tensor | int = 0) -> torch.Tensor:
    """(B, T) position of each token counting real tokens only; padding gets position 0."""
    if padding_mask is None:
        pos = torch.arange(seq_len, device=device).expand(batch, seq_len)
        return pos + (offset if isinstance(offset, int) else offset[:, None])
    counted = padding_mask.long().cumsum(dim=1) - 1  # (B, T)
    if not isinstance(offset, int):
        counted = counted + offset[:, None]
    elif offset:
        counted = counted + offset
    return counted.clamp(min=0) * padding_mask


def rope_frequencies(head_dim: int, base: float) -> torch.Tensor:
    """theta_k = base^(-2k/head_dim) for k = 0 .. head_dim/2 - 1, fastest first."""
    return base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, base: float, dtype):
    """cos and sin of position * theta, (B, 1, T, head_dim) ready to broadcast over heads."""
    theta = rope_frequencies(head_dim, base).to(positions.device)
    angles = positions.to(torch.float64)[..., None] * theta  # (B, T, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)[:, None]  # (B, 1, T, head_dim)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x_k, x_{k+d/2}) of x (B, H, T, head_dim) by its angle."""
    half = x.shape[-1] // 2
    rotated_half = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated_half * sin


def sinusoidal_table(positions: torch.Tensor, d_model: int, dtype) -> torch.Tensor:
    """Vaswani et al.'s fixed encoding: sin on even dims, cos on odd, (B, T, d_model)."""
    inv = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64,
                                                       device=positions.device) / d_model)
    angles = positions.to(torch.float64)[..., None] * inv  # (B, T, ceil(d/2))
    table = torch.zeros(*positions.shape, d_model, dtype=torch.float64, device=positions.device)
    table[..., 0::2] = angles.sin()
    table[..., 1::2] = angles.cos()[..., : d_model // 2]
    return table.to(dtype)


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Press et al. 2022: for H a power of two, the geometric sequence 2^(-8/H), 2^(-16/H),
    .., 2^(-8); otherwise the slopes of the largest power of two P < H, then every other
    slope of 2P for the H - P heads left (their reference code's rule). (H,) float64."""
    def geometric(h):
        return [2.0 ** (-8.0 * (i + 1) / h) for i in range(h)]

    power = 2 ** int(math.floor(math.log2(n_head)))
    slopes = geometric(power) + geometric(2 * power)[0::2][: n_head - power]
    return torch.tensor(slopes, dtype=torch.float64)
