"""Attention through AppTest: the heatmaps are the model's probabilities under its mask, the
views and colour scales, titles that name what is drawn, the difference caption."""
import numpy as np
import pytest
import torch
from apptest import app, array, colour_fractions, figures, stored

from gpt2viz.text.corpus import Corpus
from gpt2viz.text.tokenizer import get_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def test_heatmaps_are_probabilities_under_the_mask_in_every_view():
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
    import gpt2viz.analysis.workbench as workbench
    calls = []
    original = workbench.GPT2.trace
    monkeypatch.setattr(workbench.GPT2, "trace", lambda *a, **k: calls.append(1) or original(*a, **k))
    at.radio[1].set_value("log (0.001 to 1)").run()
    at.radio[0].set_value("All layers × heads").run()
    assert not at.exception and calls == []


def test_the_log_colour_scale_changes_the_colours():
    at = app("attention", weights="random")
    before = [colour_fractions(f["data"][0]) for f in figures(at)]
    at.radio[1].set_value(at.radio[1].options[1]).run()
    after = [colour_fractions(f["data"][0]) for f in figures(at)]
    for a, b in zip(before, after):
        assert not np.allclose(a, b, equal_nan=True)


def test_titles_name_the_layer_that_is_drawn():
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
    assert f"Largest absolute difference: {np.nanmax(np.abs(z)):.3f}." in at.main.caption[-1].value
