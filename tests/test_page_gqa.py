"""GQA sharing through AppTest: sharing, costs and parameters of the models built, grouped
maps and their similarity recomputed, pooling against a model that differs in kv heads only."""
import numpy as np
import pytest
import torch
from apptest import (
    app,
    array,
    figures,
    kv_bytes_per_token,
    own_loss,
    param_formula,
    shown_bytes,
    stored,
    wait_for_training,
)

from gpt2viz import PRESETS
from gpt2viz.text.corpus import Corpus
from gpt2viz.text.tokenizer import get_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def gqa_page():
    """The GQA page with its pooling pair (gpt2 and gqa) trained: asked for with its button
    where they are not trained yet, as a person does."""
    at = app("gqa")
    asks = [b for b in at.button if b.label == "Train gpt2 and gqa for this comparison"]
    if asks:
        asks[0].click().run()
        wait_for_training(at)
    return at


def test_a_visit_trains_nothing_nobody_chose(tmp_path, monkeypatch):
    """Issue 31.1: the pooling pair is not in the selection and not cached: the section says
    what it needs and offers a button; nothing of it is queued until the button is pressed."""
    from gpt2viz.dashboard.models import store

    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))  # cold: nothing cached
    at = app("gqa", variants="rope", seed="11")  # a seed no other test of this worker trains
    assert not any(job.key[0] in ("gpt2", "gqa") and job.key[3] == 11
                   for job in store().training.pending())
    assert not any(key[0] == "gqa" and key[2] == "trained" and key[3] == 11 for key in store().variants)
    assert any("They are not trained yet" in i.value for i in at.info)
    at.button(key="train_pooling_pair").click().run()
    wait_for_training(at)
    assert figures(at)[-1]["data"][0]["x"] == ["8", "4", "2", "1"]  # the pooling chart


def test_draws_sharing_costs_groups_and_conversion():
    at = gqa_page()  # trained weights (quick budget): the conversion section runs
    diagram, costs, grid, similarity, likeness, conversion = figures(at)
    assert sum(1 for t in diagram["data"] if t["mode"] == "lines") == 8
    assert [len(t["x"]) for t in costs["data"]] == [4, 4, 4]  # n_kv_head 8, 4, 2, 1
    assert len(grid["data"]) == 8 and len(array(similarity["data"][0]["z"])) == 8
    assert conversion["data"][0]["x"] == ["8", "4", "2", "1"]  # the MHA baseline, pooled
    assert len(array(likeness["data"][0]["y"])) == PRESETS["rope+gqa+swa"].n_layer  # a point per layer
    at.select_slider[0].set_value(1).run()
    assert "MQA" in figures(at)[0]["layout"]["title"]["text"]


def test_parameters_are_those_of_the_models_built(corpus):
    at = app("gqa")  # the shape shown: the first selected model that shares heads, rope+gqa+swa
    table = at.dataframe[0].value
    shown = PRESETS["rope+gqa+swa"]
    for _, row in table.iterrows():
        cfg = shown.replace(n_kv_head=int(row["n_kv_head"]))
        assert row["params"] == param_formula(cfg, corpus.vocab.size)
        assert row["KV cache / token"] == shown_bytes(kv_bytes_per_token(cfg))
    mha = param_formula(shown.replace(n_kv_head=8), corpus.vocab.size)
    saved = 1 - param_formula(shown, corpus.vocab.size) / mha
    assert table.set_index("n_kv_head").loc[2, "params saved vs MHA"] == f"{saved:.1%}"
    build = app().dataframe[0].value.set_index("variant")
    assert build.loc["rope+gqa+swa", "params"] == table.set_index("n_kv_head").loc[2, "params"]


def test_pooling_is_compared_with_a_model_that_differs_only_in_kv_heads(corpus):
    at = gqa_page()
    conversion = figures(at)[-1]
    refs = [t for t in conversion["data"] if t.get("name") == "gqa trained from scratch"]
    assert len(refs) == 1
    gqa = stored("gqa")
    differing = {k for k, v in gqa.config.to_dict().items()
                 if v != PRESETS["gpt2"].replace(vocab_size=corpus.vocab.size).to_dict()[k]}
    assert differing == {"n_kv_head"}
    assert refs[0]["x"] == [str(gqa.config.n_kv_head)]
    assert refs[0]["y"][0] == pytest.approx(own_loss(gqa.model, corpus.val, 128), abs=1e-4)


def test_within_and_across_group_similarity_recomputed():
    at = app("gqa")
    metric = at.metric[0]
    variant = stored("rope+gqa+swa")
    ids = Corpus.default().vocab.to_compact(torch.tensor(get_tokenizer().encode(at.text_area[0].value)))
    with torch.no_grad():
        probs = variant.model.trace(ids[None]).attn[0][0].double().numpy()  # layer 0, (H, T, T)
    h, group = probs.shape[0], variant.config.group_size
    tv = lambda a, b: 0.5 * np.abs(probs[a, 1:] - probs[b, 1:]).sum(-1).mean()  # noqa: E731  query 0 left out
    within = np.mean([1 - tv(a, b) for a in range(h) for b in range(h) if a != b and a // group == b // group])
    across = np.mean([1 - tv(a, b) for a in range(h) for b in range(h) if a // group != b // group])
    assert metric.value == f"{within:.3f}" and metric.delta.startswith(f"{within - across:+.3f}")


def test_pooling_every_head_into_itself_costs_nothing(corpus):
    """The conversion curve's MHA point is the trained gpt2 itself: its own validation loss."""
    at = gqa_page()
    pooled = figures(at)[-1]["data"][0]
    assert pooled["x"][0] == "8"
    assert pooled["y"][0] == pytest.approx(own_loss(stored("gpt2").model, corpus.val, 128), abs=1e-4)


def test_starts_at_the_models_own_sharing_and_says_when_there_is_one_group():
    at = app("gqa", weights="random", variants=["custom"], n_kv_head="1")
    assert at.select_slider[0].value == 1
    assert "MQA" in figures(at)[0]["layout"]["title"]["text"]
    assert not any("nan" in str(m.value) or "nan" in str(m.delta) for m in at.metric)
    assert any("no other group to compare with" in c.value for c in at.caption)


def test_a_page_that_asks_twice_for_models_shows_one_training_banner(tmp_path, monkeypatch):
    """The GQA page asks for the selection and for its pooling pair: one banner, no duplicate
    widget keys, every job of the session in it."""
    from apptest import APP
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))  # cold: everything must train
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params["variants"] = "rope"
    at.query_params["seed"] = "7"  # models no other test of this process has in its store
    at.run()
    at.switch_page("pages/gqa.py")
    at.run()
    for ask in [b for b in at.button if b.key == "train_pooling_pair"]:  # the pooling pair, asked for
        ask.click().run()
    assert not at.exception, [e.value for e in at.exception]
    banners = [m.value for m in at.markdown if "Training in the background" in m.value]
    assert len(banners) == 1 and "rope" in banners[0]
    assert len([b for b in at.button if b.label == "Cancel training"]) == 1
