"""Performance: latency and peak memory against sequence length and window size, measured
live through the bench functions, next to the analytic cost."""
import pandas as pd
import streamlit as st

import ui
from gpt2viz.bench import attention_plan, bench_attention, bench_forward, estimate_seconds
from gpt2viz.resources import format_bytes
from gpt2viz.viz.performance import scaling_figure

selection = ui.selection()
st.title("Latency and memory")
st.caption("Measured here, now: median of the repeats after a warm-up call (error bars: the fastest "
           "and slowest repeat); slopes are fitted on the upper half of the sizes, where fixed "
           "per-call overheads no longer hide the growth. Dense causal SDPA is measured in the same "
           "run as the reference. Dashed lines: the analytic FLOPs at the series' mean rate — "
           "attention: QKᵀ and PV over the attended pairs; whole models: every matmul (projections, "
           "MLP, attention, LM head).")
st.caption("Peak memory: the high-water mark of tensors allocated during one call. It leaves out "
           "the inputs (q, k, v or the token ids and weights, which exist before the call) and any "
           "scratch inside a fused kernel: SDPA's work buffers are invisible to it, while the banded "
           "kernel's chunk copies are ordinary tensors and counted — so banded can show more here "
           "than masked SDPA, whose visible peak is little more than its n × n boolean mask and "
           "output. Process memory says the opposite: extra RSS of one call in a fresh process, window "
           "256, was 82 MiB banded against 91 MiB masked SDPA at n = 4096 and 201 against 343 MiB "
           "at n = 8192 (measured on this project's 2-core machine; masked SDPA grows as n²).")
mode = st.radio("Measure", ["Attention vs sequence length", "Attention vs window size",
                            "Whole models vs sequence length"], horizontal=True)
c1, c2, c3, c4 = st.columns(4)
powers = [512, 1024, 2048, 4096, 8192]
repeats = c4.slider("Repeats", 1, 7, 3)
if mode.startswith("Attention"):
    impls = c1.multiselect("Kernels", ["sdpa", "banded", "eager", "flex"], default=["sdpa", "banded"],
                           help="flex compiles for ~20 s on first use and ~4 s per new shape.")
    n_head = c2.select_slider("Query heads", [4, 8, 12, 16], value=12)
    kv_heads = c3.multiselect("Key/value heads", [k for k in (16, 12, 8, 4, 2, 1) if n_head % k == 0],
                              default=[n_head])
    if mode.endswith("sequence length"):
        max_n = st.select_slider("Longest sequence", powers, value=2048)
        seq_lens = [n for n in powers if n <= max_n]
        window = st.select_slider("Window (0 = full causal)", [0, 16, 64, 256, 1024], value=256)
        windows, x_key = [window or None], "n"
    else:
        n = st.select_slider("Sequence length", powers, value=4096)
        seq_lens, windows, x_key = [n], [w for w in (16, 32, 64, 128, 256, 512, 1024) if w < n], "window"
    try:
        plan = attention_plan(seq_lens, windows, kv_heads or [n_head], impls, n_head)
        st.info(f"{len(plan)} measurements, about {estimate_seconds(plan, n_head, repeats=repeats):.0f} s "
                f"(more with flex). Each fits in memory (checked before the run).")
    except (ValueError, MemoryError) as err:
        plan = None
        st.error(f"{err} Choose a shorter sequence or drop the eager kernel.")
    run = st.button("Run", type="primary", disabled=not plan or not impls)
    if run:
        bar = st.progress(0.0)
        rows = bench_attention(seq_lens, windows, kv_heads or [n_head], impls, n_head, repeats=repeats,
                               device=ui.device(),
                               progress=lambda i, total, what: bar.progress(i / total, text=what))
        if x_key == "window":
            rows = [r for r in rows if r["window"] is not None]
        st.session_state["perf"] = (mode, x_key, rows)
        bar.empty()
else:
    max_n = c1.select_slider("Longest sequence", powers, value=2048)
    seq_lens = [n for n in powers if n <= max_n]
    configs = {name: cfg.replace(max_seq_len=max(cfg.max_seq_len, max_n))
               for name, cfg in selection.configs.items()}
    st.info(f"{len(configs) * len(seq_lens)} forward passes of the selected variants with random "
            f"weights (GPT-2's full 50,257-token vocabulary).")
    if st.button("Run", type="primary", disabled=not configs):
        bar = st.progress(0.0)
        rows = bench_forward(configs, seq_lens, repeats=repeats, device=ui.device(),
                             progress=lambda i, total, what: bar.progress(i / total, text=what))
        st.session_state["perf"] = (mode, "n", rows)
        bar.empty()

result = st.session_state.get("perf")
if result and result[0] == mode:
    _, x_key, rows = result
    series = ["variant"] if mode.startswith("Whole") else ["impl", "n_kv_head"] + (["window"] if x_key == "n" else [])
    st.plotly_chart(scaling_figure(rows, x_key, series, mode), width="stretch")
    table = pd.DataFrame(rows)
    st.dataframe(table.assign(peak=[format_bytes(b) if b is not None else "-" for b in table["peak_bytes"]]),
                 hide_index=True, width="stretch")
    if "ran" in table and (table["ran"] != table["impl"]).any():
        st.caption("Column 'ran': the kernel a row actually measured. A window as long as the "
                   "sequence covers every key, so it is full causal attention and runs dense SDPA "
                   "whatever kernel was asked for.")
    st.download_button("Download CSV", table.to_csv(index=False), "gpt2viz-bench.csv", "text/csv")
elif result is None:
    st.caption("Nothing measured yet in this session: press Run.")
