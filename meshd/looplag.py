"""How late the event loop runs its callbacks: the measure of every stall, whatever caused it.

A :class:`LoopLagProbe` schedules itself every ``interval`` and records how much later than due it ran
(uvloop's timers have millisecond granularity, so up to about 1 ms of lateness is the timer's own).
A callback that held the loop for S ms delays the probe by up to S ms (by S minus up to one interval when
the stall began just after a probe), so an interval of 1 ms sees every stall over 1 ms, and the default
of 100 ms (ten callbacks a second, no measurable cost) sees the ones that matter for tail latency.

Exported on ``/stats/prometheus``: ``meshd_event_loop_lag_seconds`` (a histogram of every probe's lateness)
and ``meshd_event_loop_lag_max_seconds`` (the largest lateness since the previous scrape; reading it
starts a new window, so a benchmark scrapes before and after the moment it measures).
"""

from __future__ import annotations

import asyncio
import time
from typing import Iterator

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class LoopLagProbe:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.window_max = 0.0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._due = time.perf_counter() + self.interval
        self._handle = self._loop.call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        now = time.perf_counter()             # not loop.time(): uvloop's clock is cached per iteration, in ms
        lag = max(0.0, now - self._due)
        self.total += lag
        self.counts[next((i for i, b in enumerate(BUCKETS) if lag <= b), len(BUCKETS))] += 1
        if lag > self.window_max:
            self.window_max = lag
        self._due = now + self.interval
        self._handle = self._loop.call_later(self.interval, self._tick)

    def collect(self) -> Iterator:
        from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
        cumulative, buckets = 0, []
        for bound, n in zip((*map(str, BUCKETS), "+Inf"), self.counts):
            cumulative += n
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily("meshd_event_loop_lag_seconds", "How late the event loop ran its probe",
                                    buckets=buckets, sum_value=self.total)
        yield GaugeMetricFamily("meshd_event_loop_lag_max_seconds",
                                "Largest event-loop lag since the previous scrape", value=self.window_max)
        self.window_max = 0.0

    def describe(self) -> list:
        return []
