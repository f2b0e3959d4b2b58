"""Training in the background, as the pages see it: queue the missing models, show their
progress in a fragment that refreshes itself, let the user cancel; the store swaps the trained
models in when they are ready. Until then a page draws the model on random weights, and says so.

The queue (gpt2viz.jobs) lives in the process-wide model store (models.py), so a model in
progress survives its tab closing, and two sessions asking for one model share one run. What a
session cancelled or saw fail is remembered in its own state, so the page does not start it
again by itself.
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from gpt2viz.jobs import TrainingCancelled, TrainingJob, job_tokens
from gpt2viz.serving import Refused
from gpt2viz.train import check_trainable, load_cached, train
from gpt2viz.workbench import Variant

from . import serving_mode

if TYPE_CHECKING:
    from .models import ModelStore


def _session() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx else "no session"


def _stopped() -> dict:
    """key -> why this session's model is not training (cancelled, or the error it hit)."""
    return st.session_state.setdefault("training_stopped", {})


def start(store: ModelStore, wanted: dict, data, settings, seed: int,
          purpose: str = "selection") -> dict[str, TrainingJob]:
    """Queue every wanted model (name -> (key, config)) that is not in the store yet;
    return the jobs still running.

    A page asks once per `purpose` (the selection; a page's own reference model). What this
    session asked for the same purpose before and no longer wants is cancelled for it: a user
    stepping through settings queues the last one, not every one on the way."""
    asked = st.session_state.setdefault("training_asked", {})
    keys = frozenset(key for key, _ in wanted.values())
    for job in store.training.pending():
        if job.key in asked.get(purpose, ()) and job.key not in keys:
            store.training.cancel(job, waiter=_session())
    asked[purpose] = keys
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
        try:
            jobs[name] = store.train(key, name, partial(_train, name, config, data, settings, seed),
                                     job_tokens(settings), waiter=_session(), **bounds)
        except Refused as err:
            st.warning(f"{name} is not trained: {err} Until then it is shown with random weights.")
    return jobs


def _train(name, config, data, settings, seed, callback) -> Variant:
    """Runs on the training thread; the store keeps the result (train() the disk cache)."""
    return _variant(name, train(config, data, settings, seed=seed, callback=callback))


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


@st.fragment(run_every=1.0)
def status(store: ModelStore, jobs: dict[str, TrainingJob], detailed: bool) -> None:
    """Progress of this page's models, refreshed every second without rerunning the page;
    the whole page reruns once they are all done, so trained models replace the stand-ins."""
    if all(job.done.is_set() for job in jobs.values()):
        for job in jobs.values():
            _settle(job)
        st.rerun()
    queue = store.training
    finished = sum(job.done.is_set() for job in jobs.values())
    left = max(queue.seconds_until_done(job) for job in jobs.values())
    with st.container(border=True):
        st.markdown(f"**Training in the background: {', '.join(jobs)}** — shown with random weights "
                    f"until each is ready (about {left:.0f} s for {len(jobs) - finished} model(s), "
                    f"one at a time). The pages stay usable; training goes on if you switch pages "
                    f"or close the tab.")
        running = next((job for job in queue.pending() if job.progress and not job.done.is_set()), None)
        if running is not None:
            p = running.progress
            st.progress(p.step / p.steps, text=f"{running.name}: step {p.step}/{p.steps}, loss "
                                               f"{p.loss:.2f}, {p.tokens_per_second:,.0f} tokens/s")
            if detailed:
                losses = list(running.losses)  # one per step, from step 1
                st.line_chart({"step": range(1, len(losses) + 1), "loss": losses}, x="step", y="loss",
                              x_label="step", y_label="training loss (nats)", height=180)
        else:
            st.progress(0.0, text="Waiting for the training worker...")
        if st.button("Cancel training", key="cancel-training",
                     help="Stops the models this page is waiting for (unless another session "
                          "waits for them too). Nothing half-trained is saved."):
            for job in jobs.values():
                store.training.cancel(job, waiter=_session())
                _stopped()[job.key] = (job.name, "cancelled")
            st.rerun()
