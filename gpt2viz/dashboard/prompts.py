"""The prompt every page shares (it survives page switches), and one cached forward pass per
(model, prompt), so moving a view-only control never recomputes it."""
from __future__ import annotations

import streamlit as st
import torch

from gpt2viz.analysis.workbench import (
    Prompt,
    Variant,
    prompt_ids,
    tokenize_prompt,
    trace_ids,
    unknown_positions,
)

from . import link

DEFAULT_PROMPT = ('The "for" statement is used to iterate over the elements of a sequence '
                  '(such as a string, tuple or list) or other iterable object.')


def prompt_input() -> Prompt | None:
    """The prompt shared by the pages; problems are explained, not raised."""
    text = link.linked("prompt", DEFAULT_PROMPT)  # kept across pages, and in the link
    st.text_area("Prompt", key="prompt", height=80)
    if len(text) > link.PROMPT_LINK_CHARS:
        st.caption(f"A link to this view holds the prompt's first {link.PROMPT_LINK_CHARS:,} "
                   f"characters (of {len(text):,}).")
    try:
        prompt = tokenize_prompt(text)
    except ValueError as err:
        st.warning(str(err))
        return None
    if prompt.truncated_from:
        st.info(f"The prompt has {prompt.truncated_from} tokens; only its last "
                f"{len(prompt.gpt2_ids)} are used.")
    return prompt


@st.cache_resource(max_entries=64, show_spinner=False)
def _cached_trace(_variant: Variant, model_id: int, ids: tuple):
    return trace_ids(_variant.model, torch.tensor([ids]))


def trace(variant: Variant, prompt: Prompt):
    """One forward pass per (model, the prompt's ids in its vocabulary): view-only controls
    never recompute it."""
    ids = prompt_ids(variant, prompt)[0].tolist()
    return _cached_trace(variant, id(variant.model), tuple(ids))


def unknown_note(built: dict, prompt: Prompt):
    for name, v in built.items():
        unknown = unknown_positions(v, prompt)
        if unknown:
            words = ", ".join(prompt.labels[i] for i in unknown[:8])
            st.caption(f"{name}: {len(unknown)} token(s) never seen in training map to the unknown "
                       f"id ({words}).")
