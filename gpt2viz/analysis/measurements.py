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


def machine(device: str = "cpu") -> str:
    """What a timing depends on: host, CPU model, threads torch uses, torch version, and the
    GPU when the run was on one."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    where = f"{platform.node()} ({cpu}, {torch.get_num_threads()} threads, torch {torch.__version__})"
    if torch.device(device).type == "cuda":
        where += " on " + (torch.cuda.get_device_name(torch.device(device))
                           if torch.cuda.is_available() else "a CUDA device not present now")
    return where


def _device(settings: dict) -> str:
    """The device a run's settings name (the Latency page's runs all do), else the CPU."""
    return str(settings.get("device", "cpu")) if isinstance(settings, dict) else "cpu"


def _path(kind: str, settings: dict):
    payload = json.dumps([kind, settings], sort_keys=True, default=str)
    return cache_dir() / FOLDER / f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}.json"


def save(kind: str, settings: dict, rows: list[dict], repeats: int | None = None,
         seconds: float | None = None, estimated_seconds: float | None = None) -> dict:
    """Written whole (staging.write_json): a reader sees a whole run or none. seconds and
    the estimate made before the run feed estimate_factor."""
    record = {"kind": kind, "settings": settings, "rows": rows, "repeats": repeats,
              "machine": machine(_device(settings)),
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


def estimate_factor(kind: str, device: str = "cpu") -> tuple[float, int] | None:
    """(median of took / estimated, runs) over this kind's runs stored from this machine and
    device, or None before any: the up-front estimates are FLOP counts at a device kind's
    fixed rates (bench.estimate_rates), and this says how far off they are here."""
    ratios, here = [], machine(device)
    for path in (cache_dir() / FOLDER).glob(f"{kind}-*.json"):
        try:
            record = json.loads(path.read_text())
            if record["machine"] == here and record["seconds"] and record["estimated_seconds"]:
                ratios.append(record["seconds"] / record["estimated_seconds"])
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
            continue
    return (statistics.median(ratios), len(ratios)) if ratios else None


def label(record: dict, just_now: bool = False) -> str:
    here = record["machine"] == machine(_device(record.get("settings")))
    when = "just now" if just_now else f"on {record['when']}"
    where = "on this machine" if here else f"on another machine: {record['machine']}"
    return f"Measured {when} {where}" + (f" ({record['machine']})" if here else "") + "."
