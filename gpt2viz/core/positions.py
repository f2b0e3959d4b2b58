"""Position information: learned and sinusoidal tables added to the embeddings, rotary on
q/k, ALiBi's linear bias on the scores (its slopes live here, the bias in attention.py).

RoPE pairing: we rotate dimension k with dimension k + head_dim/2 (the "halves" layout of
GPT-NeoX and Llama), by the angle position * theta_k with theta_k = base^(-2k/head_dim),
k = 0 .. head_dim/2 - 1. RoFormer's paper pairs neighbours (2k, 2k+1) instead; the two are
the same rotation up to a fixed permutation of head dimensions, which learned q/k projections
absorb. tests/test_positions.py checks ours against the complex-number definition.

RoPE scaling (context extension, config.rope_scaling) changes theta and may scale cos and sin:
`rope_parameters(config, seq_len)` gives both, each method equal to transformers'
ROPE_INIT_FUNCTIONS (tests/test_rope_scaling.py), with s = rope_factor, L = the trained
context (config.rope_trained_length), d = head_dim:

- linear (Position Interpolation, Chen et al. 2023): theta_k / s, i.e. positions squeezed by s;
- ntk (static NTK-aware, bloc97): base * s^(d/(d-2)), so the slowest pair is interpolated by
  exactly s and the fastest is untouched (not in transformers; checked against this formula);
- dynamic (NTK by the current length, emozilla; transformers' "dynamic"): for a sequence of
  T tokens, base * (s T' / L - (s - 1))^(d/(d-2)) with T' = max(T, L): nothing changes up to L.
  T is the length of the sequence the model runs on: a forward pass over T tokens (the largest
  position + 1), or in generation the prompt plus every new token, fixed for the whole
  generation, so cached and uncached steps equal one full pass over the final sequence.
  (transformers' cached `generate` recomputes theta at every step instead and keeps the keys
  already cached rotated by the older theta, so there its cached and uncached generations differ
  once past L; no cache can match a full pass at every step, since every cached key past the
  first layer depends on the theta in force when it was written.)
- yarn (Peng et al. 2023): pair k keeps theta_k if it turns more than beta_fast times over L,
  becomes theta_k / s if fewer than beta_slow, with a linear ramp between (over pair index,
  bounds rounded outwards as transformers' truncate=True); cos and sin times the attention
  factor (default 0.1 ln s + 1), so every q.k score is scaled by its square;
- llama3 (Llama 3.1): wavelengths 2 pi / theta_k shorter than L / high_freq_factor kept, longer
  than L / low_freq_factor divided by s, smoothly between.

rope_factor 1 is plain RoPE for every method (for dynamic too: transformers' dynamic at
factor 1 still raises the base past L, by (T/L)^(d/(d-2)); ours is off at 1).
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


def rope_parameters(config, seq_len: int | None = None) -> tuple[torch.Tensor, float]:
    """(theta float64 (head_dim/2,), attention factor) of a RoPE config under its
    rope_scaling, for a sequence of seq_len tokens (only "dynamic" reads it; None = the
    trained length). See the module docstring for each method."""
    d, base, s = config.head_dim, float(config.rope_base), float(config.rope_factor)
    method, trained = config.rope_scaling, config.rope_trained_length
    theta = rope_frequencies(d, base)
    explicit = config.rope_attention_factor if method == "yarn" else None
    if method == "none" or s == 1.0:
        return theta, 1.0 if explicit is None else float(explicit)
    if method == "linear":
        return theta / s, 1.0
    if method == "ntk":
        return rope_frequencies(d, base * s ** (d / (d - 2))), 1.0
    if method == "dynamic":
        length = max(trained if seq_len is None else int(seq_len), trained)
        return rope_frequencies(d, base * (s * length / trained - (s - 1)) ** (d / (d - 2))), 1.0
    if method == "yarn":
        ramp = yarn_ramp(config)
        theta = (theta / s) * ramp + theta * (1 - ramp)
        return theta, (0.1 * math.log(s) + 1.0) if explicit is None else float(explicit)
    if method == "llama3":
        low, high = config.rope_low_freq_factor, config.rope_high_freq_factor
        wavelength = 2 * math.pi / theta
        scaled = torch.where(wavelength > trained / low, theta / s, theta)
        smooth = (trained / wavelength - low) / (high - low)
        smoothed = (1 - smooth) * scaled / s + smooth * scaled
        medium = ~(wavelength < trained / high) & ~(wavelength > trained / low)
        return torch.where(medium, smoothed, scaled), 1.0
    raise ValueError(f"rope_scaling={method!r} is unknown.")


def yarn_ramp(config) -> torch.Tensor:
    """YaRN's (head_dim/2,) float64 share of interpolation per pair: 0 for pairs that turn more
    than beta_fast times over the trained context (kept), 1 for fewer than beta_slow (theta / s),
    linear in the pair index between; the bounds are the (fractional) pair indices where a pair
    turns beta times, floored and ceiled as transformers' truncate=True."""
    d, base, trained = config.head_dim, float(config.rope_base), config.rope_trained_length

    def pair_turning(turns):  # k where trained * theta_k / (2 pi) = turns, in units of 2 dims
        return d * math.log(trained / (turns * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(pair_turning(config.rope_beta_fast)), 0)
    high = min(math.ceil(pair_turning(config.rope_beta_slow)), d - 1)
    if low == high:
        high += 0.001  # as transformers: no division by zero
    k = torch.arange(d // 2, dtype=torch.float64)
    return ((k - low) / (high - low)).clamp(0, 1)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, base: float, dtype,
                 scaling: tuple[torch.Tensor, float] | None = None):
    """cos and sin of position * theta, (B, 1, T, head_dim) ready to broadcast over heads.
    scaling: (theta, attention factor) from rope_parameters; None = plain RoPE of `base`.
    The attention factor multiplies cos and sin (as transformers' LlamaRotaryEmbedding), so
    rotated q and k both grow by it."""
    theta, factor = (rope_frequencies(head_dim, base), 1.0) if scaling is None else scaling
    angles = positions.to(torch.float64)[..., None] * theta.to(positions.device)  # (B, T, hd/2)
    angles = torch.cat([angles, angles], dim=-1)[:, None]  # (B, 1, T, head_dim)
    cos, sin = angles.cos(), angles.sin()
    if factor != 1.0:
        cos, sin = cos * factor, sin * factor
    return cos.to(dtype), sin.to(dtype)


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
