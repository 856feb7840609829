"""SOFA Bolt frame layout (v1 and v2), request-id rewriting with CRC, and the header-map format.

```
v1 request  (22 B): proto=1 | type | cmdcode u16 | ver2 | requestId u32 | codec | timeout i32 | classLen u16 | headerLen u16 | contentLen u32
v1 response (20 B): proto=1 | type | cmdcode u16 | ver2 | requestId u32 | codec | status u16  | classLen u16 | headerLen u16 | contentLen u32
v2 request  (24 B): proto=2 | ver1 | type | cmdcode u16 | ver2 | requestId u32 | codec | switch | timeout i32 | classLen | headerLen | contentLen
v2 response (22 B): proto=2 | ver1 | type | cmdcode u16 | ver2 | requestId u32 | codec | switch | status u16 | classLen | headerLen | contentLen
```
then className, header map and content bytes; in v2 with ``ver1 == 2`` and switch bit 0 (CRC) a CRC32 of
everything before it follows (sofa-bolt's RpcCommandDecoderV2; sofa-bolt-node also appends it for ver1 1).

The request id sits at offset 5 (v1) or 6 (v2). :func:`patch_request_id` rewrites it in place and, for a
v2 frame carrying a CRC, recomputes the CRC: a forwarder never re-encodes a frame.
"""

from __future__ import annotations

import struct
import zlib
from typing import Iterable, NamedTuple

from meshd.codec.base import ProtocolError

PROTOCOL = "bolt"
PROTO_V1 = 0x01
PROTO_V2 = 0x02

TYPE_RESPONSE = 0
TYPE_REQUEST = 1
TYPE_REQUEST_ONEWAY = 2

CMD_HEARTBEAT = 0
CMD_REQUEST = 1
CMD_RESPONSE = 2

CODEC_HESSIAN2 = 1
CODEC_PROTOBUF = 11
CODEC_NAMES = {1: "hessian2", 11: "protobuf", 12: "json"}

SWITCH_CRC = 0x01

V1_REQUEST = struct.Struct(">BBHBIBiHHI")      # 22
V1_RESPONSE = struct.Struct(">BBHBIBHHHI")     # 20
V2_REQUEST = struct.Struct(">BBBHBIBBiHHI")    # 24
V2_RESPONSE = struct.Struct(">BBBHBIBBHHHI")   # 22
ID = struct.Struct(">I")
CRC = struct.Struct(">I")
_I32 = struct.Struct(">i")

REQUEST_CLASS = "com.alipay.sofa.rpc.core.request.SofaRequest"
RESPONSE_CLASS = "com.alipay.sofa.rpc.core.response.SofaResponse"
SERVER_EXCEPTION_CLASS = "com.alipay.remoting.rpc.exception.RpcServerException"


class BoltHeader(NamedTuple):
    """The fixed header of one frame, protocol-version independent.

    ``status`` is None for requests, ``timeout`` None for responses. ``size`` is the fixed header size,
    ``total`` the whole frame including className, header, content and CRC.
    """

    proto: int
    ver1: int              # v2 only (1 for v1 frames)
    type: int
    cmdcode: int
    ver2: int
    request_id: int
    codec: int
    switch: int            # v2 only (0 for v1 frames)
    timeout: int | None
    status: int | None
    class_len: int
    header_len: int
    content_len: int
    size: int
    total: int

    @property
    def is_request(self) -> bool:
        return self.type != TYPE_RESPONSE

    @property
    def oneway(self) -> bool:
        return self.type == TYPE_REQUEST_ONEWAY

    @property
    def has_crc(self) -> bool:
        return self.proto == PROTO_V2 and self.ver1 == 2 and bool(self.switch & SWITCH_CRC)

    @property
    def declared(self) -> int:
        """Bytes after the fixed header (what the frame-size limit applies to)."""
        return self.total - self.size


def header_size(proto: int, typ: int) -> int:
    if proto == PROTO_V1:
        return 20 if typ == TYPE_RESPONSE else 22
    return 22 if typ == TYPE_RESPONSE else 24


def parse_header(data: bytes | bytearray | memoryview, offset: int = 0) -> BoltHeader | None:
    """Parse the fixed header at ``offset``: None when more bytes are needed, ProtocolError when invalid."""
    avail = len(data) - offset
    if avail < 3:
        return None
    proto = data[offset]
    if proto == PROTO_V1:
        typ = data[offset + 1]
    elif proto == PROTO_V2:
        typ = data[offset + 2]
    else:
        raise ProtocolError(f"unknown bolt protocol code 0x{proto:02x}", protocol=PROTOCOL)
    if typ > TYPE_REQUEST_ONEWAY:
        raise ProtocolError(f"unknown command type {typ}", protocol=PROTOCOL)
    size = header_size(proto, typ)
    if avail < size:
        return None
    timeout = status = None
    ver1, switch = 1, 0
    if proto == PROTO_V1:
        if typ == TYPE_RESPONSE:
            _, _, cmd, ver2, rid, codec, status, clen, hlen, blen = V1_RESPONSE.unpack_from(data, offset)
        else:
            _, _, cmd, ver2, rid, codec, timeout, clen, hlen, blen = V1_REQUEST.unpack_from(data, offset)
    elif typ == TYPE_RESPONSE:
        _, ver1, _, cmd, ver2, rid, codec, switch, status, clen, hlen, blen = V2_RESPONSE.unpack_from(data, offset)
    else:
        _, ver1, _, cmd, ver2, rid, codec, switch, timeout, clen, hlen, blen = V2_REQUEST.unpack_from(data, offset)
    if blen > 0x7FFFFFFF:
        raise ProtocolError(f"negative content length {blen - (1 << 32)}", protocol=PROTOCOL, request_id=rid)
    total = size + clen + hlen + blen
    if proto == PROTO_V2 and ver1 == 2 and switch & SWITCH_CRC:
        total += 4
    return BoltHeader(proto, ver1, typ, cmd, ver2, rid, codec, switch, timeout, status, clen, hlen, blen,
                      size, total)


def id_offset(proto: int) -> int:
    return 5 if proto == PROTO_V1 else 6


def read_request_id(frame: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """The request id (u32) of the frame starting at ``offset``."""
    return ID.unpack_from(frame, offset + id_offset(frame[offset]))[0]


def patch_request_id(buf: bytearray | memoryview, request_id: int, offset: int = 0) -> None:
    """Overwrite, in place, the request id of the complete frame at ``offset``; recompute a v2 CRC."""
    proto = buf[offset]
    ID.pack_into(buf, offset + id_offset(proto), request_id & 0xFFFFFFFF)
    if proto == PROTO_V2 and buf[offset + 1] == 2 and buf[offset + 11] & SWITCH_CRC:
        header = parse_header(buf, offset)
        if header is None or len(buf) - offset < header.total:
            raise ProtocolError("incomplete frame: cannot recompute its CRC", protocol=PROTOCOL)
        end = offset + header.total - 4
        CRC.pack_into(buf, end, zlib.crc32(memoryview(buf)[offset:end]))


def with_request_id(frame: bytes | bytearray, request_id: int) -> bytes:
    """A copy of the frame carrying ``request_id`` (CRC recomputed when present)."""
    out = bytearray(frame)
    patch_request_id(out, request_id)
    return bytes(out)


def crc_ok(frame: bytes | bytearray, header: BoltHeader) -> bool:
    end = header.total - 4
    return CRC.unpack_from(frame, end)[0] == zlib.crc32(memoryview(frame)[:end])


# -- header map (SOFARPC SimpleMapSerializer) ------------------------------------------------------------

def decode_header_map(data: bytes | bytearray, start: int, end: int) -> dict[str, str | None]:
    """``i32 len, UTF-8 key, i32 len, UTF-8 value`` repeated; length -1 = null, 0 = ""."""
    out: dict[str, str | None] = {}
    p = start
    while p < end:
        key, p = _map_string(data, p, end)
        value, p = _map_string(data, p, end)
        if key is not None:
            out[key] = value
    return out


def header_value(data: bytes | bytearray, start: int, end: int, name: bytes) -> str | None:
    """One header's value without building the map (None when absent or null). A repeated name answers its
    last value, as :func:`decode_header_map` and SOFARPC's ``SimpleMapSerializer`` (a ``HashMap.put``) do."""
    p = start
    n = len(name)
    found = None
    while p < end:
        if p + 4 > end:
            raise ProtocolError("truncated header map", protocol=PROTOCOL)
        klen = _I32.unpack_from(data, p)[0]
        p += 4
        hit = False
        if klen >= 0:
            q = p + klen
            if q > end:
                raise ProtocolError("truncated header map", protocol=PROTOCOL)
            hit = klen == n and data[p:q] == name
            p = q
        elif klen != -1:
            raise ProtocolError(f"bad header-map length {klen}", protocol=PROTOCOL)
        value, p = _map_string(data, p, end)
        if hit:
            found = value
    return found


def key_names(names: Iterable[bytes]) -> dict[int, tuple[bytes, ...]]:
    """Header names grouped by length, as :func:`header_entries` takes them."""
    out: dict[int, tuple[bytes, ...]] = {}
    for name in names:
        out[len(name)] = (*out.get(len(name), ()), name)
    return out


def header_entries(data: bytes | bytearray, start: int, end: int, names: dict[int, tuple[bytes, ...]],
                   first: bytes = b"", gaps: list[tuple[int, int]] | None = None) -> tuple[bytes, bool]:
    """The raw entries (``klen key vlen value``, as on the wire, in map order) whose key is one of
    ``names`` (:func:`key_names`), joined: a routing cache key that no other entry (a per-request trace
    id) changes; and whether the map has an entry named ``first``. One walk over the map, a key compared
    only when its length matches, no string decoded; raises ``ProtocolError`` where
    :func:`decode_header_map` would. ``gaps``, when given, receives the (start, end) of every other
    entry's value bytes: the only bytes another map with the same key may differ in, at the same places."""
    parts = []
    found = False
    p = start
    unpack = _I32.unpack_from
    while p < end:
        if p + 8 > end:
            raise ProtocolError("truncated header map", protocol=PROTOCOL)
        at = p
        klen = unpack(data, p)[0]
        p += 4
        wanted = names.get(klen) if klen > 0 else None
        if klen > 0:
            p += klen
        elif klen < -1:
            raise ProtocolError(f"bad header-map length {klen}", protocol=PROTOCOL)
        if p + 4 > end:
            raise ProtocolError("truncated header map", protocol=PROTOCOL)
        vlen = unpack(data, p)[0]
        if wanted is not None and data[at + 4:p] not in wanted:
            wanted = None
        p += 4
        if vlen > 0:
            if gaps is not None and wanted is None:
                gaps.append((p, p + vlen))
            p += vlen
        elif vlen < -1:
            raise ProtocolError(f"bad header-map length {vlen}", protocol=PROTOCOL)
        if p > end:
            raise ProtocolError("truncated header map", protocol=PROTOCOL)
        if wanted is not None:
            parts.append(data[at:p])
            if not found and first and data[at + 4:at + 4 + klen] == first:
                found = True
    return b"".join(parts), found


def _map_string(data: bytes | bytearray, p: int, end: int) -> tuple[str | None, int]:
    if p + 4 > end:
        raise ProtocolError("truncated header map", protocol=PROTOCOL)
    n = _I32.unpack_from(data, p)[0]
    p += 4
    if n < 0:
        if n != -1:
            raise ProtocolError(f"bad header-map length {n}", protocol=PROTOCOL)
        return None, p
    q = p + n
    if q > end:
        raise ProtocolError("truncated header map", protocol=PROTOCOL)
    try:
        return data[p:q].decode("utf-8"), q
    except UnicodeDecodeError:
        raise ProtocolError("header map entry is not UTF-8", protocol=PROTOCOL) from None


def encode_header_map(headers: dict[str, str | None]) -> bytes:
    """Encode as SOFARPC does: entries with a null key or value are dropped; "" is written as length 0."""
    out = bytearray()
    for key, value in headers.items():
        if key is None or value is None:
            continue
        k = key.encode("utf-8")
        v = str(value).encode("utf-8")
        out += _I32.pack(len(k)) + k + _I32.pack(len(v)) + v
    return bytes(out)
