"""dashboard/background.py's shelf without a page: work runs once per key for everyone who
asks, reports how far it is, stops when the last waiter cancels, and keeps nothing then."""
import threading

from gpt2viz.dashboard.background import Cancelled, WorkShelf


def test_work_runs_once_per_key_and_keeps_its_result():
    shelf, calls, release = WorkShelf(), [], threading.Event()

    def run(report):
        calls.append(1)
        report(1, 2, "half")
        release.wait(10)
        return 42

    first = shelf.start("k", "sum", run, waiter="a")
    second = shelf.start("k", "sum", run, waiter="b")  # joins the running one
    assert first is second
    release.set()
    assert first.done.wait(10) and first.result == 42 and first.error is None
    assert calls == [1] and shelf.start("k", "sum", run, waiter="c").result == 42  # kept, not rerun
    assert first.asked == {"a", "b", "c"}


def test_cancel_stops_at_the_next_report_only_when_nobody_waits():
    shelf, reported = WorkShelf(), threading.Event()

    def run(report):
        for step in range(10_000):
            report(step, 10_000, f"step {step}")
            reported.set()
            threading.Event().wait(0.001)
        return "finished"

    work = shelf.start("k", "loop", run, waiter="a")
    shelf.start("k", "loop", run, waiter="b")
    assert reported.wait(10)
    shelf.cancel(work, "a")  # b still waits: it goes on
    assert not work.cancelled.is_set() and not work.done.wait(0.05)
    fraction, text = work.progress()
    assert 0 < fraction < 1 and text.startswith("step ")
    shelf.cancel(work, "b")
    assert work.done.wait(10) and isinstance(work.error, Cancelled) and work.result is None
    again = shelf.start("k", "loop", lambda report: "new", waiter="a")  # a cancelled run starts afresh
    assert again is not work and again.done.wait(10) and again.result == "new"


def test_a_failure_is_kept_as_its_error_and_the_next_start_tries_again():
    shelf = WorkShelf()
    failed = shelf.start("k", "x", lambda report: 1 / 0)
    assert failed.done.wait(10) and isinstance(failed.error, ZeroDivisionError)
    retried = shelf.start("k", "x", lambda report: "ok")
    assert retried.done.wait(10) and retried.result == "ok"


def test_work_that_cannot_report_shows_progress_by_elapsed_time():
    shelf, release = WorkShelf(), threading.Event()
    work = shelf.start("load", "Loading", lambda report: release.wait(10), expected_s=1000.0,
                       cancellable=False)
    fraction, text = work.progress()
    assert 0 <= fraction < 0.01 and "about 1000 s in all" in text
    release.set()
    assert work.done.wait(10)
