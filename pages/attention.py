"""Attention: what each variant attends to, on the same prompt and the same colour scale."""
import numpy as np
import streamlit as st

from gpt2viz.analysis.workbench import prompt_labels, same_tokenizer
from gpt2viz.dashboard import link, models, prompts, routing
from gpt2viz.dashboard.export import chart, html_download
from gpt2viz.viz.attention import attention_difference, attention_grid, attention_heatmap

GRID_LAYERS = 6  # layers in one "All layers × heads" figure: 30 × 9 maps at once are unreadable

selection = routing.selection()
st.title("Attention")
st.caption("Rows are queries, columns the keys they attend to. Grey cells can never be attended: "
           "the future (causal triangle) and, with a sliding window, everything older than the "
           "window (the band) except attention sinks. ALiBi variants subtract m_h·(i − j) from head "
           "h's scores, so their attention fades with distance, fastest in head 0 (m = 2^(−8/H)).")
built = models.variants(selection)
prompt = prompts.prompt_input() if built else None
if built and prompt:
    prompts.unknown_note(built, prompt)
    traces = {name: prompts.trace(v, prompt) for name, v in built.items()}
    labels = {name: prompt_labels(v, prompt) for name, v in built.items()}  # each its own tokens
    shown = st.multiselect("Show variants", list(built), default=list(built))
    if "attention_first_layer" in st.session_state:  # kept while hidden (the others: link.control)
        st.session_state["attention_first_layer"] = st.session_state["attention_first_layer"]
    c1, c2, c3, c4 = st.columns(4)
    # Every control is in the link and keeps its value while hidden (link.control); only the
    # controls that change the current view are shown.
    views = ["One head", "All layers × heads", "Difference"]
    view = link.control(c1.radio, "View", "attention_view", views[0], options=views)
    max_layer = max(v.config.n_layer for v in built.values()) - 1
    deepest = max(built[name].config.n_layer for name in shown) if shown else 1
    for key, top in (("attention_layer", max_layer), ("attention_first_layer", deepest - GRID_LAYERS)):
        if st.session_state.get(key, 0) > top:  # a deeper model was deselected
            st.session_state[key] = max(top, 0)
    per_head = view != "All layers × heads"
    layer = link.control(c2.slider, "Layer", "attention_layer", 0, lowest=0, highest=max_layer,
                         shown=per_head and max_layer > 0)
    heads = ["mean over heads"] + list(range(max(v.config.n_head for v in built.values())))
    head_choice = link.control(c3.selectbox, "Head", "attention_head", heads[0], options=heads,
                               shown=per_head)
    scales = ["linear (0 to 1)", "log (0.001 to 1)"]
    scale = link.control(c4.radio, "Colour scale", "attention_scale", scales[0], options=scales,
                         shown=view != "Difference",
                         help="Every map's maximum is 1 (query 0 can only attend itself), so a "
                              "per-map maximum would change nothing; a log scale shows the small "
                              "probabilities a linear one paints as zero.")
    log = scale.startswith("log")

    def head_probs(name):
        """(T, T) probabilities, and what they are: layer and head as drawn, after clamping
        the sliders to this variant's own layers and heads."""
        cfg = built[name].config
        shown_layer = min(layer, cfg.n_layer - 1)
        probs = traces[name].attn[shown_layer][0]  # (n_head, T, T)
        if head_choice == "mean over heads":
            return probs.mean(0).numpy(), f"layer {shown_layer} · mean over heads"
        head = min(int(head_choice), cfg.n_head - 1)
        return probs[head].numpy(), f"layer {shown_layer} · head {head}"

    if not shown:
        st.info("Pick at least one variant to show.")
    elif view == "One head":
        for col, name in zip(st.columns(len(shown)), shown):
            probs, which = head_probs(name)
            heatmap = attention_heatmap(probs, labels[name], f"{name} · {which}",
                                        built[name].config.window, log, sinks=built[name].config.sinks,
                                        title_width=max(24, 100 // len(shown)))  # plotly clips, never wraps
            chart(heatmap, col)
            html_download(heatmap, f"html-attention-{name}", col)
            if len(probs) > 1:  # the attention sink: what every later query puts on token 0
                col.caption(f"Mass on the first token ({labels[name][0]}), mean over queries 1–"
                            f"{len(probs) - 1}: **{probs[1:, 0].mean():.2f}** (the first column).")
    elif view == "All layers × heads":
        first = 0
        if deepest > GRID_LAYERS:
            first = c2.slider("First layer shown", 0, deepest - GRID_LAYERS, key="attention_first_layer",
                              help=f"{GRID_LAYERS} layers at a time; the Head atlas page shows every "
                                   f"head of every layer at once, one number each.")
            st.caption(f"Layers {first}–{first + GRID_LAYERS - 1} of {deepest}, {GRID_LAYERS} at a time "
                       f"(every map of a {deepest}-layer model at once is unreadable). For all of them "
                       f"at a glance, one number per head, open the **Head atlas** page.")
        for name in shown:
            rows = range(first, min(first + GRID_LAYERS, built[name].config.n_layer))
            if not rows:
                st.caption(f"{name} has {built[name].config.n_layer} layers: none from layer {first}.")
                continue
            attn = [traces[name].attn[layer][0].numpy() for layer in rows]
            chart(attention_grid(attn, labels[name], f"{name}: layers {rows[0]}–{rows[-1]}, every head"
                                 if len(rows) < built[name].config.n_layer else
                                 f"{name}: every layer and head",
                                 built[name].config.window, log,
                                 row_titles=[f"L{layer}" for layer in rows],
                                 sinks=built[name].config.sinks))
    elif len(shown) < 2:
        st.info("The difference view needs two variants: pick another in 'Show variants'.")
    else:
        a, b = st.columns(2)
        name_a = a.selectbox("Variant A", shown, index=0)
        name_b = b.selectbox("Variant B", shown, index=1)
        (pa, which_a), (pb, which_b) = head_probs(name_a), head_probs(name_b)
        if not same_tokenizer(built[name_a], built[name_b]):
            st.info(f"{name_a} and {name_b} read the prompt with different tokenizers ({len(pa)} and "
                    f"{len(pb)} tokens): their maps do not line up cell by cell, so there is no "
                    f"difference to draw. Compare two variants that share a tokenizer (the small "
                    f"models all read GPT-2's).")
        else:
            chart(attention_difference(pa, pb, labels[name_a], name_a, name_b,
                                       built[name_a].config.window, built[name_b].config.window,
                                       built[name_a].config.sinks, built[name_b].config.sinks))
            st.caption(f"{name_a}: {which_a}; {name_b}: {which_b}. Largest absolute difference: "
                       f"{np.abs(pa - pb).max():.3f}.")
