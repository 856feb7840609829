"""Listeners: bind each configured address and attach the protocol handler for its ``protocol``."""

from __future__ import annotations

import asyncio
import socket
from typing import Callable

from configkit import split_host_port
from meshd.proxy.context import ListenerContext
from meshd.proxy.http import HttpDownstream
from meshd.proxy.tcp import TcpDownstream
from meshd.tls.accept import TlsAcceptor


def protocol_factory(ctx: ListenerContext) -> Callable[[], asyncio.Protocol]:
    proto = ctx.protocol
    if proto == "http":
        return lambda: HttpDownstream(ctx)
    if proto == "tcp":
        return lambda: TcpDownstream(ctx)
    from meshd.proxy.rpc import rpc_protocol_factory
    return rpc_protocol_factory(ctx)


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
        if tls_config is None:
            self.server = await loop.create_server(protocol_factory(self.ctx), host, port, reuse_address=True,
                                                   backlog=2048)
            sock = self.server.sockets[0].getsockname()
        else:
            registry = self.ctx.runtime.tls
            tls = registry.server(f"listener:{self.ctx.name}")
            lsock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                         backlog=2048, reuse_port=False)
            sock = lsock.getsockname()
            self.acceptor = TlsAcceptor(self.ctx.name, lsock, protocol_factory(self.ctx), tls, registry.errors,
                                        sniff=self.ctx.protocol == "auto", plaintext=tls_config.plaintext == "allow",
                                        handshake_timeout=tls_config.handshake_timeout,
                                        sniff_timeout=self.ctx.config.sniff_timeout)
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
                "routes_in_force": self.ctx.routes is not None, "tls": c.tls is not None}
