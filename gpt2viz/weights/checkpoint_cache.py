"""The on-disk cache of trained (and dequantized pretrained) models: one folder per key.

Folders are written under a hidden staging name and renamed into place (gpt2viz/core/staging.py),
so a reader sees a whole checkpoint or none; listing the cache removes staging folders that a
killed writer left. The cache has a size cap (GPT2VIZ_CACHE_MAX): past it the least
recently used folders go, never one that this process is reading or writing.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from gpt2viz.core.config import ModelConfig, TrainSettings
from gpt2viz.core.resources import parse_size
from gpt2viz.core.staging import clean_stale, hidden_prefix
from gpt2viz.text.corpus import Corpus
from gpt2viz.weights.checkpoints import CheckpointError, load_checkpoint


def cache_dir() -> Path:
    return Path(os.environ.get("GPT2VIZ_CACHE", Path.home() / ".cache" / "gpt2viz"))


DEFAULT_CACHE_MAX = 2 * 1024**3  # a laptop's worth; a default preset's checkpoint is 6 MB
_in_use: Counter = Counter()     # folder -> readers and writers in this process
_in_use_lock = threading.Lock()


def cache_max_bytes() -> int:
    text = os.environ.get("GPT2VIZ_CACHE_MAX", "").strip()
    if not text:
        return DEFAULT_CACHE_MAX
    try:
        return parse_size(text)
    except ValueError as err:
        raise ValueError(f"GPT2VIZ_CACHE_MAX: {err}") from None


@contextlib.contextmanager
def checkpoint_in_use(folder: Path):
    """While held, eviction and clear_cache() leave `folder` alone."""
    with _in_use_lock:
        _in_use[folder] += 1
    try:
        yield folder
    finally:
        with _in_use_lock:
            _in_use[folder] -= 1
            if not _in_use[folder]:
                del _in_use[folder]


@dataclass
class CacheEntry:
    folder: Path
    bytes: int
    last_used: float  # the folder's mtime: written, or touched when loaded


def cache_entries() -> list[CacheEntry]:
    """Finished checkpoints, least recently used first. Hidden folders are being written
    (save_checkpoint's staging) or removed: they are not entries; stale ones are removed."""
    entries = []
    root = cache_dir()
    clean_stale(root)
    for folder in (root.iterdir() if root.is_dir() else []):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            entries.append(CacheEntry(folder, size, folder.stat().st_mtime))
        except OSError:
            continue  # removed while we looked
    return sorted(entries, key=lambda e: e.last_used)


def evict(max_bytes: int | None = None) -> list[Path]:
    """Remove least recently used checkpoints until the cache fits in max_bytes (default the
    cap); checkpoints in use are skipped, so the cache may stay over a cap smaller than them."""
    max_bytes = cache_max_bytes() if max_bytes is None else max_bytes
    entries = cache_entries()
    total, removed = sum(e.bytes for e in entries), []
    for entry in entries:
        if total <= max_bytes:
            break
        if remove_unless_in_use(entry.folder):
            total -= entry.bytes
            removed.append(entry.folder)
    return removed


def clear_cache() -> list[Path]:
    return evict(max_bytes=0)


def remove_unless_in_use(folder: Path) -> bool:
    """Rename out of sight first, so a reader sees the whole checkpoint or none of it."""
    with _in_use_lock:
        if _in_use[folder]:
            return False
        hidden = folder.with_name(hidden_prefix(folder, "removing") + uuid.uuid4().hex[:8])
        try:
            os.rename(folder, hidden)
        except OSError:
            return False  # gone already, or another process is removing it
    shutil.rmtree(hidden, ignore_errors=True)
    return True


# TrainSettings fields added after checkpoints were cached: left out of the key while at
# their default, so every checkpoint trained before they existed keeps its key.
LATER_SETTINGS = ("precision",)


def cache_key(config: ModelConfig, corpus: Corpus, settings: TrainSettings, seed: int) -> str:
    defaults = TrainSettings()
    keyed = {name: value for name, value in asdict(settings).items()
             if name not in LATER_SETTINGS or value != getattr(defaults, name)}
    payload = json.dumps([config.to_dict(), corpus.sha256, keyed, seed], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def checkpoint_folder(config: ModelConfig, corpus: Corpus, settings: TrainSettings, seed: int) -> Path:
    """Where train() keeps this model; config's vocab_size is replaced as train() does."""
    config = config.replace(vocab_size=corpus.vocab.size)
    return cache_dir() / cache_key(config, corpus, settings, seed)


def read_cached(folder: Path):
    """(model, meta) of a cache folder, marked most recently used; None when it is not there
    or cannot be read (the caller retrains and replaces it)."""
    if not folder.is_dir():
        return None
    with checkpoint_in_use(folder):
        try:
            loaded = load_checkpoint(folder)
            os.utime(folder)  # most recently used
            return loaded
        except (CheckpointError, OSError):
            return None
