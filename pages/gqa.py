"""GQA: which query heads share which key/value head, what that saves, how alike sharing
heads attend, and what mean-pooling a trained MHA model into GQA costs."""
from dataclasses import replace

import pandas as pd
import streamlit as st

from gpt2viz import PRESETS
from gpt2viz.analysis.heads import text_tokens
from gpt2viz.analysis.workbench import kv_cost_rows, prompt_labels
from gpt2viz.core.config import kv_head_choices
from gpt2viz.core.resources import format_bytes
from gpt2viz.dashboard import corpora, link, models, prompts, real_model, routing
from gpt2viz.dashboard import heads as head_measures
from gpt2viz.dashboard.export import chart
from gpt2viz.viz.attention import attention_grid
from gpt2viz.viz.gqa import (
    conversion_curve,
    cost_bars,
    head_similarity,
    likeness_by_layer,
    sharing_diagram,
    similarity_heatmap,
    within_vs_across,
)

selection = routing.selection()
st.title("GQA: sharing key/value heads")
# The shape shown: a selected pretrained model (its own vocabulary), else the first selected
# model that shares heads, else the first selected one.
real = models.pretrained_variants(selection.pretrained, show_loading=False)
shapes = {n: v.config for n, v in real.items()} | selection.configs
base_name, base_cfg = next(((n, c) for n, c in shapes.items() if c.n_kv_head < c.n_head),
                           next(iter(shapes.items()), ("gpt2", PRESETS["gpt2"])))
if selection.weights != "checkpoint" and base_name not in real:  # the embedding the built models have
    base_cfg = base_cfg.replace(vocab_size=corpora.selected(selection).vocab.size)
c1, c2 = st.columns(2)
kv_options = kv_head_choices(base_cfg.n_head)
n_kv = link.control(c1.select_slider, "Key/value heads (MHA → MQA)", "gqa_kv_heads",
                    base_cfg.n_kv_head, options=kv_options,
                    help=f"Starts at {base_name}'s own {base_cfg.n_kv_head}.")
context = link.control(c2.select_slider, "Context length for the cache", "gqa_context", 4096,
                       options=[256, 1024, 4096, 32768, 131072])
if real and selection.configs:
    st.caption(f"The diagram, costs and table below are {base_name}'s; the small models "
               f"({', '.join(selection.configs)}) are left out of them, and have the maps and "
               f"pooling further down.")
chart(sharing_diagram(base_cfg.n_head, n_kv))

rows = kv_cost_rows(base_cfg, context)
slots = base_cfg.kv_cache_slots(context)
chart(cost_bars(rows, context, slots))
st.dataframe(pd.DataFrame([{"n_kv_head": r["n_kv_head"], "kind": r["kind"],
                            "KV cache / token": format_bytes(r["kv_bytes_per_token"]),
                            f"KV cache at {context}": format_bytes(r["kv_bytes_context"]),
                            "params": r["params"],
                            "params saved vs MHA": f"{1 - r['params'] / rows[0]['params']:.1%}"}
                           for r in rows]), hide_index=True, width="stretch")
cap = ("" if base_cfg.window is None else
       f"The window caps the cache at window + sinks = {base_cfg.window} + {base_cfg.sinks} slots "
       f"(the sinks kept, the rest rolling): at {context:,} tokens it holds {slots:,} tokens' K and V"
       + (f", not {context:,}. " if slots < context else ". "))
st.caption(f"Shape of {base_name}: {base_cfg.n_layer} layers, "
           f"{base_cfg.n_head} heads of {base_cfg.head_dim}, fp32. Bytes = 2 (K and V) × layers × "
           f"n_kv_head × head_dim × 4 per cached token; the cache holds n_kv_head heads, never repeated "
           f"copies. {cap}Parameters with the {base_cfg.vocab_size:,}-id vocabulary the models embed, "
           f"as on Build.")

built = models.variants(selection)
if set(built) & set(selection.pretrained) - set(real):  # it finished loading during this run:
    st.rerun()  # draw the shapes above with it, once (no banner is left to rerun the page)
grouped = {n: v for n, v in built.items() if v.config.n_kv_head < v.config.n_head}
st.subheader("Attention maps grouped by shared key/value head")
prompt = prompts.prompt_input() if built else None
if prompt and not grouped:
    st.info("No GQA/MQA model is selected: add 'gqa' or 'rope+gqa+swa' in the sidebar.")
if prompt and grouped:
    name = st.selectbox("GQA model", list(grouped))
    variant = grouped[name]
    cfg = variant.config
    layer = st.slider("Layer", 0, cfg.n_layer - 1, 0) if cfg.n_layer > 1 else 0
    attn = prompts.trace(variant, prompt).attn
    probs = attn[layer][0].numpy()  # (n_head, T, T)
    similarity = head_similarity(probs)
    within, across = within_vs_across(similarity, cfg.group_size)
    a, b = st.columns([2, 1])
    by_group = [probs[g * cfg.group_size:(g + 1) * cfg.group_size] for g in range(cfg.n_kv_head)]
    chart(attention_grid(by_group, prompt_labels(variant, prompt),
                         f"{name}, layer {layer}: one row per kv head, its {cfg.group_size} query heads",
                         cfg.window, row_titles=[f"KV{g}" for g in range(cfg.n_kv_head)],
                         cell_titles=[f"Q{h}" for h in range(cfg.n_head)], sinks=cfg.sinks), a)
    chart(similarity_heatmap(similarity, cfg.group_size,
                             "head similarity (1 − TV distance)"), b)
    if cfg.n_kv_head == 1:
        b.metric("similarity of the heads", f"{within:.3f}")
        b.caption("One group (MQA): every query head shares the single K/V head, so there is no "
                  "other group to compare with. Heads that share K and V differ only by their queries.")
    else:
        b.metric("within-group similarity", f"{within:.3f}", f"{within - across:+.3f} vs across groups")
        b.caption(f"across groups: {across:.3f}. Heads that share K and V differ only by their queries.")
    if cfg.n_kv_head > 1 and cfg.n_layer > 1:
        by_layer = head_measures.likeness_by_layer(variant)
        tokens = text_tokens(cfg)
        chart(likeness_by_layer([w for w, _ in by_layer], [x for _, x in by_layer],
                                f"{name}: how alike heads attend, layer by layer, on "
                                f"{tokens} tokens of text"))
        st.caption(f"Measured on the first {tokens} tokens of the default corpus's validation text "
                   f"(the head atlas's text, in the model's own tokens), not on the prompt: a short "
                   f"prompt can say the opposite. Query 0 is left out (it reads only itself in every head).")

st.subheader("Mean-pooling K/V heads: a trained MHA model into GQA, the real model's GQA into MQA")
# the real model and a local folder of its family (their own tokenizers read the same text)
own_weights = real | {n: v for n, v in built.items() if v.tokenizer is not None}
for name, variant in own_weights.items():
    cfg = variant.config
    result = real_model.pooled(variant)
    chart(conversion_curve(result["rows"]))
    st.caption(f"{name} ({'pretrained' if name in real else 'its own weights'}, {cfg.n_kv_head} KV heads for {cfg.n_head} query heads): the loss "
               f"on the first 1,024 tokens of the default corpus's validation text with its own KV "
               f"heads, then with each group's K/V heads replaced by their mean (to_gqa), no "
               f"uptraining — " + "; ".join(
                   f"{r['n_kv_head']} KV head{'s' if r['n_kv_head'] > 1 else ''}: {r['pooled_loss']:.3f} "
                   f"nats, KV cache {format_bytes(r['kv_bytes_per_token'])} a token"
                   for r in result["rows"][1:]) +
               f" (its own: {result['base_loss']:.3f}, {format_bytes(result['kv_bytes_per_token'])} a "
               f"token). Uptraining a {variant.model.num_params() / 1e6:,.0f}M-parameter model is not "
               f"interactive on a CPU.")
if own_weights and (not selection.configs or selection.weights == "checkpoint"):
    pass  # pooled above; no small pair to train
elif selection.weights == "random":
    st.info("Pick 'Trained on the corpus' in the sidebar: pooling random weights says nothing.")
elif selection.weights != "trained":
    st.info("This section mean-pools the gpt2 preset trained on the corpus: pick 'Trained on the "
            "corpus' in the sidebar to see it beside the gqa preset.")
else:
    pair = {"gpt2": PRESETS["gpt2"], "gqa": PRESETS["gqa"]}  # differ in n_kv_head only
    # a visit never trains what nobody chose: the pair is built when it is selected, already
    # trained (store or disk cache), or asked for with the button
    wanted = (st.session_state.get("pooling_pair_asked") or set(pair) <= set(selection.configs)
              or models.trained_already(selection, pair))
    if not wanted:
        st.info("This section mean-pools the trained gpt2 preset into fewer KV heads and sets it "
                "beside the gqa preset trained from scratch (they differ in n_kv_head only), both "
                "with the training settings of Build & train. They are not trained yet.")
        if st.button("Train gpt2 and gqa for this comparison", key="train_pooling_pair"):
            st.session_state["pooling_pair_asked"] = wanted = True
    trained = (models.variants(replace(selection, configs=pair, unbuildable={}), purpose="pooling pair")
               if wanted else {})
    if trained and not (set(trained) == set(pair) and trained["gqa"].history is not None):
        st.caption("The pooling chart appears here when gpt2 and gqa have finished training "
                   "(the banner at the top shows their progress).")
    elif trained:
        pooled = models.cached_pooled_losses(trained["gpt2"], selection)
        gqa = trained["gqa"]
        reference = {"gqa trained from scratch": (gqa.config.n_kv_head, gqa.history.val_loss[-1])}
        chart(conversion_curve(pooled["rows"], reference))
        st.caption("Line: the trained gpt2 baseline with each group's K/V heads replaced by their "
                   "mean (to_gqa), evaluated on the validation split with no retraining. Star: the "
                   f"gqa preset, which differs from gpt2 only in n_kv_head ({gqa.config.n_kv_head}), "
                   "trained from scratch with the same data, order, seed and budget.")
