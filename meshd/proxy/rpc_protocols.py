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

The common-case path (:class:`meshd.proxy.rpc.RpcDownstream`) reads plain attributes instead of calling
methods. ``fast_key(event)`` is the request's bytes from ``head_at`` that determine its service, method
and version (Dubbo: the five head strings; Bolt: class, header map and the content through
``methodName``), or None; ``sig.unpack_from(frame)`` the fixed-header fields the answer also depends on
(flags, codec, section lengths), and ``fast_sig(sig)`` whether such a frame may take that path at all
(two-way, hessian2, Bolt v1). ``id_at``/``id_pack`` patch a request id on such frames; a response passes
when its status is ``ok_status``, ``frame[resp_at] == resp_byte`` and it carries no exception marker
(``frame[exc_at]`` in ``exc_marks``). Tests check that every answer equals the general path's.
"""

from __future__ import annotations

import struct
from typing import Any

from meshd.codec import bolt, dubbo
from meshd.codec.bolt import body as bolt_body
from meshd.codec.base import CodecError, UnsupportedSerialization
from meshd.codec.outcome import Outcome, Result

_DUBBO_ID = struct.Struct(">q")
_BOLT_ID = struct.Struct(">I")
_DUBBO_SIG = struct.Struct(">2xB")              # flag
_BOLT_SIG = struct.Struct(">5s4xB4x4s")         # proto, type, cmdcode, ver2; codec; class and header lengths
_GROUP_KEY = b"\x05group"          # hessian2 compact string "group"
_TIMEOUT_KEY = b"\x07timeout"


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


class RpcAdapter:
    """Per-protocol behaviour; see the module docstring. Stateless: one shared instance per protocol."""

    name = ""
    head_at = 0
    sig: struct.Struct
    id_at = 0
    id_pack: Any = None
    deadline_key: bytes | None = None
    native_timeout = False
    ok_status = 0
    resp_at = 0
    resp_byte = 0
    exc_at = 0
    exc_marks: tuple[int, ...] = ()

    def fast_key(self, event: Any) -> bytes | None:
        return None

    @staticmethod
    def fast_sig(sig: tuple) -> bool:
        return False

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
        self._last_head: bytes | None = None
        self._last_hit: tuple[str, str, str] = ("", "", "")

    head_at = 16
    sig = _DUBBO_SIG
    id_at = 4
    id_pack = _DUBBO_ID.pack_into
    deadline_key = _TIMEOUT_KEY
    ok_status = 20
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

    def fast_key(self, event: dubbo.DubboRequest) -> bytes | None:
        return self._head_key(event.frame) if event.frame[2] & 0x1F == 2 else None

    @staticmethod
    def fast_sig(sig: tuple) -> bool:
        return sig[0] == 0xC2                  # a two-way hessian2 request

    def group(self, view: RpcView) -> str:
        if view.event.frame.find(_GROUP_KEY, 16) < 0:
            return ""                          # no "group" string anywhere in the body: no group attachment
        value = view.attachments().get("group")
        return value if isinstance(value, str) else ""

    def attachments(self, view: RpcView) -> dict[str, Any]:
        try:
            return view.event.meta().attachments
        except CodecError as exc:
            view.error = str(exc)
            return {}

    def timeout_ms(self, view: RpcView) -> float | None:
        """The ``timeout`` attachment (ms), when the consumer sent one."""
        if view.event.frame.find(_TIMEOUT_KEY, 16) < 0:
            return None
        raw = view.attachment("timeout")
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            return None
        return value if value and value > 0 else None

    @staticmethod
    def oneway(event: dubbo.DubboRequest) -> bool:
        return not event.twoway

    @staticmethod
    def patch_id(frame: bytearray, request_id: int, _pack=_DUBBO_ID.pack_into) -> None:
        _pack(frame, 4, request_id)

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

    head_at = 22                               # v1: the class name starts here
    sig = _BOLT_SIG
    id_at = 5
    id_pack = _BOLT_ID.pack_into
    native_timeout = True
    ok_status = 0
    resp_at, resp_byte = 0, 1                  # a v1 response (no CRC to fix)

    def fast_key(self, event: bolt.BoltRequest) -> bytes | None:
        frame = event.frame
        if frame[0] != 1:
            return None
        try:
            s = bolt_body.sections(frame)
            if s.codec != 1:
                return None
            end: int | None = s.content_start
            if bolt_body.header(frame, bolt_body.METHOD_HEADER, s) is None:
                end = bolt_body.method_name_end(frame, s)   # the method is in the content (Node clients)
        except CodecError:
            return None
        return bytes(frame[22:end]) if end is not None else None

    @staticmethod
    def fast_sig(sig: tuple) -> bool:
        return sig[0][:4] == b"\x01\x01\x00\x01" and sig[1] == 1   # v1, two-way, cmdcode request; hessian2

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
    def timeout_ms(view: RpcView) -> float | None:
        timeout = view.event.timeout
        return float(timeout) if timeout > 0 else None

    @staticmethod
    def oneway(event: bolt.BoltRequest) -> bool:
        return event.oneway

    @staticmethod
    def patch_id(frame: bytearray, request_id: int, _pack=_BOLT_ID.pack_into) -> None:
        if frame[0] == 1:                      # v1: the id at 5, no CRC
            _pack(frame, 5, request_id & 0xFFFFFFFF)
        else:
            bolt.patch_request_id(frame, request_id & 0xFFFFFFFF)

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


_OK_20 = Result(Outcome.OK, 20)
_APP_ERROR_20 = Result(Outcome.APP_ERROR, 20)

ADAPTERS: dict[str, RpcAdapter] = {"dubbo": DubboAdapter(), "bolt": BoltAdapter()}

__all__ = ["ADAPTERS", "BoltAdapter", "DubboAdapter", "RpcAdapter", "RpcView", "UnsupportedSerialization"]
