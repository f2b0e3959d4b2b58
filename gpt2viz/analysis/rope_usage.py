"""RoPE on a model's real vectors: which rotation frequencies its queries and keys use, and
how its q.k scores depend on distance, beside the analytic decay (viz/rope.py draws both).

Pairs follow positions.py's "halves" layout: pair k rotates dims (k, k + head_dim/2) by
position * theta_k, theta_k = base^(-2k/head_dim), fastest first.
"""
from __future__ import annotations

import math

import torch

from gpt2viz.core.model import Trace
from gpt2viz.core.positions import apply_rope, rope_cos_sin


@torch.no_grad()
def pair_norms(vectors: list[torch.Tensor]) -> torch.Tensor:
    """vectors: per layer (B, H, T, head_dim), e.g. trace.q or trace.k -> (n_layer, head_dim/2)
    float64: the mean over sequences, heads and positions of pair k's length
    sqrt(x_k^2 + x_{k+d/2}^2). A rotation keeps each pair's length, so rotated and unrotated
    vectors give the same numbers: how much of q (or k) sits on each frequency."""
    if vectors[0].shape[-1] % 2:
        raise ValueError(f"head_dim={vectors[0].shape[-1]} is odd: it has no rotation pairs.")
    rows = []
    for x in vectors:
        half = x.shape[-1] // 2
        x = x.double()
        rows.append(torch.hypot(x[..., :half], x[..., half:]).mean((0, 1, 2)))  # (head_dim/2,)
    return torch.stack(rows)


@torch.no_grad()
def qk_by_distance(trace: Trace, layer: int, head: int, base: float | None = None) -> dict:
    """For query head `head` of `layer` and the K/V head it reads (head // group size):
    score(Δ) = mean over sequences and queries i >= Δ of q_i . k_{i-Δ} / sqrt(head_dim), from
    trace.q and trace.k, which are already rotated: the scores the model computes before masks
    and softmax, as a function of distance only. With the RoPE base, also "unrotated": the same
    mean with every q_i and k_j rotated back to position 0 (what the scores would be if RoPE
    did not turn these vectors), so the difference is what the rotation does.
    Returns {"distance": (T,), "rotated": (T,), "unrotated": (T,) or None, "queries": (T,)
    (how many (sequence, query) pairs each mean averages)}, numpy float64."""
    q = trace.q[layer][:, head].double()  # (B, T, hd)
    group = trace.q[layer].shape[1] // trace.k[layer].shape[1]
    k = trace.k[layer][:, head // group].double()  # (B, T, hd)
    b, t, hd = q.shape
    curves = {"distance": torch.arange(t), "queries": b * (t - torch.arange(t)),
              "rotated": _mean_by_distance(q, k), "unrotated": None}
    if base is not None:
        cos, sin = rope_cos_sin(trace.positions.to(q.device), hd, base, torch.float64)  # (B, 1, T, hd)
        back = [apply_rope(x[:, None], cos, -sin)[:, 0] for x in (q, k)]  # rotation by -position
        curves["unrotated"] = _mean_by_distance(*back)
    return {name: None if v is None else v.cpu().numpy() for name, v in curves.items()}


def _mean_by_distance(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """q, k (B, T, hd) -> (T,): mean of q_i . k_{i-Δ} / sqrt(hd) along each diagonal Δ."""
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])  # (B, T, T)
    return torch.stack([scores.diagonal(offset=-d, dim1=1, dim2=2).mean()
                        for d in range(q.shape[1])])
