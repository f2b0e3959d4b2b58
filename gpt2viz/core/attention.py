"""Causal attention with grouped key/value heads, an optional sliding window with attention
sinks, and an optional ALiBi bias.

One function, `resolve`, decides which kernel runs (for `attention`, the model and bench's
labels); every kernel in KERNELS computes the same thing and is tested against "eager", the
reference that materializes the probabilities (what `trace` shows):

  query i attends key j  iff  j <= i  and  (i - window < j  or  j < sinks)  and  key j is real,

with the score q·k/√D, minus m_h·(i - j) under ALiBi (head h's slope m_h, true distances).
With padding, the sinks are the first `sinks` real tokens of each row.

The rule is written once, in `key_allowed`: every boolean mask, flex's mask function, the
banded kernel's sinks and the heatmap's grey cells are built from it.

Queries are the last Tq of the Tk key positions (Tq == Tk in a forward pass, Tq == 1 when
decoding from a cache). Query head h reads kv head h // (Hq // Hkv); K/V stay at Hkv heads
in memory, except in fp32 SDPA on CUDA (see `sdpa_repeats_kv`).
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


# On CUDA, windowed self-attention from this many keys on runs compiled FlexAttention with a
# sliding block mask; shorter, masked SDPA. Measured on an H100, 2026-11-27 (NOTES.md), w=256,
# 12 heads of 64, fp32: at n = 4,096 flex 0.77 ms, masked SDPA 2.00 ms, dense causal 1.17 ms;
# shorter lengths were not measured, so the crossover may be lower. docs/gpu_check.py
# re-measures it.
FLEX_MIN_KEYS_CUDA = 4096


def key_allowed(query_at, key_at, window=None, sinks=0, key_rank=None):
    """THE masking rule: may the query at index query_at attend the key at key_at?

    A key is visible iff it is not in the future, and it is inside the window or one of the
    first `sinks` keys. query_at, key_at (and key_rank) broadcast against each other: torch
    tensors or numpy arrays. window and sinks are numbers or 0-d tensors (flex passes
    tensors, so one compiled kernel serves every window). key_rank: under padding, each
    key's index among its row's real tokens, which decides who the sinks are (default key_at)."""
    allowed = key_at <= query_at
    if window is None:
        return allowed
    is_sink = (key_at if key_rank is None else key_rank) < sinks
    return allowed & ((query_at - key_at < window) | is_sink)


def attention(q, k, v, window=None, sinks=0, impl="auto", key_mask=None, alibi=None,
              positions=None, dropout=0.0, return_probs=False):
    """q (B, Hq, Tq, D); k, v (B, Hkv, Tk, D); key_mask (B, Tk) bool, True = real token;
    alibi (Hq,) slopes or None; positions (query (B, Tq), key (B, Tk)): true token positions
    for ALiBi's distances (a rolling cache stores keys out of order); by default the queries
    are the last Tq of keys at 0 .. Tk-1. dropout: the probability of dropping an attention
    probability (training); return_probs: also return the probabilities (what `trace` draws).

    Returns (B, Hq, Tq, D), or (output, probabilities (B, Hq, Tq, Tk)) with return_probs.
    `resolve` decides which kernel runs; each is one entry of KERNELS.
    """
    check_shapes(q, k, v, key_mask)
    if window is not None and window < 1:
        raise ValueError(f"window={window} must be None or >= 1.")
    if not isinstance(sinks, int) or isinstance(sinks, bool) or sinks < 0:
        raise ValueError(f"sinks={sinks!r} must be an integer >= 0 (0 = no attention sinks).")
    if alibi is not None and tuple(alibi.shape) != (q.shape[1],):
        raise ValueError(f"alibi must hold one slope per query head, ({q.shape[1]},); "
                         f"got {tuple(alibi.shape)}.")
    tq, tk = q.shape[2], k.shape[2]
    window = effective_window(window, tk)
    if window is None:
        sinks = 0  # every earlier key is visible already
    kernel = resolve(tq, tk, window, q.device.type, torch.is_grad_enabled() and q.requires_grad,
                     alibi is not None, impl=impl, key_mask=key_mask is not None,
                     probs=return_probs or dropout > 0)
    if alibi is not None:
        positions = alibi_positions(positions, q.shape[0], tq, tk, q.device)
    if kernel == "eager":
        out, probs = eager_attention(q, k, v, window, key_mask, sinks, alibi, positions, dropout)
        return (out, probs) if return_probs else out
    return KERNELS[kernel](q, k, v, window, sinks, key_mask=key_mask, alibi=alibi,
                           positions=positions)


def effective_window(window: int | None, n_keys: int) -> int | None:
    """A window that covers every key is full causal attention: None."""
    return None if window is None or window >= n_keys else window


def resolve(tq: int, tk: int, window: int | None, device_type: str = "cpu",
            needs_grad: bool = False, alibi: bool = False, *, impl: str = "auto",
            key_mask: bool = False, probs: bool = False) -> str:
    """THE one place that decides which kernel runs (a key of KERNELS): for `attention`, for
    the model (traces and attention dropout need the probabilities: eager) and for bench's
    row labels. impl names a kernel to ask for; what it cannot do falls back as below.

    auto on the CPU: "banded" for long windowed self-attention at inference; "sdpa" (fused,
    masked where it must be, with ALiBi's bias as a float mask) otherwise. Never "flex" on the
    CPU: its compile takes seconds per new shape, and banded is as fast there.
    auto on CUDA: "flex" for windowed self-attention at inference from FLEX_MIN_KEYS_CUDA keys
    on (a sliding block mask skips the blocks outside the window; sinks and ALiBi in the same
    kernel; compiled once per shape, see `flex_is_compiled`); "sdpa" below it, for full causal
    attention (flash) and for training (flex's backward is not measured here).
    Asked for: "banded"/"flex" are sliding-window kernels for self-attention (Tq == Tk); with no
    window (or one covering every key), padding (key_mask), or banded off the CPU, "sdpa" runs."""
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} is unknown; choose one of {', '.join(IMPLS)}.")
    if impl == "banded" and alibi:
        raise ValueError("impl='banded' cannot add ALiBi's bias (its flash passes take no bias); "
                         "use impl='auto' (it routes ALiBi to 'sdpa'), 'sdpa', 'eager' or 'flex'.")
    window = effective_window(window, tk)
    if probs or impl == "eager":
        return "eager"
    if impl == "auto":
        windowed_self = window is not None and tq == tk and not needs_grad
        if device_type == "cuda":
            return ("flex" if windowed_self and tk >= FLEX_MIN_KEYS_CUDA and flex_available()
                    else "sdpa")
        if not windowed_self or tk < BANDED_MIN_KEYS or device_type != "cpu" or alibi:
            return "sdpa"
        return "banded"
    if impl == "sdpa" or window is None:
        return "sdpa"
    if tq != tk:
        raise ValueError(f"impl={impl!r} is the sliding-window path for self-attention and needs "
                         f"Tq == Tk; got Tq={tq}, Tk={tk}.")
    if key_mask or (impl == "banded" and device_type != "cpu"):
        return "sdpa"  # padding, or no flash kernel off the CPU: masked SDPA
    return impl


def flex_available() -> bool:
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def sdpa_repeats_kv(device_type: str, dtype: torch.dtype) -> bool:
    """Whether grouped K/V are copied up to the query heads before SDPA. On CUDA in fp32,
    SDPA's enable_gqa has no flash or efficient kernel and runs the math path (H100,
    2026-11-27, NOTES.md: 12 query / 2 KV heads at n = 4,096, 4.27 ms, against 1.15 ms for
    repeat_interleave then flash); in bf16/fp16 enable_gqa runs flash, as fast as MHA, and
    the CPU kernels take Hkv < Hq as they are."""
    return device_type == "cuda" and dtype == torch.float32


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
    query_at = torch.arange(tk - tq, tk, device=device)[None, None, :, None]  # key index of each query
    key_at = torch.arange(tk, device=device)[None, None, None, :]
    # under padding the sinks are the first `sinks` real tokens of each row
    rank = None if key_mask is None else (key_mask.cumsum(dim=-1) - 1)[:, None, None, :]  # (B, 1, 1, Tk)
    allowed = key_allowed(query_at, key_at, window, sinks, rank)
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
    """ALiBi's -m_h·(i - j): (B, Hq, Tq, Tk) from slopes (Hq,) and true positions, computed in
    fp32 at least (bf16 cannot hold distances past 256 exactly) and given in `dtype`."""
    query_pos, key_pos = positions
    exact = torch.promote_types(dtype, torch.float32)
    distance = (query_pos[:, :, None] - key_pos[:, None, :]).to(exact)  # (B, Tq, Tk)
    return (-slopes.to(exact)[None, :, None, None] * distance[:, None]).to(dtype)


def eager_attention(q, k, v, window=None, key_mask=None, sinks=0, alibi=None, positions=None,
                    dropout=0.0):
    """Reference: (output (B, Hq, Tq, D), probabilities (B, Hq, Tq, Tk)). With dropout > 0
    the probabilities are dropped (and rescaled) before they weigh the values, as in training;
    the returned probabilities are the ones before dropout."""
    b, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    q_grouped = q.view(b, hkv, hq // hkv, tq, d)  # (B, Hkv, G, Tq, D): head h = kv*G + g
    scores = q_grouped @ k.unsqueeze(2).transpose(-1, -2) / math.sqrt(d)  # (B, Hkv, G, Tq, Tk)
    if alibi is not None:
        positions = alibi_positions(positions, b, tq, tk, q.device)
        scores = scores + alibi_bias(alibi, positions, q.dtype).view(b, hkv, hq // hkv, tq, tk)
    allowed = allowed_mask(tq, tk, window, key_mask, q.device, sinks).unsqueeze(2)
    probs = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
    weights = F.dropout(probs, dropout, training=True) if dropout > 0 else probs
    out = weights @ v.unsqueeze(2)  # (B, Hkv, G, Tq, D)
    return out.reshape(b, hq, tq, d), probs.reshape(b, hq, tq, tk)


def sdpa_attention(q, k, v, window=None, sinks=0, key_mask=None, alibi=None, positions=None):
    """torch's fused kernel; K/V stay at Hkv heads (enable_gqa) except where
    `sdpa_repeats_kv`. ALiBi goes in as a float mask: its bias, -inf where a key is not
    allowed."""
    tq, tk = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    if gqa and sdpa_repeats_kv(q.device.type, q.dtype):
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (B, Hq, Tk, D)
        gqa = False
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
    # row r of a chunk is the query at column r + window - 1 of its span: it sees columns
    # r .. r+window-1
    band_mask = _additive(key_allowed(torch.arange(c, device=q.device)[:, None] + window - 1,
                                      torch.arange(c + window - 1, device=q.device)[None, :],
                                      window), q.dtype)  # (c, span)
    for bi in range(b):
        qb, kb, vb = q[bi:bi + 1], k[bi:bi + 1], v[bi:bi + 1]  # (1, H, T, D)
        for first in range(0, head, rows_per_call):  # rows first .. last-1 see keys 0 .. i
            last = min(head, first + rows_per_call)
            causal = key_allowed(torch.arange(first, last, device=q.device)[:, None],
                                 torch.arange(last, device=q.device)[None, :])
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
    key_at = torch.arange(n_sinks, device=q.device)[None, :]
    # allowed as sinks, not by the window alone
    older = (key_allowed(query_at, key_at, window, sinks)
             & ~key_allowed(query_at, key_at, window))  # (R, s)
    q_grouped = q[:, :, rows].reshape(1, hkv, hq // hkv, -1, d)
    scores = q_grouped @ k[:, :, :n_sinks].unsqueeze(2).transpose(-1, -2) / math.sqrt(d)  # (1, Hkv, G, R, s)
    scores = scores.masked_fill(~older, float("-inf"))
    sink_lse = scores.logsumexp(dim=-1)
    sink_out = (scores - sink_lse[..., None]).exp() @ v[:, :, :n_sinks].unsqueeze(2)  # (1, Hkv, G, R, D)
    sink_lse = sink_lse.reshape(band_lse.shape)
    top = torch.maximum(band_lse, sink_lse)
    w_band, w_sink = (band_lse - top).exp()[..., None], (sink_lse - top).exp()[..., None]
    band_out.mul_(w_band).add_(sink_out.reshape(band_out.shape).mul_(w_sink)).div_(w_band + w_sink)


# FlexAttention: one compiled kernel per shape (B, H, T, D, dtype, device, with or without
# ALiBi), whatever the window, sinks or slopes: the mask and score functions below close over
# tensors only, which the compiled graph takes as inputs (numbers would be baked in and
# recompile). Blocks of 128: on CUDA in fp32, 64 fails to compile (NOTES.md, 2026-11-27).
FLEX_BLOCK = 128
_flex_compiled: set = set()  # the shapes compiled so far in this process


def flex_attention(q, k, v, window, sinks=0, alibi=None, positions=None):
    block_mask = sliding_block_mask(q.shape[2], window, sinks, q.device)
    score_mod = None
    if alibi is not None:
        score_mod = _alibi_score(alibi.float(), *(p.to(q.device).contiguous() for p in positions))
    out = _compiled_flex()(q, k, v, score_mod=score_mod, block_mask=block_mask,
                           enable_gqa=q.shape[1] != k.shape[1])
    _flex_compiled.add(flex_shape(q.shape, k.shape[1], q.dtype, q.device, alibi is not None))
    return out


def flex_shape(q_shape, n_kv_head, dtype, device, alibi=False) -> tuple:
    b, hq, t, d = q_shape
    return (b, hq, n_kv_head, t, d, str(dtype), torch.device(device).type, bool(alibi))


def flex_is_compiled(q_shape, n_kv_head, dtype, device, alibi=False) -> bool:
    """Whether attention on q (B, Hq, T, D) through flex has been compiled in this process
    already: a page can say "compiling the window kernel for n = ..., once" before the call."""
    return flex_shape(q_shape, n_kv_head, dtype, device, alibi) in _flex_compiled


def _sliding_mask(window, sinks):
    """flex's mask_mod for key_allowed; window and sinks are 0-d tensors."""
    def mask_mod(b, h, q_idx, kv_idx):
        return key_allowed(q_idx, kv_idx, window, sinks)
    return mask_mod


def _alibi_score(slopes, query_pos, key_pos):
    """flex's score_mod for ALiBi: slopes (Hq,) fp32, true positions (B, Tq) and (B, Tk) as
    integers: the distance is exact and the bias computed in fp32 whatever the score's dtype."""
    def score_mod(score, b, h, q_idx, kv_idx):
        bias = slopes[h] * (query_pos[b, q_idx] - key_pos[b, kv_idx])
        return score - bias.to(score.dtype)
    return score_mod


@lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention as flex

    # every shape is one compiled entry; past dynamo's default limit (8) it would silently
    # run flex unfused, materializing the scores
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    return torch.compile(flex, dynamic=False)


@lru_cache(maxsize=32)
def sliding_block_mask(t, window, sinks, device):
    """The block mask for self-attention over t tokens, cached per (t, window, sinks, device)."""
    from torch.nn.attention.flex_attention import create_block_mask

    as_tensor = lambda x: torch.tensor(x, device=device)  # noqa: E731
    return create_block_mask(_sliding_mask(as_tensor(window), as_tensor(sinks)), None, None,
                             t, t, device=device, BLOCK_SIZE=FLEX_BLOCK)


# The kernels `resolve` chooses between, one calling convention: (q, k, v, window, sinks,
# key_mask=, alibi=, positions=) -> output. Looked up at call time (tests replace one).
KERNELS = {
    "eager": lambda q, k, v, window, sinks, key_mask=None, alibi=None, positions=None:
        eager_attention(q, k, v, window, key_mask, sinks, alibi, positions)[0],
    "sdpa": lambda *args, **kwargs: sdpa_attention(*args, **kwargs),
    "banded": lambda q, k, v, window, sinks, **_: banded_attention(q, k, v, window, sinks),
    "flex": lambda q, k, v, window, sinks, key_mask=None, alibi=None, positions=None:
        flex_attention(q, k, v, window, sinks, alibi, positions),
}
