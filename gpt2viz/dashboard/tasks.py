"""The Tasks page's models: one task model per (variant, task, settings, seed), trained in the
background through the one training queue (the banner shows progress and Cancel), loaded from
the checkpoint cache when it is there, and kept for every session of this server."""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from functools import partial

import streamlit as st

from gpt2viz.analysis.task_models import TaskProgress, default_settings, load_cached_task, train_task_in_child
from gpt2viz.training.train import Progress

from . import training
from .models import store


@st.cache_resource(show_spinner=False)
def _trained() -> dict:
    """key -> TaskModel, for every session."""
    return {}


def page_settings(task):
    """The task's default settings; GPT2VIZ_TRAIN_STEPS (the pages' quick budget, as for the
    language models) caps the steps."""
    settings = default_settings(task)
    cap = os.environ.get("GPT2VIZ_TRAIN_STEPS")
    return replace(settings, steps=min(settings.steps, int(cap))) if cap else settings


def task_key(name: str, config, task, settings, seed: int) -> tuple:
    return ("task", name, config, json.dumps(task.to_dict(), sort_keys=True), settings, seed)


def task_models(wanted: dict, task, settings, seed: int, train: bool) -> dict:
    """name -> TaskModel, or None while it is not trained; with train=True the missing ones
    are queued (each once; what this session asked before and no longer wants is cancelled)."""
    done, queue, me = _trained(), store().training, training.session_id()
    keys = {name: task_key(name, config, task, settings, seed) for name, config in wanted.items()}
    found = {}
    for name, config in wanted.items():
        key = keys[name]
        if key not in done:
            cached = load_cached_task(config, task, settings, seed)  # well under a second
            if cached is not None:
                done[key] = cached
        found[name] = done.get(key)
    if train:
        asked = st.session_state.get("tasks_asked", set())
        for job in queue.jobs_of(me):
            if job.key in asked and job.key not in keys.values():
                queue.cancel(job, waiter=me)
        st.session_state["tasks_asked"] = set(keys.values())
        for name, config in wanted.items():
            if found[name] is None:
                queue.submit(keys[name], f"{name} on {task.name}",
                             partial(_train, done, keys[name], config, task, settings, seed),
                             settings.steps * settings.batch_size * task.length, waiter=me)
    training.banner(store(), False)
    return found


def _train(done: dict, key, config, task, settings, seed, report):
    """On the training thread: train in a child process (the banner's Progress from each
    TaskProgress) and keep."""
    started = time.monotonic()
    tokens_per_step = settings.batch_size * task.length

    def progress(p: TaskProgress):
        elapsed = max(time.monotonic() - started, 1e-9)
        rate = p.step * tokens_per_step / elapsed
        report(Progress(p.step, p.steps, p.loss, rate, (p.steps - p.step) * tokens_per_step / rate))

    done[key] = train_task_in_child(config, task, settings, seed, progress)
    return done[key]
