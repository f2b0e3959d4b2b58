"""The shared sidebar (variants, custom slots, weights, seed; the training settings drawn on
Build & train) and the URL that carries its choices.

A widget keeps what the user chose: its value lives in st.session_state["sb_<field>"] and is
restored from "sidebar_values" only when Streamlit has dropped it (a field hidden for a run, a
page switch). Never the other way round: copying stored values over the widgets before they are
drawn undoes the click that started the run. The URL is read once, on a session's first run;
a value a link cannot mean is clamped or replaced, and the page says so in one line.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import streamlit as st
import torch

from gpt2viz.core.config import POSITIONS, PRESET_DESCRIPTIONS, PRESETS, ModelConfig, TrainSettings
from gpt2viz.core.resources import device, format_number
from gpt2viz.weights.pretrained import PRETRAINED

from . import corpora, serving_mode

WEIGHTS = {"trained": "Trained on the corpus", "random": "Random init (instant)",
           "checkpoint": "Local checkpoint folder", "upload": "Upload a checkpoint (.zip)"}
# Two custom slots so two settings can be compared side by side. The first keeps the unprefixed
# URL names (older links say variants=custom&n_layer=...), the second prefixes them with "c2_".
SLOTS = {"custom": ("custom 1", ""), "custom2": ("custom 2", "c2_")}
NUMBER_FIELDS = {  # field: (label, smallest, largest, step)
    "n_layer": ("Layers", 1, 12, 1),
    "d_model": ("d_model", 8, 512, 8),
    "n_head": ("Query heads", 1, 32, 1),
    "n_kv_head": ("Key/value heads", 1, 32, 1),
    "window": ("Window (0 = full attention)", 0, 256, 1),
    "rope_base": ("RoPE base", 2.0, 1e7, 1000.0),
    "sinks": ("Attention sinks (first tokens kept)", 0, 64, 1),
    "seed": ("Seed", 0, 2**31 - 1, 1),
}
# The training budget and optimizer, the same for every variant compared (a fair comparison);
# drawn on Build & train, carried everywhere (they key the checkpoint cache) and in the URL.
TRAINING_FIELDS = {  # field: (label, smallest, largest, step)
    "steps": ("Steps", 1, 20_000, 10),
    "max_seconds": ("Time budget per model (s, 0 = none)", 0, 3600, 10),
    "lr": ("Learning rate", 1e-5, 1.0, 5e-4),
    "batch_size": ("Batch size", 1, 256, 1),
    "block_size": ("Context (block) length", 8, 1024, 8),
    "warmup_steps": ("Warm-up steps", 0, 10_000, 1),
    "weight_decay": ("Weight decay", 0.0, 1.0, 0.05),
    "dropout": ("Dropout", 0.0, 0.9, 0.05),
}
NUMBER_FIELDS |= TRAINING_FIELDS
_SETTINGS = TrainSettings()
TRAINING_DEFAULTS = dict(steps=_SETTINGS.steps, max_seconds=0, lr=_SETTINGS.lr,
                         batch_size=_SETTINGS.batch_size, block_size=_SETTINGS.block_size,
                         warmup_steps=_SETTINGS.warmup_steps, weight_decay=_SETTINGS.weight_decay,
                         dropout=0.0)
CUSTOM_DEFAULTS = {
    "custom": dict(position="rope", n_layer=4, d_model=128, n_head=8, n_kv_head=2, window=16,
                   rope_base=10000.0, sinks=0),
    "custom2": dict(position="rope", n_layer=4, d_model=128, n_head=8, n_kv_head=1, window=16,
                    rope_base=10000.0, sinks=0),
}
CUSTOM_NUMBERS = [f for f in CUSTOM_DEFAULTS["custom"] if f != "position"]
# A custom field that means nothing with the others' values is hidden and left out of the config
# (its widget value is kept, for when it applies again): field -> does it apply, given the values.
APPLIES = {"rope_base": lambda v: v["position"] == "rope", "sinks": lambda v: int(v["window"]) > 0}
DEFAULTS = dict(variants=["gpt2", "rope+gqa+swa"], weights="trained", seed=0, checkpoint="", corpus="",
                **TRAINING_DEFAULTS,
                **{prefix + f: v for slot, (_, prefix) in SLOTS.items()
                   for f, v in CUSTOM_DEFAULTS[slot].items()})
VARIANT_IDS = list(PRESETS) + list(PRETRAINED) + list(SLOTS)
# The pages' own view controls travel in the link too, under names of their own (widget key =
# URL name), read where the page draws them (linked()); the prompt is text, so the link holds
# at most PROMPT_LINK_CHARS of it.
PAGE_LINK_NAMES = ["prompt", "attention_view", "attention_layer", "attention_head", "attention_scale",
                   "geometry_base", "geometry_head_dim", "geometry_context", "geometry_scaling",
                   "geometry_factor", "gqa_kv_heads", "gqa_context",
                   "compare_k", "compare_temperature", "compare_top_k", "compare_new_tokens",
                   "compare_seed", "experiment", "latency_measure"]
PROMPT_LINK_CHARS = 1000


@dataclass
class Selection:
    configs: dict  # display name -> ModelConfig (vocab_size still the preset's)
    weights: str
    seed: int
    checkpoint: str
    unbuildable: dict = field(default_factory=dict)  # custom slot title -> why it cannot be built
    settings: TrainSettings = TrainSettings()
    dropout: float = 0.0  # while training; a trained model's config carries it
    corpus: str = ""  # "" = the embedded corpus, else "name@hash" (corpora.py)
    pretrained: tuple = ()  # names in gpt2viz.weights.pretrained.PRETRAINED: fixed weights, whatever `weights`


def defaults() -> dict:
    """DEFAULTS, with GPT2VIZ_TRAIN_STEPS (a quicker budget for demos and tests) as the steps."""
    steps = os.environ.get("GPT2VIZ_TRAIN_STEPS")
    return DEFAULTS | ({"steps": int(steps)} if steps else {})


def training_settings(values: dict) -> TrainSettings:
    """ValueError (with the fix) for settings that cannot work."""
    return TrainSettings(steps=int(values["steps"]), lr=float(values["lr"]),
                         batch_size=int(values["batch_size"]), block_size=int(values["block_size"]),
                         warmup_steps=int(values["warmup_steps"]),
                         weight_decay=float(values["weight_decay"]),
                         max_seconds=float(values["max_seconds"]) or None)


# ------------------------------------------------------------------------------- the link
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


# ------------------------------------------------------------------------------- custom variants
def custom_config(values: dict, slot: str) -> ModelConfig:
    """The custom slot's ModelConfig; ValueError (with the fix) when it cannot be built."""
    prefix = SLOTS[slot][1]
    v = {f: values[prefix + f] for f in CUSTOM_DEFAULTS[slot]}
    v |= {f: CUSTOM_DEFAULTS[slot][f] for f, applies in APPLIES.items() if not applies(v)}
    return ModelConfig(n_layer=int(v["n_layer"]), n_head=int(v["n_head"]), n_kv_head=int(v["n_kv_head"]),
                       d_model=int(v["d_model"]), position=v["position"],
                       rope_base=float(v["rope_base"]), window=int(v["window"]) or None,
                       sinks=int(v["sinks"]))


def custom_name(slot: str, config: ModelConfig) -> str:
    """Name a custom variant by what differs from the gpt2 baseline, e.g. 'custom 1: rope · MQA · w=4'."""
    base = PRESETS["gpt2"]
    parts = []
    if config.position != base.position:
        parts.append(config.position)
    if config.position == "rope" and config.rope_base != base.rope_base:
        parts.append(f"base {format_number(config.rope_base)}")
    if config.n_kv_head != config.n_head:
        parts.append("MQA" if config.n_kv_head == 1 else f"GQA-{config.n_kv_head}")
    if config.window is not None:
        parts.append(f"w={config.window}")
    if config.sinks:
        parts.append(f"{config.sinks} sinks")
    if config.n_layer != base.n_layer:
        parts.append(f"L={config.n_layer}")
    if config.d_model != base.d_model:
        parts.append(f"d={config.d_model}")
    if config.n_head != base.n_head:
        parts.append(f"{config.n_head} heads")
    return f"{SLOTS[slot][0]}: {' · '.join(parts) or 'as gpt2'}"


# ------------------------------------------------------------------------------- the widgets
def _restore_dropped_widgets() -> None:
    """Give back the values Streamlit dropped (last run's, or on a session's first run the
    link's, whose notes are kept to show). A value the widget still holds is never touched."""
    if "sidebar_values" not in st.session_state:
        params = {k: st.query_params.get_all(k) for k in st.query_params}
        values, notes = read_link(params)
        st.session_state["page_link"] = values.pop("page_link")
        st.session_state["page_values"] = {}  # key -> (value, default), kept while not drawn
        if corpora.find(values["corpus"]) is None:  # said once here, not by every page's lookup
            notes.append(corpora.missing_note(values["corpus"]))
            values["corpus"] = corpora.EMBEDDED
        st.session_state["sidebar_values"] = st.session_state["link_values"] = values
        st.session_state["link_notes"] = notes
    for key, value in st.session_state["sidebar_values"].items():
        if f"sb_{key}" not in st.session_state:
            st.session_state[f"sb_{key}"] = value


def variant_label(v: str) -> str:
    return SLOTS[v][0] if v in SLOTS else f"{v} (pretrained)" if v in PRETRAINED else v


def _number(container, key: str, spec: str):
    label, lowest, highest, step = NUMBER_FIELDS[spec]
    style = {"format": "%g"} if isinstance(lowest, float) else {}
    return container.number_input(label, lowest, highest, step=step, key=f"sb_{key}", **style)


def draw() -> Selection:
    """Draw the shared controls and return what they select."""
    _restore_dropped_widgets()
    current = {k: st.session_state[f"sb_{k}"] for k in DEFAULTS}  # this run's, click included
    sb = st.sidebar
    sb.header("Variants")
    names = sb.multiselect("Compare", VARIANT_IDS, key="sb_variants",
                           format_func=variant_label,
                           help="\n".join(f"**{k}**: {v}" for k, v in PRESET_DESCRIPTIONS.items())
                           + "".join(f"\n**{k} (pretrained)**: {s.description}" for k, s in PRETRAINED.items())
                           + "\n**custom 1, custom 2**: every hyperparameter yours (below).")
    pretrained = tuple(n for n in names if n in PRETRAINED)
    if pretrained:
        sb.caption(f"{', '.join(pretrained)} always runs on its own pretrained weights, whatever the "
                   f"Weights choice below; it never trains, and reads text with its own tokenizer.")
    customs, unbuildable = {}, {}
    for slot, (title, prefix) in SLOTS.items():
        try:
            config, problem = custom_config(current, slot), None
            heading = custom_name(slot, config)
        except ValueError as err:
            config, problem = None, str(err).replace("Invalid ModelConfig: ", "")
            heading = f"{title}: cannot be built"
        with sb.expander(heading[0].upper() + heading[1:], expanded=slot in names):
            st.selectbox("Position encoding", POSITIONS, key=f"sb_{prefix}position")
            for f in CUSTOM_NUMBERS:
                if f not in APPLIES or APPLIES[f]({g: current[prefix + g] for g in CUSTOM_DEFAULTS[slot]}):
                    _number(st, prefix + f, f)
            if problem:  # beside the fields, whether or not the slot is in Compare
                st.error(f"{title} cannot be built. {problem}")
        if slot in names and problem:
            unbuildable[title] = problem
        elif slot in names:
            customs[slot] = (heading, config)
    configs = {}
    for name in names:
        if name in PRESETS:
            configs[name] = PRESETS[name]
        elif name in customs:
            configs[customs[name][0]] = customs[name][1]
    sb.header("Weights")
    weights = sb.radio("Weights", serving_mode.weight_options(WEIGHTS), format_func=WEIGHTS.get,
                       key="sb_weights", label_visibility="collapsed")
    checkpoint = ""
    if weights == "checkpoint":
        checkpoint = sb.text_input(serving_mode.checkpoint_prompt(), key="sb_checkpoint").strip()
    elif weights == "upload":
        sb.file_uploader("A gpt2viz checkpoint (.zip from Build & train), or a Hugging Face GPT-2 "
                         "folder zipped (config.json + model.safetensors)", type=["zip"],
                         key="checkpoint_upload", max_upload_size=serving_mode.upload_megabytes("checkpoint"))
    seed = int(_number(sb, "seed", "seed"))
    sb.caption(f"Device: **{device()}** · torch {torch.__version__}")
    values = {k: st.session_state.get(f"sb_{k}", current[k]) for k in DEFAULTS}
    st.session_state["sidebar_values"] = values
    write_link(values)
    try:
        settings = training_settings(values)
    except ValueError as err:
        st.error(f"The training settings cannot work: {err} Using the defaults.")
        settings = training_settings(defaults())
    return Selection(configs, weights, seed, checkpoint, unbuildable, settings, float(values["dropout"]),
                     values["corpus"], pretrained)


def training_controls(estimate: str) -> None:
    """The training settings (on Build & train), edited freely and applied with one button:
    every applied change is a training run, so typing a number must not start one. Their
    applied values live with the sidebar's (and the link)."""
    for f in TRAINING_FIELDS:  # a fresh form starts from what is applied
        st.session_state.setdefault(f"edit_{f}", st.session_state[f"sb_{f}"])
    with st.form("training-settings", border=False, enter_to_submit=False):
        columns = st.columns(4)
        for i, f in enumerate(TRAINING_FIELDS):
            label, lowest, highest, step = NUMBER_FIELDS[f]
            style = {"format": "%g"} if isinstance(lowest, float) else {}
            columns[i % 4].number_input(label, lowest, highest, step=step, key=f"edit_{f}", **style)
        apply, note = st.columns([1, 5], vertical_alignment="center")
        applied = apply.form_submit_button("Apply settings", type="primary")
        note.caption(estimate)
    if applied:
        edits = {f: st.session_state[f"edit_{f}"] for f in TRAINING_FIELDS}
        try:
            training_settings(st.session_state["sidebar_values"] | edits)
        except ValueError as err:
            st.error(f"Not applied: {err}")
            return
        for f, value in edits.items():
            st.session_state[f"sb_{f}"] = value
        st.rerun()


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


# ------------------------------------------------------------------------------- page controls
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
