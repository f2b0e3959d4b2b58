"""Streamlit glue shared by app.py and the pages: routing, the model store, prompts, messages.

Models are built once per (variant, config, weights, seed) and kept in a process-wide store
(st.cache_resource); they are in eval mode and never trained further, so every session can
read them. Training runs on the store's worker thread (gpt2viz.jobs), so a model in progress
survives its tab closing; the page that asked shows a progress bar and a live loss curve.
The sidebar lives in sidebar.py.
"""
from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import streamlit as st
import torch

import sidebar
from gpt2viz import GPT2
from gpt2viz.checkpoints import CheckpointError, load_checkpoint
from gpt2viz.corpus import Corpus, Vocabulary
from gpt2viz.jobs import TrainingQueue
from gpt2viz.resources import device, format_bytes
from gpt2viz.train import TrainSettings, checkpoint_folder, train
from gpt2viz.viz.charts import loss_curves
from gpt2viz.workbench import (Prompt, Variant, pooled_losses, run_trace, tokenize_prompt,
                               unknown_positions)
from sidebar import Selection


def train_settings() -> TrainSettings:
    steps = os.environ.get("GPT2VIZ_TRAIN_STEPS")  # a quicker budget for demos and tests
    return TrainSettings(steps=int(steps)) if steps else TrainSettings()


@st.cache_resource(show_spinner=False)
def corpus() -> Corpus:
    return Corpus.default()


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
def variants(selection: Selection, show_training: bool = False) -> dict[str, Variant]:
    """Build (or fetch) every selected variant. Problems are shown, never raised."""
    if selection.weights == "checkpoint":
        return _checkpoint_variant(selection.checkpoint)
    for title, problem in selection.unbuildable.items():
        st.error(f"{title} cannot be built, so it is not shown: {problem} Fix it in the sidebar.")
    if not selection.configs:
        if not selection.unbuildable:
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


def _train_into_store(key, name, config, data, settings, seed, callback):
    """Runs on the training thread: the model lands in the store (and the disk cache) even if
    the page that asked for it has gone."""
    result = train(config, data, settings, seed=seed, callback=callback)
    _store()["variants"][key] = Variant(name, result.model.to(device()), result.vocab,
                                        "trained (cache)" if result.from_cache else "trained",
                                        result.history)


def _train_missing(names, selection, show_training):
    """Queue every missing model, then show the queue's progress until all are in the store."""
    store, data, settings = _store(), corpus(), train_settings()
    jobs = {}
    for name in names:
        config = selection.configs[name]
        key = _key(name, config, selection)
        cached = checkpoint_folder(config, data, settings, selection.seed).is_dir()
        tokens = 0 if cached else settings.steps * settings.batch_size * settings.block_size
        jobs[name] = store["training"].submit(
            key, name, partial(_train_into_store, key, name, config, data, settings, selection.seed),
            tokens)
    to_train = [n for n, job in jobs.items() if job.tokens > 0]
    box = st.container(border=True) if show_training and to_train else st.empty()
    with box:
        if to_train:
            st.write(f"Training {', '.join(to_train)} on the embedded corpus ({settings.steps} steps "
                     f"each, one model at a time; cached on disk afterwards). Training goes on if "
                     f"you switch pages or close the tab.")
        bar = st.progress(0.0, text="Starting to train..." if to_train else "Loading from the checkpoint cache...")
        chart = st.empty()
    last = list(jobs.values())[-1]
    while not all(job.done.is_set() for job in jobs.values()):
        running = [job for job in jobs.values() if job.progress and not job.done.is_set()]
        finished = sum(job.done.is_set() for job in jobs.values())
        if running:
            job, p = running[0], running[0].progress
            left = store["training"].seconds_until_done(last)
            bar.progress(min(1.0, (finished + p.step / p.steps) / len(jobs)),
                         text=f"{job.name}: step {p.step}/{p.steps}, loss {p.loss:.2f}, "
                              f"{p.tokens_per_second:,.0f} tokens/s · about {left:.0f} s left for "
                              f"{len(jobs) - finished} model(s)")
            if show_training:
                chart.line_chart({"loss": list(job.losses)}, height=200)
        time.sleep(0.25)
    bar.empty()
    if not (show_training and to_train):
        box.empty()
    for name, job in jobs.items():
        if job.error is not None:
            st.error(f"{name} could not be trained: {job.error}")


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
                     "trained": _training_label(h) if h else None,
                     "val loss": round(h.val_loss[-1], 3) if h and h.val_loss else None,
                     "unigram loss": round(h.unigram_loss, 3) if h else None,
                     "KV cache / token": format_bytes(cfg.kv_cache_bytes_per_token())})
    return rows


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
