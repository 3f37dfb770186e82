"""How many threads llama.cpp gets: the configured number, or (0) the cores that are idle right now.

llama.cpp's threads spin-wait for each other at every layer. When another process holds a core, the
thread on it is descheduled and every other thread spins until it runs again: with 2 threads on 2 busy
cores generation slows ~9x, far more than the load explains. Asking only for idle cores avoids that.
"""

from __future__ import annotations

import os
import time


def _busy_idle() -> tuple[int, int]:
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, idle


def idle_cores(sample_s: float = 0.2) -> float:
    """Cores idle over a short sample of /proc/stat; all of them where it cannot be read (not Linux)."""
    cores = os.cpu_count() or 1
    try:
        busy0, idle0 = _busy_idle()
        time.sleep(sample_s)
        busy1, idle1 = _busy_idle()
    except (OSError, ValueError, IndexError):
        return float(cores)
    total = (busy1 - busy0) + (idle1 - idle0)
    return cores * (idle1 - idle0) / total if total > 0 else float(cores)


def pick(configured: int) -> int:
    """configured when it is set (> 0); else the idle cores, rounded, at least 1."""
    if configured > 0:
        return configured
    return max(1, min(os.cpu_count() or 1, round(idle_cores())))
