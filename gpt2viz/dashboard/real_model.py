"""A pretrained model's long-text measurements, once per server process for every session
(st.cache_resource): its own tokens of the default corpus's validation text (what `experiment
streaming`, `heads` and `gqa` read), its queries and keys over a stretch of it, the loss with
its KV heads mean-pooled, and StreamingLLM's losses per setting. Small models read the prompt
or their own corpus instead."""
from __future__ import annotations

import streamlit as st

from gpt2viz.analysis.specs import SPECS, Scored
from gpt2viz.analysis.workbench import Variant, trace_ids
from gpt2viz.core.model import Trace

from . import background
from .heads import text_ids  # the default corpus's validation text in the model's own tokens


@st.cache_resource(max_entries=4, show_spinner="Tracing the text (queries and keys of every layer)...")
def _qk_trace(_variant: Variant, model_id: int, tokens: int) -> Trace:
    return trace_ids(_variant.model, text_ids(_variant)[:tokens][None], capture=("q", "k"))


def qk_trace(variant: Variant, tokens: int) -> Trace:
    """q and k of every layer over the first `tokens` tokens of the text (no probabilities)."""
    return _qk_trace(variant, id(variant.model), tokens)


@st.cache_resource(max_entries=4, show_spinner="Mean-pooling the KV heads and scoring 1,024 tokens "
                                               "(a forward pass per head count)...")
def _pooled(_variant: Variant, model_id: int) -> dict:
    return SPECS["gqa"].run(_variant.model, Scored(text_ids(_variant), _variant.config.max_seq_len))


def pooled(variant: Variant) -> dict:
    """The GQA experiment on the text (pooled only): the loss with its KV heads, then pooled."""
    return _pooled(variant, id(variant.model))


def streaming(variant: Variant, tokens: int, windows: tuple, sinks: tuple, run: bool) -> list[dict] | None:
    """The StreamingLLM experiment over the first `tokens` tokens of the text, once per
    settings for every session: the rows when measured, else None; run=True starts it in the
    background (a pass per setting: minutes) and background.show draws how far it is."""
    key = _streaming_key(variant, tokens, windows, sinks)
    if run:
        scored = Scored(text_ids(variant), variant.config.max_seq_len)
        background.start(key, f"StreamingLLM over {tokens:,} tokens of {variant.name}",
                         lambda report: SPECS["streaming"].run(variant.model, scored, tokens, windows,
                                                               sinks, report))
    return background.finished(key)


def streaming_running(variant: Variant, tokens: int, windows: tuple, sinks: tuple) -> bool:
    """Draw the run of these settings if one is going (progress, Cancel); True while it is."""
    return background.show(_streaming_key(variant, tokens, windows, sinks))


def _streaming_key(variant: Variant, tokens: int, windows: tuple, sinks: tuple) -> tuple:
    return ("streaming", id(variant.model), tokens, tuple(windows), tuple(sinks))
