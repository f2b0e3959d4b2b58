"""Causal attention with grouped key/value heads, an optional sliding window with attention
sinks, and an optional ALiBi bias.

One function, `attention`, decides which kernel runs (impl="auto"); every kernel computes
the same thing and is tested against "eager", the reference that materializes the
probabilities (what `trace` shows):

  query i attends key j  iff  j <= i  and  (i - window < j  or  j < sinks)  and  key j is real,

with the score q·k/√D, minus m_h·(i - j) under ALiBi (head h's slope m_h, true distances).
With padding, the sinks are the first `sinks` real tokens of each row.

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

# From 384 keys on, banded beats masked SDPA at every window and head size measured
# (below it, its per-call overhead loses: README, bench).
BANDED_MIN_KEYS = 384
# The banded kernel's query rows per chunk (16-128 measured; 32 best or level at windows
# 16-256) and how many calls its chunks are split into: the scratch of one call is at most
# 1/BANDED_GROUPS of the output.
BANDED_CHUNK = 32
BANDED_GROUPS = 16


def attention(q, k, v, window=None, sinks=0, impl="auto", key_mask=None, alibi=None,
              positions=None):
    """q (B, Hq, Tq, D); k, v (B, Hkv, Tk, D); key_mask (B, Tk) bool, True = real token;
    alibi (Hq,) slopes or None; positions (query (B, Tq), key (B, Tk)): true token positions
    for ALiBi's distances (a rolling cache stores keys out of order); by default the queries
    are the last Tq of keys at 0 .. Tk-1.

    Returns (B, Hq, Tq, D).
    """
    check_shapes(q, k, v, key_mask)
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} is unknown; choose one of {', '.join(IMPLS)}.")
    if window is not None and window < 1:
        raise ValueError(f"window={window} must be None or >= 1.")
    if not isinstance(sinks, int) or isinstance(sinks, bool) or sinks < 0:
        raise ValueError(f"sinks={sinks!r} must be an integer >= 0 (0 = no attention sinks).")
    if alibi is not None and tuple(alibi.shape) != (q.shape[1],):
        raise ValueError(f"alibi must hold one slope per query head, ({q.shape[1]},); "
                         f"got {tuple(alibi.shape)}.")
    tq, tk = q.shape[2], k.shape[2]
    if window is not None and window >= tk:
        window = None  # a window that covers every key is full causal attention
    if window is None:
        sinks = 0  # every earlier key is visible already
    if impl == "auto":
        impl = choose_impl(tq, tk, window, q.device.type,
                           torch.is_grad_enabled() and q.requires_grad, alibi is not None)
    if impl == "banded" and alibi is not None:
        raise ValueError("impl='banded' cannot add ALiBi's bias (its flash passes take no bias); "
                         "use impl='auto' (it routes ALiBi to 'sdpa'), 'sdpa', 'eager' or 'flex'.")
    if alibi is not None:
        positions = alibi_positions(positions, q.shape[0], tq, tk, q.device)
    if impl == "eager":
        return eager_attention(q, k, v, window, key_mask, sinks, alibi, positions)[0]
    if impl == "sdpa" or window is None:
        return sdpa_attention(q, k, v, window, key_mask, sinks, alibi, positions)
    if tq != tk:
        raise ValueError(f"impl={impl!r} is the sliding-window path for self-attention and needs "
                         f"Tq == Tk; got q {tuple(q.shape)}, k {tuple(k.shape)}.")
    if key_mask is not None or (impl == "banded" and q.device.type != "cpu"):
        # padding, or no CPU flash kernel: masked SDPA
        return sdpa_attention(q, k, v, window, key_mask, sinks, alibi, positions)
    if impl == "banded":
        return banded_attention(q, k, v, window, sinks)
    return flex_attention(q, k, v, window, sinks, alibi, positions)


def choose_impl(tq: int, tk: int, window: int | None, device_type: str = "cpu",
                needs_grad: bool = False, alibi: bool = False) -> str:
    """The one place that picks a kernel. "banded" for long windowed self-attention on the
    CPU at inference; "sdpa" (fused, masked where it must be, with ALiBi's bias as a float
    mask) otherwise. Never "flex": its compile takes seconds per new shape, which an
    interactive page cannot pay."""
    if (window is None or tq != tk or tk < BANDED_MIN_KEYS or device_type != "cpu"
            or needs_grad or alibi):
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


def allowed_mask(tq, tk, window, key_mask, device, sinks=0):
    """(B or 1, 1, Tq, Tk) bool: which keys each query may attend to."""
    query_at = torch.arange(tk - tq, tk, device=device)[:, None]  # key index of each query
    key_at = torch.arange(tk, device=device)[None, :]
    allowed = (key_at <= query_at)[None, None]
    if window is not None:
        near = key_at > query_at - window
        if sinks and key_mask is None:
            near = near | (key_at < sinks)
        near = near[None, None]
        if sinks and key_mask is not None:  # the first `sinks` real tokens of each row
            near = near | (key_mask.cumsum(dim=-1) <= sinks)[:, None, None, :]
        allowed = allowed & near
    if key_mask is not None:
        # A padding query attends only to itself, so no row is empty (its output is unused).
        allowed = (allowed & key_mask[:, None, None, :]) | (key_at == query_at)
    return allowed


def alibi_positions(positions, batch, tq, tk, device):
    """(query (B, Tq), key (B, Tk)) positions; by default queries are the last Tq keys."""
    if positions is None:
        key_at = torch.arange(tk, device=device)[None]
        return key_at[:, tk - tq:].expand(batch, tq), key_at.expand(batch, tk)
    query_pos, key_pos = positions
    if tuple(query_pos.shape) != (batch, tq) or tuple(key_pos.shape) != (batch, tk):
        raise ValueError(f"positions must be (query (B, Tq), key (B, Tk)) = (({batch}, {tq}), "
                         f"({batch}, {tk})); got {tuple(query_pos.shape)}, {tuple(key_pos.shape)}.")
    return query_pos, key_pos


def alibi_bias(slopes, positions, dtype):
    """ALiBi's -m_h·(i - j): (B, Hq, Tq, Tk) from slopes (Hq,) and true positions."""
    query_pos, key_pos = positions
    distance = (query_pos[:, :, None] - key_pos[:, None, :]).to(dtype)  # (B, Tq, Tk)
    return -slopes.to(dtype)[None, :, None, None] * distance[:, None]


def eager_attention(q, k, v, window=None, key_mask=None, sinks=0, alibi=None, positions=None):
    """Reference: (output (B, Hq, Tq, D), probabilities (B, Hq, Tq, Tk))."""
    b, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    q_grouped = q.view(b, hkv, hq // hkv, tq, d)  # (B, Hkv, G, Tq, D): head h = kv*G + g
    scores = q_grouped @ k.unsqueeze(2).transpose(-1, -2) / math.sqrt(d)  # (B, Hkv, G, Tq, Tk)
    if alibi is not None:
        positions = alibi_positions(positions, b, tq, tk, q.device)
        scores = scores + alibi_bias(alibi, positions, q.dtype).view(b, hkv, hq // hkv, tq, tk)
    allowed = allowed_mask(tq, tk, window, key_mask, q.device, sinks).unsqueeze(2)
    probs = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
    out = probs @ v.unsqueeze(2)  # (B, Hkv, G, Tq, D)
    return out.reshape(b, hq, tq, d), probs.reshape(b, hq, tq, tk)


def sdpa_attention(q, k, v, window=None, key_mask=None, sinks=0, alibi=None, positions=None):
    """torch's fused kernel; K/V stay at Hkv heads (enable_gqa). ALiBi goes in as a float
    mask: its bias, -inf where a key is not allowed."""
    tq, tk = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    if alibi is None and key_mask is None and (window is None or window >= tk):
        if tq == 1:  # one new query at the end sees every key
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
        if tq == tk:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    mask = allowed_mask(tq, tk, window, key_mask, q.device, sinks)
    if alibi is not None:
        positions = alibi_positions(positions, q.shape[0], tq, tk, q.device)
        mask = alibi_bias(alibi, positions, q.dtype).masked_fill(~mask, float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)


def banded_attention(q, k, v, window, sinks=0):
    """Sliding window in O(T * window) time, with about one output of extra memory.

    The first `window` queries see every earlier key: one causal call. Later queries go in
    chunks of c rows: the chunk at rows s .. s+c-1 needs keys s-window+1 .. s+c-1, a span of
    c + window - 1, inside which query row r sees columns r .. r + window - 1 -- one mask for
    every chunk. Chunks and spans are strided views of q, k, v (spans overlap; nothing is
    copied); a group of chunks is one call of the CPU flash kernel, copied into a preallocated
    output. Sinks older than the band (keys j < sinks, j <= i - window) are a second partial
    softmax, merged by the log-sum-exps.
    """
    b, hq, t, d = q.shape
    out = q.new_empty(b, t, hq, d).transpose(1, 2)  # (B, Hq, T, D), laid out as the model reads it
    head = min(window, t)
    c = BANDED_CHUNK
    rows_per_call = max(c, t // BANDED_GROUPS // c * c)
    offset = (torch.arange(c + window - 1, device=q.device)[None, :]
              - torch.arange(c, device=q.device)[:, None])  # (c, span): column - row
    band_mask = _additive((offset >= 0) & (offset < window), q.dtype)  # row r sees columns r .. r+window-1
    for bi in range(b):
        qb, kb, vb = q[bi:bi + 1], k[bi:bi + 1], v[bi:bi + 1]  # (1, H, T, D)
        for first in range(0, head, rows_per_call):  # rows first .. last-1 see keys 0 .. i
            last = min(head, first + rows_per_call)
            causal = (torch.arange(last, device=q.device)[None, :]
                      <= torch.arange(first, last, device=q.device)[:, None])
            mask = None if first == 0 else _additive(causal, q.dtype)
            _copy_rows(out[bi], first, _flash(qb[:, :, first:last], kb[:, :, :last],
                                              vb[:, :, :last], causal=first == 0, mask=mask)[0])
        start = head
        while start < t:
            n, length = ((min(rows_per_call, t - start) // c, c) if t - start >= c
                         else (1, t - start))  # a last, shorter chunk alone
            span = length + window - 1
            chunk_out, chunk_lse = _flash(  # (n, Hq, length, D), (n, Hq, length)
                _chunks(qb, start, n, length, c), _chunks(kb, start - window + 1, n, span, c),
                _chunks(vb, start - window + 1, n, span, c), mask=band_mask[:length, :span])
            _copy_rows(out[bi], start, chunk_out)
            del chunk_out  # before the sinks or the next call allocate their own
            if sinks:
                rows = slice(start, start + n * length)
                _merge_sinks(qb, kb, vb, rows, window, sinks, out[bi:bi + 1, :, rows],
                             chunk_lse.transpose(0, 1).reshape(1, hq, n * length))
            start += n * length
    return out


def _additive(allowed, dtype):
    """The CPU flash kernel takes masks as scores to add: 0 where allowed, -inf elsewhere."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, float("-inf"))


def _copy_rows(out, start, chunks):
    """chunks (n, Hq, L, D) -> out (Hq, T, D) rows start .. start + n*L, with no temporary."""
    n, hq, length, d = chunks.shape
    out[:, start:start + n * length].view(hq, n, length, d).copy_(chunks.transpose(0, 1))


def _chunks(x, start, n, length, step):
    """n overlapping views (n, H, length, D) of x (1, H, T, D) at rows start + m*step."""
    _, h, _, d = x.shape
    _, s_head, s_row, s_dim = x.stride()
    return x.as_strided((n, h, length, d), (step * s_row, s_head, s_row, s_dim),
                        x.storage_offset() + start * s_row)


def _flash(q, k, v, causal=False, mask=None):
    """torch's CPU flash kernel (it takes Hkv < Hq heads as they are) -> output, log-sum-exp."""
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, causal, attn_mask=mask)[:2]


def _merge_sinks(q, k, v, rows, window, sinks, band_out, band_lse):
    """Queries i in `rows` (all >= window) also see sink keys j < sinks with j <= i - window:
    that partial softmax merged in place into the band's (output (1, Hq, R, D), lse (1, Hq, R))."""
    _, hq, _, d = q.shape
    hkv = k.shape[1]
    n_sinks = min(sinks, rows.stop - window)  # key 0 is older than the band for every row
    query_at = torch.arange(rows.start, rows.stop, device=q.device)[:, None]
    older = torch.arange(n_sinks, device=q.device)[None, :] <= query_at - window  # (R, s)
    q_grouped = q[:, :, rows].reshape(1, hkv, hq // hkv, -1, d)
    scores = q_grouped @ k[:, :, :n_sinks].unsqueeze(2).transpose(-1, -2) / math.sqrt(d)  # (1, Hkv, G, R, s)
    scores = scores.masked_fill(~older, float("-inf"))
    sink_lse = scores.logsumexp(dim=-1)
    sink_out = (scores - sink_lse[..., None]).exp() @ v[:, :, :n_sinks].unsqueeze(2)  # (1, Hkv, G, R, D)
    sink_lse = sink_lse.reshape(band_lse.shape)
    top = torch.maximum(band_lse, sink_lse)
    w_band, w_sink = (band_lse - top).exp()[..., None], (sink_lse - top).exp()[..., None]
    band_out.mul_(w_band).add_(sink_out.reshape(band_out.shape).mul_(w_sink)).div_(w_band + w_sink)


# FlexAttention: fastest for long sequences once compiled, but each new (T, window) compiles
# for seconds, so only bench and explicit callers use it.
FLEX_BLOCK = 64


def flex_attention(q, k, v, window, sinks=0, alibi=None, positions=None):
    block_mask = _sliding_block_mask(q.shape[2], window, sinks, str(q.device))
    score_mod = None
    if alibi is not None:
        query_pos, key_pos = (p.to(q.dtype).contiguous() for p in positions)
        slopes = alibi.to(q.dtype)

        def score_mod(score, b, h, q_idx, kv_idx):
            return score - slopes[h] * (query_pos[b, q_idx] - key_pos[b, kv_idx])

    return _compiled_flex()(q, k, v, score_mod=score_mod, block_mask=block_mask,
                            enable_gqa=q.shape[1] != k.shape[1])


@lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention as flex

    return torch.compile(flex, dynamic=False)


@lru_cache(maxsize=32)
def _sliding_block_mask(t, window, sinks, device):
    from torch.nn.attention.flex_attention import create_block_mask

    def sliding(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & ((q_idx - kv_idx < window) | (kv_idx < sinks))

    return create_block_mask(sliding, None, None, t, t, device=device,
                             BLOCK_SIZE=FLEX_BLOCK)
