"""Compare & generate: next-token predictions, continuations, loss and cost side by side."""
import pandas as pd
import streamlit as st

from gpt2viz.dashboard import models, prompts, routing, sidebar
from gpt2viz.resources import format_bytes
from gpt2viz.tokenizer import get_tokenizer
from gpt2viz.viz.charts import next_token_bars
from gpt2viz.workbench import (continuation, new_token_room, next_token_top_k, perplexity,
                               prompt_loss)

selection = routing.selection()
st.title("Compare & generate")
built = models.variants(selection)
prompt = prompts.prompt_input() if built else None
if built and prompt:
    prompts.unknown_note(built, prompt)
    traces = {name: prompts.trace(v, prompt) for name, v in built.items()}
    k = sidebar.linked("compare_k", 8, lowest=3, highest=20)  # every control here is in the link
    st.slider("Top k next tokens", 3, 20, key="compare_k")
    st.plotly_chart(next_token_bars({n: next_token_top_k(v, traces[n], k) for n, v in built.items()}),
                    width="stretch")
    rows = []
    if len(prompt.gpt2_ids) < 2:
        st.info("The prompt is one token: there is nothing to predict inside it, so loss and "
                "perplexity are left empty. Type at least two tokens to score the prompt.")
    for name, v in built.items():
        loss = prompt_loss(v, traces[name], prompt)
        rows.append({"variant": name, "loss on prompt (nats)": round(loss, 3),
                     "perplexity": round(perplexity(loss), 1), "params": v.model.num_params(),
                     "KV cache / token": format_bytes(v.config.kv_cache_bytes_per_token()),
                     f"KV cache at {len(prompt.gpt2_ids)} tokens":
                         format_bytes(v.config.kv_cache_bytes(len(prompt.gpt2_ids)))})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    compact = sorted({v.vocab.size for v in built.values() if v.vocab is not None})
    if compact:
        st.caption(f"Loss and perplexity are over the training corpus's vocabulary "
                   f"({', '.join(f'{n:,}' for n in compact)} classes: the GPT-2 ids seen in training "
                   f"plus one 'unknown' class for every other id), not GPT-2's "
                   f"{get_tokenizer().vocab_size:,}: not comparable with GPT-2 numbers from elsewhere.")

    st.subheader("Continuations")
    c1, c2, c3, c4 = st.columns(4)
    temperature = sidebar.linked("compare_temperature", 0.8, lowest=0.0, highest=2.0)
    c1.slider("Temperature (0 = greedy)", 0.0, 2.0, step=0.1, key="compare_temperature")
    top_k = sidebar.linked("compare_top_k", 40, lowest=0, highest=1000)
    c2.number_input("Top-k (0 = all)", 0, 1000, key="compare_top_k")
    new_tokens = sidebar.linked("compare_new_tokens", 40, lowest=1, highest=100)
    c3.slider("New tokens", 1, 100, key="compare_new_tokens")
    seed = sidebar.linked("compare_seed", 0, lowest=0, highest=2**31 - 1)
    c4.number_input("Sampling seed", 0, 2**31 - 1, key="compare_seed")
    for col, (name, v) in zip(st.columns(len(built)), built.items()):
        text = continuation(v, prompt, new_tokens, temperature, int(top_k) or None, int(seed))
        col.markdown(f"**{name}**")
        col.code(text or "(no room left: the prompt fills the context)", language=None, wrap_lines=True)
        room = new_token_room(v.config, len(prompt.gpt2_ids), new_tokens)
        if room < new_tokens:
            col.caption(f"{name} has learned positions for {v.config.max_seq_len} tokens (its training "
                        f"block) and none past them: {room} of {new_tokens} new tokens generated.")
