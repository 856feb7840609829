"""An in-process meshd for the proxy-level fuzz properties: a real :class:`meshd.app.Meshd` (config, route
tables, clusters, runtime), whose listeners' protocol objects are driven on in-memory transports.

Every listener answers locally, so that a case needs no provider: HTTP routes to a direct response, RPC
requests reach clusters that have no endpoint (Dubbo status 60, Bolt 0x10) or no cluster at all. The
rig records, before any fuzz case, what a *control* request gets on a fresh connection of each listener;
after a case, the same request on another fresh connection must get the same bytes.
"""

from __future__ import annotations

import logging
from typing import Any

from integration.transport import FakeTransport
from meshd import writebatch
from meshd.config import build_config
from meshd.proxy.listener import protocol_factory
from tests.fuzz.seeds import HTTP_REQUESTS, frame_seeds

CONFIG = {
    "admin": {"address": "127.0.0.1:0"}, "access_log": {"path": None},
    "listeners": [
        {"name": "http", "address": "127.0.0.1:0", "protocol": "http", "route_config": "r"},
        {"name": "dubbo", "address": "127.0.0.1:0", "protocol": "dubbo"},
        {"name": "bolt", "address": "127.0.0.1:0", "protocol": "bolt"},
        {"name": "auto", "address": "127.0.0.1:0", "protocol": "auto", "route_config": "r"},
    ],
    "route_configs": [{"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": "ok\n"}}]}]}],
    "clusters": [{"name": "org.example.DemoService", "endpoints": []},
                 {"name": "com.nodejs.test.TestService", "endpoints": []}],
}


def _control_requests() -> dict[str, bytes]:
    frames = frame_seeds()
    dubbo_call = next(s.data for s in frames["dubbo"] if s.data[2] == 0xC2 and b"sayHello" in s.data
                      and len(s.data) == 16 + int.from_bytes(s.data[12:16], "big"))
    bolt_call = next(s.data for s in frames["bolt"] if s.data[:2] == b"\x01\x01" and b"plus" in s.data
                     and b"TestService" in s.data)
    return {"http": HTTP_REQUESTS[0], "dubbo": dubbo_call, "bolt": bolt_call, "auto": dubbo_call}


CONTROL = _control_requests()


class Transport(FakeTransport):
    """A FakeTransport that can change protocol (``auto`` hands the connection over) and that records a
    write after close (which must never happen)."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: Any = None
        self.late_writes = 0

    def write(self, data: bytes) -> None:
        if self.closed:
            self.late_writes += 1
        super().write(data)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol


class Errors(logging.Handler):
    """Collects ERROR records of the ``meshd`` loggers: an internal error is a bug even when it is caught."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Rig:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.factories = {lst.ctx.name: protocol_factory(lst.ctx) for lst in app.listeners}
        self.errors = Errors()
        logging.getLogger("meshd").addHandler(self.errors)
        self.control = CONTROL
        self.baseline = {name: self.talk(name, [CONTROL[name]]) for name in self.factories}

    @classmethod
    async def start(cls) -> "Rig":
        from meshd.app import Meshd
        app = Meshd(build_config(CONFIG))
        await app.start()
        return cls(app)

    async def stop(self) -> None:
        logging.getLogger("meshd").removeHandler(self.errors)
        await self.app.stop()

    @property
    def runtime(self) -> Any:
        return self.app.listeners[0].ctx.runtime

    def connect(self, listener: str) -> tuple[Any, Transport]:
        transport = Transport()
        proto = self.factories[listener]()
        transport.protocol = proto
        proto.connection_made(transport)
        return proto, transport

    def send(self, transport: Transport, reads: list[bytes]) -> None:
        """Each read as the loop delivers it (to whatever protocol the connection has become), then what the
        loop writes at the end of the iteration."""
        for data in reads:
            if transport.closed:
                break
            transport.protocol.data_received(data)
            writebatch.flush()

    def hang_up(self, transport: Transport) -> None:
        transport.protocol.connection_lost(None)
        writebatch.flush()

    def talk(self, listener: str, reads: list[bytes]) -> bytes:
        """What a fresh connection gets for ``reads`` (then the client hangs up)."""
        _, transport = self.connect(listener)
        self.send(transport, reads)
        self.hang_up(transport)
        return b"".join(transport.out)
