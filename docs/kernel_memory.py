"""Extra peak process memory of one attention call, each in a fresh process (as a new user
would measure it): ru_maxrss after the call minus before, 12 heads x 64, fp32, window 256.
"cold": the process's first attention call; "warm": after one small call (n = 600) of the
same kernel, so one-time costs (thread buffers, allocator arenas) are already paid.

    .venv/bin/python docs/kernel_memory.py [n ...]
"""
import json
import subprocess
import sys

CHILD = """
import resource, sys, torch
import torch.nn.functional as F
from gpt2viz.core.attention import attention
n, kernel, warm = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "warm"
run = {"dense causal sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
       "banded": lambda q, k, v: attention(q, k, v, window=256, impl="banded"),
       "masked sdpa": lambda q, k, v: attention(q, k, v, window=256, impl="sdpa")}[kernel]
with torch.inference_mode():
    if warm:
        small = torch.randn(1, 12, 600, 64)
        run(small, small, small)
        del small
    q, k, v = (torch.randn(1, 12, n, 64) for _ in range(3))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = run(q, k, v)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024, out.nbytes)
"""


def main(sizes):
    rows = []
    for n in sizes:
        for kernel in ("dense causal sdpa", "banded", "masked sdpa"):
            if kernel == "masked sdpa" and n > 8192:
                continue  # its n x n mask and scratch: GiBs
            row = {"n": n, "kernel": kernel}
            for state in ("cold", "warm"):
                extra, output = map(int, subprocess.check_output(
                    [sys.executable, "-c", CHILD, str(n), kernel, state], text=True).split())
                row[f"{state}_extra_rss_mib"] = round(extra / 2**20, 1)
            row["output_mib"] = output / 2**20
            rows.append(row)
            print(f"n={n:>6} {kernel:>18}: extra RSS {row['cold_extra_rss_mib']:7.1f} MiB cold, "
                  f"{row['warm_extra_rss_mib']:7.1f} MiB warm (output {row['output_mib']:.0f} MiB)",
                  file=sys.stderr, flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [8192, 16384, 32768])
