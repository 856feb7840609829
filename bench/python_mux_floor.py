"""The floor of a Python L7 RPC proxy: the least per-request work any multiplexing Dubbo/Bolt proxy in
Python must do, and nothing else. A benchmark baseline, not a product: no routing, no balancing (two
upstream connections to one backend, taken in turn per read), no timeouts, no retries, no stats, no
heartbeats, no error answers, no bounds.

Per request it reads the frame header, takes a new upstream id, remembers (caller, caller's id) under
it, writes the id into a copy of the frame, and on the way back does the reverse; one write per
transport per read, as meshd does. What is left between this and meshd is meshd's features.

``python bench/python_mux_floor.py dubbo|bolt LISTEN_PORT BACKEND_PORT`` prints ``{"port": N}`` when
listening.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys

import uvloop

_DUBBO_HEAD = struct.Struct(">qI")      # id at 4, body length at 12
_DUBBO_ID = struct.Struct(">q")
_BOLT_ID = struct.Struct(">I")
_BOLT_REQ_LENS = struct.Struct(">HHI")  # class, header, content lengths at 14 (request header: 22 bytes)
_BOLT_RESP_LENS = struct.Struct(">HHI")  # at 12 (response header: 20 bytes)


class _Floor:
    """Shared state: the upstream connections and the pending map (upstream id → (caller, caller id))."""

    def __init__(self, dubbo: bool) -> None:
        self.dubbo = dubbo
        self.ups: list[_Up] = []
        self.turn = 0
        self.pending: dict[int, tuple[_Down, int]] = {}
        self.next_id = 1


def _frames(buf: bytearray, dubbo: bool, request: bool):
    """Yield (start, end, id) of every whole frame in ``buf``; the caller drops the consumed prefix."""
    pos, n = 0, len(buf)
    while True:
        if dubbo:
            if n - pos < 16:
                return
            rid, length = _DUBBO_HEAD.unpack_from(buf, pos + 4)
            end = pos + 16 + length
        else:
            head = 22 if request else 20
            if n - pos < head:
                return
            rid, = _BOLT_ID.unpack_from(buf, pos + 5)
            cl, hl, bl = (_BOLT_REQ_LENS if request else _BOLT_RESP_LENS).unpack_from(buf, pos + head - 8)
            end = pos + head + cl + hl + bl
        if end > n:
            return
        yield pos, end, rid
        pos = end


class _Side(asyncio.Protocol):
    def __init__(self, floor: _Floor) -> None:
        self.floor = floor
        self.buf = bytearray()
        self.pack, self.at = (_DUBBO_ID.pack_into, 4) if floor.dubbo else (_BOLT_ID.pack_into, 5)

    def connection_made(self, transport) -> None:
        self.transport = transport


class _Down(_Side):
    def data_received(self, data: bytes) -> None:
        floor, buf, pack, at = self.floor, self.buf, self.pack, self.at
        buf += data
        pending = floor.pending
        out = []
        last = 0
        for start, end, rid in _frames(buf, floor.dubbo, True):
            uid = floor.next_id
            floor.next_id = (uid + 1) & 0x7FFFFFFF
            pending[uid] = (self, rid)
            frame = buf[start:end]
            pack(frame, at, uid)
            out.append(frame)
            last = end
        if last:
            del buf[:last]
            up = floor.ups[floor.turn]
            floor.turn = (floor.turn + 1) % len(floor.ups)
            up.transport.write(b"".join(out))


class _Up(_Side):
    def data_received(self, data: bytes) -> None:
        floor, buf, pack, at = self.floor, self.buf, self.pack, self.at
        buf += data
        pending = floor.pending
        outs: dict[_Down, list] = {}
        last = 0
        for start, end, uid in _frames(buf, floor.dubbo, False):
            last = end
            caller = pending.pop(uid, None)
            if caller is None:
                continue
            down, rid = caller
            frame = buf[start:end]
            pack(frame, at, rid)
            out = outs.get(down)
            if out is None:
                outs[down] = [frame]
            else:
                out.append(frame)
        if last:
            del buf[:last]
        for down, out in outs.items():
            down.transport.write(b"".join(out))


async def main(protocol: str, port: int, backend: int) -> None:
    loop = asyncio.get_running_loop()
    floor = _Floor(protocol == "dubbo")
    for _ in range(2):
        _, up = await loop.create_connection(lambda: _Up(floor), "127.0.0.1", backend)
        floor.ups.append(up)
    server = await loop.create_server(lambda: _Down(floor), "127.0.0.1", port, backlog=1024)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
