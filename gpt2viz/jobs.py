"""Training jobs that outlive the page that asked for them.

A Streamlit script run stops when its tab closes or its user clicks something else; a model
trained inside it would be lost half-way. Here one worker thread trains queued jobs one at a
time (the cores are shared: two at once would each run at half speed), keeps their progress for
whoever polls, and hands each result to the job's own `finish` (which caches it) when done.
Two requests for the same key share one job: a model is never trained twice at once.
A job is cancelled only when every session waiting on it has cancelled; a cancelled run stops at
its next step and writes nothing.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from .train import Progress


@dataclass
class TrainingJob:
    key: Hashable
    name: str
    work: Callable[[Callable[[Progress], None]], Any]  # work(callback) -> result
    tokens: int  # to train on; 0 when the model only has to be loaded from the cache
    progress: Progress | None = None
    losses: list = field(default_factory=list)
    result: Any = None
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)
    waiters: set = field(default_factory=set)  # who asked for it (e.g. session ids)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def seconds_left(self, tokens_per_second: float) -> float:
        if self.done.is_set():
            return 0.0
        if self.progress is None:
            return self.tokens / tokens_per_second
        return self.progress.seconds_left


class TrainingCancelled(Exception):
    """Raised inside a job's work at the step after every waiter cancelled it."""

    def __init__(self):
        super().__init__("Training was cancelled; nothing was saved.")


class TrainingQueue:
    """One worker, jobs in arrival order. The estimate for jobs not yet started uses the last
    measured rate (before any, a guess for 2 CPU cores: NOTES.md, about 0.23 s a step of
    16 x 128 tokens)."""

    def __init__(self, tokens_per_second: float = 9000.0):
        self.tokens_per_second = tokens_per_second
        self._jobs: OrderedDict[Hashable, TrainingJob] = OrderedDict()  # queued and running
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None

    def submit(self, key: Hashable, name: str, work, tokens: int, waiter: Hashable = None) -> TrainingJob:
        """The job for key: the one already queued or running, else a new one at the back."""
        with self._lock:
            if key not in self._jobs or self._jobs[key].cancelled.is_set():
                self._jobs[key] = TrainingJob(key, name, work, tokens)
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._run, name="gpt2viz-training",
                                                    daemon=True)
                    self._worker.start()
                self._wakeup.notify()
            self._jobs[key].waiters.add(waiter)
            return self._jobs[key]

    def cancel(self, job: TrainingJob, waiter: Hashable = None) -> None:
        with self._lock:
            job.waiters.discard(waiter)
            if not job.waiters:
                job.cancelled.set()

    def pending(self) -> list[TrainingJob]:
        with self._lock:
            return list(self._jobs.values())

    def seconds_until_done(self, job: TrainingJob) -> float:
        """Everything ahead of job in the queue, plus job itself."""
        with self._lock:
            ahead = list(self._jobs.values())
        total = 0.0
        for other in ahead:
            total += other.seconds_left(self.tokens_per_second)
            if other is job:
                break
        return total

    def _run(self):
        while True:
            with self._lock:
                while not self._jobs:
                    self._wakeup.wait()
                job = next(iter(self._jobs.values()))

            def report(p: Progress, job=job):
                if job.cancelled.is_set():
                    raise TrainingCancelled()
                job.progress = p
                job.losses.append(p.loss)
                self.tokens_per_second = p.tokens_per_second

            try:
                if job.cancelled.is_set():
                    raise TrainingCancelled()
                job.result = job.work(report)
            except Exception as err:  # handed to whoever waits on the job, shown there
                job.error = err
            with self._lock:
                if self._jobs.get(job.key) is job:
                    del self._jobs[job.key]
            job.done.set()
