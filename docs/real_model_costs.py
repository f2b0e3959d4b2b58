"""What the pages wired for the real model cost on this machine (AppTest, one process, the
model from the shared checkpoint cache): the first draw of each page with smollm2-135m
selected, then a view-only change redrawn. Not a test: timings depend on the machine's load.
    .venv/bin/python docs/real_model_costs.py
"""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from apptest import app  # noqa: E402

NAME = "smollm2-135m"


def timed(what, fn):
    start = time.perf_counter()
    out = fn()
    print(f"{what}: {time.perf_counter() - start:.1f} s", flush=True)
    return out


def run(at, widget=None):
    """Rerun after `widget` was set (set_value returns the widget, not the app)."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


print(f"load average at the start: {os.getloadavg()[0]:.1f}", flush=True)
timed("load (first request until the model is in; the Build page)", lambda: app(variants=[NAME]))

at = timed("RoPE geometry, first draw (trace of 512 tokens, pair norms, q.k by distance)",
           lambda: app("rope", variants=[NAME]))
timed("RoPE geometry, head slider moved (view only)", lambda: run(at, at.slider[1].set_value(4)))
at = timed("RoPE geometry, a new session (traces cached)", lambda: app("rope", variants=[NAME]))

at = timed("GQA sharing, first draw (pooled 3 -> 1 on 1,024 tokens, prompt trace)",
           lambda: app("gqa", variants=[NAME]))
timed("GQA sharing, layer slider moved (view only)", lambda: run(at, at.slider[0].set_value(17)))
at = timed("GQA sharing, a new session (pooling cached)", lambda: app("gqa", variants=[NAME]))

at = app("performance", variants=[NAME])
run(at, at.radio[0].set_value("Generation vs context length"))
timed("Latency & memory: decode run, contexts 256..8192, 8 steps, full / window 256 / + 4 sinks",
      lambda: run(at, at.button[0].click()))
timed("Latency & memory, redraw (view only)", lambda: run(at))

at = app("experiments", variants=[NAME])
run(at, at.radio(key="experiment").set_value("StreamingLLM"))
timed("StreamingLLM: Run, 2,048 tokens x 3 settings", lambda: run(at, at.button[0].click()))
timed("StreamingLLM, smoothing changed (view only)", lambda: run(at, at.select_slider[2].set_value(16)))
print(f"load average at the end: {os.getloadavg()[0]:.1f}", flush=True)
