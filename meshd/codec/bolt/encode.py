"""Bolt frame encoders: SofaRequest requests, SofaResponse responses, status-only errors, heartbeats.

``version`` selects Bolt v1 (1) or v2 (2); for v2, ``ver1`` is the protocol version byte and ``crc``
appends a CRC32 (only meaningful with ``ver1=2``, as sofa-bolt's decoder reads it only then).
Contents are hessian in the draft grammar, the way sofa-rpc-node (and Java SOFARPC) write them.
"""

from __future__ import annotations

import zlib
from typing import Any, Iterable

from meshd.codec.base import EncodeError
from meshd.codec.bolt.frame import (
    CMD_HEARTBEAT, CMD_REQUEST, CMD_RESPONSE, CODEC_HESSIAN2, CRC, PROTO_V1, PROTO_V2, PROTOCOL, REQUEST_CLASS,
    RESPONSE_CLASS, SWITCH_CRC, TYPE_REQUEST, TYPE_REQUEST_ONEWAY, TYPE_RESPONSE, V1_REQUEST, V1_RESPONSE,
    V2_REQUEST, V2_RESPONSE, encode_header_map,
)
from meshd.codec.bolt.status import SUCCESS, status_for
from meshd.codec.hessian2.encoder import DraftEncoder
from meshd.codec.hessian2.values import JavaObject, TypedList
from meshd.codec.outcome import Outcome


def _frame(*, request: bool, proto: int, ver1: int, crc: bool, typ: int, cmdcode: int, request_id: int,
           codec: int, timeout_or_status: int, clazz: bytes, header: bytes, content: bytes) -> bytes:
    if proto not in (PROTO_V1, PROTO_V2):
        raise EncodeError(f"bolt version must be 1 or 2, got {proto}", protocol=PROTOCOL)
    if crc and (proto != PROTO_V2 or ver1 != 2):
        raise EncodeError("a CRC needs Bolt v2 with ver1=2 (sofa-bolt reads it only then)", protocol=PROTOCOL)
    if len(clazz) > 0xFFFF or len(header) > 0xFFFF:
        raise EncodeError("class name or header map longer than 65535 bytes", protocol=PROTOCOL)
    rid = request_id & 0xFFFFFFFF
    lens = (len(clazz), len(header), len(content))
    if proto == PROTO_V1:
        st = V1_REQUEST if request else V1_RESPONSE
        head = st.pack(PROTO_V1, typ, cmdcode, 1, rid, codec, timeout_or_status, *lens)
    else:
        st = V2_REQUEST if request else V2_RESPONSE
        switch = SWITCH_CRC if crc else 0
        head = st.pack(PROTO_V2, ver1, typ, cmdcode, 1, rid, codec, switch, timeout_or_status, *lens)
    out = head + clazz + header + content
    if crc:
        out += CRC.pack(zlib.crc32(out))
    return out


def encode_request(request_id: int, service: str, method: str, args: Iterable[Any] = (), *,
                   arg_types: Iterable[str] = (), timeout: int = 3000, target_app: str | None = None,
                   request_props: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                   method_header: bool = True, oneway: bool = False, version: int = PROTO_V1, ver1: int = 1,
                   crc: bool = False) -> bytes:
    """A SofaRequest frame. ``service`` is the unique name ``iface:version[:uniqueId]`` (the ``service``
    header); ``arg_types`` are Java type names, one per argument (``methodArgSigs``). With
    ``method_header`` the ``sofa_head_method_name`` header is sent as Java SOFARPC does; without it the
    frame looks like sofa-rpc-node's (only ``service``; the method lives in the content).
    """
    args = list(args)
    sigs = list(arg_types)
    if len(sigs) != len(args):
        raise EncodeError(f"{len(sigs)} argument types for {len(args)} arguments", protocol=PROTOCOL)
    props = {"service": service} if request_props is None else dict(request_props)
    enc = DraftEncoder()
    enc.write(JavaObject(REQUEST_CLASS, {
        "methodName": method,
        "methodArgSigs": TypedList("[java.lang.String", sigs),
        "targetServiceUniqueName": service,
        "targetAppName": target_app,
        "requestProps": props,
    }))
    for arg in args:
        enc.write(arg)
    hdrs = {"service": service}
    if method_header:
        hdrs["sofa_head_method_name"] = method
    hdrs.update(headers or {})
    return _frame(request=True, proto=version, ver1=ver1, crc=crc,
                  typ=TYPE_REQUEST_ONEWAY if oneway else TYPE_REQUEST, cmdcode=CMD_REQUEST,
                  request_id=request_id, codec=CODEC_HESSIAN2, timeout_or_status=timeout,
                  clazz=REQUEST_CLASS.encode(), header=encode_header_map(hdrs), content=enc.getvalue())


def encode_response(request_id: int, app_response: Any = None, *, is_error: bool = False,
                    error_msg: str | None = None, response_props: dict[str, str] | None = None,
                    status: int = SUCCESS, version: int = PROTO_V1, ver1: int = 1, crc: bool = False) -> bytes:
    """A SofaResponse frame (draft hessian), as a SOFARPC provider answers."""
    content = DraftEncoder().write(JavaObject(RESPONSE_CLASS, {
        "isError": is_error, "errorMsg": error_msg, "appResponse": app_response, "responseProps": response_props,
    })).getvalue()
    return _frame(request=False, proto=version, ver1=ver1, crc=crc, typ=TYPE_RESPONSE, cmdcode=CMD_RESPONSE,
                  request_id=request_id, codec=CODEC_HESSIAN2, timeout_or_status=status,
                  clazz=RESPONSE_CLASS.encode(), header=b"", content=content)


def encode_object(request_id: int, value: JavaObject, *, request: bool, timeout: int = 3000,
                  status: int = SUCCESS, oneway: bool = False) -> bytes:
    """A plain object as sofa-bolt's ``RpcClient`` / ``RpcServer`` send one (what SOFARegistry's client and
    session server exchange): Bolt v1, hessian2, the object's Java class as the frame's class, no header map,
    the object (draft grammar) as content."""
    if not isinstance(value, JavaObject):
        raise EncodeError(f"a Bolt object frame carries a Java object, not {type(value).__name__}", protocol=PROTOCOL)
    content = DraftEncoder().write(value).getvalue()
    if request:
        return _frame(request=True, proto=PROTO_V1, ver1=1, crc=False,
                      typ=TYPE_REQUEST_ONEWAY if oneway else TYPE_REQUEST, cmdcode=CMD_REQUEST,
                      request_id=request_id, codec=CODEC_HESSIAN2, timeout_or_status=timeout,
                      clazz=value.class_name.encode(), header=b"", content=content)
    return _frame(request=False, proto=PROTO_V1, ver1=1, crc=False, typ=TYPE_RESPONSE, cmdcode=CMD_RESPONSE,
                  request_id=request_id, codec=CODEC_HESSIAN2, timeout_or_status=status,
                  clazz=value.class_name.encode(), header=b"", content=content)


def encode_status_response(request_id: int, status: int, *, version: int = PROTO_V1, ver1: int = 1,
                           crc: bool = False, cmdcode: int = CMD_RESPONSE, codec: int = CODEC_HESSIAN2) -> bytes:
    """A status-only response (no class, header or content): what meshd sends for errors it synthesizes."""
    if not 0 <= status <= 0xFFFF:
        raise EncodeError(f"bolt status must fit 16 bits, got {status}", protocol=PROTOCOL)
    return _frame(request=False, proto=version, ver1=ver1, crc=crc, typ=TYPE_RESPONSE, cmdcode=cmdcode,
                  request_id=request_id, codec=codec, timeout_or_status=status, clazz=b"", header=b"", content=b"")


def encode_heartbeat(request_id: int, *, timeout: int = -1, version: int = PROTO_V1, ver1: int = 1,
                     crc: bool = False) -> bytes:
    """A heartbeat request (type REQUEST, cmdcode 0, nothing else; timeout -1 as MOSN and Java send)."""
    return _frame(request=True, proto=version, ver1=ver1, crc=crc, typ=TYPE_REQUEST, cmdcode=CMD_HEARTBEAT,
                  request_id=request_id, codec=CODEC_HESSIAN2, timeout_or_status=timeout,
                  clazz=b"", header=b"", content=b"")


def encode_heartbeat_ack(request_id: int, *, version: int = PROTO_V1, ver1: int = 1, crc: bool = False,
                         codec: int = CODEC_HESSIAN2) -> bytes:
    """The answer to a heartbeat: response, cmdcode 0, status SUCCESS, echoing the request id."""
    return encode_status_response(request_id, SUCCESS, version=version, ver1=ver1, crc=crc,
                                  cmdcode=CMD_HEARTBEAT, codec=codec)


def reject(request: Any, outcome: Outcome) -> bytes | None:
    """The status-only error answer to ``request`` (a :class:`BoltRequest` / :class:`BoltHeartbeat`, or the
    ``header`` of a :class:`FrameTooLarge`), in its version, ver1, CRC setting and codec, with the status
    of docs/protocols.md §5. None for one-way requests, which are never answered.
    """
    if getattr(request, "type", TYPE_REQUEST) == TYPE_REQUEST_ONEWAY:
        return None
    if hasattr(request, "frame"):
        frame = request.frame
        proto = frame[0]
        ver1 = 1 if proto == PROTO_V1 else frame[1]
        codec = frame[9] if proto == PROTO_V1 else frame[10]
        crc = proto == PROTO_V2 and ver1 == 2 and bool(frame[11] & SWITCH_CRC)   # as the decoder reads it
    else:  # a BoltHeader
        proto, ver1, codec = request.proto, request.ver1, request.codec
        crc = request.has_crc
    return encode_status_response(request.request_id, status_for(outcome), version=proto, ver1=ver1, crc=crc,
                                  codec=codec)
