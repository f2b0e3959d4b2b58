"""The checkpoint cache stays under its cap: least recently used first, never a checkpoint in
use or being written. Real (tiny) trainings, real files."""
import os
import time

import pytest

from gpt2viz import ModelConfig
from gpt2viz.core.config import TrainSettings
from gpt2viz.core.resources import parse_size
from gpt2viz.training.train import train
from gpt2viz.weights.checkpoint_cache import (
    cache_entries,
    cache_max_bytes,
    checkpoint_folder,
    checkpoint_in_use,
    clear_cache,
)

TINY = ModelConfig(n_layer=1, n_head=2, d_model=16, max_seq_len=32)
TWO_STEPS = TrainSettings(steps=2, batch_size=2, block_size=16, eval_every=2, warmup_steps=1)
pytestmark = pytest.mark.usefixtures("private_cache")


def folder_bytes(folder):
    return sum(f.stat().st_size for f in folder.iterdir())


def train_seeds(corpus, seeds):
    folders = []
    for seed in seeds:
        train(TINY, corpus, TWO_STEPS, seed=seed)
        folders.append(checkpoint_folder(TINY, corpus, TWO_STEPS, seed))
        time.sleep(0.01)  # distinct modification times: the order of use is the order trained
    return folders


@pytest.mark.slow
def test_trainings_past_the_cap_evict_the_oldest_and_the_newest_load(corpus, monkeypatch):
    one = folder_bytes(train_seeds(corpus, [0])[0])
    cap = int(2.5 * one)  # room for two checkpoints
    monkeypatch.setenv("GPT2VIZ_CACHE_MAX", str(cap))
    folders = [checkpoint_folder(TINY, corpus, TWO_STEPS, 0)] + train_seeds(corpus, [1, 2, 3])
    assert sum(e.bytes for e in cache_entries()) <= cap
    assert [f.exists() for f in folders] == [False, False, True, True]
    for seed in (2, 3):
        assert train(TINY, corpus, TWO_STEPS, seed=seed).from_cache


@pytest.mark.slow
def test_a_checkpoint_used_recently_outlives_an_older_unused_one(corpus, monkeypatch):
    first, second = train_seeds(corpus, [0, 1])
    monkeypatch.setenv("GPT2VIZ_CACHE_MAX", str(int(2.5 * folder_bytes(first))))
    assert train(TINY, corpus, TWO_STEPS, seed=0).from_cache  # loading counts as use
    time.sleep(0.01)
    (third,) = train_seeds(corpus, [2])
    assert first.exists() and not second.exists() and third.exists()


@pytest.mark.slow
def test_in_use_and_half_written_checkpoints_are_never_removed(corpus, private_cache, monkeypatch):
    first, second = train_seeds(corpus, [0, 1])
    staging = private_cache / ".half-written.abc"  # what save_checkpoint writes before renaming
    staging.mkdir()
    (staging / "model.safetensors").write_bytes(b"\0" * 100)
    monkeypatch.setenv("GPT2VIZ_CACHE_MAX", "1")  # smaller than any checkpoint
    with checkpoint_in_use(first):
        train_seeds(corpus, [2])
        assert first.exists() and not second.exists()
        assert clear_cache() and first.exists() and staging.exists()
    newest = checkpoint_folder(TINY, corpus, TWO_STEPS, 2)
    assert not newest.exists()  # cleared: nothing held it any more
    assert [e.folder for e in cache_entries()] == [first]  # staging is no entry
    assert clear_cache() == [first] and sum(e.bytes for e in cache_entries()) == 0 and staging.exists()


@pytest.mark.slow
def test_an_unreadable_entry_is_retrained_and_replaced(corpus):
    (folder,) = train_seeds(corpus, [0])
    (folder / "meta.json").write_text("{broken")
    assert not train(TINY, corpus, TWO_STEPS, seed=0).from_cache
    assert train(TINY, corpus, TWO_STEPS, seed=0).from_cache


def test_the_cap_setting(monkeypatch):
    assert cache_max_bytes() == 2 * 1024**3
    monkeypatch.setenv("GPT2VIZ_CACHE_MAX", "500M")
    assert cache_max_bytes() == 500 * 1024**2
    assert parse_size("1.5G") == 3 * 1024**3 // 2 and parse_size("64KiB") == 65536
    for bad in ("lots", "-1G", "0"):
        monkeypatch.setenv("GPT2VIZ_CACHE_MAX", bad)
        with pytest.raises(ValueError, match="GPT2VIZ_CACHE_MAX"):
            cache_max_bytes()


def test_a_bad_cap_refuses_before_training_and_caches_nothing(corpus, private_cache, monkeypatch):
    monkeypatch.setenv("GPT2VIZ_CACHE_MAX", "a lot")
    with pytest.raises(ValueError, match="not a size"):
        train(TINY, corpus, TWO_STEPS, seed=0)
    assert not private_cache.exists() or not os.listdir(private_cache)
