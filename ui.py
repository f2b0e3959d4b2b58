"""Streamlit glue shared by app.py and the pages: the sidebar, the model store, messages.

Models are built once per (variant, config, weights, seed) and kept in a process-wide store
(st.cache_resource); they are in eval mode and never trained further, so every session can
read them. Training shows a progress bar and a live loss curve where it is asked for.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from gpt2viz import GPT2, ModelConfig, PRESETS
from gpt2viz.checkpoints import CheckpointError, load_checkpoint
from gpt2viz.config import POSITIONS, PRESET_DESCRIPTIONS
from gpt2viz.corpus import Corpus, Vocabulary
from gpt2viz.resources import format_bytes
from gpt2viz.train import TrainSettings, checkpoint_folder, train
from gpt2viz.viz.charts import loss_curves
from gpt2viz.workbench import (CONTEXTS, Prompt, Variant, context_losses, pooled_losses, run_trace,
                               tokenize_prompt, unknown_positions)

WEIGHTS = {"trained": "Trained on the corpus", "random": "Random init (instant)",
           "checkpoint": "Local checkpoint folder"}
CUSTOM = "custom"
DEFAULTS = dict(variants=["gpt2", "rope+gqa+swa"], weights="trained", seed=0, checkpoint="",
                n_layer=4, n_head=8, n_kv_head=2, d_model=128, window=16, rope_base=10000.0,
                position="rope")


@dataclass
class Selection:
    configs: dict  # name -> ModelConfig (vocab_size still the preset's)
    weights: str
    seed: int
    checkpoint: str


def device() -> torch.device:
    """The one device choice: a CUDA GPU when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train_settings() -> TrainSettings:
    steps = os.environ.get("GPT2VIZ_TRAIN_STEPS")  # a quicker budget for demos and tests
    return TrainSettings(steps=int(steps)) if steps else TrainSettings()


@st.cache_resource(show_spinner=False)
def corpus() -> Corpus:
    return Corpus.default()


@st.cache_resource(show_spinner=False)
def _store() -> dict:
    return {"variants": {}, "lock": threading.Lock()}


# ------------------------------------------------------------------------------- routing
PAGES = [("pages/build.py", "Build & train", ":material/construction:"),
         ("pages/attention.py", "Attention", ":material/grid_on:"),
         ("pages/compare.py", "Compare & generate", ":material/compare_arrows:"),
         ("pages/rope.py", "RoPE geometry", ":material/rotate_right:"),
         ("pages/gqa.py", "GQA sharing", ":material/hub:"),
         ("pages/performance.py", "Latency & memory", ":material/speed:")]


def run_app():
    st.set_page_config(page_title="gpt2viz", page_icon=":material/visibility:", layout="wide")
    page = st.navigation([st.Page(path, title=title, icon=icon, default=i == 0)
                          for i, (path, title, icon) in enumerate(PAGES)])
    st.session_state["selection"] = sidebar()
    page.run()


def selection() -> Selection:
    """The sidebar's choices. A fresh server whose first request is a deep link runs the page
    file on its own (Streamlit's legacy pages/ mode); route through run_app() instead."""
    if "selection" not in st.session_state:
        run_app()
        st.stop()
    return st.session_state["selection"]


# ------------------------------------------------------------------------------- sidebar
def _init_state():
    if st.session_state.get("_initialised"):
        return
    params = st.query_params
    state = dict(DEFAULTS)
    if "variants" in params:
        state["variants"] = [v for v in params.get_all("variants") if v in PRESETS or v == CUSTOM]
    for key in ("weights", "checkpoint", "position"):
        if key in params:
            state[key] = params[key]
    for key in ("seed", "n_layer", "n_head", "n_kv_head", "d_model", "window"):
        if key in params and params[key].lstrip("-").isdigit():
            state[key] = int(params[key])
    if "rope_base" in params:
        try:
            state["rope_base"] = float(params["rope_base"])
        except ValueError:
            pass
    if state["weights"] not in WEIGHTS:
        state["weights"] = "trained"
    if state["position"] not in POSITIONS:
        state["position"] = "rope"
    st.session_state["sidebar_values"] = state
    st.session_state["_initialised"] = True


def sidebar() -> Selection:
    """The shared controls. Streamlit may drop widget state on a page switch, so the
    values live in "sidebar_values" and are handed back to the widgets on every run."""
    _init_state()
    for key, value in st.session_state["sidebar_values"].items():
        st.session_state[f"sb_{key}"] = value
    sb = st.sidebar
    sb.header("Variants")
    names = sb.multiselect("Compare", list(PRESETS) + [CUSTOM], key="sb_variants",
                           help="\n".join(f"**{k}**: {v}" for k, v in PRESET_DESCRIPTIONS.items()))
    configs = {name: PRESETS[name] for name in names if name in PRESETS}
    with sb.expander("Custom variant", expanded=CUSTOM in names):
        position = st.selectbox("Position encoding", POSITIONS, key="sb_position")
        n_layer = st.number_input("Layers", 1, 12, key="sb_n_layer")
        d_model = st.number_input("d_model", 8, 512, step=8, key="sb_d_model")
        n_head = st.number_input("Query heads", 1, 32, key="sb_n_head")
        n_kv_head = st.number_input("Key/value heads", 1, 32, key="sb_n_kv_head")
        window = st.number_input("Window (0 = full attention)", 0, 256, key="sb_window")
        rope_base = st.number_input("RoPE base", 2.0, 1e7, key="sb_rope_base", format="%.0f")
    if CUSTOM in names:
        try:
            configs[CUSTOM] = ModelConfig(n_layer=int(n_layer), n_head=int(n_head),
                                          n_kv_head=int(n_kv_head), d_model=int(d_model),
                                          position=position, rope_base=float(rope_base),
                                          window=int(window) or None)
        except ValueError as err:
            sb.error(f"The custom variant cannot be built. {err}".replace("Invalid ModelConfig: ", ""))
    sb.header("Weights")
    weights = sb.radio("Weights", list(WEIGHTS), format_func=WEIGHTS.get, key="sb_weights",
                       label_visibility="collapsed")
    checkpoint = ""
    if weights == "checkpoint":
        checkpoint = sb.text_input("Folder (HF GPT-2: config.json + model.safetensors, or a "
                                   "gpt2viz checkpoint)", key="sb_checkpoint").strip()
    seed = int(sb.number_input("Seed", 0, 2**31 - 1, key="sb_seed"))
    sb.caption(f"Device: **{device()}** · torch {torch.__version__}")
    st.session_state["sidebar_values"] = {k: st.session_state[f"sb_{k}"] for k in DEFAULTS}
    _write_query_params()
    return Selection(configs, weights, seed, checkpoint)


def _write_query_params():
    """Everything that differs from the defaults goes in the URL, so a shared link
    reproduces the view."""
    wanted = {}
    for name, default in DEFAULTS.items():
        value = st.session_state["sidebar_values"][name]
        if value != default:
            wanted[name] = [str(v) for v in value] if isinstance(value, list) else str(value)
    current = {k: st.query_params.get_all(k) if k == "variants" else st.query_params[k]
               for k in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)


# ------------------------------------------------------------------------------- models
def variants(selection: Selection, show_training: bool = False) -> dict[str, Variant]:
    """Build (or fetch) every selected variant. Problems are shown, never raised."""
    if selection.weights == "checkpoint":
        return _checkpoint_variant(selection.checkpoint)
    if not selection.configs:
        st.info("Pick at least one variant in the sidebar.")
        return {}
    built, store = {}, _store()
    missing = [n for n, c in selection.configs.items() if _key(n, c, selection) not in store["variants"]]
    if missing and selection.weights == "trained":
        _train_missing(missing, selection, show_training)
    for name, config in selection.configs.items():
        key = _key(name, config, selection)
        if key not in store["variants"] and selection.weights == "random":
            torch.manual_seed(selection.seed)
            model = GPT2(config.replace(vocab_size=corpus().vocab.size)).to(device()).eval()
            store["variants"][key] = Variant(name, model, corpus().vocab, "random init")
        if key in store["variants"]:
            built[name] = store["variants"][key]
    return built


def _key(name, config, selection):
    return (name, config, selection.weights, selection.seed, train_settings())


def _train_missing(names, selection, show_training):
    store = _store()
    to_train = [n for n in names if not checkpoint_folder(selection.configs[n], corpus(),
                                                          train_settings(), selection.seed).is_dir()]
    box = st.container(border=True) if show_training and to_train else st.empty()
    with box:
        if to_train:
            st.write(f"Training {', '.join(to_train)} on the embedded corpus "
                     f"({train_settings().steps} steps each; cached on disk afterwards).")
        bar = st.progress(0.0, text="Loading from the checkpoint cache...")
        chart = st.empty()
    for i, name in enumerate(names):
        config = selection.configs[name]
        live = {"steps": [], "loss": []}

        def report(p, name=name, i=i, live=live):
            live["steps"].append(p.step)
            live["loss"].append(p.loss)
            bar.progress((i + p.step / p.steps) / len(names),
                         text=f"{name}: step {p.step}/{p.steps}, loss {p.loss:.2f}, "
                              f"{p.tokens_per_second:,.0f} tokens/s, ~{p.seconds_left:.0f} s left")
            if show_training and (p.step % 10 == 0 or p.val_loss is not None):
                chart.line_chart({"loss": live["loss"]}, height=200)

        with store["lock"]:
            key = _key(name, config, selection)
            if key not in store["variants"]:
                result = train(config, corpus(), train_settings(), seed=selection.seed, callback=report)
                store["variants"][key] = Variant(name, result.model.to(device()), result.vocab,
                                                 "trained (cache)" if result.from_cache else "trained",
                                                 result.history)
    bar.empty()
    if not (show_training and to_train):
        box.empty()


def _checkpoint_variant(folder: str) -> dict[str, Variant]:
    if not folder:
        st.info("Type the path of a local checkpoint folder in the sidebar.")
        return {}
    store = _store()
    key = ("checkpoint", str(Path(folder).resolve()))
    if key not in store["variants"]:
        try:
            if (Path(folder) / "meta.json").is_file():
                model, meta = load_checkpoint(folder)
                vocab = Vocabulary(meta["vocab"]) if "vocab" in meta else None
            else:
                model, vocab = GPT2.from_hf_gpt2(folder), None
        except (CheckpointError, KeyError) as err:
            st.error(f"That checkpoint does not load: {err}")
            return {}
        store["variants"][key] = Variant(Path(folder).name or folder, model.to(device()).eval(), vocab, folder)
    variant = store["variants"][key]
    return {variant.name: variant}


def summary_rows(built: dict[str, Variant]) -> list[dict]:
    rows = []
    for name, v in built.items():
        cfg, h = v.config, v.history
        rows.append({"variant": name, "weights": v.source, "params": v.model.num_params(),
                     "attention": cfg.attention_kind, "position": cfg.position,
                     "window": str(cfg.window or "full"),
                     "train seconds": round(h.seconds, 1) if h else None,
                     "val loss": round(h.val_loss[-1], 3) if h and h.val_loss else None,
                     **{f"val loss, context {'≤ ' if c > 1 else ''}{c}": round(loss, 3) if h else None
                        for c, loss in (cached_context_losses(v) if h else dict.fromkeys(CONTEXTS)).items()},
                     "unigram loss": round(h.unigram_loss, 3) if h else None,
                     "KV cache / token": format_bytes(cfg.kv_cache_bytes_per_token())})
    return rows


def loss_figure(built: dict[str, Variant]):
    histories = {n: v.history for n, v in built.items() if v.history is not None}
    if not histories:
        return None
    return loss_curves(histories, next(iter(histories.values())).unigram_loss)


# ------------------------------------------------------------------------------- prompts
DEFAULT_PROMPT = ('The "for" statement is used to iterate over the elements of a sequence '
                  '(such as a string, tuple or list) or other iterable object.')


def prompt_input() -> Prompt | None:
    """The prompt shared by the pages; problems are explained, not raised."""
    # The widget's own state is dropped on page switches; "prompt_text" survives them.
    st.session_state.setdefault("prompt_text", DEFAULT_PROMPT)
    st.session_state["prompt_widget"] = st.session_state["prompt_text"]
    text = st.text_area("Prompt", key="prompt_widget", height=80, on_change=_keep_prompt)
    try:
        prompt = tokenize_prompt(text)
    except ValueError as err:
        st.warning(str(err))
        return None
    if prompt.truncated_from:
        st.info(f"The prompt has {prompt.truncated_from} tokens; only its last "
                f"{len(prompt.gpt2_ids)} are used (heatmaps past that are unreadable).")
    return prompt


def _keep_prompt():
    st.session_state["prompt_text"] = st.session_state["prompt_widget"]


@st.cache_resource(max_entries=64, show_spinner=False)
def _cached_trace(_variant: Variant, model_id: int, ids: tuple):
    return run_trace(_variant, Prompt(list(ids), []))


def trace(variant: Variant, prompt: Prompt):
    """One forward pass per (model, prompt): view-only controls never recompute it."""
    return _cached_trace(variant, id(variant.model), tuple(prompt.gpt2_ids))


def unknown_note(built: dict, prompt: Prompt):
    for name, v in built.items():
        unknown = unknown_positions(v, prompt)
        if unknown:
            words = ", ".join(prompt.labels[i] for i in unknown[:8])
            st.caption(f"{name}: {len(unknown)} token(s) never seen in training map to the unknown "
                       f"id ({words}).")


@st.cache_resource(max_entries=8, show_spinner="Evaluating every mean-pooled group count...")
def _pooled_losses(_variant: Variant, model_id: int):
    return pooled_losses(_variant.model, corpus().val)


def cached_pooled_losses(variant: Variant) -> list[dict]:
    return _pooled_losses(variant, id(variant.model))


@st.cache_resource(max_entries=16, show_spinner="Scoring the validation split with the context cut...")
def _context_losses(_variant: Variant, model_id: int):
    return context_losses(_variant.model, corpus().val)


def cached_context_losses(variant: Variant) -> dict[int, float]:
    return _context_losses(variant, id(variant.model))
