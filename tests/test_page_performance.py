"""Latency & memory through AppTest: a quick run on arrival, the stored run after, the
generation view's cache bytes and latency, and a caption that says what each memory figure leaves out."""
import pytest
from apptest import app, array, figures, wait_for_training

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def test_measures_on_arrival_then_shows_the_stored_run(tmp_path, monkeypatch):
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
    from gpt2viz.analysis.bench import DECODE_BODY

    at = app("performance", weights="random")
    at.radio[0].set_value("Generation vs context length").run()
    at.select_slider[0].set_value(2048).run()  # longest context
    at.slider[0].set_value(4).run()  # steps per point
    at.button[0].click().run()
    wait_for_training(at)  # the run measures in the background, then the page draws it
    (fig,) = figures(at)
    assert "KV cache" in fig["layout"]["title"]["text"]
    measured = [t for t in fig["data"] if t["mode"] == "markers"]  # allocated cache bytes
    by_name = {t["legendgroup"]: (array(t["x"]), array(t["y"])) for t in measured}
    head_dim, layers, steps = DECODE_BODY.head_dim, DECODE_BODY.n_layer, 4
    for name, kv in (("MHA", DECODE_BODY.n_head), ("MQA", 1)):
        for kind, slots in (("full", None), ("window 256", 256), ("window 256 + 4 sinks", 260)):
            contexts, mib = by_name[f"{name} · {kind}"]
            written = [c + 1 + steps for c in contexts]  # the context, the warm-up step, the timed steps
            expect = [2 * layers * kv * head_dim * 4 * (w if slots is None else min(w, slots))
                      for w in written]
            assert list(mib * 2**20) == pytest.approx(expect)
    # the rolling buffer is flat past window + sinks; the selected variants are there too
    assert len(set(by_name["GQA 3 · window 256 + 4 sinks"][1][2:])) == 1
    assert {"gpt2", "rope+gqa+swa"} <= set(by_name)
    latency = [t for t in fig["data"] if t["mode"] == "lines+markers"]
    assert all((array(t["y"]) > 0).all() for t in latency)
    # issue 31.4: gpt2's learned positions end at 128; timing it at 2,048 is said
    assert any(c.value.startswith("gpt2: learned positions end at 128 tokens") for c in at.caption)
    assert at.query_params["latency_measure"] == "Generation vs context length"  # kept in the link


def test_memory_caption_says_what_is_left_out():
    at = app("performance", weights="random")
    text = " ".join(c.value for c in at.caption)
    assert "leaves out the inputs" in text and "fused kernel" in text
