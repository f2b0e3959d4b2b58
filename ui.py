"""Streamlit glue shared by app.py and the pages: routing, the model store, prompts, messages.

Models are built once per (variant, config, weights, seed) and kept in a process-wide store
(st.cache_resource); they are in eval mode and never trained further, so every session can
read them. Training runs in the background (training.py); the sidebar lives in sidebar.py.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import streamlit as st
import torch

import corpora
import serving_ui
import sidebar
import training
from gpt2viz import GPT2
from gpt2viz.checkpoints import CheckpointError, checkpoint_zip, load_checkpoint, load_checkpoint_zip
from gpt2viz.corpus import Corpus, Vocabulary
from gpt2viz.jobs import TrainingQueue, job_tokens
from gpt2viz.resources import device, format_bytes
from gpt2viz.serving import UPLOAD_CAPS, Refused, check_upload
from gpt2viz.checkpoint_cache import checkpoint_folder
from gpt2viz.train import History, training_bytes
from gpt2viz.viz.charts import loss_curves
from gpt2viz.workbench import (CONTEXTS, Prompt, Variant, context_losses, pooled_losses, run_trace,
                               tokenize_prompt, unknown_positions)
from sidebar import Selection


def corpus(selection: Selection) -> Corpus:
    """The text the selection's models train on (the embedded corpus unless the user chose
    their own on Build & train)."""
    return corpora.for_selection(selection.corpus)


@st.cache_resource(show_spinner=False)
def _store() -> dict:
    return {"variants": {}, "training": TrainingQueue()}


# ------------------------------------------------------------------------------- routing
PAGES = [("pages/build.py", "Build & train", ":material/construction:"),
         ("pages/attention.py", "Attention", ":material/grid_on:"),
         ("pages/compare.py", "Compare & generate", ":material/compare_arrows:"),
         ("pages/rope.py", "RoPE geometry", ":material/rotate_right:"),
         ("pages/gqa.py", "GQA sharing", ":material/hub:"),
         ("pages/performance.py", "Latency & memory", ":material/speed:"),
         ("pages/experiments.py", "Experiments", ":material/science:")]


def run_app():
    st.set_page_config(page_title="gpt2viz", page_icon=":material/visibility:", layout="wide")
    serving_ui.apply_mode()
    page = st.navigation([st.Page(path, title=title, icon=icon, default=i == 0)
                          for i, (path, title, icon) in enumerate(PAGES)])
    st.session_state["selection"] = sidebar.draw()
    sidebar.show_link_notes()
    page.run()


def selection() -> Selection:
    """The sidebar's choices. A fresh server whose first request is a deep link runs the page
    file on its own (Streamlit's legacy pages/ mode); route through run_app() instead."""
    if "selection" not in st.session_state:
        run_app()
        st.stop()
    return st.session_state["selection"]


# ------------------------------------------------------------------------------- models
def variants(selection: Selection, show_training: bool = False, purpose: str = "selection") -> dict[str, Variant]:
    """Build (or fetch) every selected variant. Problems are shown, never raised. `purpose`
    names what a page asks for (its selection, or a reference model of its own)."""
    if selection.weights == "checkpoint":
        return _checkpoint_variant(selection.checkpoint)
    if selection.weights == "upload":
        return _uploaded_variant()
    for title, problem in selection.unbuildable.items():
        st.error(f"{title} cannot be built, so it is not shown: {problem} Fix it in the sidebar.")
    if not selection.configs:
        if not selection.unbuildable:
            st.info("Pick at least one variant in the sidebar.")
        return {}
    store, settings = _store(), selection.settings
    if selection.weights == "trained":  # dropout is part of how a model was trained
        configs = {name: c.replace(dropout=selection.dropout) for name, c in selection.configs.items()}
    else:
        configs = selection.configs
    wanted = {name: (_key(name, config, selection), config) for name, config in configs.items()}
    if selection.weights == "trained":
        jobs = training.start(store, wanted, corpus(selection), settings, selection.seed, _place, purpose)
        training.show_stopped([key for key, _ in wanted.values()])
        if jobs:
            training.status(store, jobs, show_training)
    built = {}
    for name, (key, config) in wanted.items():
        if key in store["variants"]:
            built[name] = store["variants"][key]
        else:  # random weights: chosen, or standing in until the trained model is ready
            stand_in = selection.weights == "trained"
            built[name] = replace(_random_variant(name, config, selection.seed, corpus(selection)),
                                  source="random init (not trained yet)" if stand_in else "random init")
    return built


def _key(name, config, selection):
    return (name, config, selection.weights, selection.seed, selection.settings, selection.corpus)


def _place(key, variant: Variant) -> None:
    """Runs on the training thread when a model is ready (or in the script, from the cache)."""
    variant.model.to(device())
    _store()["variants"][key] = variant


def _random_variant(name, config, seed, data: Corpus) -> Variant:
    store, key = _store(), (name, config, "random", seed, data.sha256)
    if key not in store["variants"]:
        torch.manual_seed(seed)
        model = GPT2(config.replace(vocab_size=data.vocab.size)).to(device()).eval()
        store["variants"][key] = Variant(name, model, data.vocab, "random init")
    return store["variants"][key]


def _checkpoint_variant(text: str) -> dict[str, Variant]:
    if not text:
        st.info("Type the path of a local checkpoint folder in the sidebar.")
        return {}
    folder = serving_ui.checkpoint_folder(text)  # checked: exists, readable, allowed here
    if folder is None:
        return {}
    store = _store()
    key = ("checkpoint", str(folder.resolve()))
    if key not in store["variants"]:
        try:
            if (folder / "meta.json").is_file():
                model, meta = load_checkpoint(folder)
                vocab = Vocabulary(meta["vocab"]) if "vocab" in meta else None
            else:
                model, vocab = GPT2.from_hf_gpt2(folder), None
        except (CheckpointError, KeyError) as err:
            serving_ui.show_error("That checkpoint does not load", err)
            return {}
        store["variants"][key] = Variant(folder.name or text, model.to(device()).eval(), vocab, text)
    variant = store["variants"][key]
    return {variant.name: variant}


def _uploaded_variant() -> dict[str, Variant]:
    """The .zip in the sidebar's uploader, loaded once per upload; it lives for the session."""
    upload = st.session_state.get("checkpoint_upload")
    if upload is None:
        st.info("Upload a checkpoint .zip in the sidebar (one downloaded from Build & train, or a "
                "Hugging Face GPT-2 folder zipped). It stays for this session only.")
        return {}
    if st.session_state.get("uploaded", (None,))[0] != upload.file_id:
        try:
            check_upload("checkpoint", upload.size)
            model, meta = load_checkpoint_zip(upload.getvalue(), UPLOAD_CAPS["checkpoint"])
        except (CheckpointError, Refused) as err:
            serving_ui.show_error(f"{upload.name} does not load", err)
            return {}
        vocab = Vocabulary(meta["vocab"]) if meta and "vocab" in meta else None
        history = History(**meta["history"]) if meta and "history" in meta else None
        name = Path(upload.name).stem
        st.session_state["uploaded"] = (upload.file_id, Variant(name, model.to(device()).eval(), vocab,
                                                                f"uploaded {upload.name}", history))
    variant = st.session_state["uploaded"][1]
    return {variant.name: variant}


def download_button(name: str, variant: Variant, selection: Selection) -> None:
    """One .zip per built variant: weights (safetensors) and JSON (config, vocabulary, and for
    a trained one its settings, seed, corpus and history)."""
    meta = {"vocab": variant.vocab.gpt2_ids} if variant.vocab else {}
    if variant.history is not None:
        meta |= {"history": asdict(variant.history), "settings": asdict(selection.settings),
                 "seed": selection.seed, "corpus": corpus(selection).id}
    st.download_button(f"{name} (.zip)", partial(checkpoint_zip, variant.model, meta),  # zipped on click
                       f"gpt2viz-{''.join(c if c.isalnum() or c in '+-' else '_' for c in name)}.zip",
                       "application/zip", key=f"download-{name}", icon=":material/download:")


def summary_rows(built: dict[str, Variant], selection: Selection) -> list[dict]:
    """One row per variant; the settings and corpus only where this selection trained it."""
    rows, settings, data = [], selection.settings, corpus(selection)
    for name, v in built.items():
        cfg, h = v.config, v.history
        ours = v.source.startswith("trained")
        rows.append({"variant": name, "weights": v.source, "corpus": data.name if ours else None,
                     "params": v.model.num_params(), "attention": cfg.attention_kind,
                     "position": cfg.position, "window": str(cfg.window or "full"),
                     "val loss": round(h.val_loss[-1], 3) if h and h.val_loss else None,
                     **{f"val loss, context {'≤ ' if c > 1 else ''}{c}": round(loss, 3) if h else None
                        for c, loss in (cached_context_losses(v, data) if h else dict.fromkeys(CONTEXTS)).items()},
                     "unigram loss": round(h.unigram_loss, 3) if h else None,
                     "KV cache / token": format_bytes(cfg.kv_cache_bytes_per_token()),
                     "trained": _training_label(h) if h else None,
                     "settings": settings.describe() if ours else None})
    return rows


def training_estimate(selection: Selection) -> str:
    """Before a run: what training the selected models that are not cached yet would take."""
    settings, data = selection.settings, corpus(selection)
    todo = {name: config.replace(dropout=selection.dropout, vocab_size=data.vocab.size)
            for name, config in selection.configs.items()}
    todo = {name: c for name, c in todo.items()
            if not checkpoint_folder(c, data, settings, selection.seed).is_dir()}
    if not todo:
        return "Every selected model with these settings is in the checkpoint cache: nothing to train."
    rate = _store()["training"].tokens_per_second
    seconds = len(todo) * job_tokens(settings) / rate
    memory = max(training_bytes(c, settings) for c in todo.values())
    return (f"To train {', '.join(todo)}: about {seconds:.0f} s in all at {rate:,.0f} tokens/s (the "
            f"last pace measured here; the time budget, if set, stops each model earlier), peak "
            f"memory about {format_bytes(memory)} per model, one model at a time.")


def _training_label(h) -> str:
    """Seconds alone mislead on a shared machine: give the rate and when it was measured."""
    when = f" on {h.finished}" if h.finished else ""
    return f"{h.seconds:.0f} s at {h.tokens_per_second:,.0f} tokens/s{when}"


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
                f"{len(prompt.gpt2_ids)} are used.")
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
def _pooled_losses(_variant: Variant, model_id: int, _data: Corpus, corpus_id: str):
    return pooled_losses(_variant.model, _data.val)


def cached_pooled_losses(variant: Variant, selection: Selection) -> list[dict]:
    data = corpus(selection)
    return _pooled_losses(variant, id(variant.model), data, data.id)


@st.cache_resource(max_entries=16, show_spinner="Scoring the validation split with the context cut...")
def _context_losses(_variant: Variant, model_id: int, _data: Corpus, corpus_id: str):
    return context_losses(_variant.model, _data.val)


def cached_context_losses(variant: Variant, data: Corpus) -> dict[int, float]:
    return _context_losses(variant, id(variant.model), data, data.id)
