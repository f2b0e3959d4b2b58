"""Build & train: which models exist, how well they learned, what they cost."""
import pandas as pd
import streamlit as st

import ui
from gpt2viz.train import learning_problem

selection = ui.selection()
st.title("Build & train")
st.caption("Each variant is a small GPT-2 (4 layers, d=128, 8 heads) trained on the Python docs "
           "that ship with every Python (`pydoc_data.topics`), with the same data, order, seed "
           "and token budget, so differences come from the architecture.")
built = ui.variants(selection, show_training=True)
if built:
    st.subheader("Variants")
    st.dataframe(pd.DataFrame(ui.summary_rows(built)), hide_index=True, width="stretch")
    for name, variant in built.items():
        problem = learning_problem(variant.history) if variant.history else None
        if problem:
            st.error(f"**{name} did not learn**: {problem} What the other pages draw for it "
                     f"does not show what this architecture can do.")
    figure = ui.loss_figure(built)
    if figure is not None:
        st.plotly_chart(figure, width="stretch")
    else:
        st.info("Random or imported weights have no training history; pick "
                "'Trained on the corpus' in the sidebar to see loss curves.")
    st.caption("Validation loss is measured on every tenth 1,024-token block of the corpus, never "
               "trained on. The unigram baseline is what a model that ignores context scores.")
