"""HTTP/1.1 upstream connections and the per-endpoint keep-alive pool (the I/O shell of PoolState).

An :class:`UpstreamHttpConnection` carries one request at a time for the exchange that holds it and
forwards parser events to that exchange (``response_head`` / ``response_body`` / ``response_complete``
/ ``upstream_reset``) and flow-control events (``upstream_write_paused``). The exchange gives the
connection back with :meth:`HttpPool.release`.

The user of a pool (an exchange) implements ``upstream_ready(conn)`` and ``upstream_failed(result)``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools

from meshd import writebatch
from meshd.codec.http1 import HOP_BY_HOP, whole_head
from meshd.codec.outcome import Outcome, Result
from meshd.tls.dial import dial
from meshd.upstream.pool import CONNECT, OVERFLOW, USE, PoolState

log = logging.getLogger("meshd.upstream")

_SPECIAL = HOP_BY_HOP | {b"content-length"}   # the response headers on_header acts on


class UpstreamHttpConnection(asyncio.Protocol):
    __slots__ = ("pool", "exchange", "transport", "parser", "raw", "length", "chunked", "special", "requests",
                 "idle_since", "closed", "head_request", "read_paused", "_interim", "_skip", "in_message",
                 "head_src")

    def __init__(self, pool: "HttpPool") -> None:
        self.pool = pool
        self.exchange: Any = None
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.raw: list[tuple[bytes, bytes]] = []
        self.length = False
        self.chunked = False
        self.special = False                  # a hop-by-hop header: the head is rebuilt, not forwarded as read
        self.requests = 0
        self.idle_since = 0.0
        self.closed = False
        self.head_request = False
        self.read_paused = False
        self._interim = False
        self._skip = False
        self.in_message = False               # between a head's end and its message's end
        self.head_src: bytes | None = None    # the read a message began in: its head, when whole

    # -- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:
            self.close()                      # bytes on an idle connection: the peer is confused
            return
        # a message that begins in this read begins at its start (one request at a time per connection)
        self.head_src = None if self.in_message else data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._abort(f"malformed upstream response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange, self.exchange = self.exchange, None
        self.pool.discard(self)
        if exchange is not None:
            exchange.upstream_reset(self, f"upstream connection closed{': ' + str(exc) if exc else ''}")

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_write_paused(True)

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_write_paused(False)

    # -- httptools callbacks -------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw.append((name, value))
        low = name.lower()
        if low in _SPECIAL:
            if low == b"content-length":
                self.length = True
                return
            self.special = True
            if low == b"transfer-encoding":
                self.chunked = b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        # a head that began in an earlier read is not at the start of head_src: whole_head says None
        src, self.head_src = self.head_src, None
        self.in_message = True
        raw, self.raw = self.raw, []          # the next message's headers start afresh
        length, chunked, special = self.length, self.chunked, self.special
        self.length = self.chunked = self.special = False
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True              # 100 Continue & co: meshd already answered the client's Expect
            return
        exchange = self.exchange
        if exchange is None:
            return
        head = None if src is None or special else whole_head(src, len(raw), b"HTTP/1.1 ")
        exchange.response_head(self, status, head, raw, length, chunked)
        if self.head_request and self.exchange is exchange:
            # A HEAD response announces a length it never sends; llhttp cannot be told, so finish the
            # message here and parse the next response with a fresh parser.
            self._skip = True
            self.in_message = False
            self.parser = httptools.HttpResponseParser(self)
            exchange.response_complete(self, True)

    def on_body(self, body: bytes) -> None:
        if self._skip:
            return
        exchange = self.exchange
        if exchange is not None:
            exchange.response_body(body)

    def on_message_complete(self) -> None:
        self.in_message = False
        if self._interim:
            self._interim = False
            return
        if self._skip:
            self._skip = False
            return
        exchange = self.exchange
        if exchange is not None:
            exchange.response_complete(self, self.parser.should_keep_alive())

    # -- used by exchanges and the pool --------------------------------------------------------------
    def write(self, data: bytes) -> None:
        writebatch.write(self.transport, data)

    def pause_reading(self) -> None:
        if not self.closed and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_reading(self) -> None:
        if not self.closed and self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            writebatch.close(self.transport)

    def _abort(self, reason: str) -> None:
        exchange, self.exchange = self.exchange, None
        self.close()
        if exchange is not None:
            exchange.upstream_reset(self, reason)

    def __repr__(self) -> str:
        return f"<UpstreamHttpConnection {self.pool.host.address} requests={self.requests} closed={self.closed}>"


class HttpPool:
    """Keep-alive connections to one endpoint; performs :class:`PoolState`'s decisions."""

    protocol = "http"

    def __init__(self, host: Any, cluster: Any, stats: Any = None) -> None:
        self.host = host
        self.cluster = cluster
        self.settings = cluster.settings
        self.state = PoolState(self.settings.max_connections_per_endpoint)
        self.loop = asyncio.get_running_loop()
        self.stats = stats
        self.connects = 0
        self.connect_failures = 0
        self._closed = False

    def acquire(self, waiter: Any) -> None:
        s = self.state
        if s.idle:                            # the keep-alive fast path: no cluster-wide count changes
            conn = s.idle.pop()
            s.busy.add(conn)
            waiter.upstream_ready(conn)
            return
        cluster = self.cluster
        before = (s.total, len(s.waiters))
        decision, conn = s.acquire(waiter, cluster.may_connect(s.total), cluster.may_wait())
        self._account(before)
        if decision is USE:
            waiter.upstream_ready(conn)
        elif decision is CONNECT:
            self._open()
        elif decision is OVERFLOW:
            cluster.overflowed("max_pending_requests")
            waiter.upstream_failed(Result(Outcome.OVERFLOW, detail="cluster max_pending_requests reached"))

    def cancel(self, waiter: Any) -> None:
        before = (self.state.total, len(self.state.waiters))
        self.state.cancel(waiter)
        self._account(before)

    def _account(self, before: tuple[int, int]) -> None:
        """Keep the cluster-wide connection and pending counts in step with this pool's state."""
        s = self.state
        self.cluster.connections += s.total - before[0]
        self.cluster.pending += len(s.waiters) - before[1]

    def release(self, conn: UpstreamHttpConnection, reusable: bool) -> None:
        limit = self.settings.max_requests_per_connection
        if conn.closed or self._closed or (limit is not None and conn.requests >= limit):
            reusable = False
        conn.exchange = None
        s = self.state
        if reusable and not s.waiters and not conn.read_paused:
            s.busy.discard(conn)              # the keep-alive fast path: back to idle, nothing to count
            s.idle.append(conn)
            conn.idle_since = self.loop.time()
            return
        if not reusable:
            conn.close()
        elif conn.read_paused:
            conn.resume_reading()
        before = (self.state.total, len(self.state.waiters))
        decision, waiter = self.state.release(conn, reusable)
        self._account(before)
        if decision is USE:
            waiter.upstream_ready(conn)
        elif decision is CONNECT:
            self._open()
        elif reusable:
            conn.idle_since = self.loop.time()

    def discard(self, conn: UpstreamHttpConnection) -> None:
        before = (self.state.total, len(self.state.waiters))
        decision = self.state.discard(conn)[0]
        self._account(before)
        if decision is CONNECT:
            self._open()
        if self.stats is not None:
            self.stats.upstream_connection_closed(self.host)

    def sweep(self, now: float) -> None:
        """Close connections idle longer than the cluster's idle_timeout."""
        timeout = self.settings.idle_timeout
        for conn in list(self.state.idle):
            if now - conn.idle_since > timeout:
                conn.close()

    def close(self) -> None:
        self._closed = True
        for conn in list(self.state.idle) + list(self.state.busy):
            conn.close()

    def retire(self) -> None:
        """The host left its cluster: idle connections close now, busy ones when their exchange is done."""
        self._closed = True
        for conn in list(self.state.idle):
            conn.close()

    def describe(self) -> dict:
        s = self.state
        return {"idle": len(s.idle), "busy": len(s.busy), "connecting": s.connecting, "waiting": len(s.waiters),
                "connects": self.connects, "connect_failures": self.connect_failures}

    def _open(self) -> None:
        self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        host = self.host
        self.connects += 1
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                _, conn = await dial(self.loop, lambda: UpstreamHttpConnection(self), host.host, host.port,
                                     self.cluster.tls_for(host))
        except (OSError, asyncio.TimeoutError) as exc:
            self.connect_failures += 1
            if self.stats is not None:
                self.stats.upstream_connect_failed(host)
            reason = "connect timeout" if isinstance(exc, asyncio.TimeoutError) else (exc.strerror or str(exc))
            before = (self.state.total, len(self.state.waiters))
            waiter = self.state.connect_failed()
            refill = self.state.refill()
            self._account(before)
            if waiter is not None:
                waiter.upstream_failed(Result(Outcome.CONNECT_FAILURE, detail=f"{host.address}: {reason}"))
            if refill:
                self._open()
            return
        if self.stats is not None:
            self.stats.upstream_connection_opened(host)
        if self._closed:
            conn.close()
            return
        before = (self.state.total, len(self.state.waiters))
        waiter = self.state.connected(conn)
        self._account(before)
        if waiter is not None:
            waiter.upstream_ready(conn)
        else:
            conn.idle_since = self.loop.time()

    def __repr__(self) -> str:
        return f"<HttpPool {self.host.address} {self.state!r}>"
