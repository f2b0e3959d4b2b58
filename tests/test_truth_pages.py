"""Every number a page prints, recomputed from its definition in the test (own parameter
count, own cross-entropy in float64, own softmax, own byte count), through Streamlit's
AppTest; and the page-side findings of issue 16, one test each."""
import math
import os

import numpy as np
import pytest
import torch

from test_app import app, array, figures, quick_training  # noqa: F401  (autouse: quick budget)

from gpt2viz import PRESETS
from gpt2viz.corpus import Corpus
from gpt2viz.tokenizer import get_tokenizer

QUICK_STEPS = 8  # test_app's quick_training budget


@pytest.fixture(scope="module")
def corpus():
    return Corpus.default()


def stored(name, weights="trained", seed=0, **fields):
    """The model a page built (default seed), from the process-wide store the pages read."""
    import ui

    from gpt2viz.corpus import Corpus

    from gpt2viz.config import TrainSettings

    embedded = Corpus.default().sha256 if weights == "random" else ""  # keys end with the corpus
    quick = TrainSettings(steps=int(os.environ["GPT2VIZ_TRAIN_STEPS"]))  # the pages' default budget
    matches = [v for key, v in ui._store()["variants"].items()
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


# ----------------------------------------------------------------- Build
def test_build_numbers_are_recomputed_from_their_definitions(corpus):
    at = app()
    table = at.dataframe[0].value.set_index("variant")
    for name in ("gpt2", "rope+gqa+swa"):
        v, cfg = stored(name), PRESETS[name]
        assert table.loc[name, "params"] == param_formula(cfg, corpus.vocab.size)
        assert table.loc[name, "KV cache / token"] == shown_bytes(kv_bytes_per_token(cfg))
        assert table.loc[name, "val loss"] == pytest.approx(own_loss(v.model, corpus.val, 128), abs=6e-4)
    counts = torch.bincount(corpus.train, minlength=corpus.vocab.size).double() + 1  # add-one
    unigram = float(-(counts / counts.sum()).log()[corpus.val].mean())
    assert (table["unigram loss"] == round(unigram, 3)).all()


def test_issue16_comparison_build_shows_how_much_each_model_uses_its_context(corpus):
    at = app()
    table = at.dataframe[0].value.set_index("variant")
    for name in ("gpt2", "rope+gqa+swa"):
        model = stored(name).model
        assert table.loc[name, "val loss, context 1"] == pytest.approx(own_loss(model, corpus.val, 1), abs=6e-4)
        assert table.loc[name, "val loss, context ≤ 16"] == pytest.approx(own_loss(model, corpus.val, 16), abs=6e-4)
    # The quick budget is not the one the seed noise was measured for: the page says so.
    assert any("This run differs (other training settings" in c.value for c in at.caption)


def test_issue16_comparison_seed_noise_is_measured_for_the_default_budget_only():
    from gpt2viz.config import TrainSettings
    from gpt2viz.workbench import SEED_LOSSES, seed_noise

    assert len(SEED_LOSSES) >= 3  # a few seeds, not one
    embedded = Corpus.default().sha256
    assert seed_noise(TrainSettings(), embedded, 0.0) == pytest.approx(max(SEED_LOSSES.values()) - min(SEED_LOSSES.values()))
    assert seed_noise(TrainSettings(steps=QUICK_STEPS), embedded, 0.0) is None


def test_issue16_finding12_losses_say_they_are_over_the_compact_vocabulary(corpus):
    known = len(corpus.vocab.gpt2_ids)
    folded = get_tokenizer().vocab_size - known
    at = app()
    text = " ".join(c.value for c in at.caption)
    assert f"{known:,} GPT-2 ids" in text and f"other {folded:,}" in text and "unknown" in text
    at = app("compare", weights="random")
    text = " ".join(c.value for c in at.caption)
    assert f"{corpus.vocab.size:,}" in text and "unknown" in text and "not comparable" in text


# ----------------------------------------------------------------- Compare
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
        assert table.loc[name, f"KV cache at {len(gpt2_ids)} tokens"].startswith(
            f"{slots * kv_bytes_per_token(cfg) / 1024:.1f}")


def test_issue16_finding4_generation_stops_at_the_learned_table_and_says_so():
    at = app("compare", weights="random", variants=["gpt2", "rope"])
    words = " ".join(f"w{i}" for i in range(60))
    at.text_area[0].set_value(words).run()
    prompt_len = len(get_tokenizer().encode(words))
    room = PRESETS["gpt2"].max_seq_len - prompt_len
    assert 0 < room < 40  # the default 40 new tokens do not fit
    notes = [c.value for c in at.caption if "learned positions for" in c.value]
    assert notes == [f"gpt2 has learned positions for {PRESETS['gpt2'].max_seq_len} tokens (its training "
                     f"block) and none past them: {room} of 40 new tokens generated."]


# ----------------------------------------------------------------- Attention
def colour_fractions(trace):
    """Where each cell lands on the colour bar, as plotly draws it: zmin/zmax, or the data's
    own range when they are not set."""
    z = array(trace["z"])
    lo = trace.get("zmin", np.nanmin(z))
    hi = trace.get("zmax", np.nanmax(z))
    return (z - lo) / (hi - lo)


def test_issue16_finding3_the_second_colour_scale_changes_the_colours():
    at = app("attention", weights="random")
    before = [colour_fractions(f["data"][0]) for f in figures(at)]
    at.radio[1].set_value(at.radio[1].options[1]).run()
    after = [colour_fractions(f["data"][0]) for f in figures(at)]
    for a, b in zip(before, after):
        assert not np.allclose(a, b, equal_nan=True)


def test_issue16_finding9_titles_name_the_layer_that_is_drawn():
    at = app("attention", weights="random", variants=["gpt2", "custom"], n_layer="1")
    at.slider[0].set_value(3).run()
    gpt2_map, custom_map = figures(at)
    assert "layer 3" in gpt2_map["layout"]["title"]["text"]
    assert "layer 0" in custom_map["layout"]["title"]["text"]  # custom has one layer: layer 0 is drawn
    model = stored("custom 1", "random", n_layer=1).model
    ids = Corpus.default().vocab.to_compact(torch.tensor(get_tokenizer().encode(at.text_area[0].value)))
    with torch.no_grad():
        expected = model.trace(ids[None]).attn[0][0].mean(0).numpy()
    assert np.allclose(np.nan_to_num(array(custom_map["data"][0]["z"])), expected, atol=1e-6)


def test_attention_difference_caption_is_the_largest_difference():
    at = app("attention", weights="random")
    at.radio[0].set_value("Difference").run()
    (diff,) = figures(at)
    z = array(diff["data"][0]["z"])
    assert f"Largest absolute difference: {np.nanmax(np.abs(z)):.3f}." in at.caption[-1].value


# ----------------------------------------------------------------- GQA
def test_issue16_finding2_gqa_parameters_are_those_of_the_models_built(corpus):
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


def test_issue16_finding6_pooling_is_compared_with_a_model_that_differs_only_in_kv_heads(corpus):
    at = app("gqa")
    conversion = figures(at)[-1]
    refs = [t for t in conversion["data"] if t.get("name") == "gqa trained from scratch"]
    assert len(refs) == 1
    gqa = stored("gqa")
    differing = {k for k, v in gqa.config.to_dict().items()
                 if v != PRESETS["gpt2"].replace(vocab_size=corpus.vocab.size).to_dict()[k]}
    assert differing == {"n_kv_head"}
    assert refs[0]["x"] == [str(gqa.config.n_kv_head)]
    assert refs[0]["y"][0] == pytest.approx(own_loss(gqa.model, corpus.val, 128), abs=1e-4)


def test_gqa_within_and_across_group_similarity_recomputed():
    at = app("gqa")
    metric = at.metric[0]
    variant = stored("rope+gqa+swa")
    ids = Corpus.default().vocab.to_compact(torch.tensor(get_tokenizer().encode(at.text_area[0].value)))
    with torch.no_grad():
        probs = variant.model.trace(ids[None]).attn[0][0].double().numpy()  # layer 0, (H, T, T)
    h, group = probs.shape[0], variant.config.group_size
    tv = lambda a, b: 0.5 * np.abs(probs[a] - probs[b]).sum(-1).mean()  # noqa: E731
    within = np.mean([1 - tv(a, b) for a in range(h) for b in range(h) if a != b and a // group == b // group])
    across = np.mean([1 - tv(a, b) for a in range(h) for b in range(h) if a // group != b // group])
    assert metric.value == f"{within:.3f}" and metric.delta.startswith(f"{within - across:+.3f}")


def test_pooling_every_head_into_itself_costs_nothing(corpus):
    """The conversion curve's MHA point is the trained gpt2 itself: its own validation loss."""
    at = app("gqa")
    pooled = figures(at)[-1]["data"][0]
    assert pooled["x"][0] == "8"
    assert pooled["y"][0] == pytest.approx(own_loss(stored("gpt2").model, corpus.val, 128), abs=1e-4)


# ----------------------------------------------------------------- RoPE
def test_rope_panels_end_where_the_model_put_the_last_query(corpus):
    """The page undoes the last query's rotation and rotates it to every position: at the last
    position that must be the model's own rotated query again, pair by pair."""
    at = app("rope", weights="random")
    rotation = figures(at)[0]
    v = stored("rope+gqa+swa", "random")
    ids = corpus.vocab.to_compact(torch.tensor(get_tokenizer().encode(at.text_area[0].value)))
    with torch.no_grad():
        q_last = v.model.trace(ids[None]).q[0][0, 0, -1].double().numpy()  # layer 0, head 0
    half = v.config.head_dim // 2
    panels = [t for t in rotation["data"] if t.get("name") == "q rotated to each position"]
    titles = [a["text"] for a in rotation["layout"]["annotations"] if a["text"].startswith("pair")]
    for panel, title in zip(panels, titles):
        i = int(title.split(":")[0].split()[1])
        assert array(panel["x"])[-1] == pytest.approx(q_last[i], abs=1e-5)
        assert array(panel["y"])[-1] == pytest.approx(q_last[i + half], abs=1e-5)


# ----------------------------------------------------------------- Latency
def test_issue16_finding11_memory_caption_says_what_is_left_out():
    at = app("performance", weights="random")
    text = " ".join(c.value for c in at.caption)
    assert "leaves out the inputs" in text and "fused kernel" in text
