"""Isolation slot (order 3000): block iff ``current concurrency + batch > threshold``.

G ``core/isolation/slot.go``; the snapshot is the resource's concurrency before this request.
"""

from __future__ import annotations

from typing import Sequence

from governance.base import MSG_ISOLATION, BlockError
from governance.isolation.rule_manager import IsolationController


def check_isolation(controllers: Sequence[IsolationController], resource: str, concurrency: int, batch: int) -> None:
    current = concurrency if concurrency >= 0 else 0
    for ctrl in controllers:
        if current + batch > ctrl.threshold:
            raise BlockError("isolation", resource, ctrl.rule, MSG_ISOLATION, current)
