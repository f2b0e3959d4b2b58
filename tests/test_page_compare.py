"""Compare & generate through AppTest: bars, loss and perplexity recomputed from the logits,
continuations, and what the page says when a prompt is too short or too long for a model."""
import math

import numpy as np
import pytest
import torch
from apptest import app, array, figures, kv_bytes_per_token, param_formula, shown_bytes, stored

from gpt2viz import PRESETS
from gpt2viz.text.tokenizer import get_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def test_bars_table_and_continuations_for_every_variant():
    at = app("compare", weights="random", variants=["gpt2", "gqa", "swa"])
    (bars,) = figures(at)
    assert [d["type"] for d in bars["data"]] == ["bar"] * 3
    assert len(bars["data"][0]["y"]) == 8
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["gpt2", "gqa", "swa"] and (table["perplexity"] > 1).all()
    assert len(at.code) == 3 and all(c.value for c in at.code)


def test_compare_numbers_are_recomputed_from_the_logits(corpus):
    at = app("compare", weights="random", variants=["gpt2", "swa"])
    (bars,) = figures(at)
    table = at.dataframe[0].value.set_index("variant")
    prompt = at.text_area[0].value
    gpt2_ids = get_tokenizer().encode(prompt)
    for panel, name in zip(bars["data"], ("gpt2", "swa")):
        v = stored(name, "random")
        ids = corpus.vocab.to_compact(torch.tensor(gpt2_ids))[None]
        with torch.no_grad():
            logits = v.model(ids)[0].double()
        probs = logits[-1].softmax(-1)
        top = probs.sort(descending=True).values[:8].numpy()
        assert np.allclose(array(panel["x"])[::-1], top, atol=1e-6)  # most likely on top
        loss = float(-logits[:-1].log_softmax(-1).gather(-1, ids[0, 1:, None]).mean())
        assert table.loc[name, "loss on prompt (nats)"] == pytest.approx(loss, abs=6e-4)
        assert table.loc[name, "perplexity"] == pytest.approx(math.exp(loss), abs=0.06)
        cfg = v.config
        assert table.loc[name, "params"] == param_formula(cfg, corpus.vocab.size)
        slots = len(gpt2_ids) if cfg.window is None else min(len(gpt2_ids), cfg.window)
        assert table.loc[name, "KV cache / token"] == shown_bytes(kv_bytes_per_token(cfg))
        assert table.loc[name, "prompt tokens"] == len(gpt2_ids)
        assert table.loc[name, "KV cache for the prompt"].startswith(
            f"{slots * kv_bytes_per_token(cfg) / 1024:.1f}")


def test_generation_stops_at_the_learned_table_and_says_so():
    at = app("compare", weights="random", variants=["gpt2", "rope"])
    words = " ".join(f"w{i}" for i in range(60))
    at.text_area[0].set_value(words).run()
    prompt_len = len(get_tokenizer().encode(words))
    room = PRESETS["gpt2"].max_seq_len - prompt_len
    assert 0 < room < 40  # the default 40 new tokens do not fit
    notes = [c.value for c in at.caption if "learned positions for" in c.value]
    assert notes == [f"gpt2 has learned positions for {PRESETS['gpt2'].max_seq_len} tokens (its training "
                     f"block) and none past them: {room} of 40 new tokens generated."]


def test_one_token_prompt_explains_the_empty_loss():
    at = app("compare", weights="random")
    at.text_area[0].set_value("Hello").run()
    assert any("one token: there is nothing to predict" in i.value for i in at.info)


def test_long_prompt_note_and_one_probability_scale():
    at = app("compare", weights="random", variants=["gpt2", "gqa"])
    (bars,) = figures(at)
    xaxes = [axis for name, axis in bars["layout"].items() if name.startswith("xaxis")]
    top = max(array(trace["x"]).max() for trace in bars["data"])
    assert len(xaxes) == 2 and xaxes[0]["range"] == xaxes[1]["range"] and xaxes[0]["range"][1] >= top
    at.text_area[0].set_value("word " * 400).run()
    notes = [i.value for i in at.info if "only its last" in i.value]
    assert notes and not any("heatmap" in n for n in notes)


def test_a_continuation_of_only_whitespace_says_so(monkeypatch):
    """Issue 31.5: 96 whitespace tokens looked like an empty box; the page says what is in it."""
    from gpt2viz.analysis import workbench

    monkeypatch.setattr(workbench, "continuation", lambda *args: "\n\n  \n" * 4)
    at = app("compare", weights="random", variants=["gpt2"])
    captions = [c.value for c in at.caption]
    assert any("Only whitespace: 20 characters (12 line breaks, 8 spaces)" in c for c in captions), captions
    monkeypatch.setattr(workbench, "continuation", lambda *args: "the cat")
    at = app("compare", weights="random", variants=["gpt2"])
    assert not any("Only whitespace" in c.value for c in at.caption)
