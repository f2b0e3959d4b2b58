"""Figures you can take away: every chart's camera button saves an SVG (vector, for papers:
BertViz #13, #33) and its data downloads as CSV; the heatmaps and the head atlas also download
as standalone HTML."""
from __future__ import annotations

import re
from functools import partial
from itertools import count

import plotly.graph_objects as go
import streamlit as st

from gpt2viz.viz.table import figure_table

from .routing import widget_keys_this_run

# plotly's own toolbar: the camera button writes this format, named for the chart
CHART_CONFIG = {"toImageButtonOptions": {"format": "svg", "filename": "gpt2viz-chart"},
                "displaylogo": False}
# inside a downloaded HTML file the camera writes a PNG at three times the screen's resolution
HTML_CONFIG = {"toImageButtonOptions": {"format": "png", "scale": 3}, "displaylogo": False}


def file_name(fig: go.Figure) -> str:
    """'gpt2 · layer 0 · head 3' -> 'gpt2-layer-0-head-3': the chart's title, safe as a file name."""
    title = re.sub(r"<[^>]+>", " ", fig.layout.title.text or "chart")
    return (re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() or "chart")[:80]


def chart(fig: go.Figure, container=st, **options):
    """Every chart drawn one way: full width, the SVG camera, and below it a button that saves
    what it draws as CSV (viz.table.figure_table, built only when clicked). options go to
    st.plotly_chart (key, on_select, ...); returns what it returns."""
    shown = container.plotly_chart(fig, width="stretch", config=CHART_CONFIG, **options)
    name, taken = file_name(fig), widget_keys_this_run()
    key = next(k for k in (f"csv-{name}-{i}" for i in count()) if k not in taken)  # titles repeat
    container.download_button("Data (CSV)", partial(_csv, fig), f"{name}.csv", "text/csv", key=key,
                              type="tertiary", icon=":material/download:", on_click="ignore")
    return shown


def _csv(fig: go.Figure) -> str:
    return figure_table(fig).to_csv(index=False)


def html_download(fig: go.Figure, key: str, container=st) -> None:
    """A button that saves the figure as one self-contained HTML file (plotly.js inlined, so it
    opens offline), hover and zoom included."""
    html = fig.to_html(include_plotlyjs=True, full_html=True, config=HTML_CONFIG)
    container.download_button("Download as HTML", html, f"{file_name(fig)}.html", "text/html", key=key)
