"""Helpers for the page tests: run the app in Streamlit's AppTest on a quick budget, read
its figures, and recompute what a page prints from its definition (own parameter count, own
cross-entropy in float64, own byte count)."""
import base64
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def app(page=None, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    if page:
        at.switch_page(f"pages/{page}.py")
        at.run()
    wait_for_training(at)
    assert not at.exception, [e.value for e in at.exception]
    return at


def wait_for_training(at, timeout=240):
    """Training, pretrained loads and a page's long work run in the background: rerun, as the
    page's own timer does, until they are done."""
    deadline = time.time() + timeout
    while any("Training in the background" in m.value or " in the background**" in m.value
              for m in at.markdown):
        assert time.time() < deadline, "training did not finish"
        time.sleep(0.5)
        at.run()


def figures(at):
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def array(value):
    """Plotly sends numpy arrays as base64 typed arrays; lists stay lists."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.array(value, dtype=float)


QUICK_STEPS = 8  # conftest's quick_training budget


def stored(name, weights="trained", seed=0, **fields):
    """The model a page built (default seed), from the process-wide store the pages read."""
    from gpt2viz.core.config import TrainSettings
    from gpt2viz.dashboard.models import store
    from gpt2viz.text.corpus import Corpus

    embedded = Corpus.default().sha256 if weights == "random" else ""  # keys end with the corpus
    quick = TrainSettings(steps=int(os.environ["GPT2VIZ_TRAIN_STEPS"]))  # the pages' default budget
    matches = [v for key, v in store().variants.items()
               if (key[0] == name or key[0].startswith(name + ":")) and key[2] == weights
               and key[3] == seed and key[-1] == embedded and (weights != "trained" or key[4] == quick)
               and all(getattr(key[1], f) == value for f, value in fields.items())]
    assert matches, f"{name} was not built"
    return matches[-1]


def param_formula(cfg, vocab_size):
    """GPT-2's parameters by hand: embeddings (tied head), per layer two layer norms, q/k/v/out
    projections (k and v n_kv_head heads wide) and the 4x MLP, all with biases; final norm."""
    d, kv = cfg.d_model, cfg.n_kv_head * cfg.head_dim
    layer = 2 * 2 * d + (d * d + d) + 2 * (d * kv + kv) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d)
    positions = cfg.max_seq_len * d if cfg.position == "learned" else 0
    return vocab_size * d + positions + cfg.n_layer * layer + 2 * d


def own_loss(model, ids, block):
    """Mean next-token cross-entropy in float64 over non-overlapping blocks of `block` tokens."""
    n = (len(ids) - 1) // block
    x = ids[:n * block].view(n, block)
    y = ids[1:n * block + 1].view(n, block)
    total = 0.0
    with torch.no_grad():
        for xb, yb in zip(x.split(256), y.split(256)):
            logp = model(xb).double().log_softmax(-1)
            total -= float(logp.gather(-1, yb[..., None]).sum())
    return total / y.numel()


def kv_bytes_per_token(cfg):
    return 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * 4  # K and V, fp32


def shown_bytes(n):
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB"


def colour_fractions(trace):
    """Where each cell lands on the colour bar, as plotly draws it: zmin/zmax, or the data's
    own range when they are not set."""
    z = array(trace["z"])
    lo = trace.get("zmin", np.nanmin(z))
    hi = trace.get("zmax", np.nanmax(z))
    return (z - lo) / (hi - lo)
