"""Training in the background, as the pages see it: queue the missing models, show their
progress in a fragment that refreshes itself, let the user cancel; the store swaps the trained
models in when they are ready. Until then a page draws the model on random weights, and says so.

The queue (gpt2viz.training.jobs) lives in the process-wide model store (models.py), so a model in
progress survives its tab closing (this module takes the store as an argument and never
imports models.py, which calls it), and two sessions asking for one model share one run. What a
session cancelled or saw fail is remembered in its own state, so the page does not start it
again by itself.
"""
from __future__ import annotations

from functools import partial

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from gpt2viz.analysis.workbench import Variant
from gpt2viz.training.jobs import JobKind, TrainingCancelled, TrainingJob, job_tokens
from gpt2viz.training.train import check_trainable, load_cached
from gpt2viz.training.train_process import train_in_child
from gpt2viz.weights.serving import Refused

from . import routing, serving_mode


def session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx else "no session"


def _stopped() -> dict:
    """key -> why this session's model is not training (cancelled, or the error it hit)."""
    return st.session_state.setdefault("training_stopped", {})


def start(store, wanted: dict, data, settings, seed: int,
          purpose: str = "selection") -> dict[str, TrainingJob]:
    """Queue every wanted model (name -> (key, config)) that is not in the store yet;
    return the jobs still running. The banner (status) shows them.

    A page asks once per `purpose` (the selection; a page's own reference model). What this
    session asked for the same purpose before and no longer wants is cancelled for it: a user
    stepping through settings queues the last one, not every one on the way."""
    asked = st.session_state.setdefault("training_asked", {})
    keys = frozenset(key for key, _ in wanted.values())
    for job in store.training.jobs_of(session_id()):
        if job.key in asked.get(purpose, ()) and job.key not in keys:
            store.training.cancel(job, waiter=session_id())
    asked[purpose] = keys
    if purpose == "selection":  # a page's first request: what it shows starts here
        st.session_state["training_on_screen"] = set()
    st.session_state.setdefault("training_on_screen", set()).update(keys)
    jobs = {}
    try:
        bounds = serving_mode.queue_bounds(settings, frozenset().union(*asked.values()))
    except Refused as err:
        st.warning(f"Nothing is trained: {err} Until then the models are shown with random weights.")
        return jobs
    for name, (key, config) in wanted.items():
        if key in store or key in _stopped():
            continue
        try:
            check_trainable(config, data, settings)
        except (ValueError, MemoryError) as err:
            st.error(f"{name} cannot be trained with these settings: {err} It is shown with "
                     f"random weights.")
            continue
        cached = load_cached(config, data, settings, seed)  # well under a second: no need to queue
        if cached is not None:
            store.put(key, _variant(name, cached))
            continue
        kind = JobKind.of(config.replace(vocab_size=data.vocab.size), settings)
        try:
            jobs[name] = store.train(key, name, partial(_train, name, config, data, settings, seed),
                                     job_tokens(settings), waiter=session_id(), kind=kind, **bounds)
        except Refused as err:
            st.warning(f"{name} is not trained: {err} Until then it is shown with random weights.")
    return jobs


def _train(name, config, data, settings, seed, callback) -> Variant:
    """Runs on the training thread, the training itself in a child process at a lower priority
    (train_process.py); the store keeps the result, the child the disk cache."""
    return _variant(name, train_in_child(config, data, settings, seed=seed, callback=callback))


def _variant(name, result) -> Variant:
    return Variant(name, result.model, result.vocab,
                   "trained (cache)" if result.from_cache else "trained", result.history)


def _settle(job: TrainingJob) -> None:
    if job.error is not None:
        _stopped()[job.key] = (job.name, "cancelled" if isinstance(job.error, TrainingCancelled)
                               else f"could not be trained: {job.error}")


def show_stopped(keys) -> None:
    """Models this session cancelled or saw fail: said, with a way to try again."""
    for key in [k for k in keys if k in _stopped()]:
        name, why = _stopped()[key]
        a, b = st.columns([5, 1])
        (a.info if why == "cancelled" else a.error)(
            f"{name}: training {why}. It is shown with random weights." if why == "cancelled"
            else f"{name} {why}. It is shown with random weights.")
        if b.button("Train again", key=f"retrain-{hash(key)}"):
            del _stopped()[key]
            st.rerun()


def banner(store, detailed: bool) -> None:
    """The banner, once a page (the first request that finds this session with jobs draws it)
    and only while there are jobs: its timer reruns every second, and a rerun closes whatever
    dropdown the user has open."""
    drawn = "cancel-training" in routing.widget_keys_this_run()
    if not drawn and (store.training.jobs_of(session_id()) or st.session_state.get("training_followed")):
        status(store, detailed)


@st.fragment(run_every=1.0)
def status(store, detailed: bool) -> None:
    """One banner per page (drawn with the page's selection, however many other requests the
    page makes) with every job this session started (on this page or another),
    refreshed every second without rerunning the page; the page reruns when one of them
    finishes, so trained models replace the stand-ins. Other sessions' jobs appear only as the
    line ahead of ours."""
    queue, me = store.training, session_id()
    followed = st.session_state.setdefault("training_followed", {})  # key -> job this banner showed
    finished = [job for job in followed.values() if job.done.is_set()]
    if finished:
        for job in finished:
            _settle(job)
            del followed[job.key]
        st.rerun()
    mine = queue.jobs_of(me)
    if not mine:
        return
    on_screen = st.session_state.get("training_on_screen", set())
    for job in mine:
        followed[job.key] = job
        if job.key in on_screen:
            queue.watch(job, me)  # a page shows it: it goes before jobs nobody looks at
    _banner(queue, me, mine, detailed)


def _banner(queue, me, mine: list[TrainingJob], detailed: bool) -> None:
    left = queue.seconds_until_done(mine[-1])
    paces = {job.name: queue.paces.estimate(job.kind) for job in mine if job.progress is None}
    others = [job for job in queue.ahead_of(mine[0]) if me not in job.waiters]
    with st.container(border=True):
        st.markdown(f"**Training in the background: {', '.join(job.name for job in mine)}** — shown "
                    f"with random weights until each is ready (about {left:.0f} s for "
                    f"{len(mine)} model(s), one at a time). The pages stay usable; training goes on "
                    f"if you switch pages or close the tab.")
        if others:
            st.caption(f"{len(others)} job(s) of other sessions ahead of yours, about "
                       f"{sum(queue.seconds_until_done(job) for job in others[-1:]):.0f} s.")
        if paces:
            sources = {pace.source for pace in paces.values()}
            st.caption("Not started yet: " + ", ".join(
                f"{name} at about {pace.tokens_per_second:,.0f} tokens/s" for name, pace in paces.items())
                + (f" ({sources.pop()})." if len(sources) == 1 else
                   " (" + "; ".join(f"{name}: {pace.source}" for name, pace in paces.items()) + ")."))
        running = next((job for job in mine if job.progress is not None), None)
        if running is not None:
            p = running.progress
            st.progress(p.step / p.steps, text=f"{running.name}: step {p.step}/{p.steps}, loss "
                                               f"{p.loss:.2f}, {p.tokens_per_second:,.0f} tokens/s")
            if detailed:
                losses = list(running.losses)  # one per step, from step 1
                st.line_chart({"step": range(1, len(losses) + 1), "loss": losses}, x="step", y="loss",
                              x_label="step", y_label="training loss (nats)", height=180)
        else:
            # another session's choices are its own: say that it trains, never what
            st.progress(0.0, text="Waiting for the training worker..." if not others else
                        "Waiting: another session's job is training first (one job at a time).")
        columns = st.columns(len(mine) + 1)
        if columns[0].button("Cancel training", key="cancel-training",
                             help="Stops every model this session is waiting for (unless another "
                                  "session waits for it too). Nothing half-trained is saved."):
            _cancel(queue, me, mine)
        if len(mine) > 1:
            for column, job in zip(columns[1:], mine):
                if column.button(f"Cancel {job.name}", key=f"cancel-{hash(job.key)}"):
                    _cancel(queue, me, [job])


def _cancel(queue, me, jobs: list[TrainingJob]) -> None:
    for job in jobs:
        queue.cancel(job, waiter=me)
        _stopped()[job.key] = (job.name, "cancelled")
    st.rerun()
