"""Shared fixtures and helpers: the variants every property test runs on, tiny float64 models,
attention from its definition, private caches, the quick page budget, one Chromium per module."""
import os
import shutil

import numpy as np
import pytest
import torch

from gpt2viz import GPT2, ModelConfig

# Every variant the dashboard can build, small enough for property tests in float64.
VARIANTS = {
    "learned": dict(position="learned"),
    "sinusoidal": dict(position="sinusoidal"),
    "rope": dict(position="rope"),
    "none": dict(position="none"),
    "gqa": dict(position="learned", n_kv_head=2),
    "mqa": dict(position="rope", n_kv_head=1),
    "swa": dict(position="learned", window=4),
    "rope+gqa+swa": dict(position="rope", n_kv_head=2, window=4),
    "alibi": dict(position="alibi"),
    "alibi+gqa+swa": dict(position="alibi", n_kv_head=2, window=4),
    "swa+sinks": dict(position="rope", window=4, sinks=2),
    "alibi+mqa+swa+sinks": dict(position="alibi", n_kv_head=1, window=4, sinks=3),
}


def tiny_model(seed=0, dtype=torch.float64, **overrides) -> GPT2:
    """A random model with a bigger-than-default init so every influence is far above
    float64 round-off (a change that should not matter must change nothing at all)."""
    torch.manual_seed(seed)
    cfg = ModelConfig(**{**dict(vocab_size=97, n_layer=2, n_head=4, d_model=32, max_seq_len=64),
                         **overrides})
    model = GPT2(cfg).to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3) if p.dim() > 1 else p.normal_(0, 0.1)
    return model


def causal_allowed(t, window=None):
    """allowed[i][j] from the definition: j <= i and (no window or i - j < window)."""
    return np.array([[j <= i and (window is None or i - j < window) for j in range(t)]
                     for i in range(t)])


def random_attention(t, heads=1, seed=0, window=None):
    """Rows that are distributions over their allowed keys: (heads, t, t)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(heads, t, t)) * 2
    scores[:, ~causal_allowed(t, window)] = -np.inf
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def pytest_configure(config):
    """The suite runs at the training children's priority (nice 10): a dashboard's niced
    training child then competes level with the other workers instead of starving behind
    them (with workers at 0 a 10-step training took over 3 minutes, measured 2026-12-02)."""
    from gpt2viz.training.train_process import NICENESS

    os.nice(max(0, NICENESS - os.nice(0)))
    # Each xdist worker gets its share of the cores: two workers of two torch threads each on
    # two cores oversubscribe them, and OpenMP threads that spin-wait for a busy sibling make
    # a 2 s training fixture take 30 s.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the group marks
def pytest_collection_modifyitems(items):
    """Under pytest-xdist (pyproject's -n, --dist loadgroup) a browser module stays on one
    worker, so its dashboard and Chromium start once; every other test goes wherever a worker
    is free. (pytest 9.2 broke this grouping: requirements-dev.txt.)"""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


@pytest.fixture(params=list(VARIANTS), ids=list(VARIANTS))
def variant(request):
    return request.param, VARIANTS[request.param]


@pytest.fixture(scope="session")
def corpus():
    from gpt2viz.text.corpus import Corpus
    return Corpus.default()


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A checkpoint cache of the test's own, with the default size cap."""
    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GPT2VIZ_CACHE_MAX", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def quick_training(tmp_path_factory, monkeypatch):
    """The pages' training budget cut to 8 steps, and a checkpoint cache the page tests share."""
    monkeypatch.setenv("GPT2VIZ_TRAIN_STEPS", "8")
    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path_factory.getbasetemp() / "app-cache"))


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per browser test module (Playwright's sync API allows one at a
    time per thread); skipped where there is none."""
    from browser import chromium_path, open_browser

    if chromium_path() is None:
        pytest.skip("no Chromium on this machine (./run.sh test installs it where it can, as root)")
    pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")
    with open_browser() as browser:
        yield browser


DASHBOARD_STEPS = "10"  # the browser tests' training budget (GPT2VIZ_TRAIN_STEPS)


@pytest.fixture(scope="session")
def trained_defaults(tmp_path_factory):
    """A checkpoint cache holding the sidebar's default models trained as the dashboard trains
    them (its settings at DASHBOARD_STEPS, seed 0), trained once per test worker: modules that
    do not test training start from a copy instead of training the same two models again."""
    from gpt2viz.core.config import PRESETS
    from gpt2viz.dashboard import controls
    from gpt2viz.text.corpus import Corpus
    from gpt2viz.training.train import train

    cache = tmp_path_factory.mktemp("trained-defaults")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GPT2VIZ_TRAIN_STEPS", DASHBOARD_STEPS)
        env.setenv("GPT2VIZ_CACHE", str(cache))
        values = controls.defaults()
        for name in values["variants"]:
            train(PRESETS[name], Corpus.default(), controls.training_settings(values), seed=values["seed"])
    return cache


@pytest.fixture(scope="module")
def dashboard(request, tmp_path_factory, chromium):
    """The real dashboard on a quick training budget and a cache of its own, and one page. A
    module marked `trained_defaults` starts with the default models already in that cache."""
    from browser import serve_app

    cache = tmp_path_factory.mktemp("cache")
    if request.node.get_closest_marker("trained_defaults"):
        shutil.copytree(request.getfixturevalue("trained_defaults"), cache, dirs_exist_ok=True)
    env = {"GPT2VIZ_TRAIN_STEPS": DASHBOARD_STEPS, "GPT2VIZ_CACHE": str(cache)}
    with serve_app(env) as url:
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        yield url, page
        page.close()
