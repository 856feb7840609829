"""Write coalescing: one ``transport.write`` per transport per batch of events.

Each write to a loopback socket whose reader sleeps costs a wake-up of another CPU (tens of µs in a VM),
far more than the Python around it. While a protocol handles one ``data_received`` it may write several
times to the same transports (response head, body, last chunk; request head and body). Handlers wrap
their work in :func:`begin` / :func:`end`; writes made in between are queued per transport, in order, and
written once at the outermost ``end``. Outside a batch (timers, callbacks) writes go straight through.

``epoch`` counts outermost batches, so code may keep a choice for the rest of one batch (the multiplexed
pool sends all requests of one read down one connection: one write instead of one per connection).

The event loop is single-threaded, so the queue is module state.
"""

from __future__ import annotations

from typing import Any

_depth = 0
_pending: dict[Any, list[bytes]] = {}
epoch = 0


def begin() -> None:
    global _depth, epoch
    if not _depth:
        epoch += 1
    _depth += 1


def end() -> None:
    global _depth
    _depth -= 1
    if _depth == 0 and _pending:
        flush()


def flush() -> None:
    # transport.write never calls back into this module synchronously, so iterating in place is safe
    for transport, parts in _pending.items():
        if not transport.is_closing():
            transport.write(parts[0] if len(parts) == 1 else b"".join(parts))
    _pending.clear()


def write(transport: Any, data: bytes) -> None:
    if _depth:
        parts = _pending.get(transport)
        if parts is None:
            _pending[transport] = [data]
        else:
            parts.append(data)
    else:
        transport.write(data)


def close(transport: Any) -> None:
    """Close after whatever this batch queued for ``transport`` has been written."""
    parts = _pending.pop(transport, None)
    if parts and not transport.is_closing():
        transport.write(b"".join(parts))
    transport.close()
