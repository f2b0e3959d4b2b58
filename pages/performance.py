"""Performance: latency and memory against sequence length, window size and context, measured
here through the bench functions next to the analytic cost; a run of a few seconds starts by
itself, a stored one shows at once (gpt2viz/dashboard/bench_runs.py)."""
import pandas as pd
import streamlit as st
import torch

from gpt2viz.analysis.bench import (
    DECODE_BODY,
    HEAD_DIM,
    attention_flops,
    attention_plan,
    bench_attention,
    bench_decode,
    bench_forward,
    decode_family,
    decode_plan,
    estimate_decode_seconds,
    estimate_forward_seconds,
    estimate_seconds,
    forward_flops,
    pretrained_family,
)
from gpt2viz.core import resources
from gpt2viz.core.attention import flex_is_compiled
from gpt2viz.core.config import kv_head_choices
from gpt2viz.core.resources import format_bytes, format_number, plural
from gpt2viz.dashboard import bench_runs, link, models, routing
from gpt2viz.dashboard.export import chart
from gpt2viz.viz.performance import analytic_figure, decode_figure, scaling_figure

ATTENTION_N, ATTENTION_W = "Attention vs sequence length", "Attention vs window size"
MODELS, GENERATION = "Whole models vs sequence length", "Generation vs context length"

selection = routing.selection()
st.title("Latency and memory")
st.caption("Every point is measured on this server: the median of the repeats after a warm-up call (error bars: the fastest and "
           "slowest repeat); slopes are fitted on the upper half of the sizes, where fixed per-call "
           "overheads no longer hide the growth. Dense causal SDPA is measured in the same run as the "
           "reference. Dashed lines: the analytic cost — attention: QKᵀ and PV over the attended pairs "
           "at the series' mean rate; whole models: every matmul; generation: the KV cache's bytes.")
st.caption("Two memory figures, because each sees what the other cannot. Tensors (solid): the "
           "high-water mark of tensors allocated during one call; it leaves out the inputs (q, k, v "
           "or the weights, which exist before the call) and any scratch inside a fused kernel "
           "(SDPA's work buffers). Process (dotted): how far the process's resident memory rose "
           "during the call; it sees a kernel's scratch, but also allocator slack and whatever else "
           "the server did meanwhile (another session, background training). The table under "
           "the chart gives both for every row, with when and where it was measured; README (Memory) "
           "compares the kernels in fresh processes.")
MEASURES = [ATTENTION_N, ATTENTION_W, MODELS, GENERATION]
mode = link.control(st.radio, "Measure", "latency_measure", ATTENTION_N, options=MEASURES, horizontal=True)
c1, c2, c3, c4 = st.columns(4)
powers = [512, 1024, 2048, 4096, 8192]
device = str(resources.device())

if mode in (ATTENTION_N, ATTENTION_W):
    impls = c1.multiselect("Kernels", ["banded", "sdpa", "eager", "flex"], default=["banded"],
                           help="Dense causal SDPA is always measured as the reference. sdpa with a "
                                "window = SDPA with an n × n mask. flex compiles on first use (~20 s "
                                "on a 2-core CPU, 2026-11) and again for each new shape (~4 s).")
    n_head = c2.select_slider("Query heads", [4, 8, 12, 16], value=12)
    kv_heads = c3.multiselect("Key/value heads", kv_head_choices(n_head),
                              default=[n_head]) or [n_head]
    repeats = c4.slider("Repeats", 1, 7, 3)
    if mode == ATTENTION_N:
        max_n = st.select_slider("Longest sequence", powers, value=8192)
        seq_lens = [n for n in powers if n <= max_n]
        window = st.select_slider("Window (0 = full causal)", [0, 16, 64, 256, 1024], value=256)
        windows, x_key = [window or None], "n"
    else:
        n = st.select_slider("Sequence length", powers, value=4096)
        seq_lens, windows, x_key = [n], [w for w in (16, 32, 64, 128, 256, 512, 1024) if w < n], "window"
    settings = dict(mode=mode, seq_lens=seq_lens, windows=windows, kv_heads=kv_heads, impls=impls,
                    n_head=n_head, device=device)
    try:
        plan = attention_plan(seq_lens, windows, kv_heads, impls, n_head, device=device)
        st.info(f"{len(plan)} measurements, {bench_runs.about('attention', estimate_seconds(plan, n_head, repeats=repeats, device=device), device)}"
                f" with {repeats} repeats (more with flex). Each fits in memory (checked before the run).")
    except (ValueError, MemoryError) as err:
        plan = None
        st.error(f"{err} Choose a shorter sequence or drop the eager kernel.")
    cold = sorted({n for n, w, kv, impl in plan or [] if impl == "flex" and w and w < n
                   and not flex_is_compiled((1, n_head, n, HEAD_DIM), kv, torch.float32, device)})
    if cold:
        st.caption(f"Compiling the window kernel (flex) for n = {', '.join(map(str, cold))}, "
                   "once per shape in this server process.")
    pressed = st.button("Run", type="primary", disabled=not plan)
    record = plan and bench_runs.measured(
        "attention", settings, lambda r: estimate_seconds(plan, n_head, repeats=r, device=device),
        lambda r, progress: bench_attention(seq_lens, windows, kv_heads, impls, n_head, repeats=r,
                                            device=device, progress=progress), repeats, pressed)
    series = ["impl", "n_kv_head"] + (["window"] if x_key == "n" else [])
    if record:
        rows = [r for r in record["rows"]  # rows skipped for memory carry a note, no time
                if "median_s" in r and (x_key == "n" or r["window"] is not None)]
        chart(scaling_figure(rows, x_key, series, mode))
    elif plan:
        analytic = {}
        for n, w, kv, impl in plan:
            if x_key == "n" or w is not None:
                analytic.setdefault(f"{impl} · {kv} kv heads · {w or 'full'}", []).append(
                    (n if x_key == "n" else w, attention_flops(n, w, n_head, HEAD_DIM)))
        chart(analytic_figure(analytic, x_key, "FLOPs (analytic)",
                              "Analytic cost, not measured yet: press Run"))

elif mode == MODELS:
    max_n = c1.select_slider("Longest sequence", powers, value=2048)
    repeats = c4.slider("Repeats", 1, 7, 3)
    seq_lens = [n for n in powers if n <= max_n]
    configs = {name: cfg.replace(max_seq_len=max(cfg.max_seq_len, max_n))
               for name, cfg in selection.configs.items()}
    settings = dict(mode=mode, seq_lens=seq_lens, configs={k: c.to_dict() for k, c in configs.items()},
                    device=device)
    st.info(f"{len(configs) * len(seq_lens)} forward passes of the selected variants with random "
            f"weights (GPT-2's full 50,257-token vocabulary), "
            f"{bench_runs.about('forward', estimate_forward_seconds(configs, seq_lens, repeats, device), device)} with "
            f"{repeats} repeats.")
    pressed = st.button("Run", type="primary", disabled=not configs)
    record = configs and bench_runs.measured(
        "forward", settings, lambda r: estimate_forward_seconds(configs, seq_lens, r, device),
        lambda r, progress: bench_forward(configs, seq_lens, repeats=r, device=device,
                                          progress=progress), repeats, pressed)
    if record:
        chart(scaling_figure([r for r in record["rows"] if "median_s" in r], "n",
                             ["variant"], mode))
    elif configs:
        chart(analytic_figure({name: [(n, forward_flops(cfg, n)) for n in seq_lens]
                               for name, cfg in configs.items()}, "n", "FLOPs (analytic)",
                              "Analytic cost, not measured yet: press Run"))

else:
    longest = c1.select_slider("Longest context", [1024, 2048, 4096, 8192, 16384], value=8192)
    window = c2.select_slider("Window of the family", [64, 256, 1024], value=256)
    sinks = c3.number_input("Sinks", 1, 64, 4, help="Attention sinks (StreamingLLM): the first tokens "
                            "every query may always attend, kept in the cache for good.")
    repeats = c4.slider("Steps per point", 2, 16, 8, help="New tokens timed at each context length.")
    contexts = [n for n in (256, 512, 1024, 2048, 4096, 8192, 16384) if n <= longest]
    real = models.pretrained_variants(selection.pretrained)
    with_family = st.checkbox("The small family (MHA / GQA / MQA, random weights)", value=not real)
    with_selected = st.checkbox("Add the selected variants (as built in the sidebar; a pretrained "
                                "model with its own weights under full attention, the window and the "
                                "window + sinks)", value=True)
    configs = decode_family(DECODE_BODY, window, int(sinks)) if with_family else {}
    weights = {}  # name -> a pretrained model's copy that shares its weights
    if with_selected:
        configs |= selection.configs
        for variant in real.values():
            weights |= pretrained_family(variant.model, window, int(sinks))
        configs |= {name: m.config for name, m in weights.items()}
    settings = dict(mode=mode, contexts=contexts, configs={k: c.to_dict() for k, c in configs.items()},
                    device=device)
    if weights:
        cfg = next(iter(weights.values())).config
        st.caption(f"{', '.join(real)}: its own weights ({cfg.n_layer} layers, {cfg.n_head} query heads on "
                   f"{cfg.n_kv_head} KV heads of {cfg.head_dim}, RoPE base {format_number(cfg.rope_base)}), shared by the "
                   f"three settings; the cache holds {cfg.n_kv_head} KV heads, "
                   f"{format_bytes(cfg.kv_cache_bytes_per_token())} a token in fp32. Past its own context "
                   f"({cfg.max_seq_len:,}) RoPE keeps going; the quality there is the StreamingLLM experiment's.")
    short = [name for name, cfg in selection.configs.items()
             if with_selected and cfg.position == "learned" and cfg.max_seq_len < longest]
    if short:
        st.caption(f"{', '.join(short)}: learned positions end at "
                   f"{', '.join(str(selection.configs[n].max_seq_len) for n in short)} tokens; to time a "
                   f"token at {longest:,} the table is extended with random rows. The time is the "
                   f"architecture's; what such a model would predict there is meaningless.")
    st.caption(f"The family: one body ({DECODE_BODY.n_layer} layers, {DECODE_BODY.n_head} query heads "
               f"of {DECODE_BODY.head_dim}, d_model {DECODE_BODY.d_model}, RoPE) with MHA, GQA and MQA, "
               f"each with full attention, a window of {window}, and the window plus {plural(int(sinks), 'sink')}. "
               f"Random weights: a token's cost does not depend on them. Each point: the cache is "
               f"brought to that many tokens (random K/V), then new tokens are decoded one at a time.")
    try:
        estimate = estimate_decode_seconds(configs, contexts, repeats, device)
        st.info(f"{len(configs) * len(contexts)} measurements, {bench_runs.about('decode', estimate, device)} "
                f"with {plural(repeats, 'step')} each. Each fits in memory (checked before the run).")
        planned = decode_plan(configs, contexts, repeats)
    except (ValueError, MemoryError) as err:
        planned = None
        st.error(f"{err} Choose a shorter context or fewer variants.")
    pressed = st.button("Run", type="primary", disabled=not planned)
    record = planned and bench_runs.measured(
        "decode", settings, lambda r: estimate_decode_seconds(configs, contexts, r, device),
        lambda r, progress: bench_decode(configs, contexts, r, device=device, progress=progress,
                                         models=weights),
        repeats, pressed, quick_repeats=4)
    if planned:
        steps = record["repeats"] if record else repeats
        grid = sorted({round(16 * 2 ** (i / 4)) for i in range(4 * 11)} | set(contexts))
        analytic = {name: [(c, cfg.kv_cache_bytes(c + steps)) for c in grid if c <= longest]
                    for name, cfg in planned.items()}
        chart(decode_figure(record["rows"] if record else [], analytic))
        st.caption("KV cache bytes = slots × 2 × n_layer × n_kv_head × head_dim × 4 (fp32), slots = "
                   "every token with full attention, at most window + sinks with a window (a rolling "
                   "buffer: flat past it). Cache sized for the context plus the timed steps.")

if record:
    st.caption(bench_runs.caption(record, "steps" if mode == GENERATION else "repeats"))
    table = pd.DataFrame(record["rows"])
    for column in ("peak_bytes", "process_peak_bytes", "cache_bytes"):
        if column in table:
            table[column] = [format_bytes(b) if b is not None and b == b else "-" for b in table[column]]
    st.dataframe(table, hide_index=True, width="stretch")
    under = [r for r in record["rows"] if r.get("process_peak_bytes") is not None
             and r.get("peak_bytes") and r["process_peak_bytes"] < r["peak_bytes"] / 2]
    if under:
        st.caption("Process memory below the tensors' for " + ", ".join(
            f"{r.get('impl') or r.get('variant')} at n = {r['n']:,}" for r in under[:6])
            + (" and more" if len(under) > 6 else "") +
            ": the allocator reused memory freed earlier in the run, which the resident set's "
            "growth does not see. Read the tensor figure there.")
    if "ran" in table and (table["ran"] != table["impl"]).any():
        st.caption("Column 'ran': the kernel a row actually measured. A window as long as the "
                   "sequence covers every key, so it is full causal attention and runs dense SDPA "
                   "whatever kernel was asked for.")
    st.download_button("Download CSV", pd.DataFrame(record["rows"]).to_csv(index=False),
                       "gpt2viz-bench.csv", "text/csv")
else:
    st.caption("Not measured yet for these settings (a run this long does not start by itself): "
               "press Run.")
