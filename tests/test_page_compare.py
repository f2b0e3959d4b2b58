"""Compare & generate (issue 24, item 10): no talk of heatmaps it does not have, and the
next-token panels on one probability scale."""
from test_app import app, array, figures  # noqa: F401  (autouse: quick budget, own cache)


def test_long_prompt_note_and_one_probability_scale():
    at = app("compare", weights="random", variants=["gpt2", "gqa"])
    (bars,) = figures(at)
    xaxes = [axis for name, axis in bars["layout"].items() if name.startswith("xaxis")]
    top = max(array(trace["x"]).max() for trace in bars["data"])
    assert len(xaxes) == 2 and xaxes[0]["range"] == xaxes[1]["range"] and xaxes[0]["range"][1] >= top
    at.text_area[0].set_value("word " * 400).run()
    notes = [i.value for i in at.info if "only its last" in i.value]
    assert notes and not any("heatmap" in n for n in notes)
