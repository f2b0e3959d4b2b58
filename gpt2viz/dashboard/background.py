"""Long work a page starts, the one way: a pretrained model's load, a StreamingLLM run, an
uptraining run, a Latency & memory run. Each runs once per key on a thread of its own, for every session on this
server; the page shows its progress (refreshed every second, without rerunning the page) with a
Cancel button, and keeps the result for every session. A session that leaves the page does
not stop it. Training goes through the training queue instead (training.py): it runs one job at
a time in a child process, because two at once would each run at half speed.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import streamlit as st

from .training import session_id


class Cancelled(Exception):
    """Raised inside the work at its next report once everyone waiting on it has cancelled."""


@dataclass(eq=False)
class Work:
    """One piece of work: `run(report)` on a thread; report(done, total, what) says how far it
    is (and stops it with Cancelled once cancelled). `expected_s` draws progress by elapsed
    time where the work cannot report (a load is one call)."""
    key: Hashable
    title: str
    expected_s: float | None = None
    cancellable: bool = True  # False: one call that cannot stop half-way (a load)
    detail: str = ""  # said under the title
    started: float = field(default_factory=time.monotonic)
    fraction: float = 0.0
    text: str = ""
    result: Any = None
    error: Exception | None = None
    waiters: set = field(default_factory=set)  # sessions waiting on it now
    asked: set = field(default_factory=set)  # every session that started or joined it
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def report(self, done: float, total: float, what: str = "") -> None:
        if self.cancelled.is_set():
            raise Cancelled()
        self.fraction, self.text = (done / total if total else 0.0), what

    def progress(self) -> tuple[float, str]:
        """(fraction, text) for the bar: reported, or elapsed over expected."""
        waited = time.monotonic() - self.started
        if self.text or self.expected_s is None:
            return self.fraction, f"{self.text}; {waited:.0f} s so far" if self.text else f"{waited:.0f} s so far"
        return min(waited / self.expected_s, 0.95), f"{waited:.0f} s so far, about {self.expected_s:.0f} s in all"


class WorkShelf:
    """Every piece of work of this server process by key: started once, kept when done. A
    cancelled or failed one is started again by the next start()."""

    def __init__(self):
        self._works: dict[Hashable, Work] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Work | None:
        return self._works.get(key)

    def start(self, key: Hashable, title: str, run: Callable[[Callable], Any], waiter: Hashable = None,
              fresh: bool = False, **options) -> Work:
        """options: Work's expected_s, cancellable, detail. fresh: run again even if a result
        is kept (a measurement asked for again); a running one is joined all the same."""
        with self._lock:
            work = self._works.get(key)
            if (work is None or work.cancelled.is_set()
                    or (work.done.is_set() and (fresh or work.error is not None))):
                work = self._works[key] = Work(key, title, **options)
                threading.Thread(target=self._run, args=(work, run), daemon=True,
                                 name=f"gpt2viz-work-{title}").start()
            work.waiters.add(waiter)
            work.asked.add(waiter)
            return work

    def cancel(self, work: Work, waiter: Hashable = None) -> None:
        """This waiter no longer waits; the work stops at its next report once nobody does."""
        with self._lock:
            work.waiters.discard(waiter)
            if not work.waiters:
                work.cancelled.set()

    @staticmethod
    def _run(work: Work, run) -> None:  # on the work's own thread
        try:
            work.result = run(work.report)
        except Exception as err:  # Cancelled, or shown on the page that asked (one line)
            work.error = err
        work.done.set()


@st.cache_resource(show_spinner=False)
def shelf() -> WorkShelf:
    return WorkShelf()


def start(key: Hashable, title: str, run: Callable[[Callable], Any], fresh: bool = False,
          **options) -> Work:
    """Start (or join) the work under `key` for this session; as WorkShelf.start."""
    return shelf().start(key, title, run, session_id(), fresh, **options)


def finished(key: Hashable) -> Any | None:
    """The result kept under `key`, or None (never run, running, cancelled or failed)."""
    work = shelf().get(key)
    return work.result if work is not None and work.done.is_set() and work.error is None else None


def show(key: Hashable) -> bool:
    """Draw what the work under `key` is doing: its progress and Cancel while it runs (the
    page reruns when it ends), one line if it failed or was cancelled (to the sessions that
    asked for it). True while it runs."""
    work = shelf().get(key)
    if work is None:
        return False
    if work.done.is_set():
        if session_id() not in work.asked:
            return False
        if isinstance(work.error, Cancelled):
            st.info(f"{work.title}: cancelled; nothing was kept.")
        elif work.error is not None:
            st.error(f"{work.title}: {work.error}")
        return False
    _running(work)
    return True


@st.fragment(run_every=1.0)
def _running(work: Work) -> None:
    if work.done.is_set():
        st.rerun()  # the whole page, now with the result
    with st.container(border=True):
        st.markdown(f"**{work.title} in the background** — " + (work.detail or (
            "kept for every session on this server when it ends; leaving the page does not stop it.")))
        fraction, text = work.progress()
        st.progress(min(max(fraction, 0.0), 1.0), text=text)
        if work.cancellable and st.button("Cancel", key=f"cancel-work-{hash(work.key)}",
                     help="Stops it at its next step (unless another session waits for it too)."):
            shelf().cancel(work, session_id())
            st.rerun()
