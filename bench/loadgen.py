"""Built-in load generators (used when wrk is missing, and for the RPC scenarios wrk cannot drive).

``python bench/loadgen.py http PORT CONNECTIONS SECONDS [PATH]`` — closed-loop HTTP/1.1 keep-alive.
``python bench/loadgen.py frames PORT CONNECTIONS SECONDS DEPTH HEXFRAME IDKIND [TRACE_AT TRACE_LEN]`` —
pipelined RPC: each connection keeps DEPTH requests in flight; HEXFRAME is one encoded request whose id is
rewritten per send (IDKIND ``dubbo``: int64 at offset 4; ``bolt``: u32 at offset 5), and, with TRACE_AT,
the TRACE_LEN ASCII digits at that offset too (a trace id unique per request, as Java callers send);
responses are framed by the same header rules and matched by id. Prints one JSON line: requests,
seconds, rps, p50_ms, p99_ms, errors.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time

import uvloop


def _result(latencies: list[float], seconds: float, errors: int) -> dict:
    latencies.sort()
    n = len(latencies)
    pct = lambda q: latencies[min(n - 1, int(q * n))] * 1000 if n else float("nan")  # noqa: E731
    return {"requests": n, "seconds": seconds, "rps": n / seconds, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "errors": errors}


async def http(port: int, conns: int, seconds: float, path: str) -> dict:
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        r, w = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            w.write(request)
            head = await r.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await r.readexactly(length)
            if not head.startswith(b"HTTP/1.1 2"):
                errors += 1
            latencies.append(time.perf_counter() - t0)
        w.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    return _result(latencies, time.perf_counter() - t0, errors)


class _Pipelined(asyncio.Protocol):
    def __init__(self, frame: bytes, idkind: str, depth: int, stop: float, latencies: list, done: asyncio.Future,
                 trace: tuple[int, int] | None = None, base: int = 0):
        self.frame = bytearray(frame)
        self.trace = trace
        self.base = base                      # keeps trace ids of different connections apart
        self.dubbo = idkind == "dubbo"
        self.depth = depth
        self.stop = stop
        self.latencies = latencies
        self.done = done
        self.buf = bytearray()
        self.sent: dict[int, float] = {}
        self.next_id = 1
        self.errors = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send(self.depth)

    def _send(self, n: int) -> None:
        out = []
        now = time.perf_counter()
        for _ in range(n):
            rid = self.next_id
            self.next_id += 1
            if self.dubbo:
                struct.pack_into(">q", self.frame, 4, rid)
            else:
                struct.pack_into(">I", self.frame, 5, rid)
            if self.trace is not None:
                at, width = self.trace
                self.frame[at:at + width] = b"%0*d" % (width, self.base + rid)
            out.append(bytes(self.frame))
            self.sent[rid] = now
        self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        now = time.perf_counter()
        got = 0
        while True:
            if self.dubbo:
                if len(buf) < 16:
                    break
                rid, length = struct.unpack_from(">qI", buf, 4)
                total = 16 + length
                status = buf[3]
                ok = status == 20
            else:
                if len(buf) < 20:
                    break
                rid, = struct.unpack_from(">I", buf, 5)
                status, cl, hl, bl = struct.unpack_from(">HHHI", buf, 10)
                total = 20 + cl + hl + bl
                ok = status == 0
            if len(buf) < total:
                break
            del buf[:total]
            t = self.sent.pop(rid, None)
            if t is not None:
                self.latencies.append(now - t)
                got += 1
            if not ok:
                self.errors += 1
        if now < self.stop and got:
            self._send(got)
        elif not self.sent and not self.done.done():
            self.done.set_result(self.errors)

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result(self.errors + len(self.sent))


async def frames(port: int, conns: int, seconds: float, depth: int, frame: bytes, idkind: str,
                 trace: tuple[int, int] | None = None) -> dict:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    futures = []
    t0 = time.perf_counter()
    for i in range(conns):
        fut = loop.create_future()
        await loop.create_connection(lambda: _Pipelined(frame, idkind, depth, stop, latencies, fut, trace,
                                                        i * 10 ** 12), "127.0.0.1", port)
        futures.append(fut)
    errors = sum(await asyncio.wait_for(asyncio.gather(*futures), seconds + 10))
    return _result(latencies, time.perf_counter() - t0, errors)


def main(argv: list[str]) -> None:
    kind, port, conns, seconds = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    if kind == "http":
        result = uvloop.run(http(port, conns, seconds, argv[4] if len(argv) > 4 else "/"))
    else:
        trace = (int(argv[7]), int(argv[8])) if len(argv) > 8 else None
        result = uvloop.run(frames(port, conns, seconds, int(argv[4]), bytes.fromhex(argv[5]), argv[6], trace))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
