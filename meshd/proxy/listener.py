"""Listeners: bind each configured address and attach the protocol handler for its ``protocol``."""

from __future__ import annotations

import asyncio
from typing import Callable

from configkit import split_host_port
from meshd.proxy.context import ListenerContext
from meshd.proxy.http import HttpDownstream
from meshd.proxy.tcp import TcpDownstream


def protocol_factory(ctx: ListenerContext) -> Callable[[], asyncio.Protocol]:
    proto = ctx.protocol
    if proto == "http":
        return lambda: HttpDownstream(ctx)
    if proto == "tcp":
        return lambda: TcpDownstream(ctx)
    from meshd.proxy.rpc import rpc_protocol_factory
    return rpc_protocol_factory(ctx)


class Listener:
    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx
        self.server: asyncio.Server | None = None
        self.bound = ""

    async def start(self) -> None:
        host, port = split_host_port(self.ctx.config.address)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(protocol_factory(self.ctx), host, port, reuse_address=True,
                                               backlog=2048)
        sock = self.server.sockets[0].getsockname()
        self.bound = f"{host}:{sock[1]}"

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    def to_json(self) -> dict:
        c = self.ctx.config
        ref = c.route_config
        return {"name": c.name, "protocol": c.protocol, "address": c.address, "bound": self.bound,
                "route_config": ref if ref is None or isinstance(ref, str) else ref.model_dump(), "cluster": c.cluster,
                "routes_in_force": self.ctx.routes is not None}
