"""Folders (and small JSON files) that appear whole or not at all, even with several processes
and a kill -9.

A writer fills a hidden staging folder named for its process id (".staging.<pid>.<name>.<random>")
and renames it into place only if the target is absent: folders here are content-keyed (the
cache key or the text's hash), so when another process got there first with a whole folder,
ours is the same thing and is dropped. A writer killed mid-save leaves its staging folder;
`clean_stale` removes those whose writer is gone, once they are old enough that no live save
can still be filling them.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

STALE_SECONDS = 600  # no save takes this long; a staging folder older than this is abandoned
PID_REUSE_SECONDS = 86400  # past a day a "live" writer is another process that reused the pid
PREFIXES = (".staging.", ".removing.")


def hidden_prefix(folder: Path, purpose: str) -> str:
    """A name beside `folder`, out of sight of cache listings, that says which process owns it."""
    return f".{purpose}.{os.getpid()}.{folder.name}."


def write_whole(folder: Path, write: Callable[[Path], None], is_whole: Callable[[Path], bool]) -> Path:
    """write(staging) fills a new folder, which then becomes `folder` unless a whole `folder`
    is already there (then ours is dropped). Nothing half-written survives a failure."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=hidden_prefix(folder, "staging"), dir=folder.parent))
    try:
        write(staging)
        for _ in range(2):  # a second try if the folder we collided with was removed meanwhile
            try:
                os.rename(staging, folder)  # atomic; refuses a non-empty target
                return folder
            except OSError:
                if is_whole(folder):
                    return folder  # another writer saved the same key first
                if folder.exists():
                    raise FileExistsError(f"{folder} exists and is not a whole folder of this "
                                          f"kind; remove it and save again.") from None
        raise FileExistsError(f"{folder} could not be renamed into place; save again.")
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the rename happened


def write_json(path: Path, value) -> None:
    """value as JSON in `path`, replacing it whole: written to a hidden file beside it and
    renamed over it, so a reader sees the old file or the new one; a failure leaves neither a
    half-written file nor the hidden one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as out:
            json.dump(value, out)
        os.replace(staging, path)
    except BaseException:
        os.unlink(staging)
        raise


def _writer_alive(name: str) -> bool:
    try:
        os.kill(int(name.split(".")[2]), 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False  # no pid in the name, or that process is gone
    except PermissionError:
        pass  # a process of another user: alive
    return True


def clean_stale(root: Path, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove staging (and half-removed) folders older than max_age whose writer is gone."""
    removed = []
    for path in (Path(root).iterdir() if Path(root).is_dir() else []):
        if not path.name.startswith(PREFIXES) or not path.is_dir():
            continue
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            continue  # renamed or removed while we looked
        if age > max_age and (age > PID_REUSE_SECONDS or not _writer_alive(path.name)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
