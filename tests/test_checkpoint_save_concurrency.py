"""Checkpoint saves with several real processes: one key saved at once by two, and a save
killed with SIGKILL (its staging folder is cleaned once stale, never while its writer lives)."""
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gpt2viz.core.staging import STALE_SECONDS, clean_stale
from gpt2viz.weights.checkpoint_cache import cache_entries
from gpt2viz.weights.checkpoints import load_checkpoint

pytestmark = pytest.mark.slow  # starts processes: out of the quick loop

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 8


def _save_rounds(root: str, seed: int, barrier) -> None:
    """One process: for each round, wait for the other, then both save the same key."""
    from conftest import tiny_model

    from gpt2viz.weights.checkpoints import save_checkpoint

    model = tiny_model(seed=seed, dtype=torch.float32)
    for i in range(ROUNDS):
        barrier.wait(timeout=60)
        save_checkpoint(Path(root) / f"key{i}", model, {"writer": seed})


def test_two_processes_saving_one_key_both_succeed(tmp_path):
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    writers = [spawn.Process(target=_save_rounds, args=(str(tmp_path), seed, barrier))
               for seed in (1, 2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
    assert [w.exitcode for w in writers] == [0, 0]  # neither collided on the rename
    for i in range(ROUNDS):
        model, meta = load_checkpoint(tmp_path / f"key{i}")  # whole, and one writer's
        assert meta["writer"] in (1, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"key{i}" for i in range(ROUNDS))


# A save that stops for good once its weights are half-written (the staging folder exists).
HANGING_SAVE = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{root!r}, {tests!r}]
    import gpt2viz.weights.checkpoints as checkpoints
    from conftest import tiny_model

    def stuck(weights, path):
        open(path, "wb").write(b"half")
        print("staging", flush=True)
        time.sleep(600)

    checkpoints.save_file = stuck
    checkpoints.save_checkpoint({folder!r}, tiny_model(), {{}})
""")


def _start_hanging_save(folder: Path) -> subprocess.Popen:
    script = HANGING_SAVE.format(root=str(ROOT), tests=str(ROOT / "tests"), folder=str(folder))
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "staging"
    return writer


def _staging_folders(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.name.startswith(".staging.")]


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_staging_left_by_a_killed_save_is_cleaned_once_stale(private_cache):
    writer = _start_hanging_save(private_cache / "key")
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    [left] = _staging_folders(private_cache)
    assert str(writer.pid) in left.name
    assert clean_stale(private_cache) == []  # young: a slow save might still be filling it
    _age(left, STALE_SECONDS + 60)
    assert cache_entries() == []  # listing the cache cleans it, and never lists it
    assert _staging_folders(private_cache) == []
    assert not (private_cache / "key").exists()


def test_a_live_writers_staging_folder_is_kept_however_old(private_cache):
    writer = _start_hanging_save(private_cache / "key")
    try:
        [staging] = _staging_folders(private_cache)
        _age(staging, STALE_SECONDS + 60)
        assert clean_stale(private_cache) == []
        assert staging.is_dir()
    finally:
        writer.kill()
        writer.wait()
