"""Head atlas: what every attention head does, one number per head (the numbers of
`experiment heads`); a chosen head's map on the prompt, and what switching it off costs."""
import streamlit as st

from gpt2viz.analysis.heads import MEASURES
from gpt2viz.analysis.workbench import prompt_ids, prompt_labels
from gpt2viz.dashboard import heads, models, prompts, routing
from gpt2viz.dashboard.export import chart, html_download
from gpt2viz.viz.attention import attention_heatmap
from gpt2viz.viz.heads import MEASURE_LABELS, ablation_figure, head_atlas, selected_head

selection = routing.selection()
st.title("Head atlas")
st.caption("One cell per layer and head, coloured by what the head does, measured on the default "
           "corpus's validation text (its first 512 tokens, or the model's context if shorter, in each "
           "model's own vocabulary) and on "
           "four random sequences repeated once: the numbers of `python -m gpt2viz experiment heads`. "
           "**Mass on the first token**: attention parked on token 0 (an attention sink). "
           "**Previous-token**: attention to the token just before. **Induction**: on the repeat, "
           "attention to the token after the current token's earlier occurrence (a copying head). "
           "**Entropy**: how spread the attention is (nats). **Mean distance**: how far back a head "
           "reads (tokens), the first token left out so a sink does not read as far-reaching. Hover a cell for all five; click it to open that head below.")
built = models.variants(selection)
if built:
    c1, c2 = st.columns([1, 3])
    name = c1.selectbox("Variant", list(built), key="atlas_variant") if len(built) > 1 else next(iter(built))
    measure = c2.radio("Colour by", MEASURES, format_func=MEASURE_LABELS.get, horizontal=True,
                       key="atlas_measure")
    variant = built[name]
    cfg = variant.config
    with st.spinner(f"Measuring every head of {name} ({cfg.n_layer} × {cfg.n_head}); once per model..."):
        stats = heads.head_stats(variant)
    chosen = st.session_state.setdefault("atlas_chosen", {})  # variant name -> (layer, head)
    chart_key = f"atlas-{name}"
    clicked = selected_head(st.session_state.get(chart_key))
    if clicked is not None:  # the figure below is redrawn with the frame, which clears its selection
        chosen[name] = clicked
    pick = chosen.get(name)
    if pick is not None and not (pick[0] < cfg.n_layer and pick[1] < cfg.n_head):
        pick = None
    atlas = head_atlas(stats, measure, cfg.n_kv_head, selected=pick,
                       title=f"{name}: {MEASURE_LABELS[measure]} of every head"
                             + (f" (outlined: the {cfg.group_size} heads that read one "
                                f"K/V head)" if cfg.group_size > 1 else ""))
    event = chart(atlas, on_select="rerun", selection_mode="points", key=chart_key)
    html_download(atlas, f"html-atlas-{name}")
    if selected_head(event) is not None and selected_head(event) != pick:
        chosen[name] = selected_head(event)
        st.rerun()
    if pick is None:
        st.info("Click a cell of the atlas to open that head: its attention on the prompt, and "
                "what switching it off costs.")
    else:
        layer, head = pick
        group = head // cfg.group_size
        row = next(r for r in stats if r["layer"] == layer and r["head"] == head)
        st.subheader(f"Layer {layer}, head {head}"
                     + (f" (KV head {group}, shared with heads {group * cfg.group_size}–"
                        f"{(group + 1) * cfg.group_size - 1})" if cfg.group_size > 1 else ""))
        st.caption(" · ".join(f"{MEASURE_LABELS[m]}: **{row[m]:.3f}**" for m in MEASURES))
        prompt = prompts.prompt_input()
        if prompt:
            probs = prompts.trace(variant, prompt).attn[layer][0, head].numpy()  # (T, T)
            heatmap = attention_heatmap(probs, prompt_labels(variant, prompt),
                                        f"{name} · layer {layer} · head {head}", cfg.window, sinks=cfg.sinks)
            chart(heatmap)
            html_download(heatmap, f"html-head-{name}")

            st.subheader("Switch it off")
            options = {"head": f"head {head} alone"}
            if cfg.group_size > 1:
                options["group"] = (f"its KV group {group} (heads {group * cfg.group_size}–"
                                    f"{(group + 1) * cfg.group_size - 1})")
            what = st.radio("Switch off", list(options), format_func=options.get, horizontal=True,
                            key="atlas_ablate", label_visibility="collapsed")
            ids = prompt_ids(variant, prompt)[0].cpu()
            # scoring reads 1,024 tokens of text twice (seconds on the real model), so a click on a
            # cell draws the map at once and scores only what is asked for (then kept)
            scored = st.session_state.setdefault("atlas_scored", set())
            request = (name, id(variant.model), layer, head, what, tuple(ids.tolist()))
            if len(ids) < 2:
                st.info("The prompt is one token: type at least two to score it.")
            elif request not in scored and not st.button("Score it switched off", key="atlas_score",
                                                         help="The loss on the prompt, the validation "
                                                              "text and repeated random tokens, with and "
                                                              "without it."):
                st.caption("Scoring takes a few seconds on a small model and longer on a real one; "
                           "each result is kept for the rest of the session.")
            else:
                scored.add(request)
                with st.spinner("Scoring the model with and without it..."):
                    result = heads.ablation(variant, ids, layer, head if what == "head" else None,
                                            group if what == "group" else None)
                chart(ablation_figure([result]))
                st.caption("The head's output is set to zero before the layer's output projection. "
                           "Loss (nats per token) on the prompt, on the first 1,024 tokens (or the model's context) of the "
                           "validation text, and on the second copy of the repeated random "
                           "sequences (which only a copying head can predict): `python -m gpt2viz "
                           "experiment ablate` gives the same text and random-token numbers.")
