"""The head atlas's numbers and head ablations, computed once per model for every session
(st.cache_resource keyed by the model's identity): the same numbers as `experiment heads` and
`experiment ablate`, on the same text (the default corpus's validation split, in each model's
own vocabulary)."""
from __future__ import annotations

import streamlit as st
import torch

from gpt2viz.analysis import experiments
from gpt2viz.analysis.heads import head_stats as measure_heads
from gpt2viz.analysis.heads import induction_ids, text_tokens
from gpt2viz.analysis.workbench import Variant, validation_ids
from gpt2viz.viz.gqa import head_similarity, within_vs_across

from . import corpora


@st.cache_resource(max_entries=16, show_spinner=False)
def _text_ids(_variant: Variant, model_id: int) -> torch.Tensor:
    return validation_ids(_variant, corpora.default())


def text_ids(variant: Variant) -> torch.Tensor:
    """(N,) the text every head measure and ablation reads, once per model."""
    return _text_ids(variant, id(variant.model))


@st.cache_resource(max_entries=16, show_spinner=False)
def _head_stats(_variant: Variant, model_id: int) -> list[dict]:
    return measure_heads(_variant.model, text_ids(_variant)[:text_tokens(_variant.config)],
                         induction_ids(_variant.model))


def head_stats(variant: Variant) -> list[dict]:
    """Every head's five measures (gpt2viz.analysis.heads.head_stats, as `experiment heads`)."""
    return _head_stats(variant, id(variant.model))


@st.cache_resource(max_entries=16, show_spinner=False)
def _likeness_by_layer(_variant: Variant, model_id: int) -> list[tuple[float, float]]:
    ids = text_ids(_variant)[None, :text_tokens(_variant.config)]  # (1, T)
    with torch.no_grad():
        attn = _variant.model.trace(ids, capture=("attn",)).attn
    group = _variant.config.group_size
    return [within_vs_across(head_similarity(a[0].numpy()), group) for a in attn]


def likeness_by_layer(variant: Variant) -> list[tuple[float, float]]:
    """[(within, across)] per layer: how alike heads of one KV group attend against heads of
    different groups, on the atlas's text (a prompt of 30 tokens said the opposite of 512
    tokens of text in five of SmolLM2's layers)."""
    return _likeness_by_layer(variant, id(variant.model))


def ablation_text(variant: Variant) -> torch.Tensor:
    """The text's first 1,024 tokens scored (experiments.ABLATE_TEXT_TOKENS), or the model's
    context if shorter."""
    return text_ids(variant)[:min(experiments.ABLATE_TEXT_TOKENS, variant.config.max_seq_len) + 1]


@st.cache_resource(max_entries=16, show_spinner=False)
def _intact_losses(_variant: Variant, model_id: int, prompt: tuple) -> dict:
    return experiments.ablation_losses(_variant.model, ablation_text(_variant),
                                       prompt_ids=torch.tensor(prompt, dtype=torch.long))


@st.cache_resource(max_entries=64, show_spinner=False)
def _ablation(_variant: Variant, model_id: int, prompt: tuple, layer: int, head: int | None,
              kv_group: int | None) -> dict:
    return experiments.ablation(_variant.model, ablation_text(_variant), layer, head, kv_group,
                                base=_intact_losses(_variant, model_id, prompt),
                                prompt_ids=torch.tensor(prompt, dtype=torch.long))


def ablation(variant: Variant, prompt_ids: torch.Tensor, layer: int, head: int | None = None,
             kv_group: int | None = None) -> dict:
    """experiments.ablation on the text, the repeated random tokens and the prompt (T,),
    once per (model, prompt, what is switched off); the intact losses once per (model, prompt)."""
    return _ablation(variant, id(variant.model), tuple(prompt_ids.tolist()), layer, head, kv_group)
