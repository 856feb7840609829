"""The demo's providers: a tiny HTTP/1.1 server and a tiny Dubbo provider that say who answered.

HTTP: every answer is JSON ``{"server", "method", "path", "headers"}`` with the header ``x-backend: <name>``;
a request header ``x-backend-status: 503`` asks for that status instead of 200, which is how the demo
shows a retried 5xx. Keep-alive and pipelining as HTTP/1.1 has them. Dubbo: every call is answered
``"<name>: <method> <first argument>"``, heartbeats are acknowledged. Nothing else: the scriptable test
servers are in the ``integration`` package, which the product never imports.
"""

from __future__ import annotations

import asyncio
import json

import httptools

from meshd.codec import dubbo, http1
from meshd.codec.base import NEED_DATA, CodecError


class _Conn(asyncio.Protocol):
    def __init__(self, name: bytes) -> None:
        self.name = name
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[str, str] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(http1.local_reply(400, b"bad request\n", close=True))
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.headers = b"", {}

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_message_complete(self) -> None:
        status = self.headers.get("x-backend-status", "200")
        body = json.dumps({"server": self.name.decode(), "method": self.parser.get_method().decode(),
                           "path": self.url.decode("latin-1"), "headers": self.headers}).encode()
        keep_alive = self.parser.should_keep_alive()
        self.transport.write(b"%bx-backend: %b\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%b\r\n%b" % (
            http1.status_line(int(status) if status.isdigit() else 200), self.name, len(body),
            b"" if keep_alive else b"connection: close\r\n", body))
        if not keep_alive:
            self.transport.close()


class _DemoServer:
    """``await Server("v1", port=18081).start()``; ``.port`` is the bound port (a free one for port 0)."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name, self.host, self.port = name, host, port
        self._server: asyncio.Server | None = None

    def _protocol(self) -> asyncio.Protocol:
        raise NotImplementedError

    async def start(self):
        self._server = await asyncio.get_running_loop().create_server(self._protocol, self.host, self.port,
                                                                      reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


class DemoBackend(_DemoServer):
    """The HTTP provider (see the module docstring)."""

    def _protocol(self) -> asyncio.Protocol:
        return _Conn(self.name.encode())


class _DubboConn(asyncio.Protocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.decoder = dubbo.DubboDecoder()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.decoder.receive_data(data)
            while (ev := self.decoder.next_event()) is not NEED_DATA:
                if isinstance(ev, dubbo.DubboHeartbeat) and ev.twoway:
                    self.transport.write(dubbo.encode_heartbeat_ack(ev.request_id))
                elif isinstance(ev, dubbo.DubboRequest) and ev.twoway:
                    call = ev.invocation()
                    argument = call.args[0] if call.args else ""
                    self.transport.write(dubbo.encode_response(
                        ev.request_id, f"{self.name}: {call.head.method} {argument}"))
        except CodecError:
            self.transport.close()


class DemoDubboProvider(_DemoServer):
    """A Dubbo provider answering every call with ``"<name>: <method> <first argument>"``."""

    def _protocol(self) -> asyncio.Protocol:
        return _DubboConn(self.name)
