"""`python -m gpt2viz bench attention|forward|generate`: the bench functions (bench.py) on the
command line, printed as a table, CSV or JSON (progress goes to stderr)."""
from __future__ import annotations

import csv
import io
import json
import sys

import torch

from gpt2viz.analysis.bench import (
    DECODE_CONTEXTS,
    bench_attention,
    bench_decode,
    bench_forward,
    bench_generate,
    decode_family,
)
from gpt2viz.cli.progress import ProgressBar
from gpt2viz.core.config import preset
from gpt2viz.core.resources import format_bytes


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
    p.add_argument("--contexts", type=int, nargs="+", default=list(DECODE_CONTEXTS),
                   help="generate: tokens in the KV cache at which each new token is timed, "
                        "for MHA/GQA/MQA x full/window/window+sinks (0 to skip)")
    p.add_argument("--steps", type=int, default=8, help="generate: new tokens timed per context")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")


def run_bench(args) -> int:
    progress = ProgressBar(f"bench {args.what}")

    if args.what == "attention":
        rows = bench_attention(args.seq, args.window, args.kv_heads, args.impl, args.heads,
                               args.head_dim, repeats=args.repeats, device=args.device,
                               progress=progress)
    elif args.what == "forward":
        configs = {v: preset(v, max_seq_len=max(args.seq)) for v in args.variants}
        rows = bench_forward(configs, args.seq, repeats=args.repeats, device=args.device,
                             progress=progress)
    else:
        rows = bench_generate(args.prompt, args.new_tokens, args.repeats, progress=progress)
        contexts = [n for n in args.contexts if n > 0]
        if contexts:
            decode_rows = bench_decode(decode_family(), contexts, args.steps, args.device, progress)
            if not (args.json or args.csv):  # two tables: their columns differ
                print(render(rows) + "\n")
                rows = decode_rows
            else:
                rows += decode_rows
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
    if key.endswith("bytes") or key.endswith("bytes_analytic"):
        return format_bytes(value)
    if key.endswith("_s"):
        return f"{value * 1e3:.1f}ms"
    if key == "flops":
        return f"{value / 1e9:.2f}G"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
