"""An in-memory asyncio transport: drive meshd's protocol classes without sockets.

``protocol.connection_made(FakeTransport())`` then ``protocol.data_received(bytes)``; what the protocol
wrote is in ``transport.out`` (one entry per ``write``), ``closed`` tells whether it closed. The unit
tests of the forwarding path and the micro-benchmarks use it; the peer name is ``127.0.0.1:1``.
"""

from __future__ import annotations

from typing import Any


class FakeTransport:
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default
