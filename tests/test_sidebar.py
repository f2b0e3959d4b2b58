"""The sidebar's link reading and naming, and what the pages say around the controls."""
import pytest

from gpt2viz import ModelConfig
from gpt2viz.dashboard.sidebar import DEFAULTS, custom_name, read_link
from test_app import app, figures, wait_for_training


def test_a_link_within_range_is_taken_as_written():
    state, notes = read_link({"variants": ["swa", "custom2"], "seed": ["7"], "c2_window": ["4"],
                              "rope_base": ["500"], "weights": ["random"]})
    assert notes == []
    assert state["variants"] == ["swa", "custom2"] and state["seed"] == 7 and state["c2_window"] == 4
    assert state["rope_base"] == 500.0 and state["weights"] == "random"
    assert state["n_layer"] == DEFAULTS["n_layer"]


@pytest.mark.parametrize("key, text, expected, said", [
    ("n_layer", "99", 12, "n_layer=99 is outside 1–12; using the nearest valid value, 12."),
    ("d_model", "1000", 512, "d_model=1000 is outside 8–512; using the nearest valid value, 512."),
    ("window", "300", 256, "window=300 is outside 0–256; using the nearest valid value, 256."),
    ("c2_n_head", "0", 1, "c2_n_head=0 is outside 1–32; using the nearest valid value, 1."),
    ("seed", "-3", 0, "seed=-3 is outside 0–2.14748e+09; using the nearest valid value, 0."),
    ("seed", "abc", 0, "seed='abc' is not a whole number; using 0."),
    ("rope_base", "1", 2.0, "rope_base=1 is outside 2–1e+07; using the nearest valid value, 2."),
])
def test_out_of_range_link_values_are_clamped_and_said(key, text, expected, said):
    state, notes = read_link({key: [text]})
    assert state[key] == expected and notes == [said]


def test_unknown_names_in_a_link_are_named_and_fall_back():
    state, notes = read_link({"variants": ["nope"], "weights": ["x"], "position": ["alibi9"]})
    assert state["variants"] == DEFAULTS["variants"] and state["weights"] == "trained"
    assert state["position"] == DEFAULTS["position"]
    assert "unknown variant(s) 'nope'" in notes[0] and "showing the defaults" in notes[0]
    assert notes[1].startswith("weights='x' is not one of") and notes[2].startswith("position='alibi9'")
    state, notes = read_link({"variants": ["nope", "swa"]})
    assert state["variants"] == ["swa"] and "showing the others" in notes[0]


def test_custom_variants_are_named_by_what_differs_from_gpt2():
    assert custom_name("custom", ModelConfig()) == "custom 1: as gpt2"
    assert custom_name("custom2", ModelConfig(position="rope", n_kv_head=1, window=4)) == \
        "custom 2: rope · MQA · w=4"
    assert custom_name("custom", ModelConfig(position="rope", rope_base=2.0, n_kv_head=2, n_layer=2,
                                             d_model=64, n_head=4)) == \
        "custom 1: rope · base 2 · GQA-2 · L=2 · d=64 · 4 heads"


def test_a_page_says_what_the_link_could_not_mean():
    at = app(weights="random", variants=["nope"], n_layer="99")
    warnings = [w.value for w in at.warning]
    assert any("unknown variant(s) 'nope'" in w for w in warnings)
    assert any("n_layer=99 is outside 1–12" in w for w in warnings)
    assert list(at.dataframe[0].value["variant"]) == ["gpt2", "rope+gqa+swa"]  # the defaults
    at.sidebar.radio[0].set_value("trained").run()  # any change of the user's: the note goes
    assert not any("unknown variant" in w.value for w in at.warning)


def test_an_unbuildable_custom_variant_is_named_in_the_main_area():
    at = app(variants=["custom"], weights="random", n_head="3")
    main = [e.value for e in at.main.error]
    assert any(m.startswith("custom 1 cannot be built") and "n_head=3" in m for m in main)
    assert not any("Pick at least one" in i.value for i in at.info)


def test_two_custom_variants_side_by_side():
    at = app("attention", weights="random", variants=["custom", "custom2"], c2_position="none")
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert titles[0].startswith("custom 1: rope · GQA-2 · w=16 ·")
    assert titles[1].startswith("custom 2: none · MQA · w=16 ·")


def test_one_token_prompt_explains_the_empty_loss():
    at = app("compare", weights="random")
    at.text_area[0].set_value("Hello").run()
    assert any("one token: there is nothing to predict" in i.value for i in at.info)


def test_gqa_page_starts_at_the_models_own_sharing_and_says_when_there_is_one_group():
    at = app("gqa", weights="random", variants=["custom"], n_kv_head="1")
    assert at.select_slider[0].value == 1
    assert "MQA" in figures(at)[0]["layout"]["title"]["text"]
    assert not any("nan" in str(m.value) or "nan" in str(m.delta) for m in at.metric)
    assert any("no other group to compare with" in c.value for c in at.caption)


def test_rope_page_starts_at_the_models_own_base():
    at = app("rope", weights="random", variants=["custom"], rope_base="2", window="0")
    assert at.select_slider[0].value == 2.0
    assert any("This model's base is 2" in c.value for c in at.caption)


def test_training_settings_key_the_cache_and_bad_settings_are_refused(tmp_path, monkeypatch):
    """Through a link (the browser test types them into the Build page's fields)."""
    from gpt2viz import PRESETS
    from gpt2viz.corpus import Corpus
    from gpt2viz.checkpoint_cache import checkpoint_folder
    from gpt2viz.config import TrainSettings

    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))
    at = app(variants=["gqa"], steps="5", lr="0.002", batch_size="4")
    row = at.dataframe[0].value.iloc[0]
    assert row["weights"] == "trained" and "5 steps · batch 4 × 128 tokens · lr 0.002" in row["settings"]
    settings = TrainSettings(steps=5, lr=0.002, batch_size=4)
    assert checkpoint_folder(PRESETS["gqa"], Corpus.default(), settings, 0).is_dir()
    # learned positions have 128 rows: a 512-token block cannot train, said before anything runs
    at = app(variants=["gqa"], steps="5", lr="0.002", batch_size="4", block_size="512")
    assert any("gqa cannot be trained with these settings" in e.value and "max_seq_len=128" in e.value
               for e in at.error)
    assert at.dataframe[0].value.iloc[0]["weights"] == "random init (not trained yet)"
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("data, said", [
    (b"", "is empty"), (b"   \n\t", "is empty"), (b"\x00\x01PNG", "looks binary"),
    (b"caf\xe9 au lait", "is not UTF-8"), (b"too short " * 10, "training needs at least 4096"),
])
def test_own_text_that_cannot_train_is_refused_with_the_reason(data, said):
    from gpt2viz.corpus import Corpus, CorpusError, decode_text

    with pytest.raises(CorpusError, match=said):
        Corpus.from_text(decode_text(data, "notes.txt"), "notes.txt")


def test_a_corpus_link_names_its_hash_and_an_unknown_one_is_said(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))
    at = app(weights="random", corpus="gone.txt@0123456789ab")
    assert any("The corpus 'gone.txt@0123456789ab' is not on this server" in w.value for w in at.warning)
    assert "pydoc_data.topics" in at.caption[0].value or at.dataframe  # the embedded one, working
