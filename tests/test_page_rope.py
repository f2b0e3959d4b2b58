"""RoPE geometry through AppTest: a model's real rotation or a synthetic one, the panels end
where the model put its last query, the sliders start at the model's own base."""
import numpy as np
import pytest
import torch
from apptest import app, array, figures, stored

from gpt2viz.text.tokenizer import get_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def test_real_rotation_with_a_rope_model_and_a_synthetic_one_without():
    at = app("rope", weights="random")
    rotation, usage, measured, wavelengths, scaling, scaled_decay, decay = figures(at)
    assert "rotation pairs" in usage["layout"]["title"]["text"] and "q·k against distance" in \
        measured["layout"]["title"]["text"]  # the model's own vectors (on the prompt)
    panels = [t for t in rotation["data"] if t.get("name") == "q rotated to each position"]
    assert len(panels) == 8 and any(t.get("name") == "real k" for t in rotation["data"])
    assert len(array(wavelengths["data"][0]["x"])) == 8
    assert len(decay["data"]) == 6  # two RoPE, sinusoidal, learned of gpt2, two ALiBi heads
    for curve, slope in zip([t for t in decay["data"] if "ALiBi" in t["name"]], (1 / 2, 1 / 256)):
        distance = array(curve["x"])  # no ALiBi model selected: 8 heads, slopes 2^-1 .. 2^-8
        assert np.allclose(array(curve["y"]), np.exp(-slope * distance))
    at.select_slider[1].set_value(64).run()  # head size: only the explanatory figures change
    assert len(array(figures(at)[3]["data"][0]["x"])) == 32
    at = app("rope", weights="random", variants=["gpt2"])
    assert any("No RoPE model" in i.value for i in at.info) and len(figures(at)) == 5


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


def test_sliders_start_at_the_models_own_base():
    at = app("rope", weights="random", variants=["custom"], rope_base="2", window="0")
    assert at.select_slider[0].value == 2.0
    assert any("This model's base is 2" in c.value for c in at.caption)


def test_context_extension_follows_its_method_and_factor():
    """Picking a method and a factor redraws the pairs from the definition: linear interpolates
    every pair; static NTK (base x s^(d/(d-2))) keeps the fastest pair (theta_0 = 1 whatever the
    base) and interpolates the slowest by exactly s. The context starts at the model's own."""
    at = app("rope", weights="random")
    own = stored("rope+gqa+swa", "random").config
    assert at.select_slider[2].value == own.max_seq_len  # the trained context, not 256
    pairs = own.head_dim // 2
    at.selectbox(key="geometry_scaling").set_value("linear").run()
    at.select_slider(key="geometry_factor").set_value(8.0).run()
    title = figures(at)[4]["layout"]["title"]["text"].replace("<br>", " ")
    assert title.startswith(f"linear × 8 over {own.max_seq_len:,} tokens")
    assert f"0 pairs kept, 0 in between, {pairs} interpolated" in title
    at.selectbox(key="geometry_scaling").set_value("ntk").run()
    title = figures(at)[4]["layout"]["title"]["text"].replace("<br>", " ")
    assert f"1 pairs kept, {pairs - 2} in between, 1 interpolated" in title
    decay = figures(at)[5]
    assert len(decay["data"]) == 6 + 2  # plain RoPE, the five methods, L and s·L marked
    assert max(array(decay["data"][0]["x"])) == 8 * own.max_seq_len - 1
