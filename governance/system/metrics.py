"""System metrics providers: load, CPU usage and memory, read through an injectable port.

The engine never reads ``/proc`` on the request path by itself: it asks a provider, and the default
:class:`ProcSystemMetrics` re-samples at most once per second (like G's ``system_metric`` collector and
J's ``SystemStatusListener``, which sample every second in the background). Tests inject
:class:`StaticSystemMetrics` and set the values they need.

Unknown values are ``-1`` (G ``NotRetrievedLoadValue`` / ``NotRetrievedCpuUsageValue`` /
``NotRetrievedMemoryValue``): a load or CPU rule then never trips, a MemoryAdaptive rule uses its
low-memory threshold.
"""

from __future__ import annotations

import os
import time
from typing import Protocol

NOT_RETRIEVED = -1


class SystemMetrics(Protocol):
    def load(self) -> float: ...           # 1-minute load average
    def cpu_usage(self) -> float: ...      # whole-machine CPU usage in [0, 1]
    def memory_usage(self) -> int: ...     # this process's resident memory in bytes
    def total_memory(self) -> int | None: ...


class StaticSystemMetrics:
    """Values set by the caller (tests, or a process that samples on its own timer)."""

    def __init__(self, load: float = NOT_RETRIEVED, cpu_usage: float = NOT_RETRIEVED,
                 memory_usage: int = NOT_RETRIEVED, total_memory: int | None = None) -> None:
        self.load_value = load
        self.cpu_value = cpu_usage
        self.memory_value = memory_usage
        self.total_memory_value = total_memory

    def load(self) -> float:
        return self.load_value

    def cpu_usage(self) -> float:
        return self.cpu_value

    def memory_usage(self) -> int:
        return self.memory_value

    def total_memory(self) -> int | None:
        return self.total_memory_value

    def set(self, *, load: float | None = None, cpu_usage: float | None = None,
            memory_usage: int | None = None) -> None:
        if load is not None:
            self.load_value = load
        if cpu_usage is not None:
            self.cpu_value = cpu_usage
        if memory_usage is not None:
            self.memory_value = memory_usage


class ProcSystemMetrics:
    """Linux ``/proc`` sampling, refreshed lazily at most every ``interval`` seconds (monotonic)."""

    def __init__(self, interval: float = 1.0, proc: str = "/proc") -> None:
        self.interval = interval
        self.proc = proc
        self._sampled_at = -1e18
        self._load = float(NOT_RETRIEVED)
        self._cpu = float(NOT_RETRIEVED)
        self._memory = NOT_RETRIEVED
        self._cpu_prev: tuple[int, int] | None = None
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def refresh(self) -> None:
        self._sampled_at = time.monotonic()
        try:
            self._load = os.getloadavg()[0]
        except OSError:
            self._load = float(NOT_RETRIEVED)
        self._cpu = self._sample_cpu()
        self._memory = self._sample_memory()

    def _fresh(self) -> None:
        if time.monotonic() - self._sampled_at >= self.interval:
            self.refresh()

    def load(self) -> float:
        self._fresh()
        return self._load

    def cpu_usage(self) -> float:
        self._fresh()
        return self._cpu

    def memory_usage(self) -> int:
        self._fresh()
        return self._memory

    def total_memory(self) -> int | None:
        try:
            with open(os.path.join(self.proc, "meminfo"), encoding="ascii") as f:
                for line in f:
                    if line.startswith("MemTotal:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
        return None

    def _sample_cpu(self) -> float:
        try:
            with open(os.path.join(self.proc, "stat"), encoding="ascii") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return float(NOT_RETRIEVED)
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        total = sum(fields[:8])
        previous, self._cpu_prev = self._cpu_prev, (idle, total)
        if previous is None or total <= previous[1]:
            return float(NOT_RETRIEVED) if previous is None else self._cpu
        return 1.0 - (idle - previous[0]) / (total - previous[1])

    def _sample_memory(self) -> int:
        try:
            with open(os.path.join(self.proc, "self", "statm"), encoding="ascii") as f:
                return int(f.read().split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            return NOT_RETRIEVED
