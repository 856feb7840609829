"""One Bolt connection to a SOFARegistry session server: calls with answers, pushes, heartbeats (asyncio).

What sofa-bolt's ``RpcClient`` does for the Java client, on the daemon's codecs (:class:`discovery.wire.BoltWire`):
requests carry increasing ids and wait for the response with that id; the server's requests (``ReceivedData``
pushes) go to ``on_request``, whose answer is sent back; the server's heartbeats are acknowledged; an idle
connection is probed with a heartbeat every ``heartbeat_interval`` and closed when ``heartbeat_misses`` probes go
unanswered (Bolt's client: 15 s, 3). A stream that cannot be framed closes the connection; a frame whose content
cannot be read is answered (or dropped) on its own and costs nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from discovery.wire import BoltMessage, BoltWire

log = logging.getLogger("discovery.sofaregistry")

#: Bolt response statuses (``com.alipay.remoting.ResponseStatus``) the client answers with.
STATUS_SUCCESS = 0x0000
STATUS_NO_PROCESSOR = 0x0006
STATUS_SERVER_DESERIAL_EXCEPTION = 0x0012


class SessionConnection(asyncio.Protocol):
    """See the module docstring. ``on_request(message)`` returns ``(value, status)`` to answer with."""

    def __init__(self, wire: BoltWire, on_request: Callable[[BoltMessage], tuple[Any, int]], *,
                 max_frame_size: int = 8 << 20, heartbeat_interval: float = 15.0, heartbeat_misses: int = 3,
                 label: str = "") -> None:
        self.wire = wire
        self.on_request = on_request
        self.decoder = wire.decoder(max_frame_size)
        self.heartbeat_interval, self.heartbeat_misses = heartbeat_interval, heartbeat_misses
        self.label = label
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future = asyncio.get_running_loop().create_future()
        self.close_reason = ""
        self._pending: dict[int, asyncio.Future] = {}
        self._next_id = 0
        self._missed = 0
        self._read = False
        self._probe: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._read, self._missed = True, 0
        for message in self.decoder.feed(data):
            kind = message.kind
            if kind == "broken":
                self.close(f"unreadable stream from the server: {message.error}")
                return
            if kind in ("response", "heartbeat_ack"):
                future = self._pending.pop(message.request_id, None)
                if future is not None and not future.done():
                    future.set_result(message)
            elif kind == "heartbeat":
                self._write(self.wire.heartbeat_ack(message.request_id))
            else:
                try:
                    value, status = self.on_request(message)
                except Exception:   # noqa: BLE001 - a bad push must not take the connection down
                    log.exception("%s: handling %s", self.label, message.class_name or "a request")
                    value, status = None, STATUS_SERVER_DESERIAL_EXCEPTION
                if kind == "request":
                    self._write(self.wire.response(message.request_id, value, status))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._probe is not None:
            self._probe.cancel()
        reason = self.close_reason or (f"connection lost: {exc}" if exc else "closed by the server")
        self.close_reason = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(reason))
        self._pending.clear()
        if not self.closed.done():
            self.closed.set_result(reason)

    # -- calls ----------------------------------------------------------------------------------------
    async def call(self, value: Any, timeout: float) -> BoltMessage:
        """Send ``value`` as a request and wait for its response (TimeoutError, ConnectionError)."""
        request_id = self._id()
        future = self._expect(request_id)
        self._write(self.wire.request(request_id, value, int(timeout * 1000)))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)

    def close(self, reason: str) -> None:
        if not self.close_reason:
            self.close_reason = reason
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self.closed.done()

    # -- internals ------------------------------------------------------------------------------------
    def _id(self) -> int:
        self._next_id = (self._next_id + 1) & 0x7FFFFFFF or 1
        return self._next_id

    def _expect(self, request_id: int) -> asyncio.Future:
        if not self.open:
            raise ConnectionError(self.close_reason or "not connected")
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        return future

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _arm(self) -> None:
        self._probe = asyncio.get_running_loop().call_later(self.heartbeat_interval, self._on_idle)

    def _on_idle(self) -> None:
        """Bolt's idle heartbeat: a probe after a quiet interval; too many unanswered ones close the connection."""
        if not self.open:
            return
        if self._read:
            self._read = False
        else:
            self._missed += 1
            if self._missed > self.heartbeat_misses:
                self.close(f"{self.heartbeat_misses} heartbeats unanswered")
                return
            request_id = self._id()
            self._expect(request_id).add_done_callback(lambda f: f.cancelled() or f.exception())
            self._write(self.wire.heartbeat(request_id))
        self._arm()
