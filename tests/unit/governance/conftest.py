"""Fixtures for the governance engine tests: a manual clock, static system metrics, an engine.

Every test drives time explicitly (``clock.advance(ms)``); nothing sleeps and no timing is asserted.
The start time is aligned to a 10 s boundary so window arithmetic in the tests is easy to follow.
"""

from __future__ import annotations

import pytest

from governance import ManualClock, Sentinel, StaticSystemMetrics

from gov_helpers import T0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now_ms=T0)


@pytest.fixture
def metrics() -> StaticSystemMetrics:
    return StaticSystemMetrics(total_memory=16 * 1024**3)


@pytest.fixture
def engine(clock: ManualClock, metrics: StaticSystemMetrics) -> Sentinel:
    return Sentinel(clock=clock, system_metrics=metrics)
