"""Events a :class:`~meshd.codec.bolt.decoder.BoltDecoder` yields, one per frame.

Immutable NamedTuples (see the Dubbo events for why) with the header fields a forwarder needs and
``frame``: the complete raw frame as a fresh ``bytearray`` owned by the receiver (patch ids in place with
:func:`meshd.codec.bolt.frame.patch_request_id`, which also fixes a v2 CRC).

Body accessors parse on every call (not cached; keep the result) and raise ``ProtocolError`` on malformed
sections; content accessors raise ``UnsupportedSerialization`` for a non-hessian2 codec. Cheapest first:
``header(name)`` / ``service()`` (scan the header map), ``head()`` (service split + method: header, or the
SofaRequest's ``methodName`` field), ``header_map()``, ``sofa_request()`` (everything).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import meshd.codec.bolt.body as _body
from meshd.codec.bolt.frame import PROTO_V1, SWITCH_CRC, TYPE_REQUEST_ONEWAY, BoltHeader, parse_header


class _FrameInfo:
    """Mixin: version fields read straight from ``frame``."""

    __slots__ = ()
    frame: bytearray

    @property
    def version(self) -> int:
        """Protocol code: 1 (Bolt v1) or 2 (Bolt v2)."""
        return self.frame[0]

    @property
    def ver1(self) -> int:
        """The v2 protocol version byte (1 for v1 frames)."""
        return 1 if self.frame[0] == PROTO_V1 else self.frame[1]

    @property
    def codec(self) -> int:
        return self.frame[9] if self.frame[0] == PROTO_V1 else self.frame[10]

    @property
    def switch(self) -> int:
        return 0 if self.frame[0] == PROTO_V1 else self.frame[11]

    @property
    def crc(self) -> bool:
        return self.frame[0] != PROTO_V1 and self.frame[1] == 2 and bool(self.frame[11] & SWITCH_CRC)

    def parsed_header(self) -> BoltHeader:
        """Every fixed-header field (lengths included)."""
        return parse_header(self.frame)  # type: ignore[return-value]

    def class_name(self) -> str | None:
        return _body.class_name(self.frame)

    def header_map(self) -> dict[str, str | None]:
        """The header map (SOFARPC SimpleMapSerializer)."""
        return _body.header_map(self.frame)

    def header(self, name: str | bytes) -> str | None:
        """One header's value, scanning the map without building it."""
        return _body.header(self.frame, name)

    def content(self) -> bytes:
        s = _body.sections(self.frame)
        return bytes(self.frame[s.content_start:s.content_end])


class _BoltRequestFields(NamedTuple):
    request_id: int
    type: int
    cmdcode: int
    timeout: int
    frame: bytearray


class BoltRequest(_FrameInfo, _BoltRequestFields):
    """An RPC request (cmdcode 1, or any non-heartbeat request cmdcode). ``type`` 2 = one-way."""

    __slots__ = ()

    @property
    def oneway(self) -> bool:
        return self.type == TYPE_REQUEST_ONEWAY

    def service(self) -> str | None:
        """The ``service`` header (``iface:version[:uniqueId]``), the routing key."""
        return _body.header(self.frame, _body.SERVICE_HEADER)

    def head(self) -> _body.BoltRequestHead:
        """Service (split) and method (header, else the SofaRequest ``methodName`` field)."""
        return _body.request_head(self.frame)

    def sofa_request(self) -> _body.SofaRequest:
        """The decoded SofaRequest and its arguments."""
        return _body.sofa_request(self.frame)


class _BoltResponseFields(NamedTuple):
    request_id: int
    status: int
    cmdcode: int
    frame: bytearray


class BoltResponse(_FrameInfo, _BoltResponseFields):
    """An RPC response. ``status`` 0 = SUCCESS; others per ``status.STATUS_NAMES``."""

    __slots__ = ()

    @property
    def ok(self) -> bool:
        return self.status == 0

    def sofa_response(self) -> _body.SofaResponse:
        """The decoded SofaResponse (for status SUCCESS)."""
        return _body.sofa_response(self.frame)

    def content_value(self) -> Any:
        """The first content value (e.g. RpcServerException for status 2), None when there is no content."""
        return _body.content_value(self.frame)


class _BoltHeartbeatFields(NamedTuple):
    request_id: int
    type: int
    timeout: int
    frame: bytearray


class BoltHeartbeat(_FrameInfo, _BoltHeartbeatFields):
    """A heartbeat request (cmdcode 0). Answer it locally with ``encode_heartbeat_ack``."""

    __slots__ = ()



class _BoltHeartbeatAckFields(NamedTuple):
    request_id: int
    status: int
    frame: bytearray


class BoltHeartbeatAck(_FrameInfo, _BoltHeartbeatAckFields):
    """A heartbeat answer (response with cmdcode 0)."""

    __slots__ = ()


BoltEventType = BoltRequest | BoltResponse | BoltHeartbeat | BoltHeartbeatAck
