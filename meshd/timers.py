"""A coarse timer wheel for request deadlines: O(1) schedule and cancel, one loop timer per tick.

Every request arms at least one deadline (the route timeout) and almost always cancels it; a
``loop.call_later`` handle per request costs more than the rest of the bookkeeping. Deadlines here are
rounded *up* to the next ``resolution`` tick (10 ms), so a timeout fires no earlier than asked and at
most one tick late. Each tick's entries are a set: cancelling removes the entry at once, so a finished
request is not kept alive (nor walked by the cyclic collector) until its deadline would have come.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Any, Callable


class Timer:
    """A wheel entry. Anything hashable with ``callback`` (None once cancelled or fired) and ``fire()``
    may be one; it removes itself from its tick's set when cancelled."""

    __slots__ = ("callback", "slot")

    def __init__(self, callback: Callable[[], None], slot: set) -> None:
        self.callback: Callable[[], None] | None = callback
        self.slot = slot

    def cancel(self) -> None:
        self.callback = None
        self.slot.discard(self)

    def fire(self) -> None:
        callback, self.callback = self.callback, None
        callback()


class TimerWheel:
    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = 0.01) -> None:
        self.loop = loop
        self.resolution = resolution
        self._slots: dict[int, set[Any]] = {}
        self._ticks: list[int] = []
        self._next: int | None = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        slot = self.slot(delay)
        timer = Timer(callback, slot)
        slot.add(timer)
        return timer

    def slot(self, delay: float) -> set[Any]:
        """The set of entries due ``delay`` from now, for callers that arm many at once: add an entry to
        arm it; it discards itself to cancel (see :class:`Timer`)."""
        return self.slot_at(self.loop.time() + delay)

    def slot_at(self, when: float) -> set[Any]:
        """:meth:`slot` for a deadline on the loop's clock."""
        tick = int(when / self.resolution) + 1
        slot = self._slots.get(tick)
        if slot is None:
            slot = self._slots[tick] = set()
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
            slot = self._slots.pop(heapq.heappop(ticks))
            while slot:                       # a firing entry may cancel others of the same tick
                timer = slot.pop()
                if timer.callback is not None:
                    timer.fire()
        if ticks:
            self._next = ticks[0]
            self.loop.call_at(ticks[0] * self.resolution, self._run, ticks[0])

    def __len__(self) -> int:
        return sum(len(slot) for slot in self._slots.values())
