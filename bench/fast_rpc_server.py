"""A frame-aware Dubbo / Bolt responder for benchmarks: answers every request with a fixed, pre-encoded
response patched with the request's id, one write per batch of frames. Heartbeats are acknowledged.

``python bench/fast_rpc_server.py dubbo|bolt PORT`` prints ``{"port": N}`` when listening.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys

import uvloop

from meshd.codec import bolt, dubbo


class _Conn(asyncio.Protocol):
    def __init__(self, protocol: str) -> None:
        self.dubbo = protocol == "dubbo"
        self.buf = bytearray()
        self.reply = bytearray(dubbo.encode_response(0, "hello bench") if self.dubbo else
                               bolt.encode_response(0, "hello bench"))
        self.hb = bytearray(dubbo.encode_heartbeat_ack(0) if self.dubbo else bolt.encode_heartbeat_ack(0))

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out = []
        pos = 0
        n = len(buf)
        while True:
            if self.dubbo:
                if n - pos < 16:
                    break
                flag = buf[pos + 2]
                rid, length = struct.unpack_from(">qI", buf, pos + 4)
                end = pos + 16 + length
                if end > n:
                    break
                template = self.hb if flag & 0x20 else self.reply
                frame = bytearray(template)
                struct.pack_into(">q", frame, 4, rid)
            else:
                if n - pos < 22:
                    break
                cmd = struct.unpack_from(">H", buf, pos + 2)[0]
                rid = struct.unpack_from(">I", buf, pos + 5)[0]
                cl, hl, bl = struct.unpack_from(">HHI", buf, pos + 14)
                end = pos + 22 + cl + hl + bl
                if end > n:
                    break
                frame = bytearray(self.hb if cmd == 0 else self.reply)
                struct.pack_into(">I", frame, 5, rid)
            out.append(frame)
            pos = end
        if pos:
            del buf[:pos]
        if out:
            self.transport.write(b"".join(out))


async def main(protocol: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(protocol), "127.0.0.1", port, backlog=1024)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
