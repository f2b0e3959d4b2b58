"""Experiments: what RoPE, GQA and sliding windows buy and what they cost, measured live on
the selected models (gpt2viz.analysis.experiments measures; this page picks and draws)."""
from dataclasses import replace

import pandas as pd
import streamlit as st

from gpt2viz import PRESETS
from gpt2viz.analysis.bench import estimate_pass_seconds
from gpt2viz.analysis.experiments import HEAD_CHUNK, logit_lens
from gpt2viz.analysis.specs import LENGTH_FACTOR, SPECS, Scored, uptrain_steps
from gpt2viz.analysis.workbench import prompt_ids, prompt_labels, token_labels, validation_joins
from gpt2viz.core.config import POSITIONS, ROPE_SCALINGS, kv_head_choices, preset
from gpt2viz.core.resources import format_number, memory_shortfall, plural
from gpt2viz.dashboard import background, corpora, link, models, prompts, real_model, routing
from gpt2viz.dashboard.export import chart
from gpt2viz.viz.experiments import (
    extension_figure,
    frontier_figure,
    length_figure,
    logit_lens_figure,
    receptive_figure,
    streaming_figure,
    window_figure,
)

selection = routing.selection()
data, settings = corpora.selected(selection), selection.settings
train_len = settings.block_size


scored = Scored(data.val, train_len, data, settings, selection.seed)


@st.cache_resource(max_entries=64, show_spinner="Measuring...")
def measure(what: str, _model, model_id: int, _scored: Scored, text: str, length: int, seed: int, *args):
    """One measurement per (experiment, model, text, training length, seed, arguments):
    moving another control never recomputes it, and another text or length always does."""
    return SPECS[what].run(_model, _scored, *args)


def run_or_explain(what, variant, *args):
    """The measurement, or its problem shown as one line (None)."""
    try:
        return measure(what, variant.model, id(variant.model), scored, data.sha256, train_len,
                       selection.seed, *args)
    except (ValueError, MemoryError) as err:
        st.error(f"{variant.name}: {err}")
        return None


def show_length_generalization(built):
    """Loss past the training length, per position, whole block against a context cut."""
    st.caption(f"Validation loss at each position of blocks longer than the {train_len} tokens "
               f"every model was trained on. Solid: the whole block before each token is its "
               f"context. Dotted: the same tokens scored with the context cut to the training "
               f"length (windows of {train_len} moved by {train_len // 4}). The text's own "
               f"difficulty at a position is in both, so their difference (bottom) is what "
               f"positions past the training length cost.")
    c1, c2, c3 = st.columns(3)
    max_len = c1.select_slider("Evaluate up to", [2 * train_len, 4 * train_len, LENGTH_FACTOR * train_len],
                               value=LENGTH_FACTOR * train_len, format_func=lambda n: f"{n} ({n // train_len}×)")
    schemes = c2.multiselect("Also the gpt2 body with each position scheme", POSITIONS,
                             help="Trained here with the presets' settings (then cached on disk).")
    rope_base = c3.number_input("RoPE base at inference (0 = as trained)", 0.0, 1e8, 0.0, format="%g",
                                help="Changes rope_base for evaluation only: a larger base turns "
                                     "the rotations more slowly over the longer context.")
    extra = models.variants(replace(selection, weights="trained", unbuildable={},
                                    configs={f"gpt2 · {p}": preset("gpt2", position=p) for p in schemes}),
                            purpose="position schemes") if schemes else {}
    curves = {}
    for name, v in {**built, **extra}.items():
        base = rope_base if v.config.position == "rope" else 0.0
        curve = run_or_explain("length", v, max_len, base)
        if curve is not None:
            curves[name + (f" (base {format_number(base)})" if base else "")] = curve
    if curves:
        chart(length_figure(curves, train_len, train_len // 4))
        st.dataframe(pd.DataFrame([{"variant": name, **row} for name, c in curves.items()
                                   for row in SPECS["length"].rows(c, scored, max_len)]),
                     hide_index=True, width="stretch")
        st.caption(f"1× = positions 0–{train_len - 1}, 2× = {train_len}–{2 * train_len - 1}, "
                   f"{max_len // train_len}× = {max_len // 2}–{max_len - 1}; loss in nats per token.")
        for name, c in curves.items():
            if c.limit is not None:
                st.warning(f"{name}: learned positions have no embedding past {c.limit}, so its "
                           f"whole-block curve stops there (the dotted one never needs them).")


def show_window_and_sinks(built):
    """Loss with another window at inference, with and without attention sinks."""
    st.caption(f"Every model evaluated on validation blocks of {train_len} tokens with another "
               f"window than it was trained with, and with s attention sinks: the first s tokens "
               f"that every query may always attend (StreamingLLM, Xiao et al. 2023). Query i "
               f"attends key j iff j ≤ i and (i − w < j or j < s).")
    c1, c2 = st.columns(2)
    defaults = SPECS["window"].defaults
    windows = c1.multiselect("Windows at inference", [1, 2, 4, 8, 16, 32, 64, 128, 256],
                             default=list(defaults["windows"]))
    sinks = c2.number_input("Sink tokens (compared with none)", 0, 4 * train_len, max(defaults["sinks"]))
    if not windows:
        st.info("Pick at least one window.")
    else:
        results = {}
        for name, v in built.items():
            # one measurement per sink count: typing another count keeps the rows without sinks
            parts = [run_or_explain("window", v, tuple(sorted(windows)), (s,))
                     for s in sorted({0, int(sinks)})]
            if all(p is not None for p in parts):
                results[name] = {**parts[0], "rows": [row for p in parts for row in p["rows"]]}
        if results:
            chart(window_figure(results))
            st.dataframe(pd.DataFrame([{"variant": n, **row} for n, r in results.items()
                                       for row in SPECS["window"].rows(r, scored, windows, sinks)]),
                         hide_index=True, width="stretch")


def show_receptive_field(built):
    """Which input positions reach position P after each layer, against l·(w−1)."""
    st.caption("Which input positions change the hidden state at position P after each layer: the "
               "gradient of layer l's output at P with respect to every input embedding, any "
               "non-zero value counts. With a window w, theory says l·(w−1) positions back; with "
               "attention sinks every position reads the first tokens, so the reach is the whole prefix.")
    if built:
        c1, c2 = st.columns(2)
        name = c1.selectbox("Model", list(built))
        v = built[name]
        limit = v.config.max_seq_len if v.config.position == "learned" else 4 * train_len
        position = c2.slider("Position P", 1, limit - 1, min(SPECS["receptive"].defaults["position"], limit - 1))
        result = run_or_explain("receptive", v, position)
        if result is not None:
            measured, theory = result["reach"], result["theory"]
            chart(receptive_figure(result["influence"].numpy(), v.config.window, theory,
                                   f"{name} ({v.source}): what reaches position {position}",
                                   v.config.sinks))
            st.dataframe(pd.DataFrame(SPECS["receptive"].rows(result, scored, position)), hide_index=True)
            if v.config.window is None:
                st.info(f"{name} has no window: from the first layer on, every one of the {position} "
                        f"earlier positions reaches P (reach = everything).")
            elif measured == theory and v.config.sinks:
                st.success(f"Measured and theory agree at every layer: the {plural(v.config.sinks, 'sink token')} "
                           f"reach P from layer 1, so the reach is the whole prefix; the window band "
                           f"beside them grows by w − 1 = {v.config.window - 1} per layer.")
            elif measured == theory:
                st.success(f"Measured and theory agree at every layer: l·(w−1) with w = {v.config.window}.")
            else:
                st.error(f"Measured {measured} differs from theory {theory}.")


def show_gqa_frontier(built):
    """KV bytes per token against loss: pooled, uptrained, and trained from scratch."""
    st.caption("From a trained MHA model: for every n_kv_head dividing n_head, the KV-cache bytes "
               "per token, the validation loss after mean-pooling each group's K/V heads (to_gqa), "
               "and after a short uptraining (Ainslie et al. 2023: about 5 % of the original steps), "
               "beside the model trained from scratch with that many kv heads where it is cached.")
    mha = {n: v for n, v in built.items() if v.config.n_kv_head == v.config.n_head}
    if not mha:
        mha = models.variants(replace(selection, weights="trained", unbuildable={},
                                      configs={"gpt2": PRESETS["gpt2"]}), purpose="MHA reference")
    if mha:
        c1, c2 = st.columns(2)
        name = c1.selectbox("MHA model", list(mha))
        v = mha[name]
        steps = int(c2.number_input("Uptraining steps", 1, 10 * settings.steps, uptrain_steps(settings),
                                    help=f"The models were trained for {plural(settings.steps, 'step')}."))
        key = ("uptrain", id(v.model), steps, selection.seed)
        running = background.show(key)
        if not running and background.finished(key) is None and st.button(
                f"Uptrain every pooled model for {plural(steps, 'step')}"):
            kv_counts = kv_head_choices(v.config.n_kv_head)
            per_step = v.history.seconds / max(1, len(v.history.steps)) if v.history else 1.0

            def uptrain(report):
                def on_step(kv, p):
                    report(kv_counts.index(kv) + p.step / p.steps, len(kv_counts),
                           f"n_kv_head {kv}: step {p.step}/{p.steps}, loss {p.loss:.3f}")
                return SPECS["gqa"].run(v.model, scored, steps, per_step, on_step)

            background.start(key, f"Uptraining {len(kv_counts)} pooled models of {name} for "
                                  f"{plural(steps, 'step')}", uptrain)
            st.rerun()  # its progress and Cancel, then the frontier with it
        result = background.finished(key) or run_or_explain("gqa", v)
        if result is not None:
            points = {f"n_kv_head {r['n_kv_head']} from scratch": {"kv_bytes_per_token": r["kv_bytes_per_token"],
                                                                  "loss": r["scratch_loss"]}
                      for r in result["rows"] if r["scratch_loss"] is not None}
            chart(frontier_figure(result["rows"], result["base_loss"], points))
            st.dataframe(pd.DataFrame(SPECS["gqa"].rows(result, scored, steps)), hide_index=True,
                         width="stretch")
            if background.finished(key) is None and not running:
                st.caption("Press the button to uptrain (one model per n_kv_head, a progress bar "
                           "shows it); pooled losses need no training.")


def show_logit_lens(built):
    """The residual stream after every layer, read out by the final layer."""
    st.caption("The residual stream after every layer, read out as the final layer would (final "
               "layer norm + LM head): the top-1 next-token probability at each position, the "
               "token on hover. Early layers of a trained model already guess common tokens.")
    prompt = prompts.prompt_input() if built else None
    if prompt:
        lenses = {}
        for name, v in built.items():
            probs, top = logit_lens(v.model, prompt_ids(v, prompt)[0])
            lenses[name] = (probs.numpy(), [token_labels(v, row) for row in top], prompt_labels(v, prompt))
        chart(logit_lens_figure(lenses))


def stream_bytes(cfg, tokens: int) -> int:
    """Memory one streaming pass adds over the weights (fp32): the residual stream, q/k/v and
    the MLP's three d_ff-wide tensors of one layer at a time, and one chunk of logits."""
    return 4 * tokens * (4 * cfg.d_model + 3 * cfg.d_ff) * 2 + 4 * HEAD_CHUNK * cfg.vocab_size


def show_streaming(built):
    """StreamingLLM on a real model: loss along a long text, full attention against a window
    with and without sinks, at true positions (experiments.streaming_losses)."""
    st.caption("Xiao et al. 2023 (StreamingLLM): a pretrained model scored token by token along one "
               "long text (the default corpus's validation text in the model's own tokens) with full "
               "causal attention, with a sliding window of w keys, and with the window plus s sinks "
               "(the first s tokens, always visible). Query i sees key j iff j ≤ i and (i − w < j or "
               "j < s). The weights are the same; only the mask changes.")
    real = {n: v for n, v in built.items() if v.pretrained}
    if not real:
        st.info("StreamingLLM runs on a pretrained model: add smollm2-135m in the sidebar. The small "
                "models' windows and sinks are the 'Window & sinks' experiment.")
        return
    name = st.selectbox("Pretrained model", list(real)) if len(real) > 1 else next(iter(real))
    variant = real[name]
    cfg, ids = variant.config, real_model.text_ids(variant)
    fits = [n for n in (256, 512, 1024, 2048, 4096, 8192, len(ids) - 1) if n < len(ids)
            and memory_shortfall(stream_bytes(cfg, n), "streaming") is None]
    if not fits:
        st.error(f"Not enough free memory for a pass over 256 tokens of {name} (about "
                 f"{stream_bytes(cfg, 256) / 2**20:.0f} MiB); close other work and reload.")
        return
    c1, c2, c3, c4 = st.columns(4)
    defaults = SPECS["streaming"].defaults
    tokens = c1.select_slider("Tokens of text", fits,
                              value=defaults["tokens"] if defaults["tokens"] in fits else fits[-1],
                              format_func=lambda n: f"{n:,}",
                              help=f"Up to the text's {len(ids) - 1:,} scored tokens where this machine's "
                                   f"memory allows; past {cfg.max_seq_len:,} is past the model's own context.")
    window = c2.select_slider("Window w", [64, 128, 256, 512, 1024], value=defaults["windows"][0])
    sinks = int(c3.number_input("Sinks s", 1, 64, max(defaults["sinks"])))
    smooth = c4.select_slider("Smoothing (view only)", [1, 16, 64, 256], value=64,
                              help="The line is the running mean of the last n positions.")
    windows, sink_counts = (window,), (0, sinks)
    rows = real_model.streaming(variant, tokens, windows, sink_counts, run=False)
    if rows is None:
        if real_model.streaming_running(variant, tokens, windows, sink_counts):
            return
        seconds = 3 * estimate_pass_seconds(variant.model, tokens)
        st.info(f"Three passes over {tokens:,} tokens (full, window {window}, window {window} + "
                f"{plural(sinks, 'sink')}): about {seconds:.0f} s here (a 256-token pass of {name}, "
                f"timed on this machine and scaled by the work), in the background, then kept for "
                f"every session on this server.")
        if st.button("Run", type="primary"):
            real_model.streaming(variant, tokens, windows, sink_counts, run=True)
            st.rerun()  # the run's progress and Cancel, then its result
        return
    result = {"variant": name, "tokens": tokens, "rows": rows}
    joins = validation_joins(variant)
    chart(streaming_figure(result, smooth, cfg.max_seq_len if tokens > cfg.max_seq_len else None,
                           joins))
    st.dataframe(pd.DataFrame(SPECS["streaming"].rows(rows, None, tokens, windows, sink_counts)),
                 hide_index=True, width="stretch")
    st.caption(f"Loss in nats per token. Positions 0–{window - 1} see every earlier token under a window "
               f"of {window} too, so they score the same in every setting and the whole-text loss dilutes "
               f"what a window costs: 'minus full, positions ≥ {window}' is the cost where the window "
               f"acts. Without sinks the window loses the first token, which many heads use as a place "
               f"to park attention (see the head atlas's first-token mass); a sink brings most of the "
               f"loss back, and the lower panel shows what is left and how it grows along the text. "
               f"The text is the validation split: unrelated pieces of the corpus joined (dotted lines, "
               f"{len([j for j in joins if j < tokens])} joins in these {tokens:,} tokens).")


def show_context_extension(built):
    """RoPE scaling at inference (linear / ntk / dynamic / yarn / llama3) on a small RoPE model,
    loss along blocks s times its training length (analysis.extension)."""
    st.caption(f"A RoPE model trained on {train_len}-token blocks reads blocks s times longer, "
               "with its rotation stretched at inference by each method (the RoPE geometry page "
               "draws what each does to the rotation pairs). Same weights, same tokens: only θ "
               "(and YaRN's attention factor) change. Position Interpolation (linear) is meant to "
               "be followed by fine-tuning; here it is measured without, as the others.")
    rope = {n: v for n, v in built.items() if v.config.position == "rope"}
    if not rope:
        st.info("Context extension stretches RoPE: add 'rope' or 'rope+gqa+swa' in the sidebar. "
                "The real model (trained to 8,192 tokens) runs from the command line: "
                "`./run.sh experiment extend --variant smollm2-135m --factor 2 --tokens 16384`.")
        return
    c1, c2, c3 = st.columns([1, 1, 2])
    name = c1.selectbox("RoPE model", list(rope), key="extend_model")
    defaults = SPECS["extend"].defaults
    factor = c2.select_slider("Factor s", [2, 4, 8], value=defaults["factor"], format_func=lambda f: f"{f}×",
                              key="extend_factor")
    methods = c3.multiselect("Methods", ROPE_SCALINGS, default=list(defaults["methods"]), key="extend_methods")
    if not methods:
        st.info("Pick at least one method.")
        return
    variant = rope[name]
    result = run_or_explain("extend", variant, tuple(methods), float(factor))
    if result is None:
        return
    if variant.config.window is not None:
        st.caption(f"{name} attends through a window of {variant.config.window}: no query ever sees a "
                   "key farther back than that, so past its training length it meets no distance it "
                   "has not seen, and the methods mostly change the rotation it was trained with.")
    if result["note"]:
        st.caption(result["note"])
    chart(extension_figure(result, train_len))
    st.dataframe(pd.DataFrame(SPECS["extend"].rows(result, scored)), hide_index=True, width="stretch")


EXPERIMENTS = {"Length generalization": show_length_generalization,
               "Window & sinks": show_window_and_sinks,
               "Receptive field": show_receptive_field,
               "GQA frontier": show_gqa_frontier,
               "Logit lens": show_logit_lens,
               "StreamingLLM": show_streaming,
               "Context extension": show_context_extension}

st.title("Experiments: what each alteration buys, and what it costs")
experiment = link.control(st.radio, "Experiment", "experiment", next(iter(EXPERIMENTS)),
                          options=list(EXPERIMENTS), horizontal=True, label_visibility="collapsed")
built = models.variants(selection)
if experiment in ("Length generalization", "Window & sinks", "Receptive field", "GQA frontier",
                  "Context extension"):
    left_out = [n for n, v in built.items() if v.pretrained]  # they read the small models' corpus ids
    if left_out:
        st.caption(f"{', '.join(left_out)} is left out here: these experiments run on the small models "
                   f"(their corpus and training length); a pretrained model is measured in "
                   f"'StreamingLLM' and 'Logit lens' (and its context extension on the command line).")
    built = {n: v for n, v in built.items() if not v.pretrained}
if (built and selection.weights == "random" and experiment not in ("Receptive field", "StreamingLLM")
        and not all(v.pretrained for v in built.values())):
    st.info("Losses of random weights say nothing: pick 'Trained on the corpus' in the sidebar "
            "(the receptive field works with random weights too).")
    st.stop()
EXPERIMENTS[experiment](built)
