"""Latency & memory's measurements as the page sees them: a stored run of the same
settings at once, a quick one on arrival when it takes a few seconds, a full one on Run (in
the background: background.py); every run is labelled with when and where it was measured."""
from __future__ import annotations

import json
import time
from functools import partial
from typing import Callable

import streamlit as st

from gpt2viz.analysis import measurements
from gpt2viz.core.resources import plural

from . import background

QUICK_SECONDS = 5.0  # a run estimated at most this long starts by itself on arrival


def measured(kind: str, settings: dict, estimate_s: Callable[[int], float],
             run: Callable[[int, Callable], list[dict]], repeats: int, pressed: bool,
             quick_repeats: int = 1) -> dict | None:
    """The run to show for these settings, or None (nothing stored, too long to start alone).

    estimate_s(repeats) and run(repeats, progress) measure; settings name what was measured
    (repeats apart: a stored run says how many it took)."""
    key = json.dumps([kind, settings], sort_keys=True, default=str)
    shown = st.session_state.setdefault("bench_runs", {})
    device = settings.get("device", "cpu")
    if pressed:  # a full run: background work (progress, Cancel), stored for every session
        estimate = estimate_s(repeats)
        background.start(("bench", key), f"Measuring {plural(repeats, 'repeat')} per point "
                                         f"({about(kind, estimate, device)})",
                         partial(_measure, kind, settings, run, repeats, estimate), fresh=True)
    finished = background.finished(("bench", key))
    if finished is not None:
        shown[key] = finished
    elif not background.show(("bench", key)) and key not in shown:
        stored = measurements.load(kind, settings)
        if stored is not None:
            shown[key] = stored | {"just_now": False}
        elif expected_seconds(kind, quick := estimate_s(quick_repeats), device) <= QUICK_SECONDS:
            bar = st.progress(0.0, text=f"Measuring, {about(kind, quick, device)}")
            shown[key] = _measure(kind, settings, run, quick_repeats, quick,
                                  lambda i, total, what: bar.progress(i / total, text=what))
            bar.empty()
    return shown.get(key)


def expected_seconds(kind: str, estimate: float, device: str = "cpu") -> float:
    """The up-front estimate, scaled by how far off it was in the runs of this kind measured
    on this machine and device (measurements.estimate_factor); as it is before any."""
    factor = measurements.estimate_factor(kind, device)
    return estimate * (factor[0] if factor else 1.0)


def about(kind: str, estimate: float, device: str = "cpu") -> str:
    """'about 14 s (…)': the expected time and where it comes from, for the page's note."""
    factor = measurements.estimate_factor(kind, device)
    if factor is None:
        return f"about {estimate:.0f} s (counted from the work at fixed rates; not yet timed here)"
    ratio, runs = factor
    return (f"about {estimate * ratio:.0f} s (the work's count, {estimate:.0f} s, times {ratio:.2g}: "
            f"the median of took / estimated over {runs} run{'s' if runs > 1 else ''} of this kind here)")


def _measure(kind, settings, run, repeats, estimate, report) -> dict:
    """run(repeats, report), timed and stored with the estimate made before it."""
    start = time.perf_counter()
    rows = run(repeats, report)
    return measurements.save(kind, settings, rows, repeats, seconds=time.perf_counter() - start,
                             estimated_seconds=estimate) | {"just_now": True}


def caption(record: dict, repeats_word: str = "repeats") -> str:
    repeats = record.get("repeats")
    took = f" in {record['seconds']:.1f} s" if record.get("seconds") else ""
    return (f"{measurements.label(record, record.get('just_now', False))[:-1]}{took}"
            + (f"; {repeats} {repeats_word if repeats > 1 else repeats_word[:-1]} per point"
               if repeats else "")
            + ". Press Run to measure again.")
