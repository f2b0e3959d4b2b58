"""The shared controls: the sidebar's link reading and naming, what the pages say around the
controls, the prompt's bad input, the weights loaders (AppTest ones are marked slow)."""
import pytest
from apptest import app, figures

from gpt2viz import ModelConfig
from gpt2viz.dashboard.controls import CUSTOM_DEFAULTS, DEFAULTS, custom_name
from gpt2viz.dashboard.link import read_link

pytestmark = pytest.mark.usefixtures("quick_training")


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
    ("seed", "-3", 0, "seed=-3 is outside 0–2,147,483,647; using the nearest valid value, 0."),
    ("rope_base", "nan", 10000.0, "rope_base='nan' is not a finite number; using the default, 10,000."),
    ("c2_rope_base", "inf", 10000.0, "c2_rope_base='inf' is not a finite number; using the default, 10,000."),
    ("seed", "abc", 0, "seed='abc' is not a whole number; using 0."),
    ("rope_base", "1", 2.0, "rope_base=1 is outside 2–10,000,000; using the nearest valid value, 2."),
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


@pytest.mark.slow
def test_a_page_says_what_the_link_could_not_mean():
    at = app(weights="random", variants=["nope"], n_layer="99")
    warnings = [w.value for w in at.warning]
    assert any("unknown variant(s) 'nope'" in w for w in warnings)
    assert any("n_layer=99 is outside 1–12" in w for w in warnings)
    assert list(at.dataframe[0].value["variant"]) == ["gpt2", "rope+gqa+swa"]  # the defaults
    at.sidebar.radio[0].set_value("trained").run()  # any change of the user's: the note goes
    assert not any("unknown variant" in w.value for w in at.warning)


@pytest.mark.slow
def test_an_unbuildable_custom_variant_is_named_in_the_main_area():
    at = app(variants=["custom"], weights="random", n_head="3")
    main = [e.value for e in at.main.error]
    assert any(m.startswith("custom 1 cannot be built") and "n_head=3" in m for m in main)
    assert not any("Pick at least one" in i.value for i in at.info)
    side = [e.value for e in at.sidebar.error]  # once in the sidebar, beside the fields
    assert len([m for m in side if m.startswith("custom 1 cannot be built")]) == 1


@pytest.mark.slow
def test_a_custom_slot_not_in_compare_says_why_it_cannot_be_built():
    """Issue 31.7: the slot's title said "cannot be built" and nothing said why until the slot
    was added to Compare."""
    at = app(weights="random", variants=["gpt2"], n_head="3")
    side = [e.value for e in at.sidebar.error]
    assert any(m.startswith("custom 1 cannot be built") and "n_head=3" in m for m in side), side
    assert not any("custom 1" in e.value for e in at.main.error)  # not selected: not in the main area


@pytest.mark.slow
def test_a_typed_value_out_of_range_is_the_one_named():
    """Issue 31.7a: with widget bounds Streamlit kept the old value, so the message named that
    one (n_kv_head=3) instead of what was typed; each typed value is now checked and named."""
    at = app(variants=["custom"], weights="random")
    for key, typed, said in (("sb_n_layer", 999, "Layers 999 is outside 1–12"),
                             ("sb_n_kv_head", 0, "Key/value heads 0 is outside 1–32"),
                             ("sb_window", -5, "Window (0 = full attention) -5 is outside 0–256")):
        at.number_input(key=key).set_value(typed).run()
        errors = [e.value for e in at.sidebar.error]
        assert any(said in e for e in errors), (typed, errors)
        assert any(said in e.value for e in at.main.error)  # in Compare: named there too
        at.number_input(key=key).set_value(CUSTOM_DEFAULTS["custom"][key[3:]]).run()  # back
        assert not at.sidebar.error and not at.exception


@pytest.mark.slow
def test_two_custom_variants_side_by_side():
    at = app("attention", weights="random", variants=["custom", "custom2"], c2_position="none")
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert titles[0].startswith("custom 1: rope · GQA-2 · w=16 ·")
    assert titles[1].startswith("custom 2: none · MQA · w=16 ·")


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_checkpoint_folders_load_ours_and_hugging_faces(tmp_path):
    from gpt2viz import ModelConfig
    from gpt2viz.core.config import TrainSettings
    from gpt2viz.text.corpus import Corpus
    from gpt2viz.training.train import train
    from gpt2viz.weights.checkpoint_cache import cache_dir, cache_key

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
