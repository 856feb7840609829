"""The plain ``tcp`` proxy: every downstream connection is relayed to one host of the listener's cluster.

Bytes are relayed untouched with flow control both ways; a connect failure (after trying each healthy
host once) closes the downstream connection. No parsing, so this is also the "byte relay" ceiling that
the benchmarks compare the L7 paths against.

Idleness: a pair that moved no byte either way for the listener's ``idle_timeout`` is closed, both sides. A
read only marks the pair (``moved``); the runtime's once-a-second sweep turns the mark into a time.
"""

from __future__ import annotations

import asyncio
import logging

from meshd.proxy.context import ListenerContext
from meshd.tls.dial import dial

log = logging.getLogger("meshd.tcp")


class _Upstream(asyncio.Protocol):
    def __init__(self, down: "TcpDownstream") -> None:
        self.down = down
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        down = self.down
        down.moved = True
        down.transport.write(data)

    def connection_lost(self, exc) -> None:
        self.down.upstream_lost()

    def pause_writing(self) -> None:
        self.down.transport.pause_reading()

    def resume_writing(self) -> None:
        self.down.transport.resume_reading()


class TcpDownstream(asyncio.Protocol):
    identity = ""                             # the verified TLS peer's SPIFFE id or name
    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx
        self.rt = ctx.runtime
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.pending: list[bytes] = []
        self.closed = False
        self.host = None
        self.last_activity = 0.0
        self.moved = False                    # a byte moved either way since the last sweep

    @property
    def idle(self) -> bool:
        return False                          # a tcp connection has no request boundary to drain at

    def idle_expired(self, now: float) -> bool:
        """The sweep's question: no byte either way for the listener's ``idle_timeout``?"""
        if self.moved:
            self.moved = False
            self.last_activity = now
            return False
        return now - self.last_activity > self.ctx.config.idle_timeout

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.last_activity = self.rt.loop.time()
        self.rt.connections.add(self)
        self.rt.stats.downstream_connection(self.ctx.name, 1)
        self.rt.in_flight += 1
        transport.pause_reading()
        self.rt.loop.create_task(self._connect())

    async def _connect(self) -> None:
        cluster = self.rt.clusters.get(self.ctx.config.cluster or "")
        tried: list = []
        while cluster is not None and not self.closed:
            host = cluster.pick(None, tried)
            if host is None or host in tried:
                break
            tried.append(host)
            try:
                async with asyncio.timeout(cluster.settings.connect_timeout):
                    _, self.upstream = await dial(self.rt.loop, lambda: _Upstream(self), host.host, host.port,
                                                  cluster.tls_for(host))
            except (OSError, asyncio.TimeoutError) as exc:
                log.warning("listener %s: connect to %s failed: %s", self.ctx.name, host.address, exc)
                continue
            self.host = host
            host.active_requests += 1
            if self.closed:
                self.upstream.transport.close()
                return
            if self.pending:
                self.upstream.transport.write(b"".join(self.pending))
                self.pending.clear()
            self.transport.resume_reading()
            return
        log.warning("listener %s: no reachable endpoint in cluster %s", self.ctx.name, self.ctx.config.cluster)
        self.close()

    def data_received(self, data: bytes) -> None:
        self.moved = True
        if self.upstream is None:
            self.pending.append(data)         # uvloop may deliver bytes read before pause_reading took hold
        else:
            self.upstream.transport.write(data)

    def eof_received(self):
        if self.upstream is not None and self.upstream.transport.can_write_eof():
            self.upstream.transport.write_eof()
            return True
        return None

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.resume_reading()

    def upstream_lost(self) -> None:
        self.close()

    def connection_lost(self, exc) -> None:
        self.ctx.open -= 1
        if self in self.rt.connections:
            self.rt.connections.discard(self)
            self.rt.stats.downstream_connection(self.ctx.name, -1)
            self.rt.in_flight -= 1
        self.closed = True
        if self.host is not None:
            self.host.active_requests -= 1
            self.host = None
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()
