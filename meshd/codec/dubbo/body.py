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
HEAD_WINDOW = 1024
"""Body bytes scanned by the head fast path; a longer head takes the full reader."""
META_WINDOW = 16 * 1024
"""Bodies up to this size try the attachments fast path; larger ones take the full reader."""

# The fast paths read a latin-1 view of the body: one C-level decode, then str indexing and slicing (each
# char is one byte). They accept only compact ASCII strings, nulls, compact ints and booleans, and hand
# anything else to the full hessian reader at the same offset, so they never change a result.


def _t_str(text: str, p: int, end: int) -> tuple[Any, int]:
    """A compact ASCII string (00-1f / 30-33) or null at ``p``; ``_SLOW`` for anything else."""
    b = ord(text[p])
    if b < 0x20:
        q = p + 1 + b
        value = text[p + 1:q]
    elif 0x30 <= b <= 0x33 and p + 1 < end:
        q = p + 2 + ((b - 0x30) << 8) + ord(text[p + 1])
        value = text[p + 2:q]
    elif b == 0x4E:
        return None, p + 1
    else:
        return _SLOW, p
    if q > end or not value.isascii():
        return _SLOW, p
    return value, q


# bytes taken by scalar lead bytes that define no class and no reference (ints, longs, doubles, dates, N/T/F)
_SCALAR_SIZE = {b: 1 for b in (0x4E, 0x54, 0x46, 0x5B, 0x5C, *range(0x80, 0xC0), *range(0xD8, 0xF0))}
_SCALAR_SIZE.update({b: 2 for b in (0x5D, *range(0xC0, 0xD0), *range(0xF0, 0x100))})
_SCALAR_SIZE.update({b: 3 for b in (0x5E, *range(0xD0, 0xD8), *range(0x38, 0x40))})
_SCALAR_SIZE.update({b: 5 for b in (0x49, 0x59, 0x5F, 0x4B)})
_SCALAR_SIZE.update({b: 9 for b in (0x4C, 0x44, 0x4A)})


def _t_skip(text: str, p: int, end: int) -> int:
    """Offset after a trivially skippable value (scalar or compact ASCII string), or -1."""
    size = _SCALAR_SIZE.get(ord(text[p]))
    if size is not None:
        return p + size if p + size <= end else -1
    value, q = _t_str(text, p, end)
    return -1 if value is _SLOW else q


def _t_map(text: str, p: int, end: int) -> dict[Any, Any] | None:
    """An untyped map of compact ASCII strings ('H' k v ... 'Z') ending the body; None for anything else."""
    if text[p] != "H":
        return None
    p += 1
    out = {}
    while p < end:
        if text[p] == "Z":
            return out if p + 1 == end else None
        key, p = _t_str(text, p, end)
        if key is _SLOW or key is None or p >= end:
            return None
        value, p = _t_str(text, p, end)
        if value is _SLOW:
            return None
        out[key] = value
    return None


def _t_head(text: str) -> tuple[RequestHead, int] | None:
    """The head from a latin-1 body view and the body offset after it; None when a slow form appears."""
    end = len(text)
    p = 0
    values = []
    for _ in range(5):
        if p >= end:
            return None
        b = ord(text[p])
        if b < 0x20:                   # the common case, inline
            q = p + 1 + b
            value = text[p + 1:q]
            if q > end or not value.isascii():
                return None
            values.append(value)
            p = q
        else:
            value, p = _t_str(text, p, end)
            if value is _SLOW:
                return None
            values.append(value)
    return _new(RequestHead, values), p


def _slow_head(frame: bytes | bytearray, request_id: int) -> tuple[RequestHead, int]:
    r = FinalReader(frame, HEADER_SIZE)
    try:
        head = RequestHead(r.read_string(), r.read_string(), r.read_string(), r.read_string(), r.read_string())
    except HessianError as e:
        e.request_id = request_id
        raise
    return head, r.pos


def _head(frame: bytes | bytearray, request_id: int) -> tuple[RequestHead, int]:
    """The head and the frame offset after it."""
    fast = _t_head(frame[HEADER_SIZE:HEADER_SIZE + HEAD_WINDOW].decode("latin-1"))
    if fast is None:
        return _slow_head(frame, request_id)
    return fast[0], fast[1] + HEADER_SIZE


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
    try:
        text = frame[HEADER_SIZE:].decode("latin-1") if len(frame) - HEADER_SIZE <= META_WINDOW else None
        fast = _t_head(text) if text is not None else None
        if fast is None:
            head, p = _slow_head(frame, request_id)
            p -= HEADER_SIZE
        else:
            head, p = fast
        left = count_params(head.param_types or "")
        end = len(frame) - HEADER_SIZE
        if text is not None:     # trivial arguments define no class and no reference: no reader needed
            while left and p < end and (q := _t_skip(text, p, end)) >= 0:
                p = q
                left -= 1
        r = None
        if left:
            r = FinalReader(frame, p + HEADER_SIZE)
            for _ in range(left):
                r.skip()
            p = r.pos - HEADER_SIZE
        if text is not None and p < end:   # attachments of compact strings reference nothing: read them fast
            attachments = _t_map(text, p, end)
            if attachments is not None:
                return _new(RequestMeta, (head, attachments))
        return _new(RequestMeta, (head, _attachments(r or FinalReader(frame, p + HEADER_SIZE), request_id)))
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


UNSURE = object()
""":func:`trailing_attachment`'s answer when the raw bytes cannot say: decode the attachments instead."""


def _t_end(frame: bytearray, p: int, end: int) -> int:
    """Where the compact value at ``p`` ends: a string, an ``I`` int or null; -1 for anything else or a value
    running past ``end``. The caller has checked that the whole tail is ASCII, so byte counts are character
    counts, and the compact int forms (0x80 and up) cannot occur."""
    b = frame[p]
    if b < 0x20:
        q = p + 1 + b
    elif 0x30 <= b <= 0x33:
        q = p + 2 + ((b - 0x30) << 8) + frame[p + 1] if p + 1 < end else -1
    elif b == 0x49:
        q = p + 5
    elif b == 0x4E:
        q = p + 1
    else:
        return -1
    return q if q <= end else -1


def _t_value(frame: bytearray, p: int, q: int) -> Any:
    """The compact value spanning ``frame[p:q]`` (:func:`_t_end` found ``q``): a bytearray, an int, or None."""
    b = frame[p]
    if b < 0x20:
        return frame[p + 1:q]
    if 0x30 <= b <= 0x33:
        return frame[p + 2:q]
    if b == 0x49:
        return int.from_bytes(frame[p + 1:q], "big", signed=True)
    return None


def trailing_attachment(frame: bytes | bytearray, key: bytes) -> Any:
    """The value of attachment ``key`` (its compact hessian2 form, e.g. ``b"\\x07timeout"``) read from the
    raw body: a bytearray for a string (ASCII), an int, None when the body has no such attachment (or a
    null), or UNSURE.

    The attachments map ends the body. The key's last occurrence is trusted only when everything after it
    is ASCII and reads as the rest of a map of compact strings (values also ``I`` ints or nulls) ending the
    frame with ``Z``; anything else (another encoding, a non-ASCII string, a compact int, the bytes inside an
    argument) answers UNSURE, and the caller decodes the attachments properly. No occurrence at all means no
    such attachment: keys are written compact.
    """
    p = frame.rfind(key, HEADER_SIZE)
    if p < 0:
        return None
    buf = frame if type(frame) is bytearray else bytearray(frame)   # events' frames are (compiled: typed reads)
    last = len(buf) - 1
    v = p + len(key)
    if v >= last or buf[last] != 0x5A or not buf[v:last].isascii():
        return UNSURE
    q = _t_end(buf, v, last)
    if q < 0:
        return UNSURE
    value_end = q
    while q < last:
        b = buf[q]
        if not (b < 0x20 or 0x30 <= b <= 0x33):   # a key: a compact string
            return UNSURE
        q = _t_end(buf, q, last)
        if q < 0 or q >= last:
            return UNSURE
        q = _t_end(buf, q, last)
        if q < 0:
            return UNSURE
    if q != last:
        return UNSURE
    return _t_value(buf, v, value_end)
