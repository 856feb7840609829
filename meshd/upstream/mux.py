"""Multiplexed RPC upstreams (Dubbo, Bolt): many requests in flight on few connections per endpoint.

A :class:`MuxConnection` rewrites each request's id to one unique on that connection (patched in the
raw frame, no re-encoding), remembers ``upstream id → exchange``, and hands each response back to its
exchange, which restores the caller's id. A response for an id nobody waits for any more (a timed-out
request) is dropped: its slot was freed when the timeout fired.

Liveness: the pool's sweep sends a heartbeat on a connection that received nothing for
``heartbeat_interval``; ``heartbeat_misses`` unanswered heartbeats in a row close it, failing its
in-flight requests with RESET (retried per the route's policy). A Dubbo readonly event from the provider
marks the connection draining: no new request goes to it, in-flight ones finish.

Idleness: a connection that carried no request (heartbeats aside) and has none in flight for the cluster's
``idle_timeout`` is closed by the sweep, which notices use by the request ids having moved since its last look
(nothing on the request path records a time). A draining one is left to its provider.

A :class:`MuxPool` keeps up to ``connections_per_endpoint`` connections to one endpoint, opened on
demand, and sends each request on the connection with the fewest requests in flight. Exchanges
implement ``upstream_ready(conn)``, ``upstream_failed(result)``, ``upstream_response(conn, event)`` and
``upstream_reset(conn, reason)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from meshd import writebatch
from meshd.codec.base import CodecError
from meshd.codec.outcome import Outcome, Result
from meshd.tls.dial import dial

log = logging.getLogger("meshd.mux")

ID_LIMIT = 0x7FFFFFFF      # ids stay positive int32: valid for Dubbo (int64) and Bolt (u32) alike


class MuxConnection:
    """One multiplexed provider connection (an asyncio protocol: every method of one is here, so that the compiled
    hot path can make it an extension type, mux.pxd)."""

    __slots__ = ("pool", "adapter", "transport", "decoder", "inflight", "next_id", "closed", "draining",
                 "last_rx", "missed", "heartbeat_id", "patch", "write_paused", "retiring", "idle_mark",
                 "idle_since")

    def __init__(self, pool: "MuxPool") -> None:
        self.pool = pool
        self.adapter = pool.adapter
        self.patch = pool.adapter.patch_id
        self.transport: asyncio.Transport | None = None
        self.decoder = pool.adapter.decoder(pool.max_frame_size)
        self.inflight: dict[int, Any] = {}
        self.next_id = 0
        self.closed = False
        self.draining = False
        self.last_rx = 0.0
        self.missed = 0
        self.heartbeat_id = -1
        self.write_paused = False             # the provider reads slower than we send: take no new request
        self.retiring = False                 # the host left its cluster: close once the last answer is in
        self.idle_mark = -1                   # next_id at the last sweep (after its heartbeat)
        self.idle_since = 0.0                 # the sweep that last saw a request on it, or in flight

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.last_rx = self.pool.loop.time()

    # -- sending -------------------------------------------------------------------------------------
    def send(self, exchange: Any, frame: bytearray, oneway: bool) -> int:
        """Patch ``frame`` with a fresh id on this connection, register ``exchange``, write. Returns the id."""
        uid = self.next_id = self.next_id + 1 if self.next_id < ID_LIMIT else 1
        self.patch(frame, uid)
        if not oneway:
            self.inflight[uid] = exchange
        writebatch.write(self.transport, frame)
        return uid

    def cancel(self, uid: int) -> None:
        """Forget ``uid`` (its requester gave up): a late response will be dropped."""
        self.inflight.pop(uid, None)
        if self.retiring and not self.inflight:
            self.close()

    def retire(self) -> None:
        """Take no new request; close now if nothing is in flight, else once the last answer arrived."""
        self.draining = self.retiring = True
        if not self.inflight:
            self.close()

    def heartbeat(self) -> None:
        uid = self.next_id = self.next_id + 1 if self.next_id < ID_LIMIT else 1
        self.heartbeat_id = uid
        self.missed += 1
        writebatch.write(self.transport, self.adapter.heartbeat(uid))

    # -- receiving -----------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.last_rx = self.pool.loop.time()
        adapter = self.adapter
        dec = self.decoder
        Response = adapter.Response
        writebatch.begin()
        try:
            dec.receive_data(data)
            while evs := dec.events():
                for ev in evs:
                    t = type(ev)
                    if t is Response:
                        exchange = self.inflight.pop(ev.request_id, None)
                        if exchange is not None:
                            exchange.upstream_response(self, ev)
                        else:
                            self.pool.late_responses += 1
                    elif t is adapter.HeartbeatAck:
                        self.missed = 0
                    elif t is adapter.Heartbeat:
                        if getattr(ev, "twoway", True):
                            writebatch.write(self.transport, adapter.heartbeat_ack(ev))
                    elif adapter.Event and t is adapter.Event:
                        readonly = adapter.readonly(ev)
                        if readonly is not None:
                            self.draining = readonly
                            log.info("%s: provider %s says %s", adapter.name, self.pool.host.address,
                                     "readonly: no new requests on this connection" if readonly else "writeable")
                            self.pool.readonly_changed()
                    elif not isinstance(ev, tuple):
                        return                # CLOSED
        except CodecError as exc:
            log.warning("%s: bad frame from provider %s: %s; closing the connection", adapter.name,
                        self.pool.host.address, exc)
            self.close()
        finally:
            if self.retiring and not self.inflight:
                self.close()
            writebatch.end()
            after = self.pool.after_read
            if after is not None:
                after()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        inflight, self.inflight = self.inflight, {}
        reason = f"provider connection closed{': ' + str(exc) if exc else ''}"
        for exchange in inflight.values():
            exchange.upstream_reset(self, reason)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            writebatch.close(self.transport)

    @property
    def usable(self) -> bool:
        return not self.closed and not self.draining and not self.write_paused

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.pool.wake()

    def __repr__(self) -> str:
        return f"<MuxConnection {self.pool.host.address} inflight={len(self.inflight)} draining={self.draining}>"


class MuxPool:
    """Up to ``connections_per_endpoint`` multiplexed connections to one endpoint."""

    def __init__(self, host: Any, cluster: Any, adapter: Any, stats: Any = None,
                 max_frame_size: int = 8 * 1024 * 1024, after_read: Any = None) -> None:
        self.host = host
        self.after_read = after_read           # called when a read's responses are handled (held exits)
        self.cluster = cluster
        self.settings = cluster.settings
        self.adapter = adapter
        self.protocol = adapter.name
        self.stats = stats
        self.max_frame_size = max_frame_size
        self.loop = asyncio.get_running_loop()
        self.conns: list[MuxConnection] = []
        self.connecting = 0
        self.waiters: deque[Any] = deque()
        self.connects = 0
        self.connect_failures = 0
        self.late_responses = 0
        self._closed = False
        self._batch_conn: MuxConnection | None = None
        self._batch_epoch = -1

    def acquire(self, waiter: Any) -> None:
        conn = self.batch_conn()
        if conn is not None:
            waiter.upstream_ready(conn)
            return
        if not self.cluster.may_wait():
            self.cluster.overflowed("max_pending_requests")
            waiter.upstream_failed(Result(Outcome.OVERFLOW, detail="cluster max_pending_requests reached"))
            return
        self.waiters.append(waiter)
        self.cluster.pending += 1
        want = self.settings.connections_per_endpoint
        if self.connecting == 0 and self._usable() + sum(1 for c in self.conns if c.write_paused) < \
                max(want, 1) + len([c for c in self.conns if c.draining]):
            self._open()                      # none usable: none yet, or draining after readonly

    def batch_conn(self) -> MuxConnection | None:
        """The connection for a request now, or None when none is usable (then wait via ``acquire``).

        Within one write batch (one read of a caller), every request goes down the connection the
        batch's first request took: one write per batch, not one per connection. Batches spread: each
        takes the connection with the fewest requests in flight. Outside a batch, so does each request.
        """
        conn = self._batch_conn
        if writebatch._depth and self._batch_epoch == writebatch.epoch and conn.usable:
            return conn
        conn = self._best()
        if conn is None:
            return None
        if writebatch._depth:
            self._batch_conn, self._batch_epoch = conn, writebatch.epoch
        want = self.settings.connections_per_endpoint
        if len(self.conns) < want and self.connecting == 0 and conn.inflight and self._usable() < want:
            self._open()                      # spread load: grow towards connections_per_endpoint
        return conn

    def _best(self) -> MuxConnection | None:
        best = None
        for conn in self.conns:
            if conn.usable and (best is None or len(conn.inflight) < len(best.inflight)):
                best = conn
        return best

    def _usable(self) -> int:
        return sum(1 for c in self.conns if c.usable)

    def readonly_changed(self) -> None:
        """A provider that went readonly on every connection is draining: no new request is sent to it."""
        draining = bool(self.conns) and self._usable() == 0
        if draining != self.host.draining:
            self.host.draining = draining
            self.cluster.invalidate()

    def wake(self) -> None:
        """A connection became usable again: hand it to the requests that waited for one."""
        conn = self._best()
        if conn is None or not self.waiters:
            return
        waiters, self.waiters = self.waiters, deque()
        self.cluster.pending -= len(waiters)
        writebatch.begin()
        try:
            for w in waiters:
                w.upstream_ready(self._best() or conn)
        finally:
            writebatch.end()

    def cancel(self, waiter: Any) -> None:
        try:
            self.waiters.remove(waiter)
            self.cluster.pending -= 1
        except ValueError:
            pass

    def discard(self, conn: MuxConnection) -> None:
        if conn in self.conns:
            self.conns.remove(conn)
            self.cluster.connections -= 1
            if self.stats is not None:
                self.stats.upstream_connection_closed(self.host)
            if self.host.draining:
                self.readonly_changed()

    def sweep(self, now: float) -> None:
        """Heartbeats on quiet connections; close the ones that missed too many, and those idle for the
        cluster's ``idle_timeout``."""
        s = self.settings
        for conn in list(self.conns):
            if conn.closed:
                continue
            if conn.missed >= s.heartbeat_misses:
                log.warning("%s: provider %s missed %d heartbeats; closing the connection", self.protocol,
                            self.host.address, conn.missed)
                conn.close()
                continue
            if conn.inflight or conn.next_id != conn.idle_mark or conn.draining:
                conn.idle_since = now
            elif now - conn.idle_since > s.idle_timeout:
                log.debug("%s: connection to %s idle for %.0fs; closing it", self.protocol, self.host.address,
                          now - conn.idle_since)
                conn.close()
                continue
            if now - conn.last_rx >= s.heartbeat_interval:
                conn.heartbeat()
            conn.idle_mark = conn.next_id
        writebatch.flush()

    def close(self) -> None:
        self._closed = True
        for conn in list(self.conns):
            conn.close()
        self._fail_waiters()

    def retire(self) -> None:
        """The host left its cluster: no new request; in-flight ones get their answers, then each connection
        closes (a provider removed from the registry is usually still serving what it was sent)."""
        self._closed = True
        for conn in list(self.conns):
            conn.retire()
        self._fail_waiters()

    def _fail_waiters(self) -> None:
        waiters, self.waiters = self.waiters, deque()
        self.cluster.pending -= len(waiters)
        for w in waiters:
            w.upstream_failed(Result(Outcome.NO_HEALTHY_UPSTREAM, detail=f"{self.host.address} was removed"))

    def describe(self) -> dict:
        return {"connections": len(self.conns), "connecting": self.connecting, "waiting": len(self.waiters),
                "in_flight": sum(len(c.inflight) for c in self.conns),
                "draining": sum(1 for c in self.conns if c.draining), "connects": self.connects,
                "connect_failures": self.connect_failures, "late_responses": self.late_responses}

    def _open(self) -> None:
        self.connecting += 1
        self.cluster.connections += 1
        self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        host = self.host
        self.connects += 1
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                _, conn = await dial(self.loop, lambda: MuxConnection(self), host.host, host.port,
                                     self.cluster.tls_for(host))
        except (OSError, asyncio.TimeoutError) as exc:
            self.connecting -= 1
            self.cluster.connections -= 1
            self.connect_failures += 1
            if self.stats is not None:
                self.stats.upstream_connect_failed(host)
            reason = "connect timeout" if isinstance(exc, asyncio.TimeoutError) else (exc.strerror or str(exc))
            if not self.conns:
                waiters, self.waiters = self.waiters, deque()
                self.cluster.pending -= len(waiters)
                for w in waiters:
                    w.upstream_failed(Result(Outcome.CONNECT_FAILURE, detail=f"{host.address}: {reason}"))
            return
        self.connecting -= 1
        if self._closed:
            conn.close()
            return
        self.conns.append(conn)
        if self.stats is not None:
            self.stats.upstream_connection_opened(host)
        if host.draining:
            self.readonly_changed()
        self.wake()                           # the new connection serves the requests that waited

    def __repr__(self) -> str:
        return f"<MuxPool {self.protocol} {self.host.address} conns={len(self.conns)} waiting={len(self.waiters)}>"
