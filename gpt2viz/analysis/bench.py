"""Latency and memory, measured: attention kernels, whole-model forward, and generation
(bench_cli.py puts these on the command line).

Every row: median of `repeats` timed runs after one warm-up call whose time is reported
apart as first_s (it includes any compile), the fastest and slowest repeat (min_s, max_s),
peak memory, and the analytic FLOPs and bytes next to the measurement. Dense causal SDPA is
measured in the same run as a reference row.

Two memory figures per row, because each sees what the other cannot:
- peak_bytes, the tensor high-water mark: live tensor storage allocated during one call (a
  TorchDispatchMode that sees every tensor an op returns and its release; views of the
  inputs are not allocations). It leaves out the inputs and scratch inside a fused kernel.
  On CUDA it is torch.cuda.max_memory_allocated above the inputs.
- process_peak_bytes, process memory: how far the resident set rose above where it was
  during one call (Linux: the peak is reset through /proc/self/clear_refs, freed heap
  returned with malloc_trim first). It sees a fused kernel's scratch and everything else the
  process touched, allocator slack included; None where the kernel does not allow it.
"""
from __future__ import annotations

import ctypes
import statistics
import time
import weakref
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from gpt2viz.core.attention import attention, resolve
from gpt2viz.core.config import ModelConfig, kv_head_choices
from gpt2viz.core.kv_cache import KVCache
from gpt2viz.core.model import GPT2
from gpt2viz.core.resources import ensure_fits, memory_shortfall
from gpt2viz.training.train import param_count
from gpt2viz.weights.checkpoints import load_hf_gpt2


@dataclass
class Measurement:
    first_s: float
    median_s: float
    peak_bytes: int | None
    times: list  # every timed repeat, seconds: the spread a median hides
    process_bytes: int | None = None


class _PeakTensorMemory(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.storages = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # a view or an in-place result shares an input's storage: nothing was allocated
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
                if size and key not in self.storages and key not in inputs:
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


def _resident_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


def process_peak_bytes(fn) -> int | None:
    """How far the process's resident memory rose during fn(), or None where it cannot be
    measured (not Linux, or /proc/self/clear_refs not writable)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap back to the OS: reuse would hide growth
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset the peak (VmHWM) to the current resident size
        before = _resident_bytes("VmRSS:")
    except OSError:
        return None
    fn()
    return max(0, _resident_bytes("VmHWM:") - before)


def measure(fn, repeats=5, device=torch.device("cpu"), track_memory=True) -> Measurement:
    """track_memory=False for compiled code, which cannot run under a dispatch mode on CPU.
    The first timed repeat also reads process memory (reading /proc costs nothing timed)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []

    def timed():
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)

    with torch.inference_mode():
        timed()
        first = times.pop()
        process = process_peak_bytes(timed) if device.type == "cpu" else None
        if process is None and device.type == "cpu":
            timed()  # /proc/self/clear_refs not writable: still one timed repeat here
        for _ in range(repeats - 1):
            timed()
        peak = peak_memory(fn, device) if track_memory or device.type == "cuda" else None
    return Measurement(first, statistics.median(times), peak, times, process)


# ------------------------------------------------------------------ analytic costs
def fit_slope(xs, ys) -> float:
    """Exponent p of y ~ x^p, least squares on log-log: ~2 for dense attention in n,
    ~1 for a sliding window."""
    return float(np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)[0])


HEAD_DIM = 64  # GPT-2's head size: the attention bench's default, and the Latency page's


@dataclass(frozen=True)
class EstimateRates:
    """What the up-front estimates charge on one kind of device, a little below what it
    measured: useful FLOP/s per kernel (masked SDPA and eager compute every query-key pair,
    so they are charged n^2), a fixed cost per call, and for generation the bytes/s a step
    reads and a fixed cost per step. The stored runs' took / estimated on this machine and
    device (measurements.estimate_factor) correct them wherever they are off."""
    flops: dict
    call_s: float
    read_bytes_s: float
    step_s: float


ESTIMATE_RATES = {
    # 2 CPU cores of this project's machines (README's tables)
    "cpu": EstimateRates({"eager": 4e9, "sdpa": 120e9, "sdpa masked": 30e9, "banded": 50e9,
                          "flex": 50e9}, call_s=1e-3, read_bytes_s=1e10, step_s=1.5e-3),
    # a datacenter GPU in fp32 (no tensor cores); a decode step is bound by kernel launches
    "cuda": EstimateRates({"eager": 2e12, "sdpa": 20e12, "sdpa masked": 5e12, "banded": 5e12,
                           "flex": 10e12}, call_s=1e-4, read_bytes_s=1e12, step_s=3e-3),
}


def estimate_rates(device="cpu") -> EstimateRates:
    """The rates of this device's kind (an unknown kind is charged as a CPU)."""
    return ESTIMATE_RATES.get(torch.device(device).type, ESTIMATE_RATES["cpu"])


def estimate_seconds(plan, n_head=12, head_dim=HEAD_DIM, repeats=5, device="cpu") -> float:
    """Before a run: warm-up + repeats + one tensor-memory pass per row."""
    rates, total = estimate_rates(device), 0.0
    for n, w, _, impl in plan:
        kind = impl.split()[0]
        if kind == "eager" or (kind == "sdpa" and w is not None and w < n):
            work, rate = 4 * n_head * n * n * head_dim, rates.flops[
                "eager" if kind == "eager" else "sdpa masked"]
        else:
            work, rate = attention_flops(n, w, n_head, head_dim), rates.flops[kind]
        total += (work / rate + rates.call_s) * (repeats + 2)
    return total


def estimate_forward_seconds(configs: dict, seq_lens, repeats=3, device="cpu") -> float:
    rates = estimate_rates(device)
    return sum((forward_flops(cfg, n) / rates.flops["sdpa masked"] + rates.call_s) * (repeats + 2)
               for cfg in configs.values() for n in seq_lens)


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


_FORWARD_RATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> FLOP/s


@torch.no_grad()
def measured_forward_rate(model: GPT2, tokens: int = 256) -> float:
    """FLOP/s (forward_flops) of this model's own forward pass on its device: the faster of two
    timed passes over `tokens` tokens, once per model. An estimate of a longer pass scales it,
    so it follows this machine, device and model rather than a constant; a short pass runs
    less efficiently than a long one, so the estimate errs long."""
    if model not in _FORWARD_RATES:
        tokens = min(tokens, model.config.max_seq_len)
        device = model.wte.weight.device
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        ids = torch.zeros(1, tokens, dtype=torch.long, device=device)
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            model(ids)
            sync()
            seconds.append(time.perf_counter() - start)
        _FORWARD_RATES[model] = forward_flops(model.config, tokens) / min(seconds)
    return _FORWARD_RATES[model]


def estimate_pass_seconds(model: GPT2, tokens: int) -> float:
    """One forward pass over `tokens` tokens, from measured_forward_rate."""
    return forward_flops(model.config, tokens) / measured_forward_rate(model)


def kernel_that_runs(impl: str, n: int, window: int | None, device_type: str = "cpu") -> str:
    """What attention(q, k, v, window, impl) runs for self-attention over n tokens, as
    attention.resolve decides it, so a row is labelled by the kernel it measured. The dense
    causal baseline ("sdpa (dense causal)") calls torch's SDPA directly."""
    if impl.startswith("sdpa ("):
        return impl
    return resolve(n, n, window, device_type, impl=impl)


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
def attention_plan(seq_lens, windows, kv_heads, impls, n_head=12, head_dim=HEAD_DIM, batch=1,
                   device="cpu"):
    """The rows a run will measure, dense causal SDPA first at each n: those that fit in
    `device`'s memory (the others are skipped, see `plan_with_skips`)."""
    return plan_with_skips(seq_lens, windows, kv_heads, impls, n_head, head_dim, batch, device)[0]


def plan_with_skips(seq_lens, windows, kv_heads, impls, n_head=12, head_dim=HEAD_DIM, batch=1,
                    device="cpu"):
    """(rows that fit, [(n, window, kv heads, impl, why not)] for those that do not). A plan
    where nothing fits is refused (MemoryError) before anything runs."""
    rows = [(n, None, n_head, "sdpa (dense causal)") for n in seq_lens]
    rows += [(n, w, kv, impl) for n in seq_lens for w in windows for kv in kv_heads for impl in impls]
    plan, skipped = [], []
    for n, w, kv, impl in rows:
        if kv not in kv_head_choices(n_head):
            raise ValueError(f"n_kv_head={kv} does not divide n_head={n_head}.")
        problem = memory_shortfall(
            attention_memory_estimate(impl.split()[0], n, w, n_head, kv, head_dim, batch),
            f"attention impl={impl} at n={n}, window={w}", device)
        if problem:
            skipped.append((n, w, kv, impl, problem))
        else:
            plan.append((n, w, kv, impl))
    if not plan:
        raise MemoryError(skipped[0][-1])
    return plan, skipped


def bench_attention(seq_lens, windows, kv_heads, impls, n_head=12, head_dim=HEAD_DIM, batch=1,
                    repeats=5, device="cpu", progress=None, dtype=torch.float32) -> list[dict]:
    """One row per (n, window, kv heads, impl), plus dense causal SDPA at each n. A row that
    would not fit in the device's memory is not run: it stays in the table with a note."""
    device = torch.device(device)
    plan, skipped = plan_with_skips(seq_lens, windows, kv_heads, impls, n_head, head_dim, batch,
                                    device)
    rows, dense_time = [], {}
    for i, (n, w, kv, impl) in enumerate(plan):
        if progress:
            progress(i, len(plan), f"{impl} n={n} window={w} kv_heads={kv}")
        gen = torch.Generator().manual_seed(0)
        q = torch.randn(batch, n_head, n, head_dim, generator=gen).to(device, dtype)
        k, v = (torch.randn(batch, kv, n, head_dim, generator=gen).to(device, dtype) for _ in range(2))
        if impl.startswith("sdpa (dense"):
            fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
        else:
            fn = lambda: attention(q, k, v, window=w, impl=impl)  # noqa: E731
        m = measure(fn, repeats, device, track_memory=impl != "flex")
        if impl.startswith("sdpa (dense"):
            dense_time[n] = m.median_s
        flops = attention_flops(n, w, n_head, head_dim, batch)
        rows.append({"bench": "attention", "impl": impl, "n": n, "window": w,
                     "dtype": str(dtype).removeprefix("torch."),
                     "ran": kernel_that_runs(impl, n, w, device.type), "n_head": n_head,
                     "n_kv_head": kv, "head_dim": head_dim, "first_s": m.first_s,
                     "median_s": m.median_s, "min_s": min(m.times), "max_s": max(m.times),
                     "vs_dense": m.median_s / dense_time[n] if n in dense_time else None,
                     "peak_bytes": m.peak_bytes, "process_peak_bytes": m.process_bytes,
                     "flops": flops,
                     "gflop_rate": flops / m.median_s / 1e9,
                     "min_bytes": attention_bytes(n, n_head, kv, head_dim, batch)})
    rows += [{"bench": "attention", "impl": impl, "n": n, "window": w, "n_kv_head": kv,
              "note": f"skipped: {problem}"} for n, w, kv, impl, problem in skipped]
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
        problem = memory_shortfall(model.generate_bytes(batch, n) + batch * n * cfg.vocab_size * 4,
                                   f"a forward pass of {name} at n={n}", device)
        if problem:
            rows.append({"bench": "forward", "variant": name, "n": n, "note": f"skipped: {problem}"})
            continue
        idx = torch.randint(0, cfg.vocab_size, (batch, n), device=device)
        m = measure(lambda: model(idx), repeats, device)
        rows.append({"bench": "forward", "variant": name, "n": n, "window": cfg.window,
                     "n_kv_head": cfg.n_kv_head, "first_s": m.first_s, "median_s": m.median_s,
                     "min_s": min(m.times), "max_s": max(m.times),
                     "peak_bytes": m.peak_bytes, "process_peak_bytes": m.process_bytes,
                     "params": model.num_params(),
                     "flops": forward_flops(cfg, n, batch),
                     "attention_flops": cfg.n_layer * attention_flops(n, cfg.window, cfg.n_head,
                                                                      cfg.head_dim, batch),
                     "kv_cache_bytes": cfg.kv_cache_bytes(n, batch)})
    if progress:
        progress(len(plan), len(plan), "done")
    return rows


DECODE_CONTEXTS = (256, 512, 1024, 2048, 4096, 8192)
# GPT-2 small's 12 heads (of 32 dims) over 4 layers and the dashboard's vocabulary: per token,
# reading an MHA cache of c tokens costs c / (6 * d_model) times reading the weights, so at
# d_model 384 the cache, not the weights or per-step overhead, decides latency from ~2k tokens.
DECODE_BODY = ModelConfig(vocab_size=5008, n_layer=4, n_head=12, d_model=384)


def attention_kinds(window: int, sinks: int) -> dict[str, dict]:
    """Full attention, a window, the window plus sinks: the three caches a decode run compares."""
    return {"full": dict(window=None, sinks=0), f"window {window}": dict(window=window, sinks=0),
            f"window {window} + {sinks} sinks": dict(window=window, sinks=sinks)}


def decode_family(base: ModelConfig = DECODE_BODY, window: int = 256,
                  sinks: int = 4) -> dict[str, ModelConfig]:
    """MHA / GQA / MQA x full / window / window + sinks on one body (RoPE positions: no
    table to run out): what sharing K/V heads and a rolling buffer do to the cache and to
    each new token."""
    gqa = max(2, base.n_head // 4)
    kv_heads = {"MHA": base.n_head, f"GQA {gqa}": gqa, "MQA": 1}
    return {f"{kv_name} · {kind}": base.replace(n_kv_head=kv, position="rope", **attention)
            for kv_name, kv in kv_heads.items() for kind, attention in attention_kinds(window, sinks).items()}


def pretrained_family(model: GPT2, window: int = 256, sinks: int = 4) -> dict[str, GPT2]:
    """A pretrained model under full attention, a window and the window plus sinks: copies
    that share its weights (experiments.reconfigured), for bench_decode's `models`."""
    from gpt2viz.analysis.experiments import reconfigured

    return {f"{model.pretrained} · {kind}": reconfigured(model, **attention)
            for kind, attention in attention_kinds(window, sinks).items()}


def decode_plan(configs: dict[str, ModelConfig], contexts, steps: int = 8,
                device="cpu") -> dict[str, ModelConfig]:
    """The configs a decode run builds (positions long enough for the longest context and up
    to 16 steps, so one config, and its cached parameter count, serves every step setting),
    checked up front: a run whose weights and cache would not fit is refused."""
    longest = max(contexts) + steps + 1  # + the warm-up step
    planned = {}
    for name, cfg in configs.items():
        positions = max(contexts) + max(steps, 16) + 1
        cfg = cfg.replace(max_seq_len=max(cfg.max_seq_len, positions), dropout=0.0)
        ensure_fits(4 * param_count(cfg) + cfg.kv_cache_bytes(longest),
                    f"decoding {name} after {max(contexts)} tokens", device)
        planned[name] = cfg
    return planned


def estimate_decode_seconds(configs: dict[str, ModelConfig], contexts, steps: int = 8,
                            device="cpu") -> float:
    """A model to build per variant (on the CPU, then moved), then per context: fill the
    cache, and `steps` tokens that each read the weights and the cache plus a fixed cost."""
    rates, total = estimate_rates(device), 0.0
    for cfg in decode_plan(configs, contexts, steps).values():
        weights = 4 * param_count(cfg)  # fp32
        total += 0.05 + weights / 1e9
        for n in contexts:
            cache = cfg.kv_cache_bytes(n + steps)
            total += 5 * rates.call_s + cache / rates.read_bytes_s * 10 + steps * (
                rates.step_s + (weights + cache) / rates.read_bytes_s)
    return total


def bench_decode(configs: dict[str, ModelConfig], contexts=DECODE_CONTEXTS, steps: int = 8,
                 device="cpu", progress=None, models: dict[str, GPT2] | None = None) -> list[dict]:
    """Cached greedy decoding at each context length: the median latency of `steps`
    one-token steps once the cache holds that many tokens (after one warm-up step, timed apart
    as first_ms), and the cache's bytes: what its
    tensors were allocated beside the analytic slots x 2 * n_layer * n_kv_head * head_dim * 4.
    models: the weights to decode with for some names (a pretrained model: pretrained_family,
    on the device already); every other config gets random weights.

    The cache is brought to n tokens as a prompt would leave it (the same slots, positions
    and rolling), with random K/V instead of a forward pass over the prompt: the time of a
    step does not depend on the values, and an 8192-token prefill would cost seconds."""
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    planned = decode_plan(configs, contexts, steps, device)
    plan = [(name, n) for name in planned for n in contexts]
    rows, model = [], None
    for i, (name, n) in enumerate(plan):
        if progress:
            progress(i, len(plan), f"decode {name} after {n} tokens")
        cfg = planned[name]
        if model is None or model.config != cfg:
            model = None  # one model alive at a time
            if models and name in models:  # its own weights, shared: positions for the longest context
                model = GPT2.from_weights(cfg, models[name].state_dict())
            else:
                torch.manual_seed(0)
                model = GPT2(cfg).to(device).eval()
        generator = torch.Generator(device=device).manual_seed(n)
        times = []
        with torch.inference_mode():
            cache = KVCache(cfg, 1, n + steps + 1, device, model.wte.weight.dtype)
            cache.begin(torch.arange(n, device=device)[None], None)
            for layer in range(cfg.n_layer):
                k, v = (torch.randn(1, cfg.n_kv_head, n, cfg.head_dim, device=device,
                                    generator=generator) for _ in range(2))
                cache.store(layer, k, v)
            token = torch.zeros(1, 1, dtype=torch.long, device=device)
            for _ in range(steps + 1):  # the first is the warm-up
                sync()
                start = time.perf_counter()
                token = model.decode_step(token, cache)[:, -1].argmax(dim=-1, keepdim=True)
                sync()
                times.append(time.perf_counter() - start)
        rows.append({"bench": "decode", "variant": name, "context": n, "n_kv_head": cfg.n_kv_head,
                     "window": cfg.window, "sinks": cfg.sinks,
                     "ms_per_token": statistics.median(times[1:]) * 1e3, "first_ms": times[0] * 1e3,
                     "min_ms": min(times[1:]) * 1e3, "max_ms": max(times[1:]) * 1e3,
                     "cache_slots": cache.slots, "cache_bytes": cache.nbytes,
                     "cache_bytes_analytic": cfg.kv_cache_bytes(n + steps + 1),
                     "cache_bytes_per_token": cfg.kv_cache_bytes_per_token()})
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
    model = load_hf_gpt2(hf[1]) if hf else GPT2(config).eval()
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
