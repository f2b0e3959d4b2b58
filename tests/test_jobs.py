"""The training queue: one job per model however many ask, in arrival order, progress and
errors handed to whoever waits, cancelling, and the bounds of a shared server."""
import json
import threading
from dataclasses import asdict

import pytest

from gpt2viz.core.config import TrainSettings
from gpt2viz.training.jobs import (
    MAX_JOB_TOKENS,
    TrainingCancelled,
    TrainingQueue,
    check_budget,
    job_tokens,
)
from gpt2viz.training.train import Progress
from gpt2viz.weights.serving import Refused


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
    from gpt2viz.training.train import train
    from gpt2viz.weights.checkpoint_cache import checkpoint_folder

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


def _cached_checkpoint(folder, config, settings, rate, when, device="cpu"):
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({
        "config": config.to_dict(), "settings": asdict(settings),
        "history": {"tokens_per_second": rate, "finished": when, "device": device}}))


def test_estimates_use_the_fastest_pace_of_the_same_kind_of_job_else_a_labelled_guess(private_cache):
    from gpt2viz import PRESETS
    from gpt2viz.training.jobs import GUESSED_PACE, JobKind

    gpt2, rope = (PRESETS[n].replace(vocab_size=5008) for n in ("gpt2", "rope"))
    default, tiny_batch = TrainSettings(), TrainSettings(batch_size=1, block_size=512)
    kind = JobKind.of(gpt2, default, "cpu")
    first = TrainingQueue().paces.estimate(kind)  # nothing was ever trained here
    assert first.guess and first.source == GUESSED_PACE
    _cached_checkpoint(private_cache / "slow", gpt2, default, 9_000.0, "2026-11-01 10:00 UTC")
    _cached_checkpoint(private_cache / "quiet", gpt2, default, 12_000.0, "2026-11-02 10:00 UTC")
    _cached_checkpoint(private_cache / "other-kind", gpt2, tiny_batch, 47.0, "2026-11-20 09:00 UTC")
    _cached_checkpoint(private_cache / "gpu", gpt2, default, 90_000.0, "2026-11-21 09:00 UTC", "cuda")
    (private_cache / "broken").mkdir()
    (private_cache / "broken" / "meta.json").write_text("{}")
    paces = TrainingQueue().paces
    same = paces.estimate(kind)  # the fastest run of this kind: the one that had the machine to itself
    assert (same.tokens_per_second, same.guess) == (12_000.0, False) and "2026-11-02" in same.source
    assert paces.estimate(JobKind.of(gpt2, tiny_batch, "cpu")).tokens_per_second == 47.0
    assert paces.estimate(JobKind.of(gpt2, default, "cuda")).tokens_per_second == 90_000.0
    scaled = paces.estimate(JobKind.of(rope, default, "cpu"))  # never trained: scaled by size
    rope_kind = JobKind.of(rope, default, "cpu")
    assert scaled.guess and "a guess" in scaled.source
    assert scaled.tokens_per_second == pytest.approx(12_000.0 * kind.params / rope_kind.params)
    assert TrainingQueue(tokens_per_second=1000.0).paces.estimate(kind).tokens_per_second == 1000.0


def test_jobs_a_page_is_showing_run_before_jobs_nobody_looks_at(monkeypatch):
    import gpt2viz.training.jobs as jobs

    queue, started, release, order = TrainingQueue(tokens_per_second=1000.0), threading.Event(), threading.Event(), []
    running = queue.submit("a", "a", lambda cb: started.set() or release.wait(10) and order.append("a"),
                           tokens=1_000, waiter="s1")
    started.wait(10)
    abandoned = queue.submit("old", "old", lambda cb: order.append("old"), tokens=5_000, waiter="s1")
    clock = [jobs.time.monotonic()]
    monkeypatch.setattr(jobs.time, "monotonic", lambda: clock[0])
    clock[0] += jobs.WATCH_SECONDS + 1  # nobody has shown "old" since
    wanted = queue.submit("new", "new", lambda cb: order.append("new"), tokens=2_000, waiter="s2")
    assert queue.pending() == [running, wanted, abandoned]
    assert queue.ahead_of(wanted) == [running] and queue.jobs_of("s1") == [running, abandoned]
    assert queue.seconds_until_done(wanted) == pytest.approx(1.0 + 2.0)
    queue.watch(abandoned, "s1")  # its page shows it again: back in arrival order
    assert queue.pending() == [running, abandoned, wanted]
    clock[0] += jobs.WATCH_SECONDS + 1
    queue.watch(wanted, "s2")
    release.set()
    assert abandoned.done.wait(10) and wanted.done.is_set()
    assert order == ["a", "new", "old"]  # the abandoned job still completes, last
