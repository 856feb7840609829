"""Clocks for the governance engine.

Every decision in :mod:`governance` reads time from one injected clock, exactly like sentinel-golang's
``util.SetClock(NewMockClock())`` and Sentinel Java's ``AbstractTimeBasedTest``. The clock answers one
question, ``now_ns()``: wall-clock nanoseconds since the Unix epoch. Milliseconds (window buckets, breaker
retry timestamps, hotspot token buckets) are ``now_ns() // 1_000_000``; the uniform-spacing (throttling)
controllers use the nanoseconds directly, as sentinel-golang does.

* :class:`RealClock` is the default: ``time.time_ns`` (wall clock, like Go's ``CurrentTimeNano``).
* :class:`ManualClock` is for tests: time moves only when the test calls :meth:`ManualClock.advance` or
  :meth:`ManualClock.set`, so every window, warm-up curve and breaker timeout is deterministic.
"""

from __future__ import annotations

import time
from typing import Protocol

NS_PER_MS = 1_000_000


class Clock(Protocol):
    """What the engine needs from a clock: wall-clock nanoseconds since the epoch."""

    def now_ns(self) -> int: ...


class RealClock:
    """The process wall clock (``time.time_ns``)."""

    __slots__ = ()

    now_ns = staticmethod(time.time_ns)

    def now_ms(self) -> int:
        return time.time_ns() // NS_PER_MS

    def __repr__(self) -> str:
        return "RealClock()"


class ManualClock:
    """A clock that stands still until told to move.

    ``ManualClock(now_ms=1_700_000_000_000)`` starts at that wall-clock millisecond. ``advance(ms)`` moves
    forward (fractions of a millisecond are kept, as nanoseconds); ``set(ms)`` jumps to an absolute time
    (backwards too, so tests can exercise clock skew).
    """

    __slots__ = ("_ns",)

    def __init__(self, now_ms: int | float = 0) -> None:
        self._ns = _ms_to_ns(now_ms)

    def now_ns(self) -> int:
        return self._ns

    def now_ms(self) -> int:
        return self._ns // NS_PER_MS

    def advance(self, ms: int | float) -> None:
        if ms < 0:
            raise ValueError(f"ManualClock.advance: ms must be >= 0, got {ms!r} (use set() to go back)")
        self._ns += _ms_to_ns(ms)

    def set(self, ms: int | float) -> None:
        self._ns = _ms_to_ns(ms)

    def __repr__(self) -> str:
        return f"ManualClock(now_ms={self._ns / NS_PER_MS:g})"


def _ms_to_ns(ms: int | float) -> int:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)):
        raise TypeError(f"milliseconds must be a number, got {type(ms).__name__}")
    if isinstance(ms, int):
        return ms * NS_PER_MS
    return round(ms * NS_PER_MS)
