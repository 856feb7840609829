"""Hotspot slot (order 4000): check every rule whose argument is present; first block wins.

Returns the nanoseconds to wait (throttled values) and the concurrency controllers/values that the
stat side must count up when the whole chain passes (G ``ConcurrencyStatSlot.OnEntryPassed``) and down
on exit (``OnCompleted``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from governance.base import BlockError
from governance.hotspot.controller import HotspotController


def check_hotspot(controllers: Sequence[HotspotController], resource: str, args: Sequence[Any],
                  attachments: Mapping[Any, Any] | None, batch: int, now: int) -> tuple[int, list | None]:
    wait = 0
    held: list | None = None
    for ctrl in controllers:
        arg = ctrl.extract(args, attachments)
        if arg is None:
            continue
        for value in ctrl.values(arg):
            result = ctrl.check(value, batch, now)
            if result < 0:
                raise BlockError("hotspot", resource, ctrl.rule, ctrl.block_msg, ctrl.snapshot)
            wait += result
            if ctrl.concurrent:
                if held is None:
                    held = []
                held.append((ctrl, value))
    return wait, held


def acquire(held: list) -> list:
    """Count the held values up; returns the ones to count down on exit."""
    return [(ctrl, value) for ctrl, value in held if ctrl.acquire(value)]


def release(held: list) -> None:
    for ctrl, value in held:
        ctrl.release(value)
