"""Training jobs that outlive the page that asked for them, on a server that may be shared.

A Streamlit script run stops when its tab closes or its user clicks something else; a model
trained inside it would be lost half-way. Here one worker thread trains queued jobs one at a
time (training takes every core: two at once would each run at half speed), keeps their
progress for whoever polls, and hands each result to the job's own work (which caches it).

- Two requests for the same key share one job: a model is never trained twice at once.
- A job is cancelled only when every waiter (session) on it has cancelled; a cancelled run
  stops at its next step and writes nothing.
- Bounds, for a shared server: a line of at most `max_waiting` jobs behind the running one;
  a waiter may have jobs from one request in flight at a time; no job over MAX_JOB_TOKENS.
  A refusal says how long the wait is.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from .checkpoint_cache import cache_entries
from .config import TrainSettings
from .serving import Refused
from .train import Progress, expected_tokens_per_second

MAX_WAITING = 4                      # jobs waiting behind the running one, server-wide (shared mode)
MAX_JOB_TOKENS = 4 * 240 * 16 * 128  # four times the default budget (240 steps of 16 x 128)
# Only when nothing was ever trained here (no history in the checkpoint cache): the pace measured
# for this device kind elsewhere (train.MEASURED_TRAINING_PACE). Labelled as a guess.
GUESSED_TOKENS_PER_SECOND = expected_tokens_per_second()
GUESSED_PACE = "a guess: the default budget's pace measured on another machine of this kind"


def cached_pace() -> tuple[float, str] | None:
    """(tokens/s, when) of the newest training run in the checkpoint cache: the pace this
    machine measured last, kept in each checkpoint's history."""
    newest = None
    for entry in cache_entries():
        try:
            history = json.loads((entry.folder / "meta.json").read_text())["history"]
            rate, when = float(history["tokens_per_second"]), str(history.get("finished") or "")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if rate > 0 and (newest is None or when > newest[1]):
            newest = (rate, when)
    return newest


def job_tokens(settings: TrainSettings) -> int:
    return settings.steps * settings.batch_size * settings.block_size


def check_budget(settings: TrainSettings) -> None:
    """A per-job cap, so one visitor cannot hold the queue for hours."""
    tokens = job_tokens(settings)
    if tokens > MAX_JOB_TOKENS:
        raise Refused(f"That training run is {tokens:,} tokens; one job may train at most "
                      f"{MAX_JOB_TOKENS:,} (fewer steps, a smaller batch or shorter blocks).")


@dataclass
class TrainingJob:
    key: Hashable
    name: str
    work: Callable[[Callable[[Progress], None]], Any]  # work(callback) -> result
    tokens: int  # to train on
    progress: Progress | None = None
    losses: list = field(default_factory=list)
    result: Any = None
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)
    waiters: set = field(default_factory=set)  # who asked for it (session ids)
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
    """One worker, jobs in arrival order. Estimates for jobs not yet started use the last
    measured pace; `pace` says where that figure comes from."""

    def __init__(self, tokens_per_second: float | None = None):
        if tokens_per_second is not None:
            self.tokens_per_second, self.pace = tokens_per_second, "as given"
        elif (cached := cached_pace()) is not None:
            self.tokens_per_second = cached[0]
            self.pace = f"the pace of the newest model in the checkpoint cache, trained {cached[1] or 'here'}"
        else:
            self.tokens_per_second, self.pace = GUESSED_TOKENS_PER_SECOND, GUESSED_PACE
        self._jobs: OrderedDict[Hashable, TrainingJob] = OrderedDict()  # running first, then waiting
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None

    def submit(self, key: Hashable, name: str, work, tokens: int, waiter: Hashable = None,
               request: frozenset | None = None, max_waiting: int | None = None) -> TrainingJob:
        """The job for key: the one already queued or running, else a new one at the back.
        Bounds (shared mode): with `request` (every key the waiter asks for now), a waiter
        still waiting on other keys is refused; with `max_waiting`, a full line is refused.
        Joining a job already in the line is always allowed."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.cancelled.is_set():
                self._check_room(waiter, request, max_waiting)
                job = self._jobs[key] = TrainingJob(key, name, work, tokens)
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._run, name="gpt2viz-training",
                                                    daemon=True)
                    self._worker.start()
                self._wakeup.notify()
            job.waiters.add(waiter)
            return job

    def _check_room(self, waiter, request, max_waiting):
        if request is not None:
            busy = [j.name for j in self._jobs.values()
                    if waiter in j.waiters and j.key not in request and not j.cancelled.is_set()]
            if busy:
                raise Refused(f"You already have {', '.join(busy)} training; wait for it to "
                              f"finish or cancel it, then ask for another model.")
        if max_waiting is not None and len(self._jobs) > max_waiting:
            wait = sum(j.seconds_left(self.tokens_per_second) for j in self._jobs.values())
            raise Refused(f"The training queue is full ({len(self._jobs)} jobs); the wait is "
                          f"about {wait:.0f} s. Try again then.")

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
        total = 0.0
        for other in self.pending():
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
                self.tokens_per_second, self.pace = p.tokens_per_second, "the last pace measured here"

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
