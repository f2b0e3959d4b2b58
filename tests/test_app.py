"""Every page through Streamlit's AppTest: no exception, the expected charts and tables."""
import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(autouse=True)
def quick_training(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GPT2VIZ_TRAIN_STEPS", "8")
    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path_factory.getbasetemp() / "app-cache"))


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
    """Training runs in the background: rerun, as the page's own timer does, until it is done."""
    deadline = time.time() + timeout
    while any("Training in the background" in m.value for m in at.markdown):
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


def test_build_page_trains_and_reports(tmp_path):
    at = app()
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["gpt2", "rope+gqa+swa"]
    assert (table["params"] > 0).all() and table["val loss"].notna().all()
    (loss,) = figures(at)
    assert len(loss["data"]) == 4  # train + validation per variant
    assert any("unigram" in str(a.get("text")) for a in loss["layout"]["annotations"])
    # 8 steps learn nothing: the page must say so for exactly the rows at or above unigram
    errors = " ".join(e.value for e in at.error)
    for _, row in table.iterrows():
        failed = row["val loss"] >= row["unigram loss"]
        assert (f"**{row['variant']} did not learn**" in errors) == failed
    assert "did not learn" in errors  # 8 steps are far from enough


def test_attention_page_views():
    at = app("attention", weights="random")
    heatmaps = figures(at)
    assert len(heatmaps) == 2 and all(f["data"][0]["type"] == "heatmap" for f in heatmaps)
    z = array(heatmaps[1]["data"][0]["z"])  # rope+gqa+swa: window 16 blocks the far past
    t = z.shape[0]
    assert t > 20 and z.shape == (t, t) and len(heatmaps[1]["data"][0]["x"]) == t
    assert np.isnan(z[t - 1, 0]) and not np.isnan(z[t - 1, t - 16]) and np.isnan(z[t - 1, t - 17])
    assert np.isnan(z[0, 1]) and np.allclose(np.nansum(z, axis=1), 1.0, atol=1e-5)
    at.radio[0].set_value("All layers × heads").run()
    grids = figures(at)
    assert len(grids) == 2 and len(grids[0]["data"]) == 4 * 8
    at.radio[0].set_value("Difference").run()
    (diff,) = figures(at)
    assert diff["data"][0]["colorscale"][0][1] != heatmaps[0]["data"][0]["colorscale"][0][1]


def test_view_only_controls_do_not_rerun_the_model(monkeypatch):
    at = app("attention", weights="random")
    import gpt2viz.workbench as workbench
    calls = []
    original = workbench.GPT2.trace
    monkeypatch.setattr(workbench.GPT2, "trace", lambda *a, **k: calls.append(1) or original(*a, **k))
    at.radio[1].set_value("log (0.001 to 1)").run()
    at.radio[0].set_value("All layers × heads").run()
    assert not at.exception and calls == []


def test_compare_page_bars_table_and_continuations():
    at = app("compare", weights="random", variants=["gpt2", "gqa", "swa"])
    (bars,) = figures(at)
    assert [d["type"] for d in bars["data"]] == ["bar"] * 3
    assert len(bars["data"][0]["y"]) == 8
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["gpt2", "gqa", "swa"] and (table["perplexity"] > 1).all()
    assert len(at.code) == 3 and all(c.value for c in at.code)


def test_bad_inputs_are_explained_not_raised(tmp_path):
    at = app("attention", weights="random")
    at.text_area[0].set_value("   ").run()
    assert not at.exception and "empty" in at.warning[0].value
    at.text_area[0].set_value("word " * 400).run()
    assert not at.exception and any("only its last" in i.value for i in at.info)
    at = app("compare", weights="checkpoint", checkpoint=str(tmp_path))
    assert any("does not load" in e.value for e in at.error)
    at = app(variants=["custom"], weights="random", n_head="3", d_model="128")
    assert any("not divisible by n_head=3" in e.value for e in at.error)


def test_url_reproduces_the_view_and_choices_survive_page_switches():
    at = app(weights="random", variants=["swa", "rope"], seed="7")
    assert at.multiselect[0].value == ["swa", "rope"]
    assert at.session_state["sb_seed"] == 7
    at.switch_page("pages/attention.py")
    at.run()
    assert not at.exception
    assert at.session_state["sidebar_values"]["variants"] == ["swa", "rope"]
    assert at.session_state["sidebar_values"]["seed"] == 7
    assert [f["layout"]["title"]["text"].split(" ")[0] for f in figures(at)] == ["swa", "rope"]


def test_rope_page_real_and_synthetic():
    at = app("rope", weights="random")
    rotation, wavelengths, decay = figures(at)
    panels = [t for t in rotation["data"] if t.get("name") == "q rotated to each position"]
    assert len(panels) == 8 and any(t.get("name") == "real k" for t in rotation["data"])
    assert len(array(wavelengths["data"][0]["x"])) == 8
    assert len(decay["data"]) == 6  # two RoPE, sinusoidal, learned of gpt2, two ALiBi heads
    for curve, slope in zip([t for t in decay["data"] if "ALiBi" in t["name"]], (1 / 2, 1 / 256)):
        distance = array(curve["x"])  # no ALiBi model selected: 8 heads, slopes 2^-1 .. 2^-8
        assert np.allclose(array(curve["y"]), np.exp(-slope * distance))
    at.select_slider[1].set_value(64).run()  # head size: only the explanatory figures change
    assert len(array(figures(at)[1]["data"][0]["x"])) == 32
    at = app("rope", weights="random", variants=["gpt2"])
    assert any("No RoPE model" in i.value for i in at.info) and len(figures(at)) == 3


def test_gqa_page_draws_sharing_costs_groups_and_conversion():
    at = app("gqa")  # trained weights (quick budget): the conversion section runs
    diagram, costs, grid, similarity, conversion = figures(at)
    assert sum(1 for t in diagram["data"] if t["mode"] == "lines") == 8
    assert [len(t["x"]) for t in costs["data"]] == [4, 4, 4]  # n_kv_head 8, 4, 2, 1
    assert len(grid["data"]) == 8 and len(array(similarity["data"][0]["z"])) == 8
    assert conversion["data"][0]["x"] == ["8", "4", "2", "1"]  # the MHA baseline, pooled
    at.select_slider[0].set_value(1).run()
    assert "MQA" in figures(at)[0]["layout"]["title"]["text"]


def test_performance_page_measures_on_arrival_then_shows_the_stored_run(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))  # nothing stored yet
    at = app("performance", weights="random")  # first visit: a quick run to 8192 starts by itself
    (fig,) = figures(at)
    names = [t.get("name", "") for t in fig["data"]]
    dense = [n for n in names if n.startswith("sdpa (dense causal)")]
    assert dense and "slope" in dense[0] and any(n.startswith("banded") for n in names)
    assert max(array(fig["data"][0]["x"])) == 8192
    note = [c.value for c in at.caption if c.value.startswith("Measured")][0]
    assert "just now on this machine" in note and "1 repeat per point" in note
    assert at.get("download_button")
    again = app("performance", weights="random")  # a new session: the stored run, at once
    note = [c.value for c in again.caption if c.value.startswith("Measured")][0]
    assert "just now" not in note and "UTC on this machine" in note
    at.multiselect[0].set_value(["eager"]).run()
    at.select_slider[1].set_value(8192)
    at.select_slider[2].set_value(0).run()  # full causal: eager materializes 8192 x 8192
    estimate = [i.value for i in at.info if "measurements, about" in i.value][0]
    assert int(estimate.split("about ")[1].split(" s")[0]) > 30  # eager at 8192 is slow: said up front
    (fig,) = figures(at)  # too long to start alone: the analytic cost, and Run
    assert "not measured yet" in fig["layout"]["title"]["text"]


def test_generation_view_measures_cache_bytes_and_latency_per_token():
    from gpt2viz.bench import DECODE_BODY

    at = app("performance", weights="random")
    at.radio[0].set_value("Generation vs context length").run()
    at.select_slider[0].set_value(2048).run()  # longest context
    (fig,) = figures(at)
    assert "KV cache" in fig["layout"]["title"]["text"]
    measured = [t for t in fig["data"] if t["mode"] == "markers"]  # allocated cache bytes
    by_name = {t["legendgroup"]: (array(t["x"]), array(t["y"])) for t in measured}
    head_dim, layers, steps = DECODE_BODY.head_dim, DECODE_BODY.n_layer, 4  # the quick run: 4 steps
    for name, kv in (("MHA", DECODE_BODY.n_head), ("MQA", 1)):
        for kind, slots in (("full", None), ("window 256", 256), ("window 256 + 4 sinks", 260)):
            contexts, mib = by_name[f"{name} · {kind}"]
            expect = [2 * layers * kv * head_dim * 4 * (c + steps if slots is None else min(c + steps, slots))
                      for c in contexts]
            assert list(mib * 2**20) == pytest.approx(expect)
    # the rolling buffer is flat past window + sinks; the selected variants are there too
    assert len(set(by_name["GQA 3 · window 256 + 4 sinks"][1][2:])) == 1
    assert {"gpt2", "rope+gqa+swa"} <= set(by_name)
    latency = [t for t in fig["data"] if t["mode"] == "lines+markers"]
    assert all((array(t["y"]) > 0).all() for t in latency)


def test_checkpoint_folders_load_ours_and_hugging_faces(tmp_path):
    from gpt2viz.corpus import Corpus
    from gpt2viz.checkpoint_cache import cache_dir, cache_key
    from gpt2viz.config import TrainSettings
    from gpt2viz.train import train
    from gpt2viz import ModelConfig

    corpus = Corpus.default()
    cfg = ModelConfig(n_layer=1, n_head=2, d_model=32, max_seq_len=64, vocab_size=corpus.vocab.size)
    settings = TrainSettings(steps=2, batch_size=2, block_size=32)
    train(cfg, corpus, settings, seed=5)
    ours = cache_dir() / cache_key(cfg, corpus, settings, 5)
    assert (ours / "model.safetensors").is_file()
    at = app("attention", weights="checkpoint", checkpoint=str(ours))
    assert len(figures(at)) == 1 and len(at.error) == 0

    transformers = pytest.importorskip("transformers")
    hf = tmp_path / "hf"
    transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=1, n_head=2, n_embd=32, n_positions=64)).save_pretrained(hf)
    at = app("compare", weights="checkpoint", checkpoint=str(hf))
    assert len(figures(at)) == 1 and at.dataframe[0].value["variant"].tolist() == ["hf"]
