"""Training jobs that outlive the page that asked for them, on a server that may be shared.

A Streamlit script run stops when its tab closes or its user clicks something else; a model
trained inside it would be lost half-way. Here one worker thread runs queued jobs one at a
time (training takes every core it is given: two at once would each run at half speed; the
dashboard's jobs train in a child process, train_process.py), keeps their progress for whoever
polls, and hands each result to the job's own work (which caches it).

- Two requests for the same key share one job: a model is never trained twice at once.
- A job is cancelled only when every waiter (session) on it has cancelled; a cancelled run
  stops at its next step and writes nothing.
- Each session sees its own jobs and how much of other sessions' work is ahead of them; jobs a
  page is showing run before jobs nobody looks at any more.
- Estimates use the pace of the same kind of job (device, model size, batch shape), and say
  when they are a guess.
- Bounds, for a shared server: a line of at most `max_waiting` jobs behind the running one;
  a waiter may have jobs from one request in flight at a time; no job over MAX_JOB_TOKENS.
  A refusal says how long the wait is.
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from gpt2viz.core.config import PRESETS, ModelConfig, TrainSettings
from gpt2viz.core.resources import device
from gpt2viz.training.train import Progress, expected_tokens_per_second, param_count
from gpt2viz.weights.checkpoint_cache import cache_entries
from gpt2viz.weights.serving import Refused

MAX_WAITING = 4                      # jobs waiting behind the running one, server-wide (shared mode)
WATCH_SECONDS = 5.0  # a job counts as watched this long after a page last showed it


@dataclass(frozen=True)
class JobKind:
    """Jobs whose pace predicts each other's: the same device, model size (two significant
    digits) and batch shape. A batch of 1 x 512 trains far fewer tokens a second than 16 x 128,
    so one job's pace must not set another kind's estimate."""
    device: str
    params: int
    batch_size: int
    block_size: int
    precision: str = "fp32"

    @classmethod
    def of(cls, config: ModelConfig, settings: TrainSettings, device_type: str | None = None) -> "JobKind":
        params = param_count(config)
        rounded = round(params, 2 - len(str(params)))  # two significant digits
        return cls(device_type or device().type, rounded, settings.batch_size, settings.block_size,
                   settings.precision)

    def describe(self) -> str:
        return (f"{self.params / 1e6:.1f}M parameters, batch {self.batch_size} x {self.block_size}"
                f"{'' if self.precision == 'fp32' else ', ' + self.precision} on the {self.device}")


@dataclass(frozen=True)
class Pace:
    tokens_per_second: float
    source: str      # where the figure comes from, said beside every estimate
    guess: bool


class PaceBook:
    """The fastest pace measured for each kind of job: the fastest run is the one that had the
    machine to itself (a shared machine only slows a run down). Seeded from the checkpoint cache,
    whose every checkpoint says how fast it trained, and updated by every finished run here."""

    def __init__(self, fixed: float | None = None):
        self._fixed = fixed  # tests and callers that know the pace
        self._paces: dict[JobKind | None, tuple[float, str]] | None = None
        self._lock = threading.Lock()

    def record(self, kind: JobKind | None, tokens_per_second: float, when: str) -> None:
        with self._lock:
            paces = self._seeded()
            if tokens_per_second > paces.get(kind, (0.0, ""))[0]:
                paces[kind] = (tokens_per_second, when)

    def estimate(self, kind: JobKind | None) -> Pace:
        if self._fixed is not None and kind not in (self._paces or {}):
            return Pace(self._fixed, "as given", False)
        with self._lock:
            paces = self._seeded()
            if kind in paces:
                rate, when = paces[kind]
                return Pace(rate, f"measured for this kind of job ({kind.describe() if kind else 'this job'}) "
                                  f"{when}".rstrip(), False)
            same_device = [(k, v) for k, v in paces.items() if k is not None and kind is not None
                           and k.device == kind.device]
        if kind is None:
            return Pace(expected_tokens_per_second(), GUESSED_PACE, True)
        if same_device:  # tokens/s scale about inversely with model size at one batch shape
            near, (rate, _) = min(same_device, key=lambda kv: (
                (kv[0].batch_size, kv[0].block_size) != (kind.batch_size, kind.block_size),
                abs(kv[0].params - kind.params)))
            return Pace(rate * near.params / kind.params,
                        f"a guess, scaled by model size from a run of {near.describe()}", True)
        default = JobKind.of(PRESETS["gpt2"].replace(vocab_size=5008), TrainSettings(), kind.device)
        return Pace(expected_tokens_per_second(kind.device) * default.params / kind.params,
                    GUESSED_PACE, True)

    def _seeded(self) -> dict:
        if self._paces is None:
            self._paces = {}
            for kind, rate, when in (() if self._fixed is not None else _cached_paces()):
                if rate > self._paces.get(kind, (0.0, ""))[0]:
                    self._paces[kind] = (rate, when)
        return self._paces


# Only when nothing of a device kind was ever trained here: a few steps of the default preset
# timed on this machine (train.expected_tokens_per_second), scaled by model size.
GUESSED_PACE = ("a guess: 3 steps of the default preset timed on this machine, scaled by model "
                "size; a whole run on a busy machine can take up to twice as long")


def _cached_paces():
    """(kind, tokens/s, when) of every checkpoint in the cache that says how fast it trained."""
    for entry in cache_entries():
        try:
            meta = json.loads((entry.folder / "meta.json").read_text())
            history, settings = meta["history"], TrainSettings(**meta["settings"])
            kind = JobKind.of(ModelConfig(**meta["config"]), settings, history.get("device") or "cpu")
            yield kind, float(history["tokens_per_second"]), f"on {history.get('finished') or 'an earlier run'}"
        except (OSError, ValueError, KeyError, TypeError):
            continue


def job_tokens(settings: TrainSettings) -> int:
    return settings.steps * settings.batch_size * settings.block_size


MAX_JOB_TOKENS = 4 * job_tokens(TrainSettings())  # four times the default budget (shared mode)


def check_budget(settings: TrainSettings) -> None:
    """A per-job cap, so one visitor cannot hold the queue for hours."""
    tokens = job_tokens(settings)
    if tokens > MAX_JOB_TOKENS:
        raise Refused(f"That training run is {tokens:,} tokens; one job may train at most "
                      f"{MAX_JOB_TOKENS:,} (fewer steps, a smaller batch or shorter blocks).")


@dataclass(eq=False)  # one job is one job: compared by identity
class TrainingJob:
    key: Hashable
    name: str
    work: Callable[[Callable[[Progress], None]], Any]  # work(callback) -> result
    tokens: int  # to train on
    kind: JobKind | None = None
    progress: Progress | None = None
    losses: list = field(default_factory=list)
    result: Any = None
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)
    waiters: set = field(default_factory=set)  # who asked for it and has not cancelled (session ids)
    watched: dict = field(default_factory=dict)  # waiter -> when a page of theirs last showed it
    cancelled: threading.Event = field(default_factory=threading.Event)

    def seconds_left(self, pace: Pace) -> float:
        if self.done.is_set():
            return 0.0
        if self.progress is None:
            return self.tokens / pace.tokens_per_second
        return self.progress.seconds_left

    def is_watched(self, now: float) -> bool:
        return any(now - seen < WATCH_SECONDS for seen in self.watched.values())


class TrainingCancelled(Exception):
    """Raised inside a job's work at the step after every waiter cancelled it."""

    def __init__(self):
        super().__init__("Training was cancelled; nothing was saved.")


class TrainingQueue:
    """One worker. The running job first; then the jobs some page is showing right now, in
    arrival order; then the ones nobody is looking at any more (they still complete: a model
    asked for is cached for next time). Estimates use the pace of the same kind of job."""

    def __init__(self, tokens_per_second: float | None = None):
        self.paces = PaceBook(fixed=tokens_per_second)
        self._jobs: OrderedDict[Hashable, TrainingJob] = OrderedDict()  # in arrival order
        self._running: TrainingJob | None = None
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None

    def submit(self, key: Hashable, name: str, work, tokens: int, waiter: Hashable = None,
               request: frozenset | None = None, max_waiting: int | None = None,
               kind: JobKind | None = None) -> TrainingJob:
        """The job for key: the one already queued or running, else a new one at the back.
        Bounds (shared mode): with `request` (every key the waiter asks for now), a waiter
        still waiting on other keys is refused; with `max_waiting`, a full line is refused.
        Joining a job already in the line is always allowed."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.cancelled.is_set():
                self._check_room(waiter, request, max_waiting)
                job = self._jobs[key] = TrainingJob(key, name, work, tokens, kind)
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._run, name="gpt2viz-training",
                                                    daemon=True)
                    self._worker.start()
                self._wakeup.notify()
            job.waiters.add(waiter)
            job.watched[waiter] = time.monotonic()
            return job

    def _check_room(self, waiter, request, max_waiting):
        if request is not None:
            busy = [j.name for j in self._jobs.values()
                    if waiter in j.waiters and j.key not in request and not j.cancelled.is_set()]
            if busy:
                raise Refused(f"You already have {', '.join(busy)} training; wait for it to "
                              f"finish or cancel it, then ask for another model.")
        if max_waiting is not None and len(self._jobs) > max_waiting:
            wait = sum(j.seconds_left(self.paces.estimate(j.kind)) for j in self._jobs.values())
            raise Refused(f"The training queue is full ({len(self._jobs)} jobs); the wait is "
                          f"about {wait:.0f} s. Try again then.")

    def watch(self, job: TrainingJob, waiter: Hashable) -> None:
        """A page of waiter's shows job now: it goes before the jobs nobody is looking at."""
        job.watched[waiter] = time.monotonic()

    def cancel(self, job: TrainingJob, waiter: Hashable = None) -> None:
        with self._lock:
            job.waiters.discard(waiter)
            job.watched.pop(waiter, None)
            if not job.waiters:
                job.cancelled.set()

    def pending(self) -> list[TrainingJob]:
        """Every job not finished, in the order they will run."""
        with self._lock:
            return self._plan()

    def jobs_of(self, waiter: Hashable) -> list[TrainingJob]:
        return [job for job in self.pending() if waiter in job.waiters]

    def seconds_until_done(self, job: TrainingJob) -> float:
        """Everything planned before job, plus job itself."""
        return sum(other.seconds_left(self.paces.estimate(other.kind)) for other in self.ahead_of(job) + [job])

    def ahead_of(self, job: TrainingJob) -> list[TrainingJob]:
        plan = self.pending()
        return plan[:plan.index(job)] if job in plan else []

    def _plan(self) -> list[TrainingJob]:
        now = time.monotonic()
        waiting = [job for job in self._jobs.values() if job is not self._running]
        return ([self._running] if self._running in self._jobs.values() else []) + \
            [job for job in waiting if job.is_watched(now)] + [job for job in waiting if not job.is_watched(now)]

    def _run(self):
        while True:
            with self._lock:
                while not self._jobs:
                    self._wakeup.wait()
                self._running = job = self._plan()[0]

            def report(p: Progress, job=job):
                if job.cancelled.is_set():
                    raise TrainingCancelled()
                job.progress = p
                job.losses.append(p.loss)
                self.paces.record(job.kind, p.tokens_per_second,
                                  time.strftime("on %Y-%m-%d %H:%M UTC", time.gmtime()))

            try:
                if job.cancelled.is_set():
                    raise TrainingCancelled()
                job.result = job.work(report)
            except Exception as err:  # handed to whoever waits on the job, shown there
                job.error = err
            with self._lock:
                if self._jobs.get(job.key) is job:
                    del self._jobs[job.key]
                self._running = None
            job.done.set()
