"""Latency & memory's measurements as the page sees them: a stored run of the same
settings at once, a quick one on arrival when it takes a few seconds, a full one on Run;
every run is labelled with when and where it was measured."""
from __future__ import annotations

import json
import time
from typing import Callable

import streamlit as st

from gpt2viz.analysis import measurements

QUICK_SECONDS = 5.0  # a run estimated at most this long starts by itself on arrival


def measured(kind: str, settings: dict, estimate_s: Callable[[int], float],
             run: Callable[[int, Callable], list[dict]], repeats: int, pressed: bool,
             quick_repeats: int = 1) -> dict | None:
    """The run to show for these settings, or None (nothing stored, too long to start alone).

    estimate_s(repeats) and run(repeats, progress) measure; settings name what was measured
    (repeats apart: a stored run says how many it took)."""
    key = json.dumps([kind, settings], sort_keys=True, default=str)
    shown = st.session_state.setdefault("bench_runs", {})
    if pressed:
        shown[key] = _run(kind, settings, run, repeats, estimate_s(repeats))
    elif key not in shown:
        stored = measurements.load(kind, settings)
        if stored is not None:
            shown[key] = stored | {"just_now": False}
        elif estimate_s(quick_repeats) <= QUICK_SECONDS:
            shown[key] = _run(kind, settings, run, quick_repeats, estimate_s(quick_repeats))
    return shown.get(key)


def _run(kind, settings, run, repeats, estimate) -> dict:
    bar = st.progress(0.0, text=f"Measuring, about {estimate:.0f} s")
    start = time.perf_counter()
    rows = run(repeats, lambda i, total, what: bar.progress(i / total, text=what))
    bar.empty()
    record = measurements.save(kind, settings, rows, repeats) | {"just_now": True}
    record["seconds"] = time.perf_counter() - start
    return record


def caption(record: dict, repeats_word: str = "repeats") -> str:
    repeats = record.get("repeats")
    took = f" in {record['seconds']:.1f} s" if record.get("seconds") else ""
    return (f"{measurements.label(record, record.get('just_now', False))[:-1]}{took}"
            + (f"; {repeats} {repeats_word if repeats > 1 else repeats_word[:-1]} per point"
               if repeats else "")
            + ". Press Run to measure again.")
