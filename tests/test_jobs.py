"""The training queue: one job runs, a bounded line waits, one job per session, a budget cap."""
import threading

import pytest

from gpt2viz import ModelConfig
from gpt2viz.jobs import MAX_JOB_TOKENS, TrainingQueue, check_budget, job_tokens
from gpt2viz.serving import Refused
from gpt2viz.train import TrainSettings, train

TINY = ModelConfig(n_layer=1, n_head=2, d_model=16, max_seq_len=32)
TWO_STEPS = TrainSettings(steps=2, batch_size=2, block_size=16, eval_every=2, warmup_steps=1)


def test_a_job_past_the_bound_is_refused_and_the_others_finish(corpus):
    queue = TrainingQueue(max_waiting=1)
    first_running, release_first = threading.Event(), threading.Event()
    finished, order = {}, []

    def job(session, seed, hold=False):
        with queue.turn(session, job_tokens(TWO_STEPS)):
            order.append(session)
            if hold:
                first_running.set()
                assert release_first.wait(60)
            finished[session] = train(TINY, corpus, TWO_STEPS, seed=seed, use_cache=False)

    running = threading.Thread(target=job, args=("a", 0, True))
    running.start()
    assert first_running.wait(60)
    waiting = threading.Thread(target=job, args=("b", 1))
    waiting.start()
    while len(queue._jobs) < 2:  # b has joined the line
        threading.Event().wait(0.01)
    with pytest.raises(Refused, match=r"queue is full \(2 jobs\); the wait is about \d+ s"):
        with queue.turn("c", job_tokens(TWO_STEPS)):
            pass
    with pytest.raises(Refused, match="already have a training job"):
        with queue.turn("a", job_tokens(TWO_STEPS)):  # a second job from a busy session
            pass
    release_first.set()
    running.join(60), waiting.join(60)
    assert order == ["a", "b"] and set(finished) == {"a", "b"}
    assert all(len(r.history.steps) == 2 for r in finished.values())
    assert queue.wait_seconds() == 0 and not queue._jobs
    with queue.turn("c", 1):  # room again
        pass


def test_the_wait_counts_every_job_ahead_and_learns_the_pace():
    queue = TrainingQueue()
    queue.seconds_per_token = 0.001
    with queue.turn("a", 10_000):
        assert 9 < queue.wait_seconds() <= 10  # the running job's remaining share
    assert queue.seconds_per_token < 0.001  # that job was far quicker than estimated
    with pytest.raises(ZeroDivisionError):
        with queue.turn("b", 100):
            1 / 0
    assert not queue._jobs  # a failed job leaves the line


def test_the_budget_cap():
    check_budget(TrainSettings())  # the dashboard's default budget is fine
    assert job_tokens(TrainSettings()) * 4 == MAX_JOB_TOKENS
    with pytest.raises(Refused, match="one job may train at most"):
        check_budget(TrainSettings(steps=241 * 4))
