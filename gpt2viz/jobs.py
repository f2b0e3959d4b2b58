"""Training jobs on a shared server: one runs at a time, a bounded line waits, each session
has at most one job in flight, and no job may ask for more than a fixed budget.

Training takes every core, so running two jobs at once only makes both slower; a queue
that says how long the wait is beats a server that silently crawls.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from .serving import Refused
from .train import TrainSettings

MAX_WAITING = 4                      # jobs waiting behind the running one, server-wide
MAX_JOB_TOKENS = 4 * 240 * 16 * 128  # four times the default budget (240 steps of 16 x 128)
# Until a job has finished here: the default budget (491,520 tokens) took 41 s on 2 cores.
FIRST_SECONDS_PER_TOKEN = 41 / 491_520


@dataclass
class Job:
    session: str
    tokens: int
    started: float | None = None  # time.monotonic() once it runs


def job_tokens(settings: TrainSettings) -> int:
    return settings.steps * settings.batch_size * settings.block_size


class TrainingQueue:
    """First come, first served. `turn()` blocks until the job may run, or refuses at once."""

    def __init__(self, max_waiting: int = MAX_WAITING):
        self.max_waiting = max_waiting
        self.seconds_per_token = FIRST_SECONDS_PER_TOKEN  # the last finished job's pace
        self._jobs: list[Job] = []  # [0] runs, the rest wait in order
        self._changed = threading.Condition()

    def wait_seconds(self) -> float:
        """How long a job submitted now would wait: what is left of every job ahead of it."""
        with self._changed:
            running = self._jobs[0] if self._jobs else None
            elapsed = time.monotonic() - running.started if running and running.started else 0.0
            tokens = sum(job.tokens for job in self._jobs)
            return max(0.0, tokens * self.seconds_per_token - elapsed)

    @contextlib.contextmanager
    def turn(self, session: str, tokens: int):
        with self._changed:
            if any(job.session == session for job in self._jobs):
                raise Refused("You already have a training job running or waiting; "
                              "start another when it has finished.")
            if len(self._jobs) > self.max_waiting:
                raise Refused(f"The training queue is full ({len(self._jobs)} jobs); the wait "
                              f"is about {self.wait_seconds():.0f} s. Try again then.")
            job = Job(session, tokens)
            self._jobs.append(job)
            while self._jobs[0] is not job:
                self._changed.wait()
            job.started = time.monotonic()
        finished = False
        try:
            yield job
            finished = True
        finally:
            with self._changed:
                if finished and job.tokens:
                    self.seconds_per_token = (time.monotonic() - job.started) / job.tokens
                self._jobs.remove(job)
                self._changed.notify_all()


def check_budget(settings: TrainSettings) -> None:
    """A per-job cap, so one visitor cannot hold the queue for hours."""
    tokens = job_tokens(settings)
    if tokens > MAX_JOB_TOKENS:
        raise Refused(f"That training run is {tokens:,} tokens; one job may train at most "
                      f"{MAX_JOB_TOKENS:,} (fewer steps, a smaller batch or shorter blocks).")
