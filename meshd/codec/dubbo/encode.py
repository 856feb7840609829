"""Dubbo2 frame encoders: requests (``meshd call``, tests), responses, synthesized errors, events.

All return complete frames (header + body) as ``bytes``. Bodies are hessian2 (serialization id 2).
Synthesized errors echo the request id and the caller's serialization id; their body is one hessian2
string, which only a hessian2 caller can read: for another serialization the body is left empty, and the
Dubbo client still fails the call (its decoder reports the empty body) instead of hanging.
"""

from __future__ import annotations

from typing import Any, Iterable

from meshd.codec.base import EncodeError
from meshd.codec.dubbo.frame import (
    FLAG_EVENT, FLAG_REQUEST, FLAG_TWOWAY, HESSIAN2, PROTOCOL, SERIALIZATION_MASK, count_params, header_bytes,
    java_descriptor,
)
from meshd.codec.dubbo.status import OK, error_for
from meshd.codec.outcome import Outcome
from meshd.codec.hessian2.encoder import FinalEncoder

DEFAULT_DUBBO_VERSION = "2.0.2"
_NULL_BODY = b"N"


def _frame(flag: int, status: int, request_id: int, body: bytes) -> bytes:
    return header_bytes(flag, status, request_id, len(body)) + body


def encode_request(request_id: int, service: str, method: str, args: Iterable[Any] = (), *,
                   param_types: str | list[str] | tuple[str, ...] = "", version: str | None = None,
                   attachments: dict[str, Any] | None = None, dubbo_version: str = DEFAULT_DUBBO_VERSION,
                   twoway: bool = True) -> bytes:
    """A hessian2 request frame.

    ``param_types`` is a JVM descriptor (``"Ljava/lang/String;I"``) or a list of Java type names
    (``["java.lang.String", "int"]``); it must describe exactly ``len(args)`` parameters. ``attachments``
    are written after the arguments; ``path``, ``interface`` and ``version`` are added when missing (as
    Dubbo's own consumer does); put ``group`` here to address a group.
    """
    args = list(args)
    desc = param_types if isinstance(param_types, str) else java_descriptor(param_types)
    if count_params(desc) != len(args):
        raise EncodeError(f"parameter types {desc!r} describe {count_params(desc)} arguments, got {len(args)}",
                          protocol=PROTOCOL)
    att: dict[str, Any] = {"path": service, "interface": service}
    if version:
        att["version"] = version
    att.update(attachments or {})
    enc = FinalEncoder()
    for value in (dubbo_version, service, version or "", method, desc, *args):
        enc.write(value)
    enc.write(att)
    flag = FLAG_REQUEST | HESSIAN2 | (FLAG_TWOWAY if twoway else 0)
    return _frame(flag, 0, request_id, enc.getvalue())


def encode_response(request_id: int, value: Any = None, *, exception: Any = None,
                    attachments: dict[str, Any] | None = None, null_value: bool = False) -> bytes:
    """An OK (status 20) hessian2 response: a value, a null value, or an exception (result types 0-5).

    With ``attachments`` the *_WITH_ATTACHMENTS result types (3-5) are used, as Dubbo does for callers
    whose dubbo version is 2.0.2+.
    """
    enc = FinalEncoder()
    with_att = attachments is not None
    if exception is not None:
        enc.write(3 if with_att else 0).write(exception)
    elif value is None or null_value:
        enc.write(5 if with_att else 2)
    else:
        enc.write(4 if with_att else 1).write(value)
    if with_att:
        enc.write(dict(attachments or {}))
    return _frame(HESSIAN2, OK, request_id, enc.getvalue())


def encode_error_response(request_id: int, status: int, message: str, *, serialization_id: int = HESSIAN2) -> bytes:
    """A non-OK response carrying ``message`` (hessian2 string body; empty for other serializations)."""
    if status == OK or not 0 <= status <= 0xFF:
        raise EncodeError(f"an error response needs a non-OK status byte, got {status}", protocol=PROTOCOL)
    sid = serialization_id & SERIALIZATION_MASK
    body = FinalEncoder().write(message).getvalue() if sid == HESSIAN2 else b""
    return _frame(sid, status, request_id, body)


def encode_heartbeat(request_id: int, *, serialization_id: int = HESSIAN2) -> bytes:
    """A heartbeat request (flag 0xe2 for hessian2, body null), e.g. sent upstream by a pool."""
    return _frame(FLAG_REQUEST | FLAG_TWOWAY | FLAG_EVENT | (serialization_id & SERIALIZATION_MASK), 0,
                  request_id, _NULL_BODY)


def encode_heartbeat_ack(request_id: int, *, serialization_id: int = HESSIAN2) -> bytes:
    """The answer to a heartbeat: flag 0x22 (hessian2), status 20, body null, echoing the request id."""
    return _frame(FLAG_EVENT | (serialization_id & SERIALIZATION_MASK), OK, request_id, _NULL_BODY)


def encode_readonly_event(request_id: int, readonly: bool = True) -> bytes:
    """The one-way readonly ("R") or writeable ("W") event a provider sends before/after draining."""
    body = FinalEncoder().write("R" if readonly else "W").getvalue()
    return _frame(FLAG_REQUEST | FLAG_EVENT | HESSIAN2, 0, request_id, body)


def reject(request: Any, outcome: Outcome, detail: str = "") -> bytes | None:
    """The in-protocol error answer to ``request`` (a :class:`DubboRequest`, or the ``header`` of a
    :class:`FrameTooLarge`): status by docs/protocols.md §5, message ``meshd: <detail>``, echoing the request
    id and serialization id. None for one-way requests, which are never answered.
    """
    flag = request.flag
    if not flag & FLAG_TWOWAY:
        return None
    status, message = error_for(outcome, detail)
    return encode_error_response(request.request_id, status, message, serialization_id=flag & SERIALIZATION_MASK)
