"""The shared sidebar, drawn: variants, custom slots, weights, seed, and the training settings
drawn on Build & train (what the fields are: controls.py; the URL that carries them: link.py).

A widget keeps what the user chose: its value lives in st.session_state["sb_<field>"] and is
restored from "sidebar_values" only when Streamlit has dropped it (a field hidden for a run, a
page switch). Never the other way round: copying stored values over the widgets before they are
drawn undoes the click that started the run. The URL is read once, on a session's first run;
a value a link cannot mean is clamped or replaced, and the page says so in one line.
"""
from __future__ import annotations

import streamlit as st
import torch

from gpt2viz.core.config import POSITIONS, PRESET_DESCRIPTIONS, PRESETS
from gpt2viz.core.resources import device
from gpt2viz.weights.pretrained import PRETRAINED

from . import corpora, serving_mode
from .controls import (
    APPLIES,
    CUSTOM_DEFAULTS,
    CUSTOM_NUMBERS,
    DEFAULTS,
    NUMBER_FIELDS,
    SLOTS,
    TRAINING_FIELDS,
    VARIANT_IDS,
    WEIGHTS,
    Selection,
    custom_config,
    custom_name,
    defaults,
    training_settings,
    variant_label,
)
from .link import read_link, write_link

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


def _number(container, key: str, spec: str, bounded: bool = True):
    """bounded=False: any typed value is taken and checked by its reader (custom_config), which
    names it; with bounds Streamlit keeps the old value, and the message would name that one."""
    label, lowest, highest, step = NUMBER_FIELDS[spec]
    style = {"format": "%g"} if isinstance(lowest, float) else {}
    if not bounded:
        return container.number_input(label, step=step, key=f"sb_{key}", **style)
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
                    _number(st, prefix + f, f, bounded=False)
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
        sb.file_uploader("A gpt2viz checkpoint (.zip from Build & train), or a Hugging Face folder "
                         "zipped (config.json + model.safetensors; GPT-2, or Llama, Mistral or Qwen2 "
                         "with its tokenizer.json)", type=["zip"],
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
