"""Access log: one line per downstream request, Envoy's default format plus meshd's fields.

``[2026-11-26T10:00:00.123Z] "GET /v2/x HTTP/1.1" 200 - 0 12 3 "127.0.0.1:18082" backend attempts=1``
(fields: start, request line, status, response flags, bytes received, bytes sent, duration ms, upstream
host, cluster, attempts). For RPC the request line is ``"DUBBO org.example.DemoService:sayHello 2.0.2"``.

A request costs one tuple of its raw fields (:meth:`AccessLog.rpc`, :meth:`AccessLog.http`; an RPC request's line
is made once per routing plan, :func:`rpc_request`); lines are
formatted when the buffer is written: every ``BATCH`` requests, and by meshd's once-a-second sweep
(:meth:`AccessLog.flush`). Start times are the event loop's clock (``loop.time()``, the monotonic clock)
and become wall-clock time when formatted; the date part is formatted once per second of log.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

BATCH = 1024
"""Requests buffered before their lines are formatted and written."""


_MILLIS = [f"{ms:03d}" for ms in range(1000)]
"""The milliseconds part of a line, indexed (a format spec per line costs more than the rest of its numbers)."""


def rpc_request(label: str, service: str, method: str, version: str) -> str:
    """An RPC request's line as the log shows it: ``DUBBO org.example.DemoService:sayHello 1.0.0``."""
    return f"{label} {service}:{method} {version or '-'}" if service else f"{label} -"


class AccessLog:
    __slots__ = ("path", "_out", "enabled", "_buf", "_second", "_date")

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._out: IO[str] | None
        if path is None:
            self._out = None
        elif path == "-":
            self._out = sys.stdout
        else:
            self._out = open(path, "a", buffering=1 << 16)
        self.enabled = self._out is not None
        self._buf: list[tuple] = []
        self._second = -1
        self._date = ""

    def rpc(self, started: float, request: str, status: Any, flags: str, bytes_in: int, duration: float,
            upstream: str, cluster: str, attempts: int) -> None:
        """One RPC request (``request``: :func:`rpc_request`); ``started`` is loop time."""
        buf = self._buf
        buf.append((started, request, None, None, status, flags, bytes_in, 0, duration, upstream, cluster, attempts))
        if len(buf) >= BATCH:
            self.flush()

    def http(self, started: float, method: bytes, url: bytes, version: str, status: Any, flags: str,
             bytes_in: int, bytes_out: int, duration: float, upstream: str, cluster: str, attempts: int) -> None:
        """One HTTP request (method and URL as received); ``started`` is loop time."""
        buf = self._buf
        buf.append((started, method, url, version, status, flags, bytes_in, bytes_out, duration, upstream, cluster,
                    attempts))
        if len(buf) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self._out is None or not self._buf:
            return
        buf, self._buf = self._buf, []
        self._out.write("".join(self._lines(buf)))
        self._out.flush()

    def _lines(self, entries: list[tuple]) -> list[str]:
        offset = time.time() - time.monotonic()     # loop time → wall-clock time
        out = []
        second, date = self._second, self._date
        millis = _MILLIS
        for started, request, url, version, status, flags, bytes_in, bytes_out, duration, upstream, cluster, \
                attempts in entries:
            wall = started + offset
            s = int(wall)
            if s != second:
                second, date = s, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
            line = request if url is None else f"{request.decode('latin-1')} {url.decode('latin-1')} HTTP/{version}"
            ms = int(wall * 1000) % 1000
            out.append(f'[{date}.{millis[ms]}Z] "{line}" {status} {flags or "-"} {bytes_in} '
                       f'{bytes_out} {int(duration * 1000)} "{upstream or "-"}" {cluster or "-"} attempts={attempts}\n')
        self._second, self._date = second, date
        return out

    def close(self) -> None:
        self.flush()
        if self._out is not None and self._out is not sys.stdout:
            self._out.close()
        self._out = None
        self.enabled = False
