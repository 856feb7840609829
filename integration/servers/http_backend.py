"""A small, fast, scriptable HTTP/1.1 backend for tests and benchmarks.

Every response says who answered: header ``x-backend: <name>`` and, for the default handler, a JSON body
``{"server", "method", "path", "headers", "received"}``. A request steers the answer with headers:

- ``x-backend-status: 503`` answer with that status;
- ``x-backend-delay-ms: 200`` wait before answering (a timer, never blocking the loop);
- ``x-backend-reset: 1`` close the connection without answering;
- ``x-backend-body-size: 1048576`` answer with that many bytes (streamed in 64 KiB pieces);
- ``x-backend-chunked: 1`` answer with ``transfer-encoding: chunked``;
- path ``/echo``: the response body is ``{"received": n, "sha256": ...}`` of the request body (bodies
  are hashed as they stream, never held whole).

Tests can also script a server in-process through :class:`Script` (fail the next N requests, ...).
``python -m integration.servers.http_backend --port 18081 --name v1`` runs one standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from dataclasses import dataclass, field

import httptools

from meshd.codec import http1


@dataclass
class Script:
    """In-process control of a running backend (tests flip these between requests)."""

    status: int | None = None                 # force every answer's status
    fail_next: int = 0                        # answer the next N requests with fail_status
    fail_status: int = 503
    reset_next: int = 0                       # close the connection on the next N requests
    delay: float = 0.0                        # seconds before every answer
    requests: int = 0
    paths: list[str] = field(default_factory=list)


class _Conn(asyncio.Protocol):
    def __init__(self, server: "HttpBackend") -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.headers: dict[str, str] = {}
        self.url = b""
        self.received = 0
        self.sha = None
        self.queue: list = []
        self.busy = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections += 1

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(http1.local_reply(400, b"bad request\n", close=True))
            self.transport.close()

    def on_message_begin(self) -> None:
        self.headers = {}
        self.url = b""
        self.received = 0
        self.sha = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self.url.startswith(b"/echo"):
            self.sha = hashlib.sha256()

    def on_body(self, body: bytes) -> None:
        self.received += len(body)
        if self.sha is not None:
            self.sha.update(body)

    def on_message_complete(self) -> None:
        request = (self.parser.get_method().decode(), self.url.decode("latin-1"), dict(self.headers),
                   self.received, self.sha.hexdigest() if self.sha else None, self.parser.should_keep_alive())
        self.server.script.requests += 1
        self.server.script.paths.append(request[1])
        delay = self.server.script.delay or float(request[2].get("x-backend-delay-ms", 0)) / 1000.0
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self.respond, request)
        else:
            self.respond(request)

    def respond(self, request) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        method, path, headers, received, digest, keep_alive = request
        script = self.server.script
        if script.reset_next > 0 or headers.get("x-backend-reset") == "1":
            script.reset_next = max(0, script.reset_next - 1)
            self.transport.abort()
            return
        status = int(headers.get("x-backend-status", 200))
        if script.status is not None:
            status = script.status
        if script.fail_next > 0:
            script.fail_next -= 1
            status = script.fail_status
        size = headers.get("x-backend-body-size")
        name = self.server.name.encode()
        if size is not None:
            return self._big(status, int(size), headers.get("x-backend-chunked") == "1", keep_alive, method)
        if path.startswith("/echo"):
            body = json.dumps({"received": received, "sha256": digest, "server": self.server.name}).encode()
        elif self.server.fixed_body is not None:
            body = self.server.fixed_body
        else:
            body = json.dumps({"server": self.server.name, "method": method, "path": path, "headers": headers,
                               "received": received}).encode()
        extra = b"" if keep_alive else b"connection: close\r\n"
        if headers.get("x-backend-chunked") == "1":
            self.transport.write(http1.status_line(status) + b"x-backend: " + name + b"\r\n" + extra +
                                 b"transfer-encoding: chunked\r\n\r\n" + http1.chunk(body) + http1.LAST_CHUNK)
        else:
            self.transport.write(b"%bx-backend: %b\r\ncontent-length: %d\r\n%b\r\n%b" % (
                http1.status_line(status), name, len(body), extra, b"" if method == "HEAD" else body))
        if not keep_alive:
            self.transport.close()

    def _big(self, status: int, size: int, chunked: bool, keep_alive: bool, method: str) -> None:
        head = http1.status_line(status) + b"x-backend: " + self.server.name.encode() + b"\r\n"
        head += b"transfer-encoding: chunked\r\n\r\n" if chunked else b"content-length: %d\r\n\r\n" % size
        self.transport.write(head)
        if method == "HEAD":
            return
        piece = b"x" * 65536
        self._stream(size, piece, chunked, keep_alive)

    def _stream(self, left: int, piece: bytes, chunked: bool, keep_alive: bool) -> None:
        # Write until the transport's buffer is full, then continue when it drains (resume_writing).
        while left > 0:
            n = min(left, len(piece))
            data = piece[:n]
            self.transport.write(http1.chunk(data) if chunked else data)
            left -= n
            if self.transport.get_write_buffer_size() > 1 << 20:
                self._resume = lambda: self._stream(left, piece, chunked, keep_alive)
                return
        if chunked:
            self.transport.write(http1.LAST_CHUNK)
        if not keep_alive:
            self.transport.close()

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        resume = getattr(self, "_resume", None)
        if resume is not None:
            self._resume = None
            resume()

    def connection_lost(self, exc) -> None:
        self.server.connections -= 1
        self.transport = None


class HttpBackend:
    """A running backend; ``async with HttpBackend(name) as b: b.port``."""

    def __init__(self, name: str = "backend", host: str = "127.0.0.1", port: int = 0,
                 fixed_body: bytes | None = None) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.fixed_body = fixed_body
        self.script = Script()
        self.connections = 0
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> "HttpBackend":
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), self.host, self.port, reuse_address=True,
                                                backlog=2048)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def __aenter__(self) -> "HttpBackend":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="scriptable HTTP backend")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="backend")
    parser.add_argument("--body", help="fixed response body (fast path for benchmarks)")
    args = parser.parse_args()

    async def run() -> None:
        backend = await HttpBackend(args.name, args.host, args.port,
                                    args.body.encode() if args.body is not None else None).start()
        print(json.dumps({"name": backend.name, "port": backend.port}), flush=True)
        await asyncio.Event().wait()

    import uvloop
    try:
        uvloop.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
