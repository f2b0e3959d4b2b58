"""Local or shared mode, as the pages see it. The rules live in gpt2viz.weights.serving, gpt2viz.training.jobs
and gpt2viz.training.train; this file asks Streamlit for the one fact they need (the address the server
listens on) and shows their answers.

Local mode (loopback): the person at this machine; any folder may be loaded, errors in full.
Shared mode (any other address): checkpoints only from GPT2VIZ_MODELS, one-line errors with
no server paths, tracebacks only in the server log.
"""
from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from gpt2viz.core.config import TrainSettings
from gpt2viz.core.resources import format_bytes
from gpt2viz.training.jobs import MAX_WAITING, check_budget
from gpt2viz.weights.checkpoint_cache import cache_dir, cache_entries, cache_max_bytes, clear_cache
from gpt2viz.weights.serving import (
    UPLOAD_CAPS,
    Refused,
    checkpoint_path,
    is_local,
    models_folder,
    public_message,
)

log = logging.getLogger("gpt2viz")


def shared() -> bool:
    return not is_local(st.get_option("server.address"))


def apply_mode():
    """Once per run, before anything can fail: in shared mode visitors see no tracebacks."""
    if shared():
        st.set_option("client.showErrorDetails", "none")


def weight_options(weights: dict) -> list[str]:
    """The local-folder loader is offered everywhere locally, and when shared only with a
    models folder named at start-up."""
    offered = not shared() or models_folder() is not None
    return [w for w in weights if w != "checkpoint" or offered]


def upload_megabytes(kind: str) -> int:
    return UPLOAD_CAPS[kind] // 1024**2


def checkpoint_prompt() -> str:
    if shared():
        return ("Folder inside the server's models folder (Hugging Face GPT-2, Llama, Mistral or "
                "Qwen2, or a gpt2viz checkpoint)")
    return ("Folder (Hugging Face GPT-2 / Llama / Mistral / Qwen2: config.json + *.safetensors "
            "+ tokenizer.json, or a gpt2viz checkpoint)")


def checkpoint_folder(text: str) -> Path | None:
    """The folder to load, or None after saying why not."""
    try:
        return checkpoint_path(text, models_folder() if shared() else None)
    except Refused as err:
        st.error(str(err))
        return None


def show_error(what: str, err: Exception):
    """One line for the visitor; the whole story goes to the server log."""
    log.warning("%s", what, exc_info=err)
    message = public_message(str(err), models_folder()) if shared() else str(err)
    st.error(f"{what}: {message}")


def queue_bounds(settings: TrainSettings, request: frozenset) -> dict:
    """The training queue's bounds for this server (none locally): raises Refused when one
    job is over the budget; the rest are checked by the queue as it takes the job."""
    if not shared():
        return {}
    check_budget(settings)
    return {"request": request, "max_waiting": MAX_WAITING}


def cache_panel():
    """Size of the checkpoint cache against its cap; locally, a button that empties it."""
    try:
        cap = cache_max_bytes()
    except ValueError as err:
        st.error(str(err))
        return
    entries = cache_entries()
    where = "" if shared() else f" (`{cache_dir()}`)"
    st.caption(f"Checkpoint cache{where}: {len(entries)} checkpoint(s), "
               f"{format_bytes(sum(e.bytes for e in entries))} of {format_bytes(cap)} "
               f"(GPT2VIZ_CACHE_MAX); past that the least recently used go first.")
    if shared():
        return  # one visitor must not make every other visitor's models train again
    st.button("Clear the checkpoint cache", on_click=_clear_cache, disabled=not entries, key="clear-cache")
    if "cache_cleared" in st.session_state:
        st.success(st.session_state.pop("cache_cleared"))


def _clear_cache():
    removed = clear_cache()
    st.session_state["cache_cleared"] = (
        f"Removed {len(removed)} checkpoint(s). Models already loaded stay in memory until the "
        f"server restarts; the others train again when next asked for.")
