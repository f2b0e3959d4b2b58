"""Memory the machine can give us, and refusing work that would not fit before it starts."""
from __future__ import annotations

import os

import torch

# Leave room for the interpreter, the dashboard and whatever else shares the machine.
USABLE_FRACTION = 0.7


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo on Linux; physical memory elsewhere."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def ensure_fits(estimate_bytes: int, what: str) -> None:
    budget = int(available_memory_bytes() * USABLE_FRACTION)
    if estimate_bytes > budget:
        raise MemoryError(
            f"{what} needs an estimated {format_bytes(estimate_bytes)}, more than the "
            f"{format_bytes(budget)} this machine can spare; make it smaller.")


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def device() -> torch.device:
    """The one device choice: a CUDA GPU when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
