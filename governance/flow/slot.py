"""Flow slot (order 2000): run a resource's flow controllers in order; first block wins.

G ``core/flow/slot.go`` sleeps inside the slot when a throttling controller says "wait", then checks the
next controller. The engine never sleeps: waits are summed into ``Entry.wait_ms`` and each later
controller is asked at ``now + waits so far``, which is what the later check would have seen after the
sleep. Window reads keep using the entry time.

The stat side (G ``StandaloneStatSlot``) adds the batch to every standalone window of the resource's
rules when the entry passes the whole chain.
"""

from __future__ import annotations

from typing import Sequence

from governance.base import BlockError
from governance.flow.controller import FlowController


def check_flow(controllers: Sequence[FlowController], resource: str, now: int, now_ns: int, batch: int,
               origin: str) -> int:
    """Nanoseconds to wait before sending (0 = now); raises :class:`BlockError` on a block."""
    wait = 0
    for ctrl in controllers:
        result = ctrl.check(now, now_ns + wait, batch, origin)
        if result:
            if result < 0:
                raise BlockError("flow", resource, ctrl.rule, ctrl.block_msg, ctrl.snapshot)
            wait += result
    return wait


def standalone_counters(controllers: Sequence[FlowController]) -> tuple:
    """The standalone windows the stat side must feed on every pass."""
    return tuple(c.standalone for c in controllers if c.standalone is not None)
