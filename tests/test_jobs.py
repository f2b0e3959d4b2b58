"""The training queue: one job per model however many ask, in arrival order, progress and
errors handed to whoever waits, and a result that lands although nobody waits any more."""
import threading

from gpt2viz.jobs import TrainingQueue
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
