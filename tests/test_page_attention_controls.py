"""Attention page: a control that does nothing in the current view is not shown, and keeps its
value for when it applies again (issue 24, item 13)."""
import pytest
from apptest import app, figures

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def labels(at):
    return {w.label for kind in ("slider", "selectbox", "radio") for w in at.get(kind)}


def test_controls_show_only_where_they_change_the_view():
    at = app("attention", weights="random")
    assert {"Layer", "Head", "Colour scale"} <= labels(at)
    at.slider(key="attention_layer").set_value(2).run()
    at.selectbox(key="attention_head").set_value(3).run()
    at.radio(key="attention_scale").set_value("log (0.001 to 1)").run()
    at.radio[0].set_value("All layers × heads").run()
    assert "Layer" not in labels(at) and "Head" not in labels(at) and "Colour scale" in labels(at)
    at.radio[0].set_value("Difference").run()
    assert {"Layer", "Head"} <= labels(at) and "Colour scale" not in labels(at)
    at.radio[0].set_value("One head").run()
    assert not at.exception and not at.warning
    assert at.slider(key="attention_layer").value == 2 and at.selectbox(key="attention_head").value == 3
    assert at.radio(key="attention_scale").value == "log (0.001 to 1)"
    assert "layer 2 · head 3" in figures(at)[0]["layout"]["title"]["text"]
