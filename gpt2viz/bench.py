"""Latency and memory, measured: attention kernels, whole-model forward, and generation.

Every row: median of `repeats` timed runs after one warm-up call whose time is reported
apart as first_s (it includes any compile), the fastest and slowest repeat (min_s, max_s),
peak memory, and the analytic FLOPs and bytes next to the measurement. Dense causal SDPA is
measured in the same run as a reference row.

Peak memory on CPU is the high-water mark of live tensor storage allocated during one call
(a TorchDispatchMode that sees every tensor an op returns and its release): it counts what
PyTorch allocates during the call, not the inputs that exist before it, and not scratch
inside a fused kernel. On CUDA it is torch.cuda.max_memory_allocated above the inputs.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
import sys
import time
import weakref
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .attention import attention, choose_impl
from .config import ModelConfig
from .model import GPT2
from .resources import ensure_fits, format_bytes


@dataclass
class Measurement:
    first_s: float
    median_s: float
    peak_bytes: int | None
    times: list  # every timed repeat, seconds: the spread a median hides


class _PeakTensorMemory(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.storages = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
                if size and key not in self.storages:
                    self.storages.add(key)
                    self.live += size
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._release, key, size)
        return out

    def _release(self, key, size):
        self.live -= size
        self.storages.discard(key)


def peak_memory(fn, device) -> int | None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    tracker = _PeakTensorMemory()
    with tracker:
        fn()
    return tracker.peak


def measure(fn, repeats=5, device=torch.device("cpu"), track_memory=True) -> Measurement:
    """track_memory=False for compiled code, which cannot run under a dispatch mode on CPU."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        start = time.perf_counter()
        fn()
        sync()
        first = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        peak = peak_memory(fn, device) if track_memory or device.type == "cuda" else None
    return Measurement(first, statistics.median(times), peak, times)


# ------------------------------------------------------------------ analytic costs
def fit_slope(xs, ys) -> float:
    """Exponent p of y ~ x^p, least squares on log-log: ~2 for dense attention in n,
    ~1 for a sliding window."""
    return float(np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)[0])


# Conservative rates for the up-front estimate (2 CPU cores; README has the measured ones).
ESTIMATE_RATE = {"eager": 4e9, "sdpa": 30e9, "banded": 30e9, "flex": 30e9}


def estimate_seconds(plan, n_head=12, head_dim=64, repeats=5) -> float:
    """Before a run: warm-up + repeats + one memory pass per row."""
    return sum(attention_flops(n, w, n_head, head_dim) * (repeats + 2) / ESTIMATE_RATE[impl.split()[0]]
               for n, w, _, impl in plan)



def attended_pairs(n: int, window: int | None) -> int:
    """Query-key pairs a causal (windowed) attention must score: sum over i of min(i+1, w)."""
    if window is None or window >= n:
        return n * (n + 1) // 2
    return window * (window + 1) // 2 + (n - window) * window


def attention_flops(n, window, n_head, head_dim, batch=1) -> int:
    """QK^T and PV, two flops per multiply-add each."""
    return 4 * batch * n_head * attended_pairs(n, window) * head_dim


def forward_flops(config: ModelConfig, n: int, batch: int = 1) -> int:
    """Every matmul of one forward pass, two flops per multiply-add: per token and layer the
    q, k, v and output projections and the 4x MLP, then the attention scores, then the LM
    head over the whole vocabulary. Layer norms, GELU and softmax (O(n*d)) are left out."""
    d, kv_width = config.d_model, config.n_kv_head * config.head_dim
    per_token_layer = 2 * (d * d + 2 * d * kv_width + d * d) + 2 * (2 * d * 4 * d)
    dense = batch * n * (config.n_layer * per_token_layer + 2 * d * config.vocab_size)
    return dense + config.n_layer * attention_flops(n, config.window, config.n_head,
                                                    config.head_dim, batch)


def kernel_that_runs(impl: str, n: int, window: int | None, device_type: str = "cpu") -> str:
    """What attention(q, k, v, window, impl) runs for self-attention over n tokens, so a row
    is labelled by the kernel it measured: a window that covers every key is full causal
    attention (dense SDPA), and the banded kernel needs the CPU (elsewhere: masked SDPA)."""
    if impl == "eager" or impl.startswith("sdpa"):
        return impl
    if window is None or window >= n:
        return "sdpa"
    if impl == "auto":
        return choose_impl(n, n, window, device_type)
    if impl == "banded" and device_type != "cpu":
        return "sdpa"
    return impl


def attention_bytes(n, n_head, n_kv_head, head_dim, batch=1, itemsize=4) -> int:
    """The least any kernel moves: read q, k, v once and write the output."""
    return batch * n * head_dim * (2 * n_head + 2 * n_kv_head) * itemsize


def attention_memory_estimate(impl, n, window, n_head, n_kv_head, head_dim, batch=1) -> int:
    io_bytes = attention_bytes(n, n_head, n_kv_head, head_dim, batch)
    if impl == "eager" or (impl == "sdpa" and window is not None):
        return io_bytes + 3 * batch * n_head * n * n * 4  # scores, mask, probabilities
    if impl in ("banded", "flex"):
        return io_bytes * 4 + batch * n_head * n * 2 * (window or n) * 4
    return io_bytes * 2


# ------------------------------------------------------------------ attention kernels
def attention_plan(seq_lens, windows, kv_heads, impls, n_head=12, head_dim=64, batch=1):
    """The rows a run will measure, dense causal SDPA first at each n, checked up front:
    a plan that would not fit in memory is refused before anything runs."""
    plan = [(n, None, n_head, "sdpa (dense causal)") for n in seq_lens]
    plan += [(n, w, kv, impl) for n in seq_lens for w in windows for kv in kv_heads for impl in impls]
    for n, w, kv, impl in plan:
        if kv < 1 or n_head % kv:
            raise ValueError(f"n_kv_head={kv} does not divide n_head={n_head}.")
        ensure_fits(attention_memory_estimate(impl.split()[0], n, w, n_head, kv, head_dim, batch),
                    f"attention impl={impl} at n={n}, window={w}")
    return plan


def bench_attention(seq_lens, windows, kv_heads, impls, n_head=12, head_dim=64, batch=1,
                    repeats=5, device="cpu", progress=None) -> list[dict]:
    """One row per (n, window, kv heads, impl), plus dense causal SDPA at each n."""
    device = torch.device(device)
    plan = attention_plan(seq_lens, windows, kv_heads, impls, n_head, head_dim, batch)
    rows, dense_time = [], {}
    for i, (n, w, kv, impl) in enumerate(plan):
        if progress:
            progress(i, len(plan), f"{impl} n={n} window={w} kv_heads={kv}")
        gen = torch.Generator().manual_seed(0)
        q = torch.randn(batch, n_head, n, head_dim, generator=gen).to(device)
        k, v = (torch.randn(batch, kv, n, head_dim, generator=gen).to(device) for _ in range(2))
        if impl.startswith("sdpa (dense"):
            fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
        else:
            fn = lambda: attention(q, k, v, window=w, impl=impl)  # noqa: E731
        m = measure(fn, repeats, device, track_memory=impl != "flex")
        dense_time.setdefault(n, m.median_s)
        flops = attention_flops(n, w, n_head, head_dim, batch)
        rows.append({"bench": "attention", "impl": impl, "n": n, "window": w,
                     "ran": kernel_that_runs(impl, n, w, device.type), "n_head": n_head,
                     "n_kv_head": kv, "head_dim": head_dim, "first_s": m.first_s,
                     "median_s": m.median_s, "min_s": min(m.times), "max_s": max(m.times),
                     "vs_dense": m.median_s / dense_time[n],
                     "peak_bytes": m.peak_bytes, "flops": flops,
                     "gflop_rate": flops / m.median_s / 1e9,
                     "min_bytes": attention_bytes(n, n_head, kv, head_dim, batch)})
    if progress:
        progress(len(plan), len(plan), "done")
    return rows


# ------------------------------------------------------------------ whole models
def bench_forward(configs: dict[str, ModelConfig], seq_lens, batch=1, repeats=3, device="cpu",
                  progress=None) -> list[dict]:
    device = torch.device(device)
    rows, plan = [], [(name, n) for name in configs for n in seq_lens]
    for i, (name, n) in enumerate(plan):
        cfg = configs[name]
        cfg.check_seq_len(n)
        if progress:
            progress(i, len(plan), f"forward {name} n={n}")
        torch.manual_seed(0)
        model = GPT2(cfg).to(device).eval()
        idx = torch.randint(0, cfg.vocab_size, (batch, n), device=device)
        ensure_fits(model.generate_bytes(batch, n) + batch * n * cfg.vocab_size * 4,
                    f"a forward pass of {name} at n={n}")
        m = measure(lambda: model(idx), repeats, device)
        rows.append({"bench": "forward", "variant": name, "n": n, "window": cfg.window,
                     "n_kv_head": cfg.n_kv_head, "first_s": m.first_s, "median_s": m.median_s,
                     "min_s": min(m.times), "max_s": max(m.times),
                     "peak_bytes": m.peak_bytes, "params": model.num_params(),
                     "flops": forward_flops(cfg, n, batch),
                     "attention_flops": cfg.n_layer * attention_flops(n, cfg.window, cfg.n_head,
                                                                      cfg.head_dim, batch),
                     "kv_cache_bytes": cfg.kv_cache_bytes(n, batch)})
    if progress:
        progress(len(plan), len(plan), "done")
    return rows


GENERATE_CONFIG = ModelConfig(vocab_size=50257, n_layer=4, n_head=8, d_model=256, max_seq_len=1024)


def bench_generate(prompt_len=256, new_tokens=256, repeats=3, config=GENERATE_CONFIG,
                   with_hf=True, progress=None) -> list[dict]:
    """Greedy decoding: KV cache vs the best uncached loop (last-position logits only) vs
    Hugging Face transformers' generate on the same weights, when transformers is installed."""
    torch.manual_seed(0)
    hf = _hf_twin(config) if with_hf else None
    model = GPT2.from_hf_gpt2(hf[1]) if hf else GPT2(config).eval()
    prompt = torch.randint(0, config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(1))
    runs = {"cached": lambda: model.generate(prompt, new_tokens, temperature=0.0),
            "uncached": lambda: model.generate(prompt, new_tokens, temperature=0.0, use_cache=False)}
    if hf:
        runs["hf transformers"] = lambda: hf[0].generate(
            prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
            pad_token_id=0, attention_mask=torch.ones_like(prompt))
    outputs, rows = {}, []
    for i, (name, fn) in enumerate(runs.items()):
        if progress:
            progress(i, len(runs), f"generate {name}")
        outputs[name] = fn()
        m = measure(fn, repeats)
        rows.append({"bench": "generate", "impl": name, "prompt": prompt_len, "new_tokens": new_tokens,
                     "first_s": m.first_s, "median_s": m.median_s,
                     "ms_per_token": m.median_s / new_tokens * 1e3, "peak_bytes": m.peak_bytes,
                     "kv_cache_bytes": config.kv_cache_bytes(prompt_len + new_tokens) if name == "cached" else 0})
    for row in rows:
        row["same_tokens_as_cached"] = bool(torch.equal(outputs[row["impl"]], outputs["cached"]))
        row["vs_cached"] = row["median_s"] / rows[0]["median_s"]
    if hf:
        hf[2].cleanup()
    return rows


def _hf_twin(config: ModelConfig):
    """(HF model, folder, tempdir) with random weights, or None without transformers."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        return None
    import tempfile

    tmp = tempfile.TemporaryDirectory()
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=config.vocab_size, n_positions=config.max_seq_len,
                                    n_embd=config.d_model, n_layer=config.n_layer,
                                    n_head=config.n_head)).eval()
    hf.save_pretrained(tmp.name)
    return hf, tmp.name, tmp


# ------------------------------------------------------------------ command line
def add_bench_arguments(p):
    p.add_argument("what", nargs="?", default="attention", choices=["attention", "forward", "generate"])
    p.add_argument("--seq", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    p.add_argument("--window", type=int, nargs="+", default=[256])
    p.add_argument("--kv-heads", type=int, nargs="+", default=[12])
    p.add_argument("--impl", nargs="+", default=["sdpa", "banded", "flex"],
                   choices=["eager", "sdpa", "banded", "flex", "auto"])
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--variants", nargs="+", default=["gpt2", "rope", "gqa", "swa", "rope+gqa+swa"])
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")


def run_bench(args) -> int:
    def progress(i, total, what):
        print(f"[{i}/{total}] {what}", file=sys.stderr, flush=True)

    if args.what == "attention":
        rows = bench_attention(args.seq, args.window, args.kv_heads, args.impl, args.heads,
                               args.head_dim, repeats=args.repeats, device=args.device,
                               progress=progress)
    elif args.what == "forward":
        from .config import preset
        configs = {v: preset(v, max_seq_len=max(args.seq)) for v in args.variants}
        rows = bench_forward(configs, args.seq, repeats=args.repeats, device=args.device,
                             progress=progress)
    else:
        rows = bench_generate(args.prompt, args.new_tokens, args.repeats, progress=progress)
    print(render(rows, "json" if args.json else "csv" if args.csv else "table"))
    return 0


def render(rows: list[dict], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    cells = [[_cell(k, row.get(k)) for k in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def _cell(key, value) -> str:
    if value is None:
        return "-"
    if key.endswith("bytes"):
        return format_bytes(value)
    if key.endswith("_s"):
        return f"{value * 1e3:.1f}ms"
    if key == "flops":
        return f"{value / 1e9:.2f}G"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
