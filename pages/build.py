"""Build & train: which models exist, how well they learned, what they cost."""
import streamlit as st

from gpt2viz.analysis.workbench import (
    SEED_NOISE_NOTE,
    seed_noise,
    seed_noise_mismatch,
    within_noise,
)
from gpt2viz.dashboard import build_table, corpora, models, routing, serving_mode, sidebar
from gpt2viz.dashboard.export import chart
from gpt2viz.text.tokenizer import get_tokenizer
from gpt2viz.training.train import learning_problem

selection = routing.selection()
st.title("Build & train")
shapes = {name: f"{c.n_layer} layers, d={c.d_model}, {c.n_head} heads"
          for name, c in selection.configs.items()}
shape = (next(iter(shapes.values())) if len(set(shapes.values())) == 1
         else "; ".join(f"{name}: {s}" for name, s in shapes.items()))
if selection.pretrained:
    st.caption(f"{' and '.join(selection.pretrained)}: pretrained elsewhere and loaded as shipped "
               f"(its own tokenizer and vocabulary); nothing of it is trained here, so it has no "
               f"training settings, training history or loss curves on this page.")
if selection.configs and selection.weights == "trained":
    data = corpora.selected(selection)
    text = ("the Python 3.11 docs (`pydoc_data.topics`, shipped with gpt2viz)"
            if selection.corpus == corpora.EMBEDDED else f"your text **{data.name}**")
    st.caption(f"Each variant is a small GPT-2 ({shape}) trained on {text}, with the same data, "
               f"order, seed and token budget, so differences come from the architecture. "
               f"{data.describe()}.")
elif selection.configs and selection.weights == "random":
    st.caption(f"Each variant is a small GPT-2 ({shape}) with random weights (seed "
               f"{selection.seed}): the architecture only, nothing learned.")
if selection.weights == "trained" and selection.configs:
    st.caption(f"Training, the same for every variant: {selection.settings.describe()} · dropout "
               f"{selection.dropout:g} · seed {selection.seed}")
    with st.expander("Training settings and your own text", key="training-panel"):
        corpora.controls(selection.corpus)
        sidebar.training_controls(build_table.training_estimate(selection))
built = models.variants(selection, show_training=True)
if built:
    st.subheader("Variants")
    rows = build_table.summary_rows(built, selection)
    noise_args = (selection.settings, corpora.selected(selection).sha256, selection.dropout)
    noise = seed_noise(*noise_args)
    losses = {r["variant"]: r["val loss"] for r in rows if r["val loss"] is not None}
    if noise is not None and losses:
        close = within_noise(losses, noise)
        for r in rows:
            if r["val loss"] is not None:
                r["within seed noise of"] = ", ".join(close[r["variant"]]) or "none"
    build_table.show_tables(rows, training=selection.weights == "trained")
    for name, variant in built.items():
        problem = learning_problem(variant.history) if variant.history else None
        if problem:
            st.error(f"**{name} did not learn**: {problem} What the other pages draw for it "
                     f"does not show what this architecture can do.")
    if losses:
        st.caption(
            "How much each model uses its context: the same validation tokens scored in blocks of "
            f"1, 16 and {selection.settings.block_size} tokens ('context 1': each token predicted "
            "from itself alone; 'val loss': from up to the whole training block). A small gap "
            "between them means the model barely uses what came before.")
        st.caption(
            f"Seed-to-seed noise, {SEED_NOISE_NOTE} Two variants closer than {noise:.3f} nats are "
            "listed as within seed noise of each other: their order says nothing about the "
            "architecture." if noise is not None else
            f"Seed-to-seed noise was {SEED_NOISE_NOTE} This run differs "
            f"({', '.join(seed_noise_mismatch(*noise_args))}), so no difference here is marked as "
            "meaningful or not.")
    st.caption("Download a variant as one .zip (model.safetensors + meta.json); upload it again "
               "with the sidebar's 'Upload a checkpoint'. Nothing in it is ever unpickled.")
    ours = {name: v for name, v in built.items() if not v.pretrained}  # a pretrained one ships in its package
    for column, (name, variant) in zip(st.columns(max(min(len(ours), 4), 1)) * 2, ours.items()):
        with column:
            build_table.download_button(name, variant, selection)
    figure = build_table.loss_figure(built)
    if figure is not None:
        chart(figure)
    elif ours and selection.weights == "trained":
        st.info("The loss curves appear here when training finishes.")
    elif ours:  # a pretrained model alone was said at the top
        st.info("Random or imported weights have no training history; pick "
                "'Trained on the corpus' in the sidebar to see loss curves.")
if built and ours:
    vocab, gpt2_vocab = corpora.selected(selection).vocab, get_tokenizer().vocab_size
    st.caption("Validation loss is measured on every tenth 1,024-token block of the corpus, never "
               "trained on. The unigram baseline is what a model that ignores context scores. "
               f"Losses are over this corpus's vocabulary: the {len(vocab.gpt2_ids):,} GPT-2 ids seen "
               f"in training plus one 'unknown' class for the other "
               f"{gpt2_vocab - len(vocab.gpt2_ids):,} ({vocab.size:,} classes, not GPT-2's "
               f"{gpt2_vocab:,}), so they are not comparable with losses reported for GPT-2 elsewhere.")
serving_mode.cache_panel()
