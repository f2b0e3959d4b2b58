"""Build & train: which models exist, how well they learned, what they cost."""
import pandas as pd
import streamlit as st

import corpora
import serving_ui
import sidebar
import ui
from gpt2viz.train import learning_problem

selection = ui.selection()
st.title("Build & train")
shapes = {name: f"{c.n_layer} layers, d={c.d_model}, {c.n_head} heads"
          for name, c in selection.configs.items()}
shape = (next(iter(shapes.values())) if len(set(shapes.values())) == 1
         else "; ".join(f"{name}: {s}" for name, s in shapes.items()))
if selection.weights == "trained":
    data = ui.corpus(selection)
    text = ("the Python docs that ship with every Python (`pydoc_data.topics`)"
            if selection.corpus == corpora.EMBEDDED else f"your text **{data.name}**")
    st.caption(f"Each variant is a small GPT-2 ({shape}) trained on {text}, with the same data, "
               f"order, seed and token budget, so differences come from the architecture. "
               f"{data.describe()}.")
elif selection.weights == "random":
    st.caption(f"Each variant is a small GPT-2 ({shape}) with random weights (seed "
               f"{selection.seed}): the architecture only, nothing learned.")
if selection.weights == "trained":
    with st.expander(f"Training settings — the same for every variant: {selection.settings.describe()} "
                     f"· dropout {selection.dropout:g} · seed {selection.seed}"):
        corpora.controls(selection.corpus)
        sidebar.training_controls()
        st.caption(ui.training_estimate(selection))
built = ui.variants(selection, show_training=True)
if built:
    st.subheader("Variants")
    st.dataframe(pd.DataFrame(ui.summary_rows(built, selection)), hide_index=True, width="stretch")
    for name, variant in built.items():
        problem = learning_problem(variant.history) if variant.history else None
        if problem:
            st.error(f"**{name} did not learn**: {problem} What the other pages draw for it "
                     f"does not show what this architecture can do.")
    st.caption("Download a variant as one .zip (model.safetensors + meta.json); upload it again "
               "with the sidebar's 'Upload a checkpoint'. Nothing in it is ever unpickled.")
    for column, (name, variant) in zip(st.columns(min(len(built), 4)) * 2, built.items()):
        with column:
            ui.download_button(name, variant, selection)
    figure = ui.loss_figure(built)
    if figure is not None:
        st.plotly_chart(figure, width="stretch")
    else:
        st.info("Random or imported weights have no training history; pick "
                "'Trained on the corpus' in the sidebar to see loss curves.")
    st.caption("Validation loss is measured on every tenth 1,024-token block of the corpus, never "
               "trained on. The unigram baseline is what a model that ignores context scores.")
serving_ui.cache_panel()
