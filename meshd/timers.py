"""A coarse timer wheel for request deadlines: O(1) schedule and cancel, one loop timer per tick.

Every request arms at least one deadline (the route timeout) and almost always cancels it; a
``loop.call_later`` handle per request costs more than the rest of the bookkeeping. Deadlines here are
rounded *up* to the next ``resolution`` tick (10 ms), so a timeout fires no earlier than asked and at
most one tick late. Cancelling just clears the entry; the tick skips it.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Callable


class Timer:
    """A wheel entry. Anything with ``callback`` (None once cancelled or fired) and ``fire()`` may be one."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None

    def fire(self) -> None:
        callback, self.callback = self.callback, None
        callback()


class TimerWheel:
    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = 0.01) -> None:
        self.loop = loop
        self.resolution = resolution
        self._slots: dict[int, list[Timer]] = {}
        self._ticks: list[int] = []
        self._next: int | None = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(callback)
        self.slot(delay).append(timer)
        return timer

    def slot(self, delay: float) -> list[Timer]:
        """The list of entries due ``delay`` from now, for callers that arm many at once: append one to
        arm it (see :class:`Timer`)."""
        tick = int((self.loop.time() + delay) / self.resolution) + 1
        slot = self._slots.get(tick)
        if slot is None:
            slot = self._slots[tick] = []
            heapq.heappush(self._ticks, tick)
            if self._next is None or tick < self._next:
                self._next = tick
                self.loop.call_at(tick * self.resolution, self._run, tick)
        return slot

    def _run(self, tick: int) -> None:
        if tick != self._next:
            return                            # superseded by an earlier tick that already ran
        self._next = None
        now = int(self.loop.time() / self.resolution)
        ticks = self._ticks
        while ticks and ticks[0] <= max(now, tick):
            for timer in self._slots.pop(heapq.heappop(ticks)):
                if timer.callback is not None:
                    timer.fire()
        if ticks:
            self._next = ticks[0]
            self.loop.call_at(ticks[0] * self.resolution, self._run, ticks[0])

    def __len__(self) -> int:
        return sum(1 for slot in self._slots.values() for t in slot if t.callback is not None)
