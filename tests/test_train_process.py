"""Training in a child process (gpt2viz.training.train_process): the same model as training in-process,
at a lower priority, cancellable without leaving anything on disk."""
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gpt2viz import PRESETS
from gpt2viz.core.config import TrainSettings
from gpt2viz.text.corpus import Corpus
from gpt2viz.training.jobs import TrainingCancelled
from gpt2viz.training.train import train
from gpt2viz.training.train_process import NICENESS, train_in_child, training_niceness
from gpt2viz.weights.checkpoint_cache import cache_entries, checkpoint_folder

pytestmark = pytest.mark.slow  # starts training processes: out of the quick loop

SETTINGS = TrainSettings(steps=4, eval_every=2)


@pytest.fixture(scope="module")
def corpus():
    return Corpus.default()


def _training_children_niceness() -> list[int]:
    """Niceness of this process's training children, from /proc (field 19 of stat)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"gpt2viz.training.train_process" in command:  # fields[1]: parent
            found.append(int(fields[16]))
    return found


def test_child_training_equals_in_process_training_and_runs_at_lower_priority(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))
    niceness, steps = [], []

    def watch(progress):
        steps.append(progress.step)
        niceness.extend(_training_children_niceness())

    child = train_in_child(PRESETS["rope"], corpus, SETTINGS, seed=5, callback=watch)
    here = train(PRESETS["rope"], corpus, SETTINGS, seed=5, use_cache=False)
    assert steps == [1, 2, 3, 4]
    assert niceness and set(niceness) == {max(os.nice(0), NICENESS)}
    idx = torch.randint(0, corpus.vocab.size, (2, 32), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(child.model(idx), here.model(idx), atol=1e-5, rtol=1e-5)
    assert child.history.val_loss == pytest.approx(here.history.val_loss, abs=1e-5)
    assert checkpoint_folder(PRESETS["rope"], corpus, SETTINGS, 5).is_dir()  # the child cached it


def test_training_runs_at_nice_10_or_lower_never_starved_below_its_peers():
    assert [training_niceness(parent) for parent in (0, 5, 10, 15)] == [10, 10, 10, 15]


def test_cancelling_stops_the_child_and_saves_nothing(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))

    def cancel_at_step_2(progress):
        if progress.step == 2:
            raise TrainingCancelled()

    with pytest.raises(TrainingCancelled):
        train_in_child(PRESETS["gpt2"], corpus, SETTINGS, seed=6, callback=cancel_at_step_2)
    assert cache_entries() == []
    assert not any(tmp_path.iterdir()), "no staging folder left behind"


def test_errors_in_the_child_reach_the_caller(corpus):
    with pytest.raises(ValueError, match="max_seq_len"):
        train_in_child(PRESETS["gpt2"], corpus, TrainSettings(block_size=4096), use_cache=False)


def test_a_task_model_trains_in_the_child_as_it_does_here(tmp_path, monkeypatch):
    """The Tasks page trains through the same child process: same seed, same weights, and the
    child wrote the cache."""
    from gpt2viz.analysis.task_models import (
        default_settings,
        task_checkpoint_folder,
        task_config,
        train_task,
        train_task_in_child,
    )
    from gpt2viz.analysis.tasks import make_task

    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))
    task = make_task("passkey", length=32)
    config = task_config(PRESETS["rope"], task)
    settings = replace(default_settings(task), steps=6, eval_every=3)
    steps = []
    child = train_task_in_child(config, task, settings, seed=3, callback=lambda p: steps.append(p.step))
    here = train_task(config, task, settings, seed=3, use_cache=False)
    assert steps[-1] == 6 and not child.from_cache
    ids = task.generate(4, seed=1).ids
    torch.testing.assert_close(child.model(ids), here.model(ids), atol=1e-5, rtol=1e-5)
    assert child.history.accuracy == pytest.approx(here.history.accuracy, abs=1e-6)
    assert task_checkpoint_folder(config, task, settings, 3).is_dir()
