"""A chart's data as a table (one row per point or heatmap cell), read from the figure itself,
so every chart's CSV holds exactly what it draws."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def figure_table(fig: go.Figure) -> pd.DataFrame:
    """Columns: panel (the subplot's title where there are several panels), series (the
    trace's name), x, y, and value for heatmap cells. A heatmap's rows and columns are named
    by its y and x labels (their indices where it has none)."""
    panels = _panel_titles(fig)
    parts = []
    for trace in fig.data:
        panel = panels.get(getattr(trace, "xaxis", None) or "x", "")
        if isinstance(trace, go.Heatmap):
            z = np.asarray(trace.z, dtype=float)
            xs = list(trace.x) if trace.x is not None else list(range(z.shape[1]))
            ys = list(trace.y) if trace.y is not None else list(range(z.shape[0]))
            rows, cols = np.indices(z.shape)
            part = pd.DataFrame({"x": np.asarray(xs, dtype=object)[cols.ravel()],
                                 "y": np.asarray(ys, dtype=object)[rows.ravel()],
                                 "value": z.ravel()})
        elif hasattr(trace, "x") and hasattr(trace, "y") and (trace.x is not None or trace.y is not None):
            n = len(trace.y if trace.y is not None else trace.x)
            part = pd.DataFrame({"x": list(trace.x) if trace.x is not None else list(range(n)),
                                 "y": list(trace.y) if trace.y is not None else list(range(n))})
        else:
            continue
        part.insert(0, "series", trace.name or "")
        part.insert(0, "panel", panel)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["panel", "series", "x", "y"])
    table = pd.concat(parts, ignore_index=True)
    return table.drop(columns=[c for c in ("panel", "series") if (table[c] == "").all()])


def _panel_titles(fig: go.Figure) -> dict[str, str]:
    """x-axis name ("x", "x2", ...) -> its subplot's title, where make_subplots gave each
    panel one (its titles are annotations in the order of the axes); else no titles."""
    axes = sorted({getattr(t, "xaxis", None) or "x" for t in fig.data},
                  key=lambda a: int(a[1:] or 1))
    titles = [re.sub(r"<[^>]+>", " ", a.text or "").strip() for a in fig.layout.annotations
              if a.xref == "paper" and a.yref == "paper"]
    return dict(zip(axes, titles)) if len(axes) > 1 and len(titles) == len(axes) else {}
