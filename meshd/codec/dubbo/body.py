"""Lazy Dubbo2 body parsing (hessian2 bodies only), in increasing cost.

Request body: ``dubboVersion · path · version · method · parameterTypesDesc · args... · attachments``.

- :func:`request_head` reads the first five strings (a fast path for compact ASCII strings, a full hessian
  reader otherwise): enough to route on service / version / method.
- :func:`request_meta` also skip-parses every argument (counted from the descriptor) and builds the
  attachments map: needed to route on ``group`` (it exists only there).
- :func:`request_invocation` builds the arguments too.

Response body: an int result type then, by type, a value / an exception / attachments; a non-OK status
carries one string (the error message).

Everything here raises :class:`HessianError` / :class:`ProtocolError` on malformed bodies and
:class:`UnsupportedSerialization` when the frame's serialization is not hessian2.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from meshd.codec.base import ProtocolError, UnsupportedSerialization
from meshd.codec.dubbo.frame import HEADER_SIZE, HESSIAN2, PROTOCOL, SERIALIZATION_MASK, SERIALIZATIONS, count_params
from meshd.codec.hessian2.final import FinalReader
from meshd.codec.hessian2.values import HessianError

RESPONSE_WITH_EXCEPTION = 0
RESPONSE_VALUE = 1
RESPONSE_NULL_VALUE = 2
RESPONSE_WITH_EXCEPTION_WITH_ATTACHMENTS = 3
RESPONSE_VALUE_WITH_ATTACHMENTS = 4
RESPONSE_NULL_VALUE_WITH_ATTACHMENTS = 5
RESULT_TYPE_NAMES = {
    0: "RESPONSE_WITH_EXCEPTION", 1: "RESPONSE_VALUE", 2: "RESPONSE_NULL_VALUE",
    3: "RESPONSE_WITH_EXCEPTION_WITH_ATTACHMENTS", 4: "RESPONSE_VALUE_WITH_ATTACHMENTS",
    5: "RESPONSE_NULL_VALUE_WITH_ATTACHMENTS",
}


class RequestHead(NamedTuple):
    """The first five strings of a request body. ``service`` is the ``path`` (interface name)."""

    dubbo_version: str | None
    service: str | None
    version: str | None
    method: str | None
    param_types: str | None        # JVM descriptor, "" when the method takes no argument

    @property
    def param_count(self) -> int:
        return count_params(self.param_types or "")


class RequestMeta(NamedTuple):
    """Head plus attachments (arguments skipped, not built)."""

    head: RequestHead
    attachments: dict[Any, Any]

    @property
    def group(self) -> str | None:
        """The ``group`` attachment (Dubbo carries group only there), None when absent or empty."""
        value = self.attachments.get("group")
        return value if isinstance(value, str) and value else None

    @property
    def interface(self) -> str | None:
        """The ``interface`` attachment when present (MOSN prefers it over ``path``), else the path."""
        value = self.attachments.get("interface")
        return value if isinstance(value, str) and value else self.head.service


class Invocation(NamedTuple):
    """A fully decoded request body."""

    head: RequestHead
    args: list[Any]
    attachments: dict[Any, Any]


class ResponseResult(NamedTuple):
    """A decoded OK (status 20) response body. ``exception`` is set for result types 0 and 3."""

    result_type: int
    value: Any
    exception: Any
    attachments: dict[Any, Any]

    @property
    def is_exception(self) -> bool:
        return self.result_type in (RESPONSE_WITH_EXCEPTION, RESPONSE_WITH_EXCEPTION_WITH_ATTACHMENTS)


def check_hessian2(flag: int, request_id: int) -> None:
    sid = flag & SERIALIZATION_MASK
    if sid != HESSIAN2:
        name = SERIALIZATIONS.get(sid, "unknown")
        raise UnsupportedSerialization(f"body uses serialization {sid} ({name}); only hessian2 (2) is parsed",
                                       protocol=PROTOCOL, request_id=request_id, serialization_id=sid)


_SLOW = object()
_new = tuple.__new__


def _fast_str(frame: bytes | bytearray, p: int, end: int) -> tuple[Any, int]:
    """A compact ASCII string or null at ``p`` (the forms Dubbo heads use); ``_SLOW`` for anything else."""
    b = frame[p]
    if b < 0x20:
        q = p + 1 + b
        if q <= end:
            try:
                return frame[p + 1:q].decode("ascii"), q
            except UnicodeDecodeError:
                pass
    elif 0x30 <= b <= 0x33 and p + 1 < end:
        q = p + 2 + ((b - 0x30) << 8) + frame[p + 1]
        if q <= end:
            try:
                return frame[p + 2:q].decode("ascii"), q
            except UnicodeDecodeError:
                pass
    elif b == 0x4E:
        return None, p + 1
    return _SLOW, p


def _fast_skip(frame: bytes | bytearray, p: int, end: int) -> int:
    """Offset after a trivially skippable value (compact ASCII string, compact int, null, bool), or -1."""
    b = frame[p]
    if 0x80 <= b <= 0xBF or b in (0x4E, 0x54, 0x46):
        return p + 1
    if 0xC0 <= b <= 0xCF:
        return p + 2 if p + 2 <= end else -1
    value, q = _fast_str(frame, p, end)
    return -1 if value is _SLOW else q


def _fast_map(frame: bytes | bytearray, p: int, end: int) -> dict[Any, Any] | None:
    """An untyped map of compact ASCII strings ('H' k v ... 'Z') ending the body; None for anything else."""
    if frame[p] != 0x48:
        return None
    p += 1
    out = {}
    while p < end:
        if frame[p] == 0x5A:
            return out if p + 1 == end else None
        key, p = _fast_str(frame, p, end)
        if key is _SLOW or key is None or p >= end:
            return None
        value, p = _fast_str(frame, p, end)
        if value is _SLOW:
            return None
        out[key] = value
    return None


def _head(frame: bytes | bytearray, request_id: int) -> tuple[RequestHead, int]:
    """The head and the offset after it (compact ASCII strings inline: this runs once per request)."""
    end = len(frame)
    p = HEADER_SIZE
    values = []
    append = values.append
    for _ in range(5):
        if p >= end:
            return _slow_head(frame, request_id)
        b = frame[p]
        if b < 0x20:
            q = p + 1 + b
            if q > end:
                return _slow_head(frame, request_id)
            try:
                append(frame[p + 1:q].decode("ascii"))
            except UnicodeDecodeError:
                return _slow_head(frame, request_id)
            p = q
        else:
            value, p = _fast_str(frame, p, end)
            if value is _SLOW:
                return _slow_head(frame, request_id)
            append(value)
    return _new(RequestHead, values), p


def _slow_head(frame: bytes | bytearray, request_id: int) -> tuple[RequestHead, int]:
    r = FinalReader(frame, HEADER_SIZE)
    try:
        head = RequestHead(r.read_string(), r.read_string(), r.read_string(), r.read_string(), r.read_string())
    except HessianError as e:
        e.request_id = request_id
        raise
    return head, r.pos


def request_head(frame: bytes | bytearray, flag: int, request_id: int) -> RequestHead:
    if flag & SERIALIZATION_MASK != HESSIAN2:
        check_hessian2(flag, request_id)
    return _head(frame, request_id)[0]


def _attachments(r: FinalReader, request_id: int) -> dict[Any, Any]:
    if r.at_end:                       # Dubbo tolerates a body that stops after the arguments
        return {}
    value = r.read()
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"attachments are a {type(value).__name__}, not a map", protocol=PROTOCOL,
                            request_id=request_id)
    return value


def request_meta(frame: bytes | bytearray, flag: int, request_id: int) -> RequestMeta:
    if flag & SERIALIZATION_MASK != HESSIAN2:
        check_hessian2(flag, request_id)
    head, p = _head(frame, request_id)
    end = len(frame)
    try:
        n = count_params(head.param_types or "")
        r = None
        for _ in range(n):       # trivially skippable arguments need no reader (no classes, no refs)
            q = _fast_skip(frame, p, end) if p < end else -1
            if q < 0:
                r = FinalReader(frame, p)
                break
            p = q
            n -= 1
        if r is None:
            if p < end:
                fast = _fast_map(frame, p, end)
                if fast is not None:
                    return _new(RequestMeta, (head, fast))
            r = FinalReader(frame, p)
        for _ in range(n):
            r.skip()
        return _new(RequestMeta, (head, _attachments(r, request_id)))
    except ProtocolError as e:
        e.request_id = request_id
        raise


def request_invocation(frame: bytes | bytearray, flag: int, request_id: int) -> Invocation:
    check_hessian2(flag, request_id)
    head, p = _head(frame, request_id)
    r = FinalReader(frame, p)
    try:
        args = [r.read() for _ in range(count_params(head.param_types or ""))]
        return Invocation(head, args, _attachments(r, request_id))
    except ProtocolError as e:
        e.request_id = request_id
        raise


def result_type(frame: bytes | bytearray, flag: int, request_id: int) -> int:
    """The result type of an OK response: one byte for the compact forms (0x90-0x95)."""
    check_hessian2(flag, request_id)
    if len(frame) > HEADER_SIZE and 0x90 <= frame[HEADER_SIZE] <= 0x95:
        return frame[HEADER_SIZE] - 0x90
    try:
        value = FinalReader(frame, HEADER_SIZE).read_int()
    except HessianError as e:
        e.request_id = request_id
        raise
    if not 0 <= value <= 5:
        raise ProtocolError(f"unknown result type {value}", protocol=PROTOCOL, request_id=request_id)
    return value


def response_result(frame: bytes | bytearray, flag: int, request_id: int) -> ResponseResult:
    rtype = result_type(frame, flag, request_id)
    r = FinalReader(frame, HEADER_SIZE)
    try:
        r.read_int()
        value = exception = None
        attachments: dict[Any, Any] = {}
        if rtype in (RESPONSE_VALUE, RESPONSE_VALUE_WITH_ATTACHMENTS):
            value = r.read()
        elif rtype in (RESPONSE_WITH_EXCEPTION, RESPONSE_WITH_EXCEPTION_WITH_ATTACHMENTS):
            exception = r.read()
        if rtype >= RESPONSE_WITH_EXCEPTION_WITH_ATTACHMENTS:
            attachments = _attachments(r, request_id)
        return ResponseResult(rtype, value, exception, attachments)
    except ProtocolError as e:
        e.request_id = request_id
        raise


def error_message(frame: bytes | bytearray, flag: int, request_id: int) -> str | None:
    """The message of a non-OK response (one hessian2 string; None when the body is empty or null)."""
    check_hessian2(flag, request_id)
    if len(frame) <= HEADER_SIZE:
        return None
    try:
        return FinalReader(frame, HEADER_SIZE).read_string()
    except HessianError as e:
        e.request_id = request_id
        raise


def event_data(frame: bytes | bytearray, flag: int, request_id: int) -> Any:
    """The decoded data of an event frame (None for heartbeats, "R"/"W" for readonly events)."""
    check_hessian2(flag, request_id)
    if len(frame) <= HEADER_SIZE:
        return None
    try:
        return FinalReader(frame, HEADER_SIZE).read()
    except HessianError as e:
        e.request_id = request_id
        raise
