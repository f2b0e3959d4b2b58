"""Build & train: which models exist, how well they learned, what they cost."""
import pandas as pd
import streamlit as st

import ui
from gpt2viz.tokenizer import get_tokenizer
from gpt2viz.train import TrainSettings
from gpt2viz.workbench import SEED_NOISE_NOTE, seed_noise, within_noise

selection = ui.selection()
st.title("Build & train")
st.caption("Each variant is a small GPT-2 (4 layers, d=128, 8 heads) trained on the Python docs "
           "that ship with every Python (`pydoc_data.topics`), with the same data, order, seed "
           "and token budget, so differences come from the architecture.")
built = ui.variants(selection, show_training=True)
if built:
    st.subheader("Variants")
    rows = ui.summary_rows(built)
    noise = seed_noise(ui.train_settings())
    losses = {r["variant"]: r["val loss"] for r in rows if r["val loss"] is not None}
    if noise is not None and losses:
        close = within_noise(losses, noise)
        for r in rows:
            if r["val loss"] is not None:
                r["within seed noise of"] = ", ".join(close[r["variant"]]) or "none"
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if losses:
        st.caption(
            "How much each model uses its context: the same validation tokens scored in blocks of "
            f"1, 16 and {ui.train_settings().block_size} tokens ('context 1': each token predicted "
            "from itself alone; 'val loss': from up to the whole training block). A small gap "
            "between them means the model barely uses what came before.")
        st.caption(
            f"Seed-to-seed noise: {SEED_NOISE_NOTE} Two variants closer than {noise:.3f} nats are "
            "listed as within seed noise of each other: their order says nothing about the "
            "architecture." if noise is not None else
            "Seed-to-seed noise was measured for the default budget only "
            f"({TrainSettings().steps} steps); this run uses {ui.train_settings().steps}, so no "
            "difference here is marked as meaningful or not.")
    figure = ui.loss_figure(built)
    if figure is not None:
        st.plotly_chart(figure, width="stretch")
    else:
        st.info("Random or imported weights have no training history; pick "
                "'Trained on the corpus' in the sidebar to see loss curves.")
    vocab, gpt2_vocab = ui.corpus().vocab, get_tokenizer().vocab_size
    st.caption("Validation loss is measured on every tenth 1,024-token block of the corpus, never "
               "trained on. The unigram baseline is what a model that ignores context scores. "
               f"Losses are over this corpus's vocabulary: the {len(vocab.gpt2_ids):,} GPT-2 ids seen "
               f"in training plus one 'unknown' class for the other "
               f"{gpt2_vocab - len(vocab.gpt2_ids):,} ({vocab.size:,} classes, not GPT-2's "
               f"{gpt2_vocab:,}), so they are not comparable with losses reported for GPT-2 elsewhere.")
