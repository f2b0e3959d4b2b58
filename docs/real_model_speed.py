"""The real model at compute speed (issue 29.4): one 2,048-token pass + loss of SmolLM2-135M,
ours beside transformers' LlamaForCausalLM on the same weights (its own GGUF loader) and the
same tokens, then a 16,384-token pass within memory; the achieved GFLOP/s against this
machine's matmul rate. Medians of `--repeats` after a warm-up; nothing else should run.
Needs transformers (requirements-dev.txt): it is the reference here, not a runtime dependency.
    .venv/bin/python docs/real_model_speed.py [--repeats 3] [--long 16384]
"""
import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gpt2viz.analysis.experiments import token_losses  # noqa: E402
from gpt2viz.text.corpus import default_text  # noqa: E402
from gpt2viz.weights import pretrained  # noqa: E402

NAME = "smollm2-135m"


def median_seconds(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def matmul_gflops() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    seconds, _ = median_seconds(lambda: a @ b, 10)
    return 2 * 2048 ** 3 / seconds / 1e9


def pass_flops(cfg, t: int) -> float:
    """Forward FLOPs of one causal pass over t tokens: every weight matmul (2 per weight per
    token), the scores and the weighted sum over the causal half, the LM head."""
    per_layer = (cfg.d_model * cfg.n_head * cfg.head_dim * 2  # q, o
                 + cfg.d_model * cfg.n_kv_head * cfg.head_dim * 2  # k, v
                 + 3 * cfg.d_model * (cfg.d_ff or 4 * cfg.d_model))  # gate, up, down
    attention = 2 * 2 * cfg.n_head * cfg.head_dim * t * (t + 1) / 2  # QK^T and PV, causal
    return cfg.n_layer * (2 * per_layer * t + attention) + 2 * cfg.d_model * cfg.vocab_size * t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--long", type=int, default=16384)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    rate = matmul_gflops()
    model, tokenizer = pretrained.load(NAME)
    cfg = model.config
    ids = torch.tensor(tokenizer.encode(default_text())[: args.long + 1])
    x, y = ids[None, : args.tokens], ids[None, 1: args.tokens + 1]
    flops = pass_flops(cfg, args.tokens)
    rows = {"machine_matmul_gflops": round(rate, 1), "threads": torch.get_num_threads(),
            "tokens": args.tokens, "pass_gflop": round(flops / 1e9, 1)}

    with torch.no_grad():
        ours_loss = float(token_losses(model, x, y).mean())
        ours_s, ours_times = median_seconds(lambda: token_losses(model, x, y).mean(), args.repeats)
    rows["ours"] = {"seconds": round(ours_s, 3), "all": [round(t, 3) for t in ours_times],
                    "loss": round(ours_loss, 5), "gflops": round(flops / ours_s / 1e9, 1)}
    if len(ids) > args.long:
        xl, yl = ids[None, : args.long], ids[None, 1: args.long + 1]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # before transformers loads: ours alone
        start = time.perf_counter()
        with torch.no_grad():
            long_loss = float(token_losses(model, xl, yl).mean())
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rows["long"] = {"tokens": args.long, "seconds": round(seconds, 1), "loss": round(long_loss, 4),
                        "gflops": round(pass_flops(cfg, args.long) / seconds / 1e9, 1),
                        "peak_rss_mib": round(peak / 1024), "peak_rss_before_mib": round(before / 1024)}
    print(json.dumps(rows), flush=True)

    import transformers

    path = pretrained.gguf_path(NAME)
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="sdpa").eval()
    with torch.no_grad():
        hf_pass = lambda: F.cross_entropy(hf(x).logits[0], y[0])  # noqa: E731
        hf_loss = float(hf_pass())
        hf_s, hf_times = median_seconds(hf_pass, args.repeats)
    rows["transformers"] = {"version": transformers.__version__, "seconds": round(hf_s, 3),
                            "all": [round(t, 3) for t in hf_times], "loss": round(hf_loss, 5),
                            "gflops": round(flops / hf_s / 1e9, 1)}
    rows["ours_over_transformers"] = round(ours_s / hf_s, 3)
    del hf
    print(json.dumps(rows), flush=True)

    print(json.dumps(rows), flush=True)


if __name__ == "__main__":
    main()
