"""The link: everything a view shows that differs from the defaults goes in the URL, so a shared
link reproduces the view. read_link reads a session's first URL (a value a link cannot mean
is clamped or replaced, and the page says so in one line); write_link writes the sidebar's and
the page controls' values back; linked() gives a page control its value (the user's, the last
one while hidden, the link's, or the default)."""
from __future__ import annotations

import math

import streamlit as st

from gpt2viz.core.config import POSITIONS
from gpt2viz.core.resources import format_number

from . import serving_mode
from .controls import CUSTOM_NUMBERS, NUMBER_FIELDS, SLOTS, TRAINING_FIELDS, VARIANT_IDS, WEIGHTS, defaults

# The pages' own view controls travel in the link too, under names of their own (widget key =
# URL name), read where the page draws them (linked()); the prompt is text, so the link holds
# at most PROMPT_LINK_CHARS of it.
PAGE_LINK_NAMES = ["prompt", "attention_view", "attention_layer", "attention_head", "attention_scale",
                   "geometry_base", "geometry_head_dim", "geometry_context", "geometry_scaling",
                   "geometry_factor", "gqa_kv_heads", "gqa_context",
                   "compare_k", "compare_temperature", "compare_top_k", "compare_new_tokens",
                   "compare_seed", "experiment", "latency_measure"]
PROMPT_LINK_CHARS = 1000


def read_link(params: dict[str, list[str]]) -> tuple[dict, list[str]]:
    """Sidebar values from URL query parameters, and one note per value the link could not
    mean as written (unknown names, out-of-range numbers): nothing is replaced silently."""
    state, notes = defaults(), []
    if "variants" in params:
        asked = params["variants"]
        known = [v for v in asked if v in VARIANT_IDS]
        unknown = [v for v in asked if v not in VARIANT_IDS]
        if unknown:
            fallback = "showing the others" if known else "showing the defaults"
            notes.append(f"The link names unknown variant(s) {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(VARIANT_IDS)}); {fallback}.")
        state["variants"] = known or state["variants"]
    for key, allowed in [("weights", serving_mode.weight_options(WEIGHTS))] + [(p + "position", list(POSITIONS))
                                                       for _, p in SLOTS.values()]:
        if key in params:
            value = params[key][-1]
            if value in allowed:
                state[key] = value
            else:
                notes.append(f"{key}={value!r} is not one of {', '.join(allowed)}; "
                             f"using {state[key]!r}.")
    for key in ("checkpoint", "corpus"):  # looked up where they are used, and said there
        if key in params:
            state[key] = params[key][-1]
    state["page_link"] = {k: params[k][-1] for k in PAGE_LINK_NAMES if k in params}  # read by linked()
    numbers = ({"seed": "seed"} | {f: f for f in TRAINING_FIELDS}
               | {prefix + f: f for _, prefix in SLOTS.values() for f in CUSTOM_NUMBERS})
    for key, spec in numbers.items():
        if key in params:
            state[key], note = _number_from_link(key, params[key][-1], *NUMBER_FIELDS[spec][1:3],
                                                 state[key])
            if note:
                notes.append(note)
    return state, notes


def _number_from_link(key, text, lowest, highest, default):
    kind = float if isinstance(default, float) else int
    try:
        value = kind(text)
    except ValueError:
        return default, f"{key}={text!r} is not a {'number' if kind is float else 'whole number'}; using {format_number(default)}."
    if not math.isfinite(value):
        return default, f"{key}={text!r} is not a finite number; using the default, {format_number(default)}."
    if not lowest <= value <= highest:
        clamped = min(max(value, lowest), highest)
        return clamped, (f"{key}={text} is outside {format_number(lowest)}–{format_number(highest)}; using the "
                         f"nearest valid value, {format_number(clamped)}.")
    return value, None


def write_link(values: dict) -> None:
    """Everything that differs from the defaults goes in the URL, so a shared link
    reproduces the view: the sidebar's, the page controls' (and what the link said for a page
    not shown yet)."""
    wanted = {}
    for name, default in defaults().items():
        value = values[name]
        if value != default:
            wanted[name] = [str(v) for v in value] if isinstance(value, list) else str(value)
    pages = st.session_state.get("page_values", {})
    wanted |= st.session_state.get("page_link", {})
    wanted |= {k: str(v)[:PROMPT_LINK_CHARS] for k, (v, default) in pages.items() if v != default}
    current = {k: st.query_params.get_all(k) if k == "variants" else st.query_params[k]
               for k in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)


def show_link_notes() -> None:
    """What the link asked for that could not be shown as written, on every page until the
    user changes a sidebar control: one box, one line per note (a page control's note,
    found later in the run, joins the box)."""
    if st.session_state.get("link_values") != st.session_state["sidebar_values"]:
        st.session_state["link_notes"] = []
    st.session_state["link_notes_box"] = st.empty()
    _draw_link_notes()


def _draw_link_notes():
    notes = st.session_state.get("link_notes", [])
    if notes:
        st.session_state["link_notes_box"].warning("  \n".join(notes))


def linked(key: str, default, options=None, lowest=None, highest=None):
    """Call before drawing the page control keyed `key` (drawn with that key and no value of
    its own), on every run, drawn or not. Its value: the user's; else, while it is hidden or
    another page is shown, the last one; else the link's; else `default`. A link value the
    control cannot take is clamped or replaced and said; a kept value outside what this page
    offers now (fewer layers, other heads) is moved to the nearest it offers."""
    kept, link = st.session_state["page_values"], st.session_state["page_link"]
    if key in st.session_state:
        value = st.session_state[key]
    elif key in link:
        value, note = _page_value_from_link(key, link.pop(key), default, options, lowest, highest)
        if note:
            st.session_state["link_notes"].append(note)
            _draw_link_notes()
    else:
        value = kept.get(key, (default, default))[0]
    if options is not None and value not in options:
        numeric = [o for o in options if isinstance(o, (int, float)) and not isinstance(o, bool)]
        value = (min(numeric, key=lambda o: abs(o - value)) if numeric and isinstance(value, (int, float))
                 else default)
    elif lowest is not None:
        value = min(max(value, lowest), highest)
    st.session_state[key] = value
    kept[key] = (value, default)
    write_link(st.session_state["sidebar_values"])
    return value


def control(widget, label: str, key: str, default, options=None, lowest=None, highest=None,
            shown: bool = True, **widget_options):
    """A page control from one declaration: draws widget (st.slider, c1.selectbox, ...) keyed
    `key` with these options (or lowest..highest) and keeps it in the link (linked()), so its
    range is stated once. shown=False keeps its value (and the link's) without drawing it."""
    value = linked(key, default, options, lowest, highest)
    if shown:
        bounds = (options,) if options is not None else (lowest, highest)
        widget(label, *bounds, key=key, **widget_options)
    return value


def forget(*keys: str) -> None:
    """Drop page controls' values (a callback): they start again at their defaults."""
    for key in keys:
        st.session_state.pop(key, None)
        st.session_state["page_values"].pop(key, None)


def _page_value_from_link(key, text, default, options, lowest, highest):
    if isinstance(default, str) and options is None:  # text
        if len(text) > PROMPT_LINK_CHARS:
            return text[:PROMPT_LINK_CHARS], (f"The link's {key} is {len(text):,} characters long; "
                                              f"using its first {PROMPT_LINK_CHARS:,}.")
        return text, None
    if options is None:
        return _number_from_link(key, text, lowest, highest, default)
    for option in options:
        if str(option) == text:
            return option, None
    numbers = [o for o in options if isinstance(o, (int, float)) and not isinstance(o, bool)]
    try:
        wanted = float(text)
    except ValueError:
        wanted = math.nan
    if numbers and math.isfinite(wanted):  # a number the options lack: the nearest, said
        nearest = min(numbers, key=lambda o: abs(o - wanted))
        return nearest, (None if nearest == wanted else
                         f"{key}={text} is not offered here; using the nearest, {format_number(nearest)}.")
    shown = ", ".join(map(str, options)) if len(options) <= 8 else f"{options[0]} … {options[-1]}"
    return default, f"{key}={text!r} is not one of {shown}; using {default!r}."
