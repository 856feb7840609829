"""Dubbo and Bolt as the RPC forwarding path sees them: one adapter per protocol over the sans-IO codecs.

An adapter answers, for a decoded request event: its routing view (:class:`RpcView`: service, method,
version, group, attachments — parsed lazily, cached per request), whether it is one-way, its protocol
deadline, how to patch its id, how to refuse it in-protocol, and, for a response event, its
:class:`~meshd.codec.outcome.Result`. The proxy (:mod:`meshd.proxy.rpc`) and the multiplexed pool
(:mod:`meshd.upstream.mux`) only talk to adapters, never to a codec directly.

Lazy parsing budget (Dubbo): the header is always parsed (the codec does it); ``head()`` (five strings)
is parsed for every request; the attachments (after the arguments, so the arguments are skip-parsed)
only when group, an attachment, or the ``timeout`` attachment is needed — and the first two are
checked against the raw bytes first (a body without ``\\x05group`` cannot carry a group attachment).

Plans (:mod:`meshd.proxy.rpc`) are keyed by ``route_key(event, names)``: the bytes that decide a request's
route and subset, and nothing per-request. Dubbo: the five head strings (dubbo version, path, version,
method, descriptor) plus the ``group`` attachment; Bolt: the header-map entries named in ``names``
(``service``, ``sofa_head_method_name``, ``sofa_head_target_app`` and what ``header_to_metadata`` names),
plus the content's ``methodName`` when the method is not a header. Trace ids never enter a key.
None means the request cannot be keyed (another serialization, a long or non-ASCII head): it is
decoded and routed on its own. ``deadline_ms(event)`` is the caller's own deadline (0: none) and
``origin(event)`` the caller's application for governance, both read from the raw frame where they can
be (:func:`meshd.codec.dubbo.body.trailing_attachment`), else from the decoded attachments. A response
is a plain success, answered without decoding, when its status is ``ok_status``,
``frame[resp_at] == resp_byte`` and ``frame[exc_at]`` is not in ``exc_marks``.
"""

from __future__ import annotations

import struct
from typing import Any

from meshd.codec import bolt, dubbo
from meshd.codec.bolt import body as bolt_body
from meshd.codec.bolt.frame import TYPE_REQUEST_ONEWAY, header_entries
from meshd.codec.dubbo.body import UNSURE, trailing_attachment
from meshd.codec.base import COMPILED, CodecError, UnsupportedSerialization
from meshd.codec.outcome import Outcome, Result

_DUBBO_ID = struct.Struct(">q")
_BOLT_ID = struct.Struct(">I")
_GROUP_KEY = b"\x05group"          # hessian2 compact string "group"
_TIMEOUT_KEY = b"\x07timeout"
_ORIGIN_KEYS = (b"\x12remote.application", b"\x0bapplication")
_BOLT_ORIGIN = (b"app", b"rpc_trace_context.sofaCallerApp")
BOLT_KEY_HEADERS = (b"service", bolt_body.METHOD_HEADER, b"sofa_head_target_app")


class RpcView:
    """The routing view of one RPC request (see :class:`meshd.routing.table.RpcView`).

    ``service``, ``method`` and ``version`` are read when the view is made; ``group`` and attachments
    are parsed on first use and kept. A body that cannot be read leaves ``error`` set and the
    attachments empty (the frame itself can still be forwarded).
    """

    __slots__ = ("event", "adapter", "service", "method", "version", "_group", "_attachments", "error")

    def __init__(self, event: Any, adapter: "RpcAdapter", service: str, method: str, version: str,
                 group: str | None = None) -> None:
        self.event = event
        self.adapter = adapter
        self.service = service
        self.method = method
        self.version = version
        self._group = group
        self._attachments: dict[str, Any] | None = None
        self.error: str = ""

    @property
    def group(self) -> str:
        if self._group is None:
            self._group = self.adapter.group(self)
        return self._group

    def attachment(self, name: str) -> str | None:
        value = self.attachments().get(name)
        return value if value is None or isinstance(value, str) else str(value)

    def attachments(self) -> dict[str, Any]:
        if self._attachments is None:
            self._attachments = self.adapter.attachments(self)
        return self._attachments


def _patch_dubbo_id(frame: bytearray, request_id: int) -> None:
    """Write the request id into a Dubbo frame's header, in place (compiled: byte by byte, as C integers)."""
    if COMPILED:
        for i in range(11, 3, -1):
            frame[i] = request_id & 0xFF
            request_id >>= 8
    else:
        _DUBBO_ID.pack_into(frame, 4, request_id)


def _patch_bolt_id(frame: bytearray, request_id: int) -> None:
    """Write the request id into a Bolt frame's header, in place; a v2 frame's CRC is recomputed."""
    request_id &= 0xFFFFFFFF
    if frame[0] != 1:
        bolt.patch_request_id(frame, request_id)
    elif COMPILED:                             # v1: the id at 5, no CRC
        for i in range(8, 4, -1):
            frame[i] = request_id & 0xFF
            request_id >>= 8
    else:
        _BOLT_ID.pack_into(frame, 5, request_id)


class RpcAdapter:
    """Per-protocol behaviour; see the module docstring. Stateless: one shared instance per protocol."""

    name = ""
    label = ""                                 # the access log's name for the protocol
    ok_status = 0
    resp_at = 0
    resp_byte = 0
    exc_at = 0
    exc_marks: tuple[int, ...] = ()
    plain_success: tuple = ()
    ok_result: Result

    def route_key(self, event: Any, names: dict[int, tuple[bytes, ...]]) -> bytes | None:
        raise NotImplementedError

    def deadline_ms(self, event: Any) -> float:
        raise NotImplementedError

    def origin(self, event: Any) -> str:
        raise NotImplementedError

    def __init_subclass__(cls) -> None:
        # (ok_status, resp_at, resp_byte, exc_at, exc_marks): one attribute for the response path
        cls.plain_success = (cls.ok_status, cls.resp_at, cls.resp_byte, cls.exc_at, cls.exc_marks)

    def decoder(self, max_frame_size: int) -> Any:
        raise NotImplementedError

    def view(self, event: Any) -> RpcView:
        raise NotImplementedError

    def group(self, view: RpcView) -> str:
        raise NotImplementedError

    def attachments(self, view: RpcView) -> dict[str, Any]:
        raise NotImplementedError


class DubboAdapter(RpcAdapter):
    name = "dubbo"
    Request = dubbo.DubboRequest
    Response = dubbo.DubboResponse
    Heartbeat = dubbo.DubboHeartbeat
    HeartbeatAck = dubbo.DubboHeartbeatAck
    Event = dubbo.DubboEvent

    def decoder(self, max_frame_size: int) -> dubbo.DubboDecoder:
        return dubbo.DubboDecoder(max_frame_size)

    def __init__(self) -> None:
        self._heads: dict[bytes, tuple[str, str, str]] = {}
        self._last_key = b"\xff"                # matches no body: compact strings start below 0x20
        self._last_head: bytes | None = None
        self._last_hit: tuple[str, str, str] = ("", "", "")

    label = "DUBBO"
    ok_status = 20
    ok_result = Result(Outcome.OK, 20)
    resp_at, resp_byte = 2, 2                  # a hessian2 response (the flag byte)
    exc_at, exc_marks = 16, (0x90, 0x93)       # result types 0 and 3 are exceptions

    def view(self, event: dubbo.DubboRequest) -> RpcView:
        """Raises UnsupportedSerialization / ProtocolError when the body cannot be read.

        Callers repeat the same five head strings (dubbo version, path, version, method, descriptor);
        when all five are compact ASCII strings their raw bytes key a cache of the decoded head, so a
        repeated head costs five byte reads and one dict lookup. The head seen last is checked first,
        with one ``startswith``: length-prefixed strings delimit themselves, so a body that starts with
        those bytes has those five strings.
        """
        frame = event.frame
        if frame[2] & 0x1F == 2:
            last = self._last_head
            if last is not None and frame.startswith(last, 16):
                hit = self._last_hit
                return RpcView(event, self, hit[0], hit[1], hit[2])
            key = self._head_key(frame)
            if key is not None:
                hit = self._heads.get(key)
                if hit is None:
                    head = event.head()
                    hit = (head.service or "", head.method or "", head.version or "")
                    if len(self._heads) < 4096:
                        self._heads[key] = hit
                self._last_head, self._last_hit = key, hit
                return RpcView(event, self, hit[0], hit[1], hit[2])
        head = event.head()
        return RpcView(event, self, head.service or "", head.method or "", head.version or "")

    @staticmethod
    def _head_key(frame: bytearray) -> bytes | None:
        """The raw five head strings when all are compact ASCII strings (which delimit themselves)."""
        p = 16
        end = len(frame)
        for _ in range(5):
            if p >= end or frame[p] >= 0x20:
                return None
            p += 1 + frame[p]
        if p > end:
            return None
        key = bytes(frame[16:p])
        return key if key.isascii() else None   # byte lengths are character counts only for ASCII

    def route_key(self, event: dubbo.DubboRequest, names: dict[int, tuple[bytes, ...]]) -> bytes | None:
        """The five head strings' raw bytes (the last key's head is checked first), plus the group;
        one-way requests apart."""
        frame = event.frame
        head = self._last_key
        if frame[2] == 0xC2 and frame.startswith(head, 16) and frame.find(_GROUP_KEY, 16 + len(head)) < 0:
            return head                        # the common case: a two-way hessian2 call like the last one
        if frame[2] & 0x1F != 2:
            return None
        if not frame.startswith(head, 16):
            head = self._head_key(frame)
            if head is None:
                return None
            self._last_key = head
        if frame.find(_GROUP_KEY, 16 + len(head)) >= 0:
            group = trailing_attachment(frame, _GROUP_KEY)
            if group is UNSURE or type(group) is int:
                return None
            head = head + b"\x00" + (group or b"")
        return head if frame[2] & 0x40 else b"\x01" + head      # one-way requests have plans of their own

    @staticmethod
    def deadline_ms(event: dubbo.DubboRequest) -> float:
        """The ``timeout`` attachment (every Java consumer sends one), read from the raw body."""
        value = trailing_attachment(event.frame, _TIMEOUT_KEY)   # no such key in the body: None, one scan
        if value is None:
            return 0.0
        if value is UNSURE:
            value = _decoded_attachment(event, _TIMEOUT_KEY)
        try:                                  # float() reads the raw bytes as it reads a str
            ms = float(value) if value is not None else 0.0
        except (TypeError, ValueError):
            return 0.0
        return ms if ms > 0 else 0.0

    @staticmethod
    def origin(event: dubbo.DubboRequest) -> str:
        """``remote.application`` (else ``application``), from the raw body where it can be read there."""
        for key in _ORIGIN_KEYS:
            value = _attachment(event, key)
            if value:
                return str(value)
        return ""

    def group(self, view: RpcView) -> str:
        """The group a keyed request's :meth:`route_key` holds (the raw lookup), so that every request with
        one key routes alike (a body whose arguments end early could otherwise decode to another group than
        its raw tail says, and leave a plan for the wrong group under that key); else the decoded one."""
        frame = view.event.frame
        head = self._head_key(frame) if frame[2] & 0x1F == 2 else None
        if frame.find(_GROUP_KEY, 16 + len(head) if head is not None else 16) < 0:
            return ""                          # no "group" string in the body: no group attachment
        if head is not None:
            raw = trailing_attachment(frame, _GROUP_KEY)
            if raw is not UNSURE:
                return raw.decode("ascii") if type(raw) is bytearray else ""
        value = view.attachments().get("group")
        return value if isinstance(value, str) else ""

    def attachments(self, view: RpcView) -> dict[str, Any]:
        try:
            return view.event.meta().attachments
        except CodecError as exc:
            view.error = str(exc)
            return {}

    @staticmethod
    def oneway(event: dubbo.DubboRequest) -> bool:
        return not event.twoway

    patch_id = staticmethod(_patch_dubbo_id)

    @staticmethod
    def reject(event: Any, outcome: Outcome, detail: str) -> bytes | None:
        return dubbo.reject(event, outcome, detail)

    @staticmethod
    def heartbeat_ack(event: dubbo.DubboHeartbeat) -> bytes:
        return dubbo.encode_heartbeat_ack(event.request_id, serialization_id=event.flag & 0x1F)

    @staticmethod
    def heartbeat(request_id: int) -> bytes:
        return dubbo.encode_heartbeat(request_id)

    @staticmethod
    def result(event: dubbo.DubboResponse) -> Result:
        status = event.status
        if status == 20:
            frame = event.frame
            # hessian2 (id 2): the body starts with the result type as a compact int 0x90..0x95;
            # 0 and 3 are exception results. Other serializations: the status is all we know.
            if frame[2] & 0x1F == 2 and len(frame) > 16 and frame[16] in (0x90, 0x93):
                return _APP_ERROR_20
            return _OK_20
        return Result(dubbo.status_outcome(status), status)

    @staticmethod
    def readonly(event: Any) -> bool | None:
        """For a provider's one-way event: True = readonly ("R"), False = writeable ("W"), None = other."""
        return event.readonly if isinstance(event, dubbo.DubboEvent) else None


class BoltAdapter(RpcAdapter):
    name = "bolt"
    Request = bolt.BoltRequest
    Response = bolt.BoltResponse
    Heartbeat = bolt.BoltHeartbeat
    HeartbeatAck = bolt.BoltHeartbeatAck
    Event = ()

    def decoder(self, max_frame_size: int) -> bolt.BoltDecoder:
        return bolt.BoltDecoder(max_frame_size)

    label = "BOLT"
    ok_status = 0
    ok_result = Result(Outcome.OK, 0)
    resp_at, resp_byte = 0, 1                  # a v1 response (no CRC to fix)

    def __init__(self) -> None:
        # the last keyed request: its section lengths, the bytes from the class name through the method
        # except the values of entries outside the key, as (offset, bytes) runs, and the key they gave
        self._last: tuple[bytes, tuple[tuple[int, bytes], ...], bytes] = (b"", (), b"")

    def route_key(self, event: bolt.BoltRequest, names: dict[int, tuple[bytes, ...]]) -> bytes | None:
        """The header-map entries in ``names``, and the content's ``methodName`` when no header names the
        method. A v1 request whose bytes through the method are the last keyed one's, but for the values
        of entries outside the key (trace ids), has its key: its map has the same entries at the same
        places (their lengths are among the bytes compared), so the same key entries."""
        frame = event.frame
        lengths, runs, key = self._last
        if runs and frame[0] == 1 and frame[9] == 1 and frame.startswith(lengths, 14):   # v1, hessian2
            for at, run in runs:
                if not frame.startswith(run, at):
                    break
            else:
                return b"\x01" + key if event.type == TYPE_REQUEST_ONEWAY else key
        try:
            s = bolt_body.sections(frame)
            if s.codec != 1:
                return None
            gaps: list[tuple[int, int]] = []
            key, has_method = header_entries(frame, s.header_start, s.content_start, names,
                                             bolt_body.METHOD_HEADER, gaps)
            end = s.content_start
            if not has_method:
                found = bolt_body.content_method(frame, s)   # the method is in the content (Node clients)
                if found is None:
                    return None
                key += b"\x00" + found[0].encode()
                end = found[1]
        except CodecError:
            return None
        if frame[0] == 1 and end - 22 <= 1024 and len(gaps) <= 16:
            at, kept = 22, []
            for gap_start, gap_end in gaps:
                if gap_start > at:
                    kept.append((at, bytes(frame[at:gap_start])))
                at = gap_end
            if end > at:
                kept.append((at, bytes(frame[at:end])))
            self._last = (bytes(frame[14:18]), tuple(kept), key)
        return b"\x01" + key if event.type == TYPE_REQUEST_ONEWAY else key

    @staticmethod
    def deadline_ms(event: bolt.BoltRequest) -> float:
        timeout = event.timeout
        return float(timeout) if timeout > 0 else 0.0

    @staticmethod
    def origin(event: bolt.BoltRequest) -> str:
        try:
            for name in _BOLT_ORIGIN:
                value = event.header(name)
                if value:
                    return value
        except CodecError:
            pass
        return ""

    def view(self, event: bolt.BoltRequest) -> RpcView:
        head = event.head()
        return RpcView(event, self, head.interface or "", head.method or "", head.version or "",
                       head.unique_id or "")

    def group(self, view: RpcView) -> str:
        return ""                              # set from the uniqueId when the view is made

    def attachments(self, view: RpcView) -> dict[str, Any]:
        try:
            return {k: v for k, v in view.event.header_map().items() if v is not None}
        except CodecError as exc:
            view.error = str(exc)
            return {}

    @staticmethod
    def oneway(event: bolt.BoltRequest) -> bool:
        return event.oneway

    patch_id = staticmethod(_patch_bolt_id)

    @staticmethod
    def reject(event: Any, outcome: Outcome, detail: str) -> bytes | None:
        return bolt.reject(event, outcome)

    @staticmethod
    def heartbeat_ack(event: bolt.BoltHeartbeat) -> bytes:
        return bolt.encode_heartbeat_ack(event.request_id, version=event.version, ver1=event.ver1, crc=event.crc)

    @staticmethod
    def heartbeat(request_id: int) -> bytes:
        return bolt.encode_heartbeat(request_id & 0xFFFFFFFF)

    @staticmethod
    def result(event: bolt.BoltResponse) -> Result:
        return Result(bolt.status_outcome(event.status), event.status)

    @staticmethod
    def readonly(event: Any) -> bool | None:
        return None


def _attachment(event: dubbo.DubboRequest, key: bytes) -> Any:
    """Attachment ``key`` (its compact hessian2 form): read from the raw body, else from the decoded
    attachments when the raw bytes cannot say; a str, an int, or None (absent or unreadable)."""
    value = trailing_attachment(event.frame, key)
    if value is UNSURE:
        return _decoded_attachment(event, key)
    return value.decode("ascii") if type(value) is bytearray else value


def _decoded_attachment(event: dubbo.DubboRequest, key: bytes) -> Any:
    """Attachment ``key`` (its compact hessian2 form) from the decoded attachments; None when unreadable."""
    try:
        return event.meta().attachments.get(key[1:].decode())
    except CodecError:
        return None


_OK_20 = Result(Outcome.OK, 20)
_APP_ERROR_20 = Result(Outcome.APP_ERROR, 20)

ADAPTERS: dict[str, RpcAdapter] = {"dubbo": DubboAdapter(), "bolt": BoltAdapter()}

__all__ = ["ADAPTERS", "BoltAdapter", "DubboAdapter", "RpcAdapter", "RpcView", "UnsupportedSerialization"]
