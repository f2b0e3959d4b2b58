"""Compare & generate: next-token predictions, continuations, loss and cost side by side."""
import pandas as pd
import streamlit as st

from gpt2viz.analysis.workbench import (
    as_chat,
    continuation,
    new_token_room,
    next_token_top_k,
    perplexity,
    prompt_ids,
    prompt_loss,
)
from gpt2viz.core.resources import format_bytes
from gpt2viz.dashboard import link, models, prompts, routing
from gpt2viz.dashboard.export import chart
from gpt2viz.text.tokenizer import get_tokenizer
from gpt2viz.viz.charts import next_token_bars

selection = routing.selection()
st.title("Compare & generate")
built = models.variants(selection)
prompt = prompts.prompt_input() if built else None
if built and prompt:
    prompts.unknown_note(built, prompt)
    chat_models = [name for name, v in built.items() if v.tokenizer is not None and v.tokenizer.chat_template]
    chat = chat_models and st.checkbox(
        "Send the prompt as a user message (the instruct model's chat template)", key="compare_chat",
        help=f"{', '.join(chat_models)} is an instruct model: with this on, the prompt is wrapped in "
             f"its own chat template (system turn, user turn, then the assistant's turn starting), "
             f"so the predictions and the continuation are its answer. The small models read the "
             f"prompt as typed.")
    asked = {name: as_chat(v, prompt) if chat and name in chat_models else prompt
             for name, v in built.items()}  # what each model reads
    if chat:
        st.caption("What " + ", ".join(chat_models) + " reads:")
        st.code(asked[chat_models[0]].text, language=None, wrap_lines=True)
    lengths = {name: prompt_ids(v, asked[name]).shape[1] for name, v in built.items()}
    traces = {name: prompts.trace(v, asked[name]) for name, v in built.items()}
    k = link.control(st.slider, "Top k next tokens", "compare_k", 8, lowest=3, highest=20)
    chart(next_token_bars({n: next_token_top_k(v, traces[n], k) for n, v in built.items()}))
    rows = []
    if min(lengths.values()) < 2:
        st.info("The prompt is one token: there is nothing to predict inside it, so loss and "
                "perplexity are left empty. Type at least two tokens to score the prompt.")
    for name, v in built.items():
        loss = prompt_loss(v, traces[name], asked[name])
        rows.append({"variant": name, "prompt tokens": lengths[name],
                     "loss on prompt (nats)": round(loss, 3),
                     "perplexity": round(perplexity(loss), 1), "params": v.model.num_params(),
                     "KV cache / token": format_bytes(v.config.kv_cache_bytes_per_token()),
                     "KV cache for the prompt": format_bytes(v.config.kv_cache_bytes(lengths[name]))})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if len(set(lengths.values())) > 1:
        st.caption("The models cut the prompt into different numbers of tokens (their own "
                   "tokenizers), so their losses are per token of different tokens: compare them "
                   "with that in mind.")
    compact = {name: v.vocab.size for name, v in built.items() if v.vocab is not None}
    if compact:
        own = "".join(f" {name}'s are over its own vocabulary of {v.config.vocab_size:,} tokens."
                      for name, v in built.items() if v.vocab is None)
        st.caption(f"The loss and perplexity of {', '.join(compact)} are over the training corpus's "
                   f"vocabulary ({', '.join(f'{n:,}' for n in sorted(set(compact.values())))} classes: "
                   f"the GPT-2 ids seen in training plus one 'unknown' class for every other id), not "
                   f"GPT-2's {get_tokenizer().vocab_size:,}: not comparable with GPT-2 numbers from "
                   f"elsewhere.{own}")

    st.subheader("Continuations")
    c1, c2, c3, c4 = st.columns(4)
    temperature = link.control(c1.slider, "Temperature (0 = greedy)", "compare_temperature", 0.8,
                               lowest=0.0, highest=2.0, step=0.1)
    top_k = link.control(c2.number_input, "Top-k (0 = all)", "compare_top_k", 40, lowest=0, highest=1000)
    new_tokens = link.control(c3.slider, "New tokens", "compare_new_tokens", 40, lowest=1, highest=100)
    seed = link.control(c4.number_input, "Sampling seed", "compare_seed", 0, lowest=0, highest=2**31 - 1)
    for col, (name, v) in zip(st.columns(len(built)), built.items()):
        text = continuation(v, asked[name], new_tokens, temperature, int(top_k) or None, int(seed))
        col.markdown(f"**{name}**")
        col.code(text or "(no room left: the prompt fills the context)", language=None, wrap_lines=True)
        if text and not text.strip():
            col.caption(f"Only whitespace: {len(text)} characters ({text.count(chr(10))} line breaks, "
                        f"{text.count(' ')} spaces), so the box looks empty. Small models trained "
                        f"briefly often predict the corpus's most common tokens.")
        room = new_token_room(v.config, lengths[name], new_tokens)
        if room < new_tokens:
            col.caption(f"{name} has learned positions for {v.config.max_seq_len} tokens (its training "
                        f"block) and none past them: {room} of {new_tokens} new tokens generated.")
