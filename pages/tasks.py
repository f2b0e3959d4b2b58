"""Tasks: what each alteration lets a model do. Copy (induction), associative recall and pass-key
retrieval, learned on demand by small task models of the selected variants, and their accuracy by
distance, length or pairs, against chance."""
import streamlit as st

from gpt2viz.analysis.heads import MEASURES, head_stats, repeated_random_tokens
from gpt2viz.analysis.task_models import (
    accuracy_by_distance,
    accuracy_by_length,
    accuracy_by_pairs,
    expected_limits,
    held_out,
    task_config,
)
from gpt2viz.analysis.tasks import make_task
from gpt2viz.dashboard import routing, tasks
from gpt2viz.dashboard.export import chart
from gpt2viz.viz.heads import MEASURE_LABELS, head_atlas
from gpt2viz.viz.tasks import accuracy_curves, accuracy_heatmap, head_birth

selection = routing.selection()
st.title("Tasks: what each alteration lets a model do")
st.caption("Small synthetic tasks where the answer is in the context (the loss and the accuracy "
           "count only the positions whose answer the context determines). Each variant selected "
           "in the sidebar becomes a task model: its position scheme, window, sinks and KV sharing "
           "on a task-sized body, trained here in the background.")
TASK_NAMES = {"copy": "Copy (induction): a segment repeated at a random later place",
              "passkey": "Pass key: a value, filler, then the question",
              "recall": "Associative recall (MQAR): key–value pairs, then queries"}
c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
task_name = c1.selectbox("Task", list(TASK_NAMES), format_func=TASK_NAMES.get, key="task_name")
n_layer = c2.number_input("Layers", 1, 4, 2, key="task_layers")
d_model = c3.select_slider("Width d", [32, 64, 128], value=64, key="task_width")
with_mlp = c4.checkbox("MLPs", value=False, key="task_mlp",
                       help="Off: attention-only blocks, as in Olsson et al.'s induction-head models.")
knobs = {}
if task_name == "recall":
    k1, k2 = st.columns(2)
    knobs["pairs"] = k1.number_input("Key–value pairs", 1, 16, 4, key="task_pairs")
    knobs["queries"] = k2.number_input("Queries", 1, 16, 2, key="task_queries")
else:
    knobs["length"] = st.select_slider("Training length (tokens)", [24, 32, 48, 64, 96, 128],
                                       value=48 if task_name == "copy" else 64, key="task_length")
try:
    task = make_task(task_name, **knobs)
except ValueError as err:
    st.error(f"These knobs cannot make a task: {err}")
    st.stop()

small = selection.configs
if selection.pretrained:
    st.caption(f"{', '.join(selection.pretrained)} is left out: a pretrained model's vocabulary is "
               "not the task's; task models are trained here from scratch.")
if not small:
    st.info("Pick at least one small variant in the sidebar (the presets or a custom one).")
    st.stop()
wanted, problems = {}, {}
for name, base in small.items():
    try:
        wanted[name] = task_config(base, task, n_layer=int(n_layer), d_model=int(d_model),
                                   mlp=base.mlp if with_mlp else "none")
    except ValueError as err:
        problems[name] = str(err)
for name, why in problems.items():
    st.error(f"{name} cannot be a task model with these knobs: {why}")
settings = tasks.page_settings(task)
asked = st.session_state.setdefault("tasks_train", set())
request = (task_name, tuple(sorted(knobs.items())), int(n_layer), int(d_model), with_mlp, selection.seed,
           tuple(wanted))
found = tasks.task_models(wanted, task, settings, selection.seed, train=request in asked)
missing = [name for name, m in found.items() if m is None]
if missing and request not in asked:
    st.info(f"Not trained yet: {', '.join(missing)} ({settings.steps:,} steps at most, stopping once "
            f"held-out accuracy reaches {settings.stop_accuracy:.0%} or stops improving; seconds to a "
            f"minute each on 2 CPU cores).")
    if st.button(f"Train {len(missing)} task model{'s' * (len(missing) > 1)}", type="primary",
                 key="tasks_train_button"):
        asked.add(request)
        st.rerun()
ready = {name: m for name, m in found.items() if m is not None}
if not ready:
    st.stop()

by = {"passkey": "distance", "copy": "length", "recall": "pairs"}[task_name]
table, refused = {}, {}
for name, m in ready.items():
    if by == "distance":
        table[name] = accuracy_by_distance(m.model, task, seed=selection.seed)
    elif by == "length":
        table[name], refused[name] = accuracy_by_length(m.model, task, seed=selection.seed)
    else:
        table[name] = accuracy_by_pairs(m.model, task, seed=selection.seed)
chart(accuracy_heatmap(table, by, task.chance, f"{TASK_NAMES[task_name].split(':')[0]}: "
                       f"held-out accuracy of each variant"))
for name, m in ready.items():
    limits = expected_limits(m.model.config, task)
    learned = (f"learned at step {m.history.learned_at_step:,}" if m.history.learned_at_step is not None
               else "never reached 50 %")
    st.caption(f"**{name}** ({m.history.seconds:.0f} s, {m.history.eval_steps[-1]:,} steps, {learned}"
               f"{', from the cache' if m.from_cache else ''})" + (": " + " ".join(limits) if limits else "."))
chart(accuracy_curves({name: m.history for name, m in ready.items()}, task.chance))
if task_name in ("copy", "recall"):
    shown = st.selectbox("Heads of", list(ready), key="tasks_heads_of")
    chart(head_birth(ready[shown].history, shown))
    st.caption("Induction score: attention from each scored query to the token after the earlier "
               "occurrence of the current token (where the answer is); previous-token score: "
               "attention to the token before. Olsson et al. 2022: the induction head forms in a "
               "later layer once an earlier layer has a previous-token head, in a sharp phase change.")

st.subheader("Head atlas of a task model")
c1, c2 = st.columns([1, 3])
atlas_of = c1.selectbox("Variant", list(ready), key="tasks_atlas_of")
measure = c2.radio("Colour by", MEASURES, index=MEASURES.index("induction"), format_func=MEASURE_LABELS.get,
                   horizontal=True, key="tasks_atlas_measure")
model = ready[atlas_of].model
cfg = model.config
length = min(cfg.max_seq_len // 2, cfg.vocab_size)  # r's tokens are distinct
stats = head_stats(model, held_out(task, selection.seed, rows=8).ids, repeated_random_tokens(cfg, length))
chart(head_atlas(stats, measure, cfg.n_kv_head, title=f"{atlas_of} (task model): "
                 f"{MEASURE_LABELS[measure]} of every head"))
st.caption(f"The head atlas's five measures (as on the Head atlas page), read on 8 held-out "
           f"sequences of the task and on 4 sequences of {length} distinct random task tokens "
           f"repeated once (the induction score). Every number on hover.")
