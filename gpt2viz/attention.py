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

# From 512 keys on, banded beats masked SDPA at every window measured (README, bench).
BANDED_MIN_KEYS = 512


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
        impl = choose_impl(q.shape[2], k.shape[2], window, q.device.type,
                           torch.is_grad_enabled() and q.requires_grad)
    if impl == "eager":
        return eager_attention(q, k, v, window, key_mask)[0]
    if impl == "sdpa" or window is None:
        return sdpa_attention(q, k, v, window, key_mask)
    if q.shape[2] != k.shape[2]:
        raise ValueError(f"impl={impl!r} is the sliding-window path for self-attention and needs "
                         f"Tq == Tk; got q {tuple(q.shape)}, k {tuple(k.shape)}.")
    if key_mask is not None or (impl == "banded" and q.device.type != "cpu"):
        return sdpa_attention(q, k, v, window, key_mask)  # padding or no CPU flash kernel: masked
    if impl == "banded":
        return banded_attention(q, k, v, window)
    return flex_attention(q, k, v, window)


def choose_impl(tq: int, tk: int, window: int | None, device_type: str = "cpu",
                needs_grad: bool = False) -> str:
    """The one place that picks a kernel. "banded" for long windowed self-attention on the
    CPU at inference; "sdpa" (fused, masked where it must be) otherwise. Never "flex": its
    compile takes seconds per new shape, which an interactive page cannot pay."""
    if (window is None or tq != tk or tk < BANDED_MIN_KEYS or device_type != "cpu"
            or needs_grad):
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


def banded_attention(q, k, v, window):
    """Sliding window in O(T * window) time and memory, with no mask and no compile.

    Cut the sequence into chunks of c = window. A query at row r of chunk n attends keys
    j <= r of its own chunk (causal inside the chunk) and keys j > r of chunk n-1, exactly
    the window. Both halves are plain causal flash attention over c x c blocks (the second
    after flipping chunk n's queries and chunk n-1's keys end to end, which turns "j > r"
    into "j <= r"), and the two partial softmaxes are merged by their log-sum-exps.
    """
    b, hq, t, d = q.shape
    hkv, c = k.shape[1], window
    n_chunks = -(-t // c)
    tail = n_chunks * c - t  # padding at the end: no real query ever sees it (causal)

    def chunked(x):  # (B, H, T, D) -> (B, n_chunks, H, c, D)
        return F.pad(x, (0, 0, 0, tail)).view(b, x.shape[1], n_chunks, c, d).transpose(1, 2)

    q_chunks, k_chunks, v_chunks = chunked(q), chunked(k), chunked(v)
    out, lse = _flash_with_lse(q_chunks, k_chunks, v_chunks)  # own chunk: (B, n, Hq, c, D), (B, n, Hq, c)
    if n_chunks > 1 and c > 1:
        # rows r = c-2 .. 0 of chunks 1.. against keys j = c-1 .. 1 of chunks ..-1
        prev_out, prev_lse = _flash_with_lse(q_chunks[:, 1:, :, : c - 1].flip(-2),
                                             k_chunks[:, :-1, :, 1:].flip(-2),
                                             v_chunks[:, :-1, :, 1:].flip(-2))
        own_out, own_lse = out[:, 1:, :, : c - 1], lse[:, 1:, :, : c - 1]
        prev_out, prev_lse = prev_out.flip(-2), prev_lse.flip(-1)
        top = torch.maximum(own_lse, prev_lse)
        own_w, prev_w = (own_lse - top).exp()[..., None], (prev_lse - top).exp()[..., None]
        out[:, 1:, :, : c - 1] = (own_out * own_w + prev_out * prev_w) / (own_w + prev_w)
    return out.transpose(1, 2).reshape(b, hq, n_chunks * c, d)[:, :, :t]


def _flash_with_lse(q, k, v):
    """Causal flash attention over (B, n, H, L, D) blocks -> output and log-sum-exp (B, n, H, L)."""
    b, n, hq, length, d = q.shape
    hkv = k.shape[2]
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q.reshape(b * n, hq, length, d), k.reshape(b * n, hkv, length, d),
        v.reshape(b * n, hkv, length, d), 0.0, True)[:2]
    return out.view(b, n, hq, length, d), lse.view(b, n, hq, length)


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
