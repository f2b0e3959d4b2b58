"""The training queue: one job per model however many ask, in arrival order, progress and
errors handed to whoever waits, cancelling, and the bounds of a shared server."""
import json
import threading

import pytest

from gpt2viz.jobs import (MAX_JOB_TOKENS, TrainingCancelled, TrainingQueue, check_budget,
                          job_tokens)
from gpt2viz.serving import Refused
from gpt2viz.config import TrainSettings
from gpt2viz.train import Progress


def test_the_same_model_asked_twice_trains_once_and_jobs_run_in_order():
    queue, started, release, order = TrainingQueue(), threading.Event(), threading.Event(), []

    def slow(callback):
        started.set()
        release.wait(10)
        order.append("a")
        return "model a"

    first = queue.submit("a", "a", slow, tokens=100)
    started.wait(10)
    again = queue.submit("a", "a", lambda cb: order.append("a twice"), tokens=100)
    second = queue.submit("b", "b", lambda cb: order.append("b") or "model b", tokens=100)
    assert again is first and not second.done.is_set()
    release.set()
    assert second.done.wait(10) and first.done.is_set()
    assert order == ["a", "b"] and (first.result, second.result) == ("model a", "model b")


def test_progress_feeds_the_estimate_for_the_whole_queue():
    queue, release = TrainingQueue(tokens_per_second=1000.0), threading.Event()

    def running(callback):
        callback(Progress(step=5, steps=10, loss=3.0, tokens_per_second=2000.0, seconds_left=7.0))
        release.wait(10)

    first = queue.submit("a", "a", running, tokens=20_000)
    while first.progress is None:
        first.done.wait(0.01)
    waiting = queue.submit("b", "b", lambda cb: None, tokens=6_000)
    # 7 s left for the running job, then 6,000 tokens at the rate just measured (2,000/s)
    assert queue.seconds_until_done(waiting) == 7.0 + 3.0 and queue.seconds_until_done(first) == 7.0
    assert first.losses == [3.0]
    release.set()
    assert waiting.done.wait(10)


def test_an_error_is_handed_over_and_the_queue_goes_on():
    queue = TrainingQueue()
    bad = queue.submit("bad", "bad", lambda cb: 1 / 0, tokens=1)
    good = queue.submit("good", "good", lambda cb: "fine", tokens=1)
    assert good.done.wait(10) and bad.done.is_set()
    assert isinstance(bad.error, ZeroDivisionError) and good.result == "fine"
    retry = queue.submit("bad", "bad", lambda cb: "now fine", tokens=1)  # a failed job can be asked again
    assert retry is not bad and retry.done.wait(10) and retry.result == "now fine"


def test_bounds_for_a_shared_server_refuse_with_the_wait():
    queue, release = TrainingQueue(tokens_per_second=1000.0), threading.Event()
    running = queue.submit("a", "a", lambda cb: release.wait(10), tokens=5_000, waiter="s1")
    queue.submit("b", "b", lambda cb: None, tokens=2_000, waiter="s2")
    with pytest.raises(Refused, match=r"queue is full \(2 jobs\); the wait is about 7 s"):
        queue.submit("c", "c", lambda cb: None, tokens=1, waiter="s3", max_waiting=1)
    joined = queue.submit("b", "b", lambda cb: None, tokens=2_000, waiter="s3", max_waiting=1)
    assert joined.waiters == {"s2", "s3"}  # joining a job in the line is always allowed
    with pytest.raises(Refused, match="You already have a training"):
        queue.submit("d", "d", lambda cb: None, tokens=1, waiter="s1", request=frozenset({"d"}))
    same_request = queue.submit("a", "a", None, tokens=5_000, waiter="s1", request=frozenset({"a", "e"}))
    assert same_request is running
    release.set()
    assert joined.done.wait(10)


def test_cancel_stops_the_run_only_when_every_waiter_has_cancelled():
    queue, steps = TrainingQueue(), []

    def work(callback):
        for step in range(1, 1000):
            callback(Progress(step, 1000, 1.0, 100.0, 1.0))
            steps.append(step)
            threading.Event().wait(0.005)
        return "finished"

    job = queue.submit("m", "m", work, tokens=1, waiter="s1")
    queue.submit("m", "m", work, tokens=1, waiter="s2")
    while not steps:
        threading.Event().wait(0.01)
    queue.cancel(job, "s1")
    threading.Event().wait(0.05)
    assert not job.cancelled.is_set() and not job.done.is_set()  # s2 still waits for it
    queue.cancel(job, "s2")
    assert job.done.wait(10)
    assert isinstance(job.error, TrainingCancelled) and job.result is None and len(steps) < 999


def test_the_budget_cap():
    check_budget(TrainSettings())  # the dashboard's default budget is fine
    assert job_tokens(TrainSettings()) * 4 == MAX_JOB_TOKENS
    with pytest.raises(Refused, match="one job may train at most"):
        check_budget(TrainSettings(steps=241 * 4))


def test_a_cancelled_training_writes_nothing(corpus, private_cache):
    from gpt2viz import ModelConfig
    from gpt2viz.checkpoint_cache import checkpoint_folder
    from gpt2viz.train import train

    tiny = ModelConfig(n_layer=1, n_head=2, d_model=16, max_seq_len=32)
    settings = TrainSettings(steps=50, batch_size=2, block_size=16, eval_every=50, warmup_steps=1)
    queue = TrainingQueue()
    job = queue.submit("tiny", "tiny", lambda cb: train(tiny, corpus, settings, seed=9, callback=cb),
                       tokens=job_tokens(settings), waiter="s")
    while job.progress is None:
        threading.Event().wait(0.01)
    queue.cancel(job, "s")
    assert job.done.wait(30) and isinstance(job.error, TrainingCancelled)
    assert not checkpoint_folder(tiny, corpus, settings, 9).exists()
    assert not private_cache.exists() or not any(private_cache.iterdir())


def test_first_estimate_uses_the_newest_pace_in_the_cache_else_a_labelled_guess(private_cache):
    from gpt2viz.jobs import GUESSED_PACE, GUESSED_TOKENS_PER_SECOND

    queue = TrainingQueue()  # nothing was ever trained here
    assert (queue.tokens_per_second, queue.pace) == (GUESSED_TOKENS_PER_SECOND, GUESSED_PACE)
    for name, rate, when in (("old", 500.0, "2026-11-01 10:00 UTC"), ("new", 800.0, "2026-11-20 09:00 UTC"),
                             ("broken", None, None)):
        folder = private_cache / name
        folder.mkdir(parents=True)
        history = {"tokens_per_second": rate, "finished": when} if rate else {}
        (folder / "meta.json").write_text(json.dumps({"history": history}))
    queue = TrainingQueue()
    assert queue.tokens_per_second == 800.0 and "2026-11-20 09:00 UTC" in queue.pace
    queue = TrainingQueue(tokens_per_second=1000.0)
    assert queue.tokens_per_second == 1000.0
