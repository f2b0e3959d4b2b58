"""Memory the machine can give us, and refusing work that would not fit before it starts."""
from __future__ import annotations

import os

import torch

# Leave room for the interpreter, the dashboard and whatever else shares the machine; on a
# GPU, for the CUDA context and the allocator's fragmentation.
USABLE_FRACTION = {"cpu": 0.7, "cuda": 0.9}


def available_memory_bytes(device="cpu") -> int:
    """Free memory where the work runs. CUDA: the GPU's free memory plus what this process's
    allocator holds unused; the CPU (and anything else): MemAvailable from /proc/meminfo on
    Linux, physical memory elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_shortfall(estimate_bytes: int, what: str, device="cpu") -> str | None:
    """Why `what` would not fit in `device`'s memory, or None when it fits."""
    kind = torch.device(device).type
    budget = int(available_memory_bytes(device) * USABLE_FRACTION.get(kind, USABLE_FRACTION["cpu"]))
    if estimate_bytes <= budget:
        return None
    where = "GPU" if kind == "cuda" else "machine"
    return (f"{what} needs an estimated {format_bytes(estimate_bytes)}, more than the "
            f"{format_bytes(budget)} this {where} can spare; make it smaller.")


def ensure_fits(estimate_bytes: int, what: str, device="cpu") -> None:
    """MemoryError, before anything is allocated, for work that would not fit on `device`."""
    problem = memory_shortfall(estimate_bytes, what, device)
    if problem:
        raise MemoryError(problem)


def training_threads() -> int:
    """The threads a training child uses: all cores but one, the other is the web server's and
    the page scripts'."""
    return max(1, (os.cpu_count() or 1) - 1)


def plural(n: int, noun: str) -> str:
    """'1 step', '2 steps': never '1 steps'."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def format_number(value: float) -> str:
    """Whole numbers in full (1,000,000 and 2,147,483,647, never 1e+06); others short (%g)."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:g}"


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def device() -> torch.device:
    """The one device choice: a CUDA GPU when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def parse_size(text: str) -> int:
    """'2G', '500M', '64K' (powers of 1024) or a plain number of bytes."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    plain = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = units.get(plain[-1:], 1)
    try:
        value = float(plain[:-1] if plain[-1:] in units else plain) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a size; write e.g. 2G, 500M or 1048576.") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{text!r} is not a positive size.")
    return int(value)
