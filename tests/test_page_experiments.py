"""The Experiments page through AppTest: each experiment draws what its definition says, on the
sidebar's default models (gpt2 and rope+gqa+swa, trained for a few steps)."""
import numpy as np
import pytest
from apptest import app, array, figures, wait_for_training

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def choose(at, experiment):
    at.radio(key="experiment").set_value(experiment).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_length_curves_stop_at_the_learned_table_and_mark_the_training_length():
    at = app("experiments")
    (fig,) = figures(at)
    traces = {t["name"]: t for t in fig["data"] if "name" in t}
    gpt2, cut = traces["gpt2"], traces["gpt2, context ≤ 128"]
    assert max(array(gpt2["x"])) < 128 <= max(array(cut["x"]))  # whole block stops at max_seq_len
    assert any(s.get("x0") == 128 for s in fig["layout"]["shapes"])  # the training length
    assert any("learned positions have no embedding past 128" in w.value for w in at.warning)
    # RoPE + window 16 over 4 layers sees 60 tokens back, relative positions only: cutting the
    # context to 128 tokens changes nothing, so both curves agree everywhere.
    rope, rope_cut = traces["rope+gqa+swa"], traces["rope+gqa+swa, context ≤ 128"]
    assert np.allclose(array(rope["y"]), array(rope_cut["y"]), atol=1e-4)
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["gpt2", "rope+gqa+swa"]
    assert table["8×: whole block"].isna().tolist() == [True, False]


def test_window_that_covers_the_block_is_full_attention():
    at = choose(app("experiments"), "Window & sinks")
    (fig,) = figures(at)
    names = [t["name"] for t in fig["data"]]
    assert names == ["gpt2, 0 sinks", "gpt2, 4 sinks", "rope+gqa+swa, 0 sinks", "rope+gqa+swa, 4 sinks",
                     "rope+gqa+swa: trained with 16"]
    table = at.dataframe[0].value
    covering = table[table["window"] == 128]
    assert (covering["vs full attention"] == 0).all() and len(covering) == 4


def test_receptive_field_reach_matches_theory_on_the_page():
    at = choose(app("experiments"), "Receptive field")
    at.main.selectbox[-1].set_value("rope+gqa+swa").run()
    (fig,) = figures(at)
    z = array(fig["data"][0]["z"])  # (layers, P + 1)
    position = z.shape[1] - 1
    assert position == 100
    for layer in range(4):  # l * (w - 1) with w = 16, the position itself included
        assert z[layer].sum() == min(position, 15 * (layer + 1)) + 1
    assert list(at.dataframe[0].value["measured reach"]) == [15, 30, 45, 60]
    assert any("agree at every layer" in s.value for s in at.success)
    at.main.selectbox[-1].set_value("gpt2").run()
    assert any("no window" in i.value for i in at.info)


def test_gqa_frontier_pools_then_uptrains_on_demand():
    at = choose(app("experiments"), "GQA frontier")
    table = at.dataframe[0].value
    assert list(table["n_kv_head"]) == [8, 4, 2, 1] and table.filter(like="uptrained").isna().all().all()
    at.main.number_input[-1].set_value(2).run()
    at.button[0].click().run()
    wait_for_training(at)  # uptraining runs in the background, then the page draws it
    assert not at.exception
    table = at.dataframe[0].value
    assert table["uptrained (2 steps)"].notna().all()
    assert list(table["KV bytes / token"]) == [2 * 4 * kv * 16 * 4 for kv in (8, 4, 2, 1)]


def test_uptraining_can_be_cancelled_and_keeps_nothing():
    at = choose(app("experiments"), "GQA frontier")
    at.main.number_input[-1].set_value(40).run()
    at.button[0].click().run()
    cancel = next(b for b in at.button if b.label == "Cancel")
    assert any("Uptraining 4 pooled models of gpt2 for 40 steps in the background" in m.value
               for m in at.markdown)
    cancel.click().run()
    wait_for_training(at)
    assert any("cancelled; nothing was kept" in i.value for i in at.info)
    assert at.dataframe[0].value.filter(like="uptrained").isna().all().all()
    assert [b.label for b in at.button] == ["Uptrain every pooled model for 40 steps"]  # offered again


def test_logit_lens_one_heatmap_per_variant():
    at = choose(app("experiments"), "Logit lens")
    (fig,) = figures(at)
    heatmaps = [t for t in fig["data"] if t["type"] == "heatmap"]
    assert len(heatmaps) == 2
    for h in heatmaps:
        z = array(h["z"])
        assert z.shape[0] == 5 and (z > 0).all() and (z <= 1).all()  # embeddings + 4 layers


def test_random_weights_are_refused_for_losses_but_not_for_reach():
    at = app("experiments", weights="random")
    assert any("Losses of random weights say nothing" in i.value for i in at.info)
    at = choose(at, "Receptive field")
    assert len(figures(at)) == 1


def test_every_experiment_runs_on_weights_from_a_checkpoint_folder():
    """Weights from a folder are trained weights: no experiment may call them random."""
    from gpt2viz import ModelConfig
    from gpt2viz.core.config import TrainSettings
    from gpt2viz.text.corpus import Corpus
    from gpt2viz.training.train import train
    from gpt2viz.weights.checkpoint_cache import cache_dir, cache_key

    corpus = Corpus.default()
    cfg = ModelConfig(n_layer=2, n_head=2, d_model=32, max_seq_len=256, position="rope",
                      window=8, vocab_size=corpus.vocab.size)
    settings = TrainSettings(steps=2, batch_size=2, block_size=64)
    train(cfg, corpus, settings, seed=5)
    folder = cache_dir() / cache_key(cfg, corpus, settings, 5)
    at = app("experiments", weights="checkpoint", checkpoint=str(folder))
    for experiment in at.radio(key="experiment").options:
        choose(at, experiment)
        assert not any("random weights" in i.value for i in at.info), experiment
        if experiment == "StreamingLLM":  # the real model's experiment: it says so and stops
            assert any("runs on a pretrained model" in i.value for i in at.info)
        else:
            assert figures(at), experiment


def test_context_extension_losses_are_the_stretched_models_own(corpus):
    """Each method's loss is the model rebuilt with that rope_scaling, scored on blocks of
    s x 128 tokens of the validation text, recomputed here in float64."""
    from apptest import own_loss, stored

    from gpt2viz import GPT2

    at = choose(app("experiments"), "Context extension")
    at.multiselect(key="extend_methods").set_value(["none", "linear", "yarn"]).run()
    at.select_slider(key="extend_factor").set_value(2).run()
    (fig,) = figures(at)
    assert [t["name"] for t in fig["data"] if t.get("showlegend") is not False] == ["none", "linear", "yarn"]
    table = at.dataframe[0].value.set_index("method")
    v = stored("rope+gqa+swa")
    for method in ("none", "linear", "yarn"):
        cfg = v.config if method == "none" else v.config.replace(
            rope_scaling=method, rope_factor=2.0, rope_original_length=128)
        model = GPT2.from_weights(cfg, dict(v.model.state_dict()))
        assert table.loc[method, "loss"] == pytest.approx(own_loss(model, corpus.val, 256), abs=1e-3)
    assert list(table.columns[-2:]) == ["positions 0-127", "positions 128-255"]
