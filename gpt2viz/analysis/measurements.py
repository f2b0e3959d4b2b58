"""Bench runs kept on disk, so a page shows the last measurement of the same settings at once,
labelled with when and where it was made; a run from another machine says so."""
from __future__ import annotations

import hashlib
import json
import platform
import statistics
from datetime import datetime, timezone

import torch

from gpt2viz.core.staging import write_json
from gpt2viz.weights.checkpoint_cache import cache_dir

FOLDER = "measurements"


def machine() -> str:
    """What a timing depends on: host, CPU model, threads torch uses, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return (f"{platform.node()} ({cpu}, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__})")


def _path(kind: str, settings: dict):
    payload = json.dumps([kind, settings], sort_keys=True, default=str)
    return cache_dir() / FOLDER / f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}.json"


def save(kind: str, settings: dict, rows: list[dict], repeats: int | None = None,
         seconds: float | None = None, estimated_seconds: float | None = None) -> dict:
    """Written whole (staging.write_json): a reader sees a whole run or none. seconds and
    the estimate made before the run feed estimate_factor."""
    record = {"kind": kind, "settings": settings, "rows": rows, "repeats": repeats, "machine": machine(),
              "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "seconds": seconds, "estimated_seconds": estimated_seconds}
    write_json(_path(kind, settings), record)
    return record


def load(kind: str, settings: dict) -> dict | None:
    """The stored run of these settings, or None (never measured, or unreadable)."""
    try:
        record = json.loads(_path(kind, settings).read_text())
        return record if isinstance(record.get("rows"), list) else None
    except (OSError, ValueError, AttributeError):
        return None


def estimate_factor(kind: str) -> tuple[float, int] | None:
    """(median of took / estimated, runs) over this kind's runs stored from this machine, or None
    before any: the up-front estimates are FLOP counts at fixed rates, and this says how far
    off they are here."""
    ratios = []
    for path in (cache_dir() / FOLDER).glob(f"{kind}-*.json"):
        try:
            record = json.loads(path.read_text())
            if record["machine"] == machine() and record["seconds"] and record["estimated_seconds"]:
                ratios.append(record["seconds"] / record["estimated_seconds"])
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
            continue
    return (statistics.median(ratios), len(ratios)) if ratios else None


def label(record: dict, just_now: bool = False) -> str:
    here = record["machine"] == machine()
    when = "just now" if just_now else f"on {record['when']}"
    where = "on this machine" if here else f"on another machine: {record['machine']}"
    return f"Measured {when} {where}" + (f" ({record['machine']})" if here else "") + "."
