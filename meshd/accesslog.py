"""Access log: one line per downstream request, Envoy's default format plus meshd's fields.

``[2026-11-26T10:00:00.123Z] "GET /v2/x HTTP/1.1" 200 - 0 12 3 "127.0.0.1:18082" backend attempts=1``
(fields: start, request line, status, response flags, bytes received, bytes sent, duration ms, upstream
host, cluster, attempts). For RPC the request line is ``"DUBBO org.example.DemoService:sayHello 2.0.2"``.

Lines are buffered and flushed at most every ``flush_interval`` seconds or 64 KiB, so logging costs
one string format per request on the hot path.
"""

from __future__ import annotations

import sys
import time
from typing import IO


class AccessLog:
    def __init__(self, path: str | None, flush_interval: float = 0.5) -> None:
        self.path = path
        self._out: IO[str] | None
        if path is None:
            self._out = None
        elif path == "-":
            self._out = sys.stdout
        else:
            self._out = open(path, "a", buffering=1 << 16)
        self.enabled = self._out is not None
        self._buf: list[str] = []
        self._size = 0
        self._last_flush = time.monotonic()
        self.flush_interval = flush_interval

    def write(self, start: float, request_line: str, status: int | str, flags: str, bytes_in: int, bytes_out: int,
              duration: float, upstream: str, cluster: str, attempts: int) -> None:
        if self._out is None:
            return
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start)) + f".{int(start * 1000) % 1000:03d}Z"
        line = (f'[{ts}] "{request_line}" {status} {flags or "-"} {bytes_in} {bytes_out} '
                f'{int(duration * 1000)} "{upstream or "-"}" {cluster or "-"} attempts={attempts}\n')
        self._buf.append(line)
        self._size += len(line)
        now = time.monotonic()
        if self._size > 65536 or now - self._last_flush > self.flush_interval:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self._out is None or not self._buf:
            return
        self._out.write("".join(self._buf))
        self._out.flush()
        self._buf.clear()
        self._size = 0
        self._last_flush = now if now is not None else time.monotonic()

    def close(self) -> None:
        self.flush()
        if self._out is not None and self._out is not sys.stdout:
            self._out.close()
        self._out = None
        self.enabled = False
