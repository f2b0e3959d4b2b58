"""Causal attention with grouped key/value heads and an optional sliding window.

One function, `attention`, decides which kernel runs (impl="auto"); every kernel computes
the same thing and is tested against "eager", the reference that materializes the
probabilities (what `trace` shows):

  query i attends key j  iff  j <= i  and  i - window < j  and  key j is a real token.

Queries are the last Tq of the Tk key positions (Tq == Tk in a forward pass, Tq == 1 when
decoding from a cache). Query head h reads kv head h // (Hq // Hkv); no kernel here copies
K/V up to Hq heads in memory.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

IMPLS = ("auto", "eager", "sdpa", "banded", "flex")

# Below this many keys a window costs more to cut into bands than it saves (bench: see README).
BANDED_MIN_KEYS = 2048


def attention(q, k, v, window=None, impl="auto", key_mask=None):
    """q (B, Hq, Tq, D); k, v (B, Hkv, Tk, D); key_mask (B, Tk) bool, True = real token.

    Returns (B, Hq, Tq, D).
    """
    check_shapes(q, k, v, key_mask)
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} is unknown; choose one of {', '.join(IMPLS)}.")
    if window is not None and window < 1:
        raise ValueError(f"window={window} must be None or >= 1.")
    if window is not None and window >= k.shape[2]:
        window = None  # a window that covers every key is full causal attention
    if impl == "auto":
        impl = choose_impl(q.shape[2], k.shape[2], window)
    if impl == "eager":
        return eager_attention(q, k, v, window, key_mask)[0]
    if impl == "sdpa" or window is None:
        return sdpa_attention(q, k, v, window, key_mask)
    if q.shape[2] != k.shape[2]:
        raise ValueError(f"impl={impl!r} is the sliding-window path for self-attention and needs "
                         f"Tq == Tk; got q {tuple(q.shape)}, k {tuple(k.shape)}.")
    if impl == "banded":
        return banded_attention(q, k, v, window, key_mask)
    if key_mask is not None:
        raise ValueError("impl='flex' has no padding support; use impl='banded' or 'auto'.")
    return flex_attention(q, k, v, window)


def choose_impl(tq: int, tk: int, window: int | None) -> str:
    """The one place that picks a kernel. Never picks "flex": its compile takes seconds per
    new shape (NOTES.md), which an interactive page cannot pay; bench measures it apart."""
    if window is None or tq != tk or tk < BANDED_MIN_KEYS:
        return "sdpa"
    return "banded"


def check_shapes(q, k, v, key_mask=None):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be 4-D (B, H, T, D); got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}.")
    (b, hq, _, d), (bk, hkv, tk, dk) = q.shape, k.shape
    if k.shape != v.shape or b != bk or d != dk:
        raise ValueError(f"shapes do not fit: q {tuple(q.shape)} (B, Hq, Tq, D) needs k and v "
                         f"of (B, Hkv, Tk, D); got k {tuple(k.shape)}, v {tuple(v.shape)}.")
    if hq % hkv:
        raise ValueError(f"q has {hq} heads and k/v {hkv}: the query heads must split into "
                         f"equal groups, so Hq % Hkv == 0 (q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}).")
    if key_mask is not None and tuple(key_mask.shape) != (b, tk):
        raise ValueError(f"key_mask must be (B, Tk) = ({b}, {tk}); got {tuple(key_mask.shape)}.")


def allowed_mask(tq, tk, window, key_mask, device):
    """(B or 1, 1, Tq, Tk) bool: which keys each query may attend to."""
    query_at = torch.arange(tk - tq, tk, device=device)[:, None]  # key index of each query
    key_at = torch.arange(tk, device=device)[None, :]
    allowed = key_at <= query_at
    if window is not None:
        allowed &= key_at > query_at - window
    allowed = allowed[None, None]
    if key_mask is not None:
        # A padding query attends only to itself, so no row is empty (its output is unused).
        allowed = (allowed & key_mask[:, None, None, :]) | (key_at == query_at)
    return allowed


def eager_attention(q, k, v, window=None, key_mask=None):
    """Reference: (output (B, Hq, Tq, D), probabilities (B, Hq, Tq, Tk))."""
    b, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    q_grouped = q.view(b, hkv, hq // hkv, tq, d)  # (B, Hkv, G, Tq, D): head h = kv*G + g
    scores = q_grouped @ k.unsqueeze(2).transpose(-1, -2) / math.sqrt(d)  # (B, Hkv, G, Tq, Tk)
    allowed = allowed_mask(tq, tk, window, key_mask, q.device).unsqueeze(2)
    probs = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
    out = probs @ v.unsqueeze(2)  # (B, Hkv, G, Tq, D)
    return out.reshape(b, hq, tq, d), probs.reshape(b, hq, tq, tk)


def sdpa_attention(q, k, v, window=None, key_mask=None):
    """torch's fused kernel; K/V stay at Hkv heads (enable_gqa)."""
    tq, tk = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    if key_mask is None and (window is None or window >= tk):
        if tq == 1:  # one new query at the end sees every key
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
        if tq == tk:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    mask = allowed_mask(tq, tk, window, key_mask, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)


def banded_attention(q, k, v, window, key_mask=None, chunk=None):
    """Sliding window in O(T * window) time and memory.

    Queries are cut into chunks of c; chunk b sees only keys [b*c - window + 1, b*c + c - 1],
    c + window - 1 of them, gathered with a strided view. One SDPA call over all chunks
    with one (c, c + window - 1) band mask does the rest.
    """
    b, hq, t, d = q.shape
    hkv = k.shape[1]
    c = chunk or max(64, min(window, 256))
    n_chunks = -(-t // c)
    span = c + window - 1
    tail = n_chunks * c - t
    q_chunks = F.pad(q, (0, 0, 0, tail)).view(b, hq, n_chunks, c, d).transpose(1, 2)
    k_chunks = _chunk_keys(k, window, tail, c, span)  # (B, n_chunks, Hkv, span, D)
    v_chunks = _chunk_keys(v, window, tail, c, span)
    # key slot s of chunk n holds position n*c - window + 1 + s; query row r is n*c + r
    rows = torch.arange(c, device=q.device)[:, None]
    slots = torch.arange(span, device=q.device)[None, :]
    band = (slots >= rows) & (slots <= rows + window - 1)  # (c, span)
    key_pos = torch.arange(n_chunks, device=q.device)[:, None] * c - window + 1 + slots
    key_ok = key_pos >= 0  # (n_chunks, span)
    if key_mask is not None:
        padded = F.pad(key_mask, (window - 1, tail), value=False)  # (B, window - 1 + T + tail)
        key_ok = key_ok & padded.unfold(1, span, c)  # (B, n_chunks, span)
        mask = (band & key_ok[..., None, :]) | (slots == rows + window - 1)
        mask = mask[:, :, None]  # (B, n_chunks, 1, c, span)
    else:
        mask = ((band & key_ok[:, None, :]) | (slots == rows + window - 1))[None, :, None]
    out = F.scaled_dot_product_attention(q_chunks, k_chunks, v_chunks, attn_mask=mask,
                                         enable_gqa=hq != hkv)  # (B, n_chunks, Hq, c, D)
    return out.transpose(1, 2).reshape(b, hq, n_chunks * c, d)[:, :, :t]


def _chunk_keys(x, window, tail, c, span):
    """(B, H, T, D) -> (B, n_chunks, H, span, D): overlapping key spans, one per query chunk."""
    padded = F.pad(x, (0, 0, window - 1, tail))  # (B, H, window - 1 + T + tail, D)
    return padded.unfold(2, span, c).permute(0, 2, 1, 4, 3)


# FlexAttention: fastest for long sequences once compiled, but each new (T, window) compiles
# for seconds, so only bench and explicit callers use it.
FLEX_BLOCK = 64


def flex_attention(q, k, v, window):
    block_mask = _sliding_block_mask(q.shape[2], window, str(q.device))
    return _compiled_flex()(q, k, v, block_mask=block_mask, enable_gqa=q.shape[1] != k.shape[1])


@lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention as flex

    return torch.compile(flex, dynamic=False)


@lru_cache(maxsize=32)
def _sliding_block_mask(t, window, device):
    from torch.nn.attention.flex_attention import create_block_mask

    def sliding(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & (q_idx - kv_idx < window)

    return create_block_mask(sliding, None, None, t, t, device=device,
                             BLOCK_SIZE=FLEX_BLOCK)
