"""Bolt class name, header map and hessian content (SofaRequest / SofaResponse), parsed lazily.

Content dialect: Java SOFARPC and sofa-rpc-node write the Hessian 2.0 *draft* grammar (class definitions
start with ``O``); sofa-bolt-node with ``hessianVersion: '4.0'`` writes the final grammar (``C``). The
first content byte tells them apart, so both are read.

Routing keys (protocols.md §4): the service is the ``service`` header (``iface:version[:uniqueId]``);
the method is ``sofa_head_method_name`` when present (Java clients), else the ``methodName`` field of the
SofaRequest object, looked up by name in its class definition (sofa-rpc-node sends only ``service``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from meshd.codec.base import ProtocolError, UnsupportedSerialization
from meshd.codec.bolt.frame import (
    CODEC_HESSIAN2, CODEC_NAMES, PROTOCOL, BoltHeader, decode_header_map, header_value, parse_header,
)
from meshd.codec.hessian2.draft import DraftReader
from meshd.codec.hessian2.final import FinalReader
from meshd.codec.hessian2.reader import Reader
from meshd.codec.hessian2.values import JavaObject

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
    """Offsets of the three variable sections inside a frame."""

    class_start: int
    header_start: int
    content_start: int
    content_end: int


def sections(frame: bytes | bytearray) -> tuple[BoltHeader, Sections]:
    header = parse_header(frame)
    if header is None:  # the decoder only hands out complete frames
        raise ProtocolError("incomplete frame", protocol=PROTOCOL)
    a = header.size
    b = a + header.class_len
    c = b + header.header_len
    return header, Sections(a, b, c, c + header.content_len)


def class_name(frame: bytes | bytearray) -> str | None:
    header, s = sections(frame)
    if s.header_start == s.class_start:
        return None
    try:
        return frame[s.class_start:s.header_start].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("class name is not UTF-8", protocol=PROTOCOL, request_id=header.request_id) from None


def header_map(frame: bytes | bytearray) -> dict[str, str | None]:
    header, s = sections(frame)
    try:
        return decode_header_map(frame, s.header_start, s.content_start)
    except ProtocolError as e:
        e.request_id = header.request_id
        raise


def header(frame: bytes | bytearray, name: str | bytes) -> str | None:
    hdr, s = sections(frame)
    key = name.encode() if isinstance(name, str) else name
    try:
        return header_value(frame, s.header_start, s.content_start, key)
    except ProtocolError as e:
        e.request_id = hdr.request_id
        raise


def content_reader(frame: bytes | bytearray) -> Reader:
    """A hessian reader over the content, in the grammar the first byte announces."""
    hdr, s = sections(frame)
    if hdr.codec != CODEC_HESSIAN2:
        name = CODEC_NAMES.get(hdr.codec, "unknown")
        raise UnsupportedSerialization(f"content uses codec {hdr.codec} ({name}); only hessian2 (1) is parsed",
                                       protocol=PROTOCOL, request_id=hdr.request_id, serialization_id=hdr.codec)
    if s.content_start < s.content_end and frame[s.content_start] == 0x43:
        return FinalReader(frame, s.content_start, s.content_end)
    return DraftReader(frame, s.content_start, s.content_end)


def content_method_name(frame: bytes | bytearray) -> str | None:
    """The ``methodName`` field of the SofaRequest object, skipping the other fields (not the arguments)."""
    r = content_reader(frame)
    if r.at_end:
        return None
    cdef = r.begin_object()
    if cdef is None:
        return None
    for name in cdef.fields:
        if name == "methodName":
            value = r.read()
            return value if isinstance(value, str) else None
        r.skip()
    return None


def split_service(service: str | None) -> tuple[str | None, str | None, str | None]:
    """``iface:version[:uniqueId]`` → (interface, version, uniqueId)."""
    if not service:
        return None, None, None
    parts = service.split(":", 2)
    return parts[0], parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else None


def request_head(frame: bytes | bytearray) -> BoltRequestHead:
    try:
        service = header(frame, SERVICE_HEADER)
        method = header(frame, METHOD_HEADER)
        if method is None:
            method = content_method_name(frame)
    except ProtocolError as e:
        if e.request_id is None:
            e.request_id = parse_header(frame).request_id  # type: ignore[union-attr]
        raise
    return BoltRequestHead(service, *split_service(service), method)


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
        e.request_id = parse_header(frame).request_id  # type: ignore[union-attr]
        raise
    return SofaRequest(obj.get("methodName"), list(sigs), obj.get("targetServiceUniqueName"),
                       obj.get("targetAppName"), _as_dict(obj.get("requestProps")), args)


def sofa_response(frame: bytes | bytearray) -> SofaResponse:
    """Decode a SofaResponse content (a bare string or exception object counts as an error message)."""
    r = content_reader(frame)
    try:
        obj = None if r.at_end else r.read()
    except ProtocolError as e:
        e.request_id = parse_header(frame).request_id  # type: ignore[union-attr]
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
        e.request_id = parse_header(frame).request_id  # type: ignore[union-attr]
        raise
