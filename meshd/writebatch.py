"""Write coalescing: one ``transport.write`` per transport per batch of events.

Each write to a loopback socket whose reader sleeps costs a wake-up of another CPU (tens of µs in a VM),
far more than the Python around it. While a protocol handles one ``data_received`` it may write several
times to the same transports (response head, body, last chunk; request head and body). Handlers wrap
their work in :func:`begin` / :func:`end`; writes made in between are queued per transport, in order, and
written once at the outermost ``end``. Outside a batch (timers, callbacks) writes go straight through.

A running meshd goes one step further (:func:`defer`): queued writes wait for the end of the event-loop
iteration, so that what all the reads of one iteration produced is written back to back. The peers (a
load of clients, the providers) then wake once per iteration instead of once per write, which is most
of the kernel's cost per request on this path (bench/RESULTS.md). Every write then waits at most for the
rest of its iteration's callbacks.

``epoch`` counts outermost batches, so code may keep a choice for the rest of one batch (the multiplexed
pool sends all requests of one read down one connection: one write instead of one per connection).

The event loop is single-threaded, so the queue is module state.
"""

from __future__ import annotations

import asyncio
from typing import Any

_depth = 0
_pending: dict[Any, list[bytes]] = {}
epoch = 0
_deferred = False                     # writes wait for the end of the loop iteration (see defer)
_scheduled = False


def defer(on: bool) -> None:
    """Hold writes until the end of the running loop's iteration (``on``), or write them at the end of
    each batch (the default, for code that drives protocols without a running loop)."""
    global _deferred, _scheduled
    flush()
    _deferred = on
    _scheduled = False                # a flush scheduled on a loop that is gone must not hold writes back


def begin() -> None:
    global _depth, epoch
    if not _depth:
        epoch += 1
        if _deferred and not _scheduled:
            _schedule()
    _depth += 1


def end() -> None:
    global _depth
    _depth -= 1
    if _depth == 0 and _pending and not (_deferred and _scheduled):
        flush()


def flush() -> None:
    # transport.write never calls back into this module synchronously, so iterating in place is safe
    for transport, parts in _pending.items():
        if not transport.is_closing():
            transport.write(parts[0] if len(parts) == 1 else b"".join(parts))
    _pending.clear()


def write(transport: Any, data: bytes) -> None:
    parts = _pending.get(transport)
    if parts is not None:
        parts.append(data)
    elif _depth or (_deferred and (_scheduled or _schedule())):
        _pending[transport] = [data]
    else:
        transport.write(data)


def close(transport: Any) -> None:
    """Close after whatever this batch queued for ``transport`` has been written."""
    parts = _pending.pop(transport, None)
    if parts and not transport.is_closing():
        transport.write(b"".join(parts))
    transport.close()


def _schedule() -> bool:
    """Flush at the end of this loop iteration; False when no loop runs (then nothing waits)."""
    global _scheduled
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    _scheduled = True
    loop.call_soon(_run)
    return True


def _run() -> None:
    global _scheduled
    _scheduled = False
    flush()
