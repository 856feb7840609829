"""Bolt class name, header map and hessian content (SofaRequest / SofaResponse), parsed lazily.

Content dialect: Java SOFARPC and sofa-rpc-node write the Hessian 2.0 *draft* grammar (class definitions
start with ``O``); sofa-bolt-node with ``hessianVersion: '4.0'`` writes the final grammar (``C``). The
first content byte tells them apart, so both are read.

Routing keys (docs/protocols.md §4): the service is the ``service`` header (``iface:version[:uniqueId]``);
the method is ``sofa_head_method_name`` when present (Java clients), else the ``methodName`` field of the
SofaRequest object, looked up by name in its class definition (sofa-rpc-node sends only ``service``).
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from meshd.codec.base import ProtocolError, UnsupportedSerialization
from meshd.codec.bolt.frame import (
    CODEC_HESSIAN2, CODEC_NAMES, PROTO_V1, PROTO_V2, PROTOCOL, TYPE_RESPONSE, decode_header_map, header_value,
)
from meshd.codec.hessian2.draft import DraftReader
from meshd.codec.hessian2.final import FinalReader
from meshd.codec.hessian2.reader import Reader
from meshd.codec.hessian2.values import JavaObject

_SLOW = object()
_new = tuple.__new__
SERVICE_HEADER = b"service"
METHOD_HEADER = b"sofa_head_method_name"


class BoltRequestHead(NamedTuple):
    """Routing view of a request: the ``service`` header split into interface, version and uniqueId."""

    service: str | None         # the raw header, e.g. "com.example.Calc:1.0:blue"
    interface: str | None
    version: str | None
    unique_id: str | None
    method: str | None


class SofaRequest(NamedTuple):
    """A decoded SofaRequest content: the object's fields plus the arguments that follow it."""

    method_name: str | None
    method_arg_sigs: list[str]
    target_service_unique_name: str | None
    target_app_name: str | None
    request_props: dict[Any, Any]
    args: list[Any]


class SofaResponse(NamedTuple):
    """A decoded SofaResponse content (status SUCCESS). ``app_response`` may be an exception object."""

    is_error: bool
    error_msg: str | None
    app_response: Any
    response_props: dict[Any, Any]


class Sections(NamedTuple):
    """Offsets of the three variable sections inside a frame, plus the fields body parsing needs."""

    class_start: int
    header_start: int
    content_start: int
    content_end: int
    codec: int
    request_id: int


_LENGTHS = struct.Struct(">HHI")
_U32 = struct.Struct(">I")
# fixed header size and offset of (classLen, headerLen, contentLen) by (proto, is_response)
_LAYOUT = {(PROTO_V1, False): (22, 14), (PROTO_V1, True): (20, 12), (PROTO_V2, False): (24, 16),
           (PROTO_V2, True): (22, 14)}


def sections(frame: bytes | bytearray) -> Sections:
    """Section offsets of a complete frame (as handed out by the decoder): two unpacks, no header object."""
    proto = frame[0]
    size, at = _LAYOUT[proto, frame[1 if proto == PROTO_V1 else 2] == TYPE_RESPONSE]
    clen, hlen, blen = _LENGTHS.unpack_from(frame, at)
    a = size
    b = a + clen
    c = b + hlen
    if proto == PROTO_V1:
        codec, rid = frame[9], _U32.unpack_from(frame, 5)[0]
    else:
        codec, rid = frame[10], _U32.unpack_from(frame, 6)[0]
    return _new(Sections, (a, b, c, c + blen, codec, rid))


def class_name(frame: bytes | bytearray) -> str | None:
    s = sections(frame)
    if s.header_start == s.class_start:
        return None
    try:
        return frame[s.class_start:s.header_start].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("class name is not UTF-8", protocol=PROTOCOL, request_id=s.request_id) from None


def header_map(frame: bytes | bytearray) -> dict[str, str | None]:
    s = sections(frame)
    try:
        return decode_header_map(frame, s.header_start, s.content_start)
    except ProtocolError as e:
        e.request_id = s.request_id
        raise


def header(frame: bytes | bytearray, name: str | bytes, s: Sections | None = None) -> str | None:
    s = s or sections(frame)
    key = name.encode() if isinstance(name, str) else name
    try:
        return header_value(frame, s.header_start, s.content_start, key)
    except ProtocolError as e:
        e.request_id = s.request_id
        raise


def content_reader(frame: bytes | bytearray, s: Sections | None = None) -> Reader:
    """A hessian reader over the content, in the grammar the first byte announces."""
    s = s or sections(frame)
    if s.codec != CODEC_HESSIAN2:
        name = CODEC_NAMES.get(s.codec, "unknown")
        raise UnsupportedSerialization(f"content uses codec {s.codec} ({name}); only hessian2 (1) is parsed",
                                       protocol=PROTOCOL, request_id=s.request_id, serialization_id=s.codec)
    if s.content_start < s.content_end and frame[s.content_start] == 0x43:
        return FinalReader(frame, s.content_start, s.content_end)
    return DraftReader(frame, s.content_start, s.content_end)


# Clients repeat the same SofaRequest class definition in every request (definitions are per body). The
# bytes of recently seen definitions map to the position of ``methodName`` among the fields, so that the
# next request only compares bytes and reads one compact string. Anything unexpected takes the reader.
_DEF_CACHE: dict[bytes, tuple[bytes, int]] = {}     # definition bytes -> (instance lead bytes, field index)
_DEF_CACHE_SIZE = 16


def _cached_method_name(frame: bytes | bytearray, s: Sections) -> Any:
    start, end = s.content_start, s.content_end
    for key, (lead, index) in _DEF_CACHE.items():
        if frame.startswith(key, start) and frame.startswith(lead, start + len(key)):
            p = start + len(key) + len(lead)
            for _ in range(index):                      # skip earlier fields: compact forms only
                if p >= end:
                    return _SLOW
                b = frame[p]
                if b < 0x20:
                    p += 1 + b
                elif b in (0x4E, 0x54, 0x46) or 0x80 <= b <= 0xBF:
                    p += 1
                else:
                    return _SLOW
            if p < end and frame[p] < 0x20 and p + 1 + frame[p] <= end:
                q = p + 1 + frame[p]
                raw = frame[p + 1:q]
                if raw.isascii():
                    return raw.decode("ascii"), q
            return _SLOW
    return _SLOW


def content_method_name(frame: bytes | bytearray, s: Sections | None = None) -> str | None:
    """The ``methodName`` field of the SofaRequest object, skipping the other fields (not the arguments)."""
    found = content_method(frame, s)
    return found[0] if found is not None else None


def content_method(frame: bytes | bytearray, s: Sections | None = None) -> tuple[str, int] | None:
    """(``methodName``, the offset just past it), None when the content has none. Everything a request's
    method can depend on lies before that offset. Raises ``ProtocolError`` for malformed content."""
    s = s or sections(frame)
    if s.codec == CODEC_HESSIAN2:
        cached = _cached_method_name(frame, s)
        if cached is not _SLOW:
            return cached
    found = _read_method_name(frame, s, remember=True)
    return found if found is not None and isinstance(found[0], str) else None


def _read_method_name(frame: bytes | bytearray, s: Sections, remember: bool = False) -> tuple[Any, int] | None:
    """(the ``methodName`` value, the offset after it), reading the content up to there; None if absent."""
    r = content_reader(frame, s)
    if r.at_end:
        return None
    cdef = r.begin_object()
    if cdef is None:
        return None
    if remember:
        _remember_definition(frame, s, r, cdef)
    for name in cdef.fields:
        if name == "methodName":
            return r.read(), r.pos
        r.skip()
    return None


def _remember_definition(frame: bytes | bytearray, s: Sections, r: Reader, cdef: Any) -> None:
    """Cache the definition bytes when the body starts with exactly one definition and instance 0."""
    if "methodName" not in cdef.fields or len(r.classes) != 1:
        return
    draft = isinstance(r, DraftReader)
    lead = b"o\x90" if draft else b"\x60"
    lead_at = r.pos - len(lead)
    if bytes(frame[lead_at:r.pos]) != lead:
        return
    if len(_DEF_CACHE) >= _DEF_CACHE_SIZE:
        _DEF_CACHE.pop(next(iter(_DEF_CACHE)))
    _DEF_CACHE[bytes(frame[s.content_start:lead_at])] = (lead, cdef.fields.index("methodName"))


def split_service(service: str | None) -> tuple[str | None, str | None, str | None]:
    """``iface:version[:uniqueId]`` → (interface, version, uniqueId)."""
    if not service:
        return None, None, None
    parts = service.split(":", 2)
    return parts[0], parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else None


def request_head(frame: bytes | bytearray) -> BoltRequestHead:
    s = sections(frame)
    try:
        service = header(frame, SERVICE_HEADER, s)
        method = header(frame, METHOD_HEADER, s)
        if method is None:
            method = content_method_name(frame, s)
    except ProtocolError as e:
        e.request_id = s.request_id
        raise
    return _new(BoltRequestHead, (service, *split_service(service), method))


def _as_dict(value: Any) -> dict[Any, Any]:
    return dict(value) if isinstance(value, dict) else {}


def sofa_request(frame: bytes | bytearray) -> SofaRequest:
    """Decode the SofaRequest object and its arguments (one per ``methodArgSigs`` entry)."""
    r = content_reader(frame)
    try:
        obj = r.read()
        if not isinstance(obj, JavaObject):
            raise ProtocolError(f"content starts with a {type(obj).__name__}, not a SofaRequest object",
                                protocol=PROTOCOL)
        sigs = obj.get("methodArgSigs") or []
        if not isinstance(sigs, list):
            raise ProtocolError("methodArgSigs is not a list", protocol=PROTOCOL)
        args = [r.read() for _ in sigs]
    except ProtocolError as e:
        e.request_id = sections(frame).request_id
        raise
    return SofaRequest(obj.get("methodName"), list(sigs), obj.get("targetServiceUniqueName"),
                       obj.get("targetAppName"), _as_dict(obj.get("requestProps")), args)


def sofa_response(frame: bytes | bytearray) -> SofaResponse:
    """Decode a SofaResponse content (a bare string or exception object counts as an error message)."""
    r = content_reader(frame)
    try:
        obj = None if r.at_end else r.read()
    except ProtocolError as e:
        e.request_id = sections(frame).request_id
        raise
    if isinstance(obj, str):
        return SofaResponse(True, obj, None, {})
    if not isinstance(obj, JavaObject) or "isError" not in obj:
        return SofaResponse(False, None, obj, {})
    return SofaResponse(bool(obj.get("isError")), obj.get("errorMsg"), obj.get("appResponse"),
                        _as_dict(obj.get("responseProps")))


def content_value(frame: bytes | bytearray) -> Any:
    """The first content value, decoded (e.g. the RpcServerException of an error response); None if empty."""
    r = content_reader(frame)
    try:
        return None if r.at_end else r.read()
    except ProtocolError as e:
        e.request_id = sections(frame).request_id
        raise
