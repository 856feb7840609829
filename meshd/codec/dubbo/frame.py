"""Dubbo2 frame layout: the 16-byte header, its flags, and request-id rewriting on raw frames.

```
off len field
0   2   magic 0xdabb
2   1   flag: 0x80 REQUEST, 0x40 TWOWAY, 0x20 EVENT, low 5 bits = serialization id
3   1   status (responses only; 0 in requests)
4   8   request id (int64; responses echo it)
12  4   body length (int32)
```

Id rewriting never re-encodes: :func:`patch_request_id` overwrites the 8 id bytes in place (a forwarder
appends the frame to its output bytearray and patches it there), :func:`with_request_id` returns a copy.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from meshd.codec.base import ProtocolError

PROTOCOL = "dubbo"
MAGIC = 0xDABB
MAGIC_BYTES = b"\xda\xbb"
HEADER_SIZE = 16
HEADER = struct.Struct(">HBBqi")        # magic, flag, status, request id, body length
ID = struct.Struct(">q")
ID_OFFSET = 4

FLAG_REQUEST = 0x80
FLAG_TWOWAY = 0x40
FLAG_EVENT = 0x20
SERIALIZATION_MASK = 0x1F

HESSIAN2 = 2
SERIALIZATIONS = {
    2: "hessian2", 3: "java", 4: "compactedjava", 6: "fastjson", 7: "nativejava", 8: "kryo", 9: "fst",
    11: "avro", 12: "protostuff", 16: "gson", 21: "protobuf-json", 22: "protobuf", 23: "fastjson2",
    27: "msgpack", 28: "fury",
}


class DubboHeader(NamedTuple):
    """The fixed header of one frame (what :class:`FrameTooLarge` carries to answer in-protocol)."""

    flag: int
    status: int
    request_id: int
    body_length: int

    @property
    def is_request(self) -> bool:
        return bool(self.flag & FLAG_REQUEST)

    @property
    def twoway(self) -> bool:
        return bool(self.flag & FLAG_TWOWAY)

    @property
    def is_event(self) -> bool:
        return bool(self.flag & FLAG_EVENT)

    @property
    def serialization_id(self) -> int:
        return self.flag & SERIALIZATION_MASK


def parse_header(data: bytes | bytearray | memoryview, offset: int = 0) -> DubboHeader:
    """Parse the 16-byte header at ``offset``; raise :class:`ProtocolError` on a short buffer or bad magic."""
    if len(data) - offset < HEADER_SIZE:
        raise ProtocolError(f"need {HEADER_SIZE} header bytes, have {len(data) - offset}", protocol=PROTOCOL)
    magic, flag, status, rid, length = HEADER.unpack_from(data, offset)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic 0x{magic:04x} (expected 0xdabb)", protocol=PROTOCOL)
    if length < 0:
        raise ProtocolError(f"negative body length {length}", protocol=PROTOCOL, request_id=rid)
    return DubboHeader(flag, status, rid, length)


def read_request_id(frame: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """The request id of the frame starting at ``offset`` (responses carry the request's id)."""
    return ID.unpack_from(frame, offset + ID_OFFSET)[0]


def patch_request_id(buf: bytearray | memoryview, request_id: int, offset: int = 0) -> None:
    """Overwrite, in place, the request id of the frame that starts at ``offset`` of ``buf``."""
    ID.pack_into(buf, offset + ID_OFFSET, request_id)


def with_request_id(frame: bytes | bytearray, request_id: int) -> bytes:
    """A copy of ``frame`` carrying ``request_id``."""
    out = bytearray(frame)
    ID.pack_into(out, ID_OFFSET, request_id)
    return bytes(out)


def header_bytes(flag: int, status: int, request_id: int, body_length: int) -> bytes:
    return HEADER.pack(MAGIC, flag, status, request_id, body_length)


def count_params(desc: str) -> int:
    """Number of arguments in a JVM parameter descriptor (``Ljava/lang/String;I`` → 2, ``[[I`` → 1)."""
    cached = _DESC_CACHE.get(desc)
    if cached is not None:
        return cached
    n = i = 0
    end = len(desc)
    while i < end:
        while i < end and desc[i] == "[":
            i += 1
        if i >= end:
            raise ProtocolError(f"parameter descriptor {desc!r} ends inside an array type", protocol=PROTOCOL)
        c = desc[i]
        if c in "ZBCDFIJS":
            i += 1
        elif c == "L":
            j = desc.find(";", i)
            if j < 0:
                raise ProtocolError(f"parameter descriptor {desc!r} has an unterminated class name",
                                    protocol=PROTOCOL)
            i = j + 1
        else:
            raise ProtocolError(f"parameter descriptor {desc!r} has an unknown type {c!r}", protocol=PROTOCOL)
        n += 1
    if len(_DESC_CACHE) >= 1024:
        _DESC_CACHE.clear()
    _DESC_CACHE[desc] = n
    return n


_DESC_CACHE: dict[str, int] = {}

_PRIMITIVES = {
    "boolean": "Z", "byte": "B", "char": "C", "double": "D", "float": "F", "int": "I", "long": "J",
    "short": "S", "void": "V",
}


def java_descriptor(types: list[str] | tuple[str, ...]) -> str:
    """JVM descriptor of Java type names: ``["java.lang.String", "int", "long[]"]`` → ``Ljava/lang/String;I[J``.

    Array types may be written ``long[]`` or in JVM form (``[J``, ``[Ljava.lang.String;``).
    """
    out = []
    for name in types:
        name = name.strip()
        if name.startswith("["):
            out.append(name.replace(".", "/"))
            continue
        dims = 0
        while name.endswith("[]"):
            dims += 1
            name = name[:-2].strip()
        prim = _PRIMITIVES.get(name)
        out.append("[" * dims + (prim if prim else "L" + name.replace(".", "/") + ";"))
    return "".join(out)
