"""Figures you can take away (issue 31): every chart's toolbar saves SVG and its data saves as
CSV; the atlas and the heatmaps download as one self-contained HTML file holding the figure's own data."""
import base64
import json
import re

import numpy as np
import pytest
from apptest import app

from gpt2viz.dashboard.export import CHART_CONFIG, file_name
from gpt2viz.viz.attention import attention_heatmap

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def test_every_chart_on_a_page_saves_svg_and_csv_and_the_heatmaps_download_as_html():
    at = app("attention", weights="random", variants=["gpt2", "rope"])
    charts = at.get("plotly_chart")
    assert charts and all(json.loads(c.proto.config)["toImageButtonOptions"]["format"] == "svg" for c in charts)
    labels = [b.label for b in at.get("download_button")]
    assert labels.count("Download as HTML") == 2  # one per heatmap
    assert labels.count("Data (CSV)") == len(charts)


def test_the_html_file_is_the_figure_and_opens_offline():
    from gpt2viz.dashboard.export import HTML_CONFIG

    probs = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    fig = attention_heatmap(probs, ["a", "b", "c", "d"], "gpt2 · layer 0 · head 3")
    html = fig.to_html(include_plotlyjs=True, full_html=True, config=HTML_CONFIG)  # as html_download
    assert file_name(fig) == "gpt2-layer-0-head-3"
    assert not re.search(r'<script[^>]+src=', html)  # plotly.js inlined: opens offline
    # the arguments of Plotly.newPlot(id, data, layout, config), read back as JSON
    rest = html[html.index("Plotly.newPlot(") + len("Plotly.newPlot("):]
    decoder, values = json.JSONDecoder(), []
    while len(values) < 4:
        rest = rest.lstrip(" \n,")
        value, end = decoder.raw_decode(rest)
        values.append(value)
        rest = rest[end:]
    _, data, layout, config = values
    z = data[0]["z"]  # plotly writes arrays as {"dtype", "bdata": base64, "shape"}
    z = np.frombuffer(base64.b64decode(z["bdata"]), z["dtype"]).reshape(
        [int(n) for n in z["shape"].split(",")]) if isinstance(z, dict) else np.array(z, float)
    assert np.allclose(np.nan_to_num(z), np.nan_to_num(np.array(fig.data[0].z, dtype=float)))
    assert layout["title"]["text"] == fig.layout.title.text
    assert config["toImageButtonOptions"] == {"format": "png", "scale": 3}
    assert CHART_CONFIG["toImageButtonOptions"]["format"] == "svg"
