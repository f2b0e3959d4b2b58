"""Build & train's table and what sits around it: one row per built variant, its download,
the loss curves, and the estimate of what training the missing models would take."""
from __future__ import annotations

from dataclasses import asdict
from functools import partial

import pandas as pd
import streamlit as st

from gpt2viz.analysis.workbench import CONTEXTS, Variant, context_losses
from gpt2viz.core.resources import format_bytes
from gpt2viz.text.corpus import Corpus
from gpt2viz.training.jobs import JobKind, job_tokens
from gpt2viz.training.train import training_bytes
from gpt2viz.viz.charts import loss_curves
from gpt2viz.weights.checkpoint_cache import checkpoint_folder
from gpt2viz.weights.checkpoints import checkpoint_zip

from . import corpora
from .models import store
from .controls import Selection


def download_button(name: str, variant: Variant, selection: Selection) -> None:
    """One .zip per built variant: weights (safetensors) and JSON (config, vocabulary, and for
    a trained one its settings, seed, corpus and history)."""
    meta = {"vocab": variant.vocab.gpt2_ids} if variant.vocab else {}
    if variant.history is not None:
        meta |= {"history": asdict(variant.history), "settings": asdict(selection.settings),
                 "seed": selection.seed, "corpus": corpora.selected(selection).id}
    st.download_button(f"{name} (.zip)", partial(checkpoint_zip, variant.model, meta),  # zipped on click
                       f"gpt2viz-{''.join(c if c.isalnum() or c in '+-' else '_' for c in name)}.zip",
                       "application/zip", key=f"download-{name}", icon=":material/download:")


def summary_rows(built: dict[str, Variant], selection: Selection) -> list[dict]:
    """One row per variant; the corpus only where this selection trained it (the settings,
    the same for all, head the Training settings panel)."""
    rows, data = [], corpora.selected(selection)
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
                     "trained": _training_label(h) if h else None})
    return rows


# The columns split in two tables that fit a laptop screen (1280 px): what each model is, then
# how well it learned (for the models that were trained).
MODEL_COLUMNS = ["variant", "weights", "params", "attention", "position", "window", "KV cache / token"]
SHORT_LABELS = {"unigram loss": "unigram", "within seed noise of": "within noise of",
                **{f"val loss, context {'≤ ' if c > 1 else ''}{c}": f"ctx {'≤ ' if c > 1 else ''}{c}"
                   for c in CONTEXTS}}
NOTHING = "—"


def show_tables(rows: list[dict], training: bool) -> None:
    """The rows as two tables; a column with nothing for any model is left out, a cell with
    nothing for one model shows NOTHING, and a caption says why (`training`: the selection
    trains them, and the models without numbers are still waiting for it)."""
    frame = pd.DataFrame(rows)
    models, gaps = _without_gaps(frame[MODEL_COLUMNS])
    learned, more_gaps = _without_gaps(frame.drop(columns=MODEL_COLUMNS[1:]))
    st.dataframe(models, hide_index=True, width="stretch")
    if learned.shape[1] > 1:
        st.dataframe(learned, hide_index=True, width="stretch",
                     column_config={c: st.column_config.Column(label) for c, label in SHORT_LABELS.items()})
    if (gaps or more_gaps) and training:
        st.caption(f"A model not trained yet has no validation losses or training run to show "
                   f"(a missing column, or {NOTHING}): they appear when its training finishes.")
    elif gaps or more_gaps:
        st.caption(f"Random and imported weights were never trained here: they have no validation "
                   f"losses or training run to show (a missing column, or {NOTHING}).")


def _without_gaps(table: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Columns empty for every row left out; a column with gaps as text, NOTHING in the gaps."""
    kept = {}
    for c in table:
        values = table[c]
        if values.isna().any() and not values.isna().all():
            values = values.map(lambda x: NOTHING if pd.isna(x) else str(x))
        if not values.isna().all():
            kept[c] = values
    return pd.DataFrame(kept), len(kept) < table.shape[1] or any(
        (v == NOTHING).any() for v in kept.values())


def training_estimate(selection: Selection) -> str:
    """Before a run: what training the selected models that are not cached yet would take."""
    settings, data = selection.settings, corpora.selected(selection)
    todo = {name: config.replace(dropout=selection.dropout, vocab_size=data.vocab.size)
            for name, config in selection.configs.items()}
    todo = {name: c for name, c in todo.items()
            if not checkpoint_folder(c, data, settings, selection.seed).is_dir()}
    if not todo:
        return "Every selected model with these settings is in the checkpoint cache: nothing to train."
    paces = {name: store().training.paces.estimate(JobKind.of(c, settings)) for name, c in todo.items()}
    seconds = sum(job_tokens(settings) / pace.tokens_per_second for pace in paces.values())
    memory = max(training_bytes(c, settings) for c in todo.values())
    sources = "; ".join(f"{name} at {pace.tokens_per_second:,.0f} tokens/s, {pace.source}"
                        for name, pace in paces.items())
    guess = (f" — a guess, up to about {2 * seconds:.0f} s on a busy machine"
             if any(pace.guess for pace in paces.values()) else "")
    return (f"To train {', '.join(todo)}: about {seconds:.0f} s in all{guess} ({sources}; the time "
            f"budget, if set, stops each model earlier), peak memory about {format_bytes(memory)} "
            f"per model, one model at a time.")


def _training_label(h) -> str:
    """Seconds alone mislead on a shared machine: give the rate and when it was measured."""
    when = f" · {h.finished.removesuffix(' UTC')} UTC" if h.finished else ""
    return f"{h.seconds:.0f} s · {h.tokens_per_second:,.0f} tok/s{when}"


def loss_figure(built: dict[str, Variant]):
    histories = {n: v.history for n, v in built.items() if v.history is not None}
    if not histories:
        return None
    return loss_curves(histories, next(iter(histories.values())).unigram_loss)


@st.cache_resource(max_entries=16, show_spinner="Scoring the validation split with the context cut...")
def _context_losses(_variant: Variant, model_id: int, _data: Corpus, corpus_id: str):
    return context_losses(_variant.model, _data.val)


def cached_context_losses(variant: Variant, data: Corpus) -> dict[int, float]:
    return _context_losses(variant, id(variant.model), data, data.id)
