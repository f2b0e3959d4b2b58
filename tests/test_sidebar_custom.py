"""The custom variants' panel: a field that means nothing with the others (RoPE base without
RoPE, sinks without a window) is hidden, left out of the model, and kept for when it applies
again; sinks are a field like the others, in the URL (issue 24, items 5 and 6)."""
import pytest
from apptest import app, stored

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def panel_keys(at):
    return [n.key for n in at.sidebar.number_input]


def test_rope_base_is_hidden_without_rope_and_kept_for_when_it_returns():
    at = app(variants=["custom"], weights="random", rope_base="1000000")
    assert "sb_rope_base" in panel_keys(at)
    at.sidebar.selectbox(key="sb_position").set_value("alibi").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "sb_rope_base" not in panel_keys(at)
    assert list(at.dataframe[0].value["variant"]) == ["custom 1: alibi · GQA-2 · w=16"]
    assert stored("custom 1", weights="random", position="alibi").config.rope_base == 10000.0
    assert at.query_params["rope_base"] == "1000000.0"  # still in the link
    at.sidebar.selectbox(key="sb_position").set_value("rope").run()
    assert at.sidebar.number_input(key="sb_rope_base").value == 1e6
    assert list(at.dataframe[0].value["variant"]) == ["custom 1: rope · base 1,000,000 · GQA-2 · w=16"]


def test_sinks_show_only_with_a_window_and_travel_in_the_link():
    at = app(variants=["custom2"], weights="random", c2_sinks="3")
    sinks = at.sidebar.number_input(key="sb_c2_sinks")
    assert sinks.value == 3
    assert list(at.dataframe[0].value["variant"]) == ["custom 2: rope · MQA · w=16 · 3 sinks"]
    assert stored("custom 2", weights="random").config.sinks == 3
    sinks.set_value(5).run()
    assert at.query_params["c2_sinks"] == "5"
    at.sidebar.number_input(key="sb_c2_window").set_value(0).run()
    assert not at.error, [e.value for e in at.error]
    assert "sb_c2_sinks" not in panel_keys(at)
    assert list(at.dataframe[0].value["variant"]) == ["custom 2: rope · MQA"]
    at.sidebar.number_input(key="sb_c2_window").set_value(8).run()
    assert at.sidebar.number_input(key="sb_c2_sinks").value == 5
