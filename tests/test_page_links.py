"""The pages' own view controls travel in the link: set a control, the URL holds it; open that
link, the control shows it; a value the page cannot show is clamped and said in the one notes
box; the prompt keeps its controls when it is cleared and typed again (issue 24, items 7, 8)."""
import pytest
from apptest import app, figures

from gpt2viz.dashboard.link import PROMPT_LINK_CHARS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def notes_box(at):
    return [w.value for w in at.warning if "=" in w.value]


def set_attention(at, layer, head, scale):
    at.slider(key="attention_layer").set_value(layer).run()
    at.selectbox(key="attention_head").set_value(head).run()
    at.radio(key="attention_scale").set_value(scale).run()


def test_attention_controls_and_prompt_go_in_the_link_and_come_back_from_it():
    at = app("attention", weights="random")
    set_attention(at, 2, 3, "log (0.001 to 1)")
    at.text_area(key="prompt").set_value("def f(x): return x").run()
    at.radio(key="attention_view").set_value("Difference").run()
    link = dict(at.query_params)
    assert link["attention_layer"] == "2" and link["attention_head"] == "3"
    assert link["attention_scale"] == "log (0.001 to 1)" and link["attention_view"] == "Difference"
    assert link["prompt"] == "def f(x): return x"

    opened = app("attention", **link)
    assert opened.slider(key="attention_layer").value == 2
    assert opened.selectbox(key="attention_head").value == 3
    assert opened.radio(key="attention_view").value == "Difference"
    assert opened.text_area(key="prompt").value == "def f(x): return x"
    assert opened.session_state["attention_scale"] == "log (0.001 to 1)"  # hidden in Difference
    assert not notes_box(opened)
    opened.radio(key="attention_view").set_value("One head").run()
    assert opened.radio(key="attention_scale").value == "log (0.001 to 1)"
    assert "layer 2 · head 3" in figures(opened)[0]["layout"]["title"]["text"]


def test_a_link_value_the_page_cannot_show_is_clamped_and_said_in_the_one_box():
    at = app("attention", weights="random", attention_layer="99", attention_head="77",
             attention_view="Sideways", seed="-3")
    assert at.slider(key="attention_layer").value == 3  # 4 layers
    assert at.selectbox(key="attention_head").value == 7  # 8 heads: the nearest
    assert at.radio(key="attention_view").value == "One head"
    (box,) = notes_box(at)
    lines = box.split("  \n")
    assert lines[0].startswith("seed=-3 is outside")
    assert "attention_view='Sideways' is not one of One head, All layers × heads, Difference; " \
           "using 'One head'." in lines
    assert "attention_layer=99 is outside 0–3; using the nearest valid value, 3." in lines
    assert "attention_head=77 is not offered here; using the nearest, 7." in lines


def test_a_long_prompt_is_cut_in_the_link_and_the_page_says_so():
    long = "word " * 400
    at = app("attention", weights="random")
    at.text_area(key="prompt").set_value(long).run()
    assert at.query_params["prompt"] == long[:PROMPT_LINK_CHARS]
    assert any(f"first {PROMPT_LINK_CHARS:,} characters (of 2,000)" in c.value for c in at.main.caption)
    opened = app("attention", weights="random", prompt=long)
    assert opened.text_area(key="prompt").value == long[:PROMPT_LINK_CHARS]
    assert any("The link's prompt is 2,000 characters long" in w.value for w in opened.warning)


def test_clearing_the_prompt_keeps_the_attention_controls():
    at = app("attention", weights="random")
    set_attention(at, 2, 5, "log (0.001 to 1)")
    at.text_area(key="prompt").set_value("").run()
    assert not at.get("slider")
    at.text_area(key="prompt").set_value("for x in range(3): print(x)").run()
    assert at.slider(key="attention_layer").value == 2 and at.selectbox(key="attention_head").value == 5
    assert at.radio(key="attention_scale").value == "log (0.001 to 1)"


@pytest.mark.parametrize("page, key, value, text", [
    ("rope", "geometry_base", 500.0, "500.0"),
    ("rope", "geometry_head_dim", 64, "64"),
    ("rope", "geometry_context", 4096, "4096"),
    ("gqa", "gqa_kv_heads", 4, "4"),
    ("gqa", "gqa_context", 32768, "32768"),
    ("compare", "compare_k", 12, "12"),
    ("compare", "compare_temperature", 1.5, "1.5"),
    ("compare", "compare_top_k", 7, "7"),
    ("compare", "compare_new_tokens", 9, "9"),
    ("compare", "compare_seed", 123, "123"),
    ("experiments", "experiment", "Receptive field", "Receptive field"),
])
def test_each_page_control_round_trips_through_the_link(page, key, value, text):
    at = app(page, weights="random")
    widget = next(w for kind in ("slider", "select_slider", "number_input", "radio")
                  for w in at.get(kind) if getattr(w, "key", None) == key)
    widget.set_value(value).run()
    assert at.query_params[key] == text
    opened = app(page, weights="random", **{key: text})
    assert opened.session_state[key] == value
    assert not notes_box(opened)
