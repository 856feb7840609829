"""Listeners: bind each configured address and attach the protocol handler for its ``protocol``.

Every connection a listener accepts counts against its ``max_connections`` (:class:`ConnectionLimit`); one over
the limit is accepted and closed at once, and counted (``meshd_listener_connections_overflow_total``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Callable

from configkit import split_host_port
from meshd.proxy.context import ListenerContext
from meshd.proxy.http import HttpDownstream
from meshd.proxy.tcp import TcpDownstream
from meshd.tls.accept import TlsAcceptor

log = logging.getLogger("meshd.listener")


def protocol_factory(ctx: ListenerContext) -> Callable[[], asyncio.Protocol]:
    proto = ctx.protocol
    if proto == "http":
        return lambda: HttpDownstream(ctx)
    if proto == "tcp":
        return lambda: TcpDownstream(ctx)
    from meshd.proxy.rpc import rpc_protocol_factory
    return rpc_protocol_factory(ctx)


class _Refused(asyncio.Protocol):
    """A connection over its listener's ``max_connections``: closed as soon as it is made."""

    identity = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()

    def data_received(self, data: bytes) -> None:
        pass


class ConnectionLimit:
    """A listener's ``max_connections`` around its protocol factory (call it to make a connection's protocol).

    Counting happens when the protocol is made, not in ``connection_made``: the event loop may make the
    protocols of a burst of accepted connections before it tells any of them. The protocols uncount
    themselves (``ctx.open``, see :class:`~meshd.proxy.context.ListenerContext`). A TLS listener also asks
    :meth:`admit_socket` before the handshake, counting the handshakes in progress, so that a flood of
    connections over the limit costs no handshake.
    """

    def __init__(self, ctx: ListenerContext, factory: Callable[[], asyncio.Protocol]) -> None:
        self.ctx = ctx
        self.factory = factory
        self.limit = ctx.config.max_connections
        self.handshaking: Callable[[], int] = lambda: 0
        self._logged = -1e9

    def __call__(self) -> asyncio.Protocol:
        ctx = self.ctx
        if self.limit is not None and ctx.open >= self.limit:
            self._refused()
            return _Refused()
        ctx.open += 1
        return self.factory()

    def admit_socket(self, sock: socket.socket) -> bool:
        """For :class:`TlsAcceptor`: False (the socket closed, the refusal counted) when over the limit."""
        if self.limit is None or self.ctx.open + self.handshaking() < self.limit:
            return True
        self._refused()
        sock.close()
        return False

    def _refused(self) -> None:
        ctx = self.ctx
        ctx.overflow += 1
        ctx.runtime.stats.listener_overflow.labels(ctx.name).inc()
        now = ctx.runtime.loop.time()
        if now - self._logged >= 60.0:
            self._logged = now
            log.warning("listener %s: %d connections open (max_connections); closing new ones at once "
                        "(%d so far)", ctx.name, ctx.open, ctx.overflow)


class Listener:
    """One bound listener: the event loop's server, or for a TLS listener meshd's own accept loop
    (:class:`~meshd.tls.accept.TlsAcceptor`, which counts handshake failures and checks peers)."""

    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx
        self.server: asyncio.Server | None = None
        self.acceptor: TlsAcceptor | None = None
        self.bound = ""

    async def start(self) -> None:
        host, port = split_host_port(self.ctx.config.address)
        loop = asyncio.get_running_loop()
        tls_config = self.ctx.config.tls
        limit = ConnectionLimit(self.ctx, protocol_factory(self.ctx))
        if tls_config is None:
            self.server = await loop.create_server(limit, host, port, reuse_address=True, backlog=2048)
            sock = self.server.sockets[0].getsockname()
        else:
            registry = self.ctx.runtime.tls
            tls = registry.server(f"listener:{self.ctx.name}")
            lsock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                         backlog=2048, reuse_port=False)
            sock = lsock.getsockname()
            self.acceptor = TlsAcceptor(self.ctx.name, lsock, limit, tls, registry.errors,
                                        sniff=self.ctx.protocol == "auto", plaintext=tls_config.plaintext == "allow",
                                        handshake_timeout=tls_config.handshake_timeout,
                                        sniff_timeout=self.ctx.config.sniff_timeout,
                                        admit_connection=limit.admit_socket)
            limit.handshaking = self.acceptor.handshaking
            self.acceptor.start()
        self.bound = f"{host}:{sock[1]}"

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.acceptor is not None:
            self.acceptor.close()

    def to_json(self) -> dict:
        c = self.ctx.config
        ref = c.route_config
        return {"name": c.name, "protocol": c.protocol, "address": c.address, "bound": self.bound,
                "route_config": ref if ref is None or isinstance(ref, str) else ref.model_dump(), "cluster": c.cluster,
                "routes_in_force": self.ctx.routes is not None, "tls": c.tls is not None,
                "connections": self.ctx.open, "max_connections": c.max_connections, "overflow": self.ctx.overflow}
