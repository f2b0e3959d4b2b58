"""The pages wired for the real model (RoPE geometry, GQA sharing, Latency & memory,
Experiments' StreamingLLM) through AppTest with smollm2-135m selected: what each draws is
recomputed from its definition on the model's own weights. One page load per module test
group; the model loads once per process (from the shared checkpoint cache)."""
import math

import numpy as np
import pytest
import torch
from apptest import app, array, figures, wait_for_training

from gpt2viz.core.model import GPT2
from gpt2viz.text.corpus import default_text, validation_text
from gpt2viz.weights import pretrained

pytestmark = pytest.mark.slow
NAME = "smollm2-135m"


@pytest.fixture(scope="module")
def real():
    """(model, tokenizer) of the variant the pages show; skipped without its package."""
    pytest.importorskip("gguf", reason="gguf is in requirements.txt")
    try:
        pretrained.gguf_path(NAME)
    except pretrained.MissingPackageError as err:
        pytest.skip(str(err))
    from gpt2viz.dashboard.models import store

    at = app("rope", variants=[NAME])  # loads it into the process-wide store
    return at, store().variants[("pretrained", NAME)]


def test_rope_page_shows_the_real_models_pair_usage_and_measured_decay(real):
    at, variant = real
    assert not at.exception
    figs = figures(at)
    titles = [f["layout"]["title"]["text"] for f in figs if "title" in f["layout"]]
    usage = next(f for f, t in zip(figs, titles) if "rotation pairs" in t)
    decay = next(f for f, t in zip(figs, titles) if "q·k against distance" in t)
    assert "first 512 tokens" in usage["layout"]["title"]["text"]
    from gpt2viz.dashboard.real_model import text_ids

    ids = text_ids(variant)[:512]
    with torch.no_grad():
        tr = variant.model.trace(ids[None])
    q = torch.stack(tr.q).double()  # (L, 1, H, T, hd)
    half = q.shape[-1] // 2
    q_norms = torch.hypot(q[..., :half], q[..., half:]).mean((1, 2, 3))  # (L, half)
    z = array(usage["data"][0]["z"])
    assert z.shape == (30, 32)
    assert np.allclose(z, (q_norms / q_norms.mean(1, keepdim=True)).numpy(), atol=1e-5)
    # layer 0, head 0 against kv head 0: mean q_i . k_(i - d) / 8 at distances 0 and 5
    qh, kh = tr.q[0][0, 0].double(), tr.k[0][0, 0].double()
    rotated = array(decay["data"][0]["y"])
    for d in (0, 5):
        expected = sum(float(qh[i] @ kh[i - d]) for i in range(d, 512)) / (512 - d) / math.sqrt(64)
        assert rotated[d] == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_gqa_page_shows_the_real_models_groups_pooling_and_cache(real):
    _, variant = real
    at = app("gqa", variants=[NAME])
    figs = figures(at)
    titles = [f["layout"].get("title", {}).get("text", "") for f in figs]
    # the shape: 9 query heads on 3 KV heads, bytes per token = 2 x 30 x kv x 64 x 4
    table = at.dataframe[0].value
    assert list(table["n_kv_head"]) == [9, 3, 1]
    assert list(table["KV cache / token"]) == ["135.0 KiB", "45.0 KiB", "15.0 KiB"]
    assert 2 * 30 * 3 * 64 * 4 == 46080 == 45 * 1024
    likeness = figs[next(i for i, t in enumerate(titles) if "layer by layer" in t)]
    within = array(likeness["data"][0]["y"])
    assert len(within) == 30
    # recomputed for layer 3 from the traced probabilities of the atlas's text (512 tokens of
    # the validation text in the model's tokens), query 0 left out
    ids = torch.tensor([variant.tokenizer.encode(validation_text(default_text()))[:512]])
    with torch.no_grad():
        p = variant.model.trace(ids).attn[3][0].double()[:, 1:]  # (9, T-1, T)
    tv = 0.5 * (p[:, None] - p[None]).abs().sum(-1).mean(-1)  # (9, 9)
    pairs = [(a, b) for a in range(9) for b in range(9) if a != b and a // 3 == b // 3]
    assert within[3] == pytest.approx(float(np.mean([1 - tv[a, b] for a, b in pairs])), abs=1e-5)
    pooled = figs[next(i for i, t in enumerate(titles) if "before any retraining" in t)]
    losses = array(pooled["data"][0]["y"])
    assert [str(x) for x in pooled["data"][0]["x"]] == ["3", "1"]
    from gpt2viz.dashboard.real_model import text_ids
    from gpt2viz.weights.checkpoints import to_gqa

    text = text_ids(variant)[:1025]
    with torch.no_grad():
        own = torch.nn.functional.cross_entropy(variant.model(text[None, :-1])[0], text[1:])
        pooled = torch.nn.functional.cross_entropy(to_gqa(variant.model, 1)(text[None, :-1])[0], text[1:])
    assert losses[0] == pytest.approx(float(own), abs=1e-4)
    assert losses[1] == pytest.approx(float(pooled), abs=1e-4)
    assert losses[1] > losses[0] + 1  # pooling 3 -> 1 without uptraining wrecks it (README: 9.96)
    assert not any("Training in the background" in m.value for m in at.markdown)


def test_latency_page_decodes_the_real_model_full_window_and_sinks(real):
    _, variant = real
    at = app("performance", variants=[NAME])
    at.radio[0].set_value("Generation vs context length").run()
    at.select_slider[0].set_value(1024).run()  # longest context
    at.slider[0].set_value(2).run()  # steps per point
    at.button[0].click().run()
    wait_for_training(at)  # the run measures in the background, then the page draws it
    assert not at.exception
    (fig,) = figures(at)
    measured = {t["legendgroup"]: (array(t["x"]), array(t["y"])) for t in fig["data"] if t["mode"] == "markers"}
    assert set(measured) == {f"{NAME} · full", f"{NAME} · window 256", f"{NAME} · window 256 + 4 sinks"}
    per_token = 2 * 30 * 3 * 64 * 4  # K and V, 30 layers, 3 KV heads of 64, fp32
    for kind, slots in (("full", None), ("window 256", 256), ("window 256 + 4 sinks", 260)):
        contexts, mib = measured[f"{NAME} · {kind}"]
        assert list(contexts) == [256, 512, 1024]
        written = [c + 1 + 2 for c in contexts]  # the context, the warm-up step, 2 timed steps
        expect = [per_token * (w if slots is None else min(w, slots)) for w in written]
        assert list(mib * 2**20) == pytest.approx(expect)
    assert len(set(measured[f"{NAME} · window 256 + 4 sinks"][1][1:])) == 1  # flat past w + s = 260
    latency = [t for t in fig["data"] if t["mode"] == "lines+markers"]
    assert len(latency) == 3 and all((array(t["y"]) > 0).all() for t in latency)
    assert any("its own weights" in c.value for c in at.caption)


def test_streaming_experiment_scores_the_real_model_along_the_text(real):
    _, variant = real
    at = app("experiments", variants=[NAME])
    at.radio(key="experiment").set_value("StreamingLLM").run()
    at.select_slider[0].set_value(256).run()  # tokens
    at.select_slider[1].set_value(64).run()  # window
    at.number_input[0].set_value(1).run()  # sinks
    assert not figures(at) and any("Three passes over 256 tokens" in i.value for i in at.info)
    at.button[0].click().run()
    wait_for_training(at)  # the three passes run in the background, then the page draws them
    assert not at.exception
    (fig,) = figures(at)
    lines = [t for t in fig["data"] if t["mode"] == "lines" and t.get("yaxis") == "y"]  # the top panel
    assert [t["legendgroup"] for t in lines] == ["full attention", "window 64", "window 64 + 1 sink"]
    from gpt2viz.dashboard.real_model import text_ids

    ids = text_ids(variant)[:257]
    per_token = {}
    for line, (window, sinks) in zip(lines, [(None, 0), (64, 0), (64, 1)]):
        model = GPT2.from_weights(variant.model.config.replace(window=window, sinks=sinks),
                                  variant.model.state_dict())  # built with that mask
        with torch.no_grad():
            losses = torch.nn.functional.cross_entropy(model(ids[None, :-1])[0], ids[1:], reduction="none")
        per_token[window, sinks] = losses
        running = np.convolve(losses.double().numpy(), np.ones(64))[:256] / np.minimum(np.arange(1, 257), 64)
        assert array(line["y"]) == pytest.approx(running, abs=1e-4)
    table = at.dataframe[0].value
    assert list(table["setting"]) == ["full attention", "window 64", "window 64 + 1 sink"]
    # the cost where the window acts: positions 64.., each minus full attention
    for (window, sinks), setting in [((64, 0), "window 64"), ((64, 1), "window 64 + 1 sink")]:
        cost = float((per_token[window, sinks] - per_token[None, 0])[64:].mean())
        assert table.set_index("setting").loc[setting, "minus full, positions ≥ 64"] == pytest.approx(cost, abs=2e-3)
    lower = [t for t in fig["data"] if t.get("yaxis") == "y2"]
    assert [t["legendgroup"] for t in lower] == ["window 64", "window 64 + 1 sink"]
    at.select_slider[2].set_value(16).run()  # smoothing: view only, no new passes
    assert len(figures(at)) == 1 and not at.button


def test_logit_lens_labels_the_real_models_own_tokens(real):
    _, variant = real
    at = app("experiments", variants=[NAME])
    at.radio(key="experiment").set_value("Logit lens").run()
    assert not at.exception
    (fig,) = figures(at)
    ids = variant.tokenizer.encode(at.text_area[0].value)
    heatmap = fig["data"][0]
    assert array(heatmap["z"]).shape == (31, len(ids))  # embeddings + 30 layers, its own tokens
    assert list(heatmap["text"][0]) == variant.tokenizer.token_labels(ids)
