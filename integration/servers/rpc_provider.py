"""Scriptable Dubbo2 and Bolt providers for scenario tests, built on meshd's own sans-IO codecs.

A provider answers every request with ``"<name>:<method>:<first argument>"`` (so a test knows which
provider answered which call), and can be steered per provider through :class:`RpcScript`:

- ``delay``: seconds before answering (a timer, never blocking);
- ``status``: answer with this error status instead (Dubbo status byte, e.g. 80; Bolt status, e.g. 4);
- ``fail_next`` / ``fail_status``: the next N requests get ``fail_status``;
- ``exception``: answer OK with an exception result (Dubbo result type 0; Bolt SofaResponse isError);
- ``reset_next``: close the connection on the next N requests;
- ``ignore_heartbeats``: never answer heartbeats (so meshd counts misses);
- ``readonly()``: send a Dubbo readonly event on every open connection (graceful shutdown notice).

It records every request it saw (``requests``: list of (method, args, attachments/headers)).
The real third-party peers (npm sofa-rpc-node, dubbo-remoting) are the conformance check; these are
for exact counts and faults that a real peer cannot be told to produce on demand.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from meshd.codec import bolt, dubbo
from meshd.codec.base import NEED_DATA, CodecError


@dataclass
class RpcScript:
    delay: float = 0.0
    status: int | None = None
    fail_next: int = 0
    fail_status: int = 80
    exception: str | None = None
    reset_next: int = 0
    ignore_heartbeats: bool = False
    requests: list[tuple[str, list, dict]] = field(default_factory=list)
    heartbeats: int = 0


class _Conn(asyncio.Protocol):
    def __init__(self, server: "RpcProvider") -> None:
        self.server = server
        self.decoder = dubbo.DubboDecoder() if server.protocol == "dubbo" else bolt.BoltDecoder()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.conns.add(self)

    def connection_lost(self, exc) -> None:
        self.server.conns.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.decoder.receive_data(data)
            while (ev := self.decoder.next_event()) is not NEED_DATA:
                self._event(ev)
        except CodecError:
            if self.transport is not None:
                self.transport.close()

    def _event(self, ev: Any) -> None:
        s = self.server.script
        if isinstance(ev, (dubbo.DubboHeartbeat, bolt.BoltHeartbeat)):
            s.heartbeats += 1
            if not s.ignore_heartbeats:
                self.transport.write(dubbo.encode_heartbeat_ack(ev.request_id) if self.server.protocol == "dubbo"
                                     else bolt.encode_heartbeat_ack(ev.request_id))
            return
        if isinstance(ev, dubbo.DubboRequest):
            inv = ev.invocation()
            method, args, extra = inv.head.method, inv.args, dict(inv.attachments)
            oneway = not ev.twoway
        elif isinstance(ev, bolt.BoltRequest):
            req = ev.sofa_request()
            method, args, extra = req.method_name, req.args, ev.header_map()
            oneway = ev.oneway
        else:
            return
        s.requests.append((method, args, extra))
        if s.reset_next > 0:
            s.reset_next -= 1
            self.transport.abort()
            return
        if oneway:
            return
        answer = self._answer(ev, method, args)
        if s.delay > 0:
            asyncio.get_running_loop().call_later(s.delay, self._send, answer)
        else:
            self._send(answer)

    def _answer(self, ev: Any, method: str, args: list) -> bytes:
        s = self.server.script
        rid = ev.request_id
        status = s.status
        if s.fail_next > 0:
            s.fail_next -= 1
            status = s.fail_status
        value = f"{self.server.name}:{method}:{args[0] if args else ''}"
        if self.server.protocol == "dubbo":
            if status is not None:
                return dubbo.encode_error_response(rid, status, f"{self.server.name} says status {status}")
            if s.exception is not None:
                return dubbo.encode_response(rid, exception=s.exception)
            return dubbo.encode_response(rid, value)
        same = {"version": ev.version, "ver1": ev.ver1, "crc": ev.crc}   # answer in the caller's Bolt version
        if status is not None:
            return bolt.encode_status_response(rid, status, **same)
        if s.exception is not None:
            return bolt.encode_response(rid, None, is_error=True, error_msg=s.exception, **same)
        return bolt.encode_response(rid, value, **same)

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class RpcProvider:
    """``async with RpcProvider("dubbo", "p1") as p: p.address``."""

    def __init__(self, protocol: str, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        assert protocol in ("dubbo", "bolt")
        self.protocol = protocol
        self.name = name
        self.host = host
        self.port = port
        self.script = RpcScript()
        self.conns: set[_Conn] = set()
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> "RpcProvider":
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self, close_connections: bool = True) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if close_connections:
            for conn in list(self.conns):
                if conn.transport is not None:
                    conn.transport.abort()

    def readonly(self) -> None:
        """Tell every connected consumer this provider is going read-only (Dubbo's shutdown notice)."""
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.write(dubbo.encode_readonly_event(0, True))

    async def __aenter__(self) -> "RpcProvider":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()
