"""meshd's Bolt and hessian2 codecs behind :class:`discovery.wire.BoltWire`, for sources that speak Bolt to their
registry (SOFARegistry). Sans-IO, like the codecs it wraps."""

from __future__ import annotations

from typing import Any

from discovery.wire import BoltMessage
from meshd.codec import bolt
from meshd.codec.base import CodecError, ProtocolError
from meshd.codec.bolt.frame import CODEC_HESSIAN2, CODEC_NAMES, TYPE_REQUEST_ONEWAY
from meshd.codec.hessian2 import DraftReader, JavaObject, Long


class BoltObjectDecoder:
    """A :class:`meshd.codec.bolt.BoltDecoder` whose frames come out as :class:`BoltMessage` values."""

    __slots__ = ("_decoder", "_broken")

    def __init__(self, max_frame_size: int) -> None:
        self._decoder = bolt.BoltDecoder(max_frame_size)
        self._broken = ""

    def feed(self, data: bytes) -> list[BoltMessage]:
        if self._broken:
            return [BoltMessage("broken", 0, "", None, error=self._broken)]
        decoder = self._decoder
        out: list[BoltMessage] = []
        try:
            decoder.receive_data(data)
            while True:
                event = decoder.next_event()
                if not isinstance(event, (bolt.BoltRequest, bolt.BoltResponse, bolt.BoltHeartbeat,
                                          bolt.BoltHeartbeatAck)):
                    return out            # NEED_DATA, or CLOSED after b""
                out.append(_message(event))
        except ProtocolError as exc:
            self._broken = str(exc)
            out.append(BoltMessage("broken", 0, "", None, error=self._broken))
            return out


def _message(event: Any) -> BoltMessage:
    rid = event.request_id
    if isinstance(event, bolt.BoltHeartbeat):
        return BoltMessage("heartbeat", rid, "", None)
    if isinstance(event, bolt.BoltHeartbeatAck):
        return BoltMessage("heartbeat_ack", rid, "", None, event.status)
    response = isinstance(event, bolt.BoltResponse)
    kind = "response" if response else "oneway" if event.type == TYPE_REQUEST_ONEWAY else "request"
    status = event.status if response else 0
    try:
        name = event.class_name() or ""
        content = event.content()
    except CodecError as exc:
        return BoltMessage(kind, rid, "", None, status, f"unreadable frame: {exc}")
    if not content:
        return BoltMessage(kind, rid, name, None, status)
    if event.codec != CODEC_HESSIAN2:
        codec = CODEC_NAMES.get(event.codec, str(event.codec))
        return BoltMessage(kind, rid, name, None, status, f"content in codec {codec}, not hessian2")
    try:
        value = DraftReader(content).read()
    except CodecError as exc:
        return BoltMessage(kind, rid, name, None, status, f"{name or 'content'}: {exc}")
    return BoltMessage(kind, rid, name, value, status)


class BoltObjectWire:
    """See the module docstring; stateless, one instance serves every source."""

    @staticmethod
    def obj(class_name: str, fields: dict[str, Any]) -> JavaObject:
        return JavaObject(class_name, fields)

    @staticmethod
    def long(value: int) -> Long:
        return Long(value)

    @staticmethod
    def class_of(value: Any) -> str | None:
        return value.class_name if isinstance(value, JavaObject) else None

    @staticmethod
    def request(request_id: int, value: Any, timeout_ms: int) -> bytes:
        return bolt.encode_object(request_id, value, request=True, timeout=timeout_ms)

    @staticmethod
    def response(request_id: int, value: Any, status: int = 0) -> bytes:
        if value is None:
            return bolt.encode_status_response(request_id, status)
        return bolt.encode_object(request_id, value, request=False, status=status)

    @staticmethod
    def heartbeat(request_id: int) -> bytes:
        return bolt.encode_heartbeat(request_id)

    @staticmethod
    def heartbeat_ack(request_id: int) -> bytes:
        return bolt.encode_heartbeat_ack(request_id)

    @staticmethod
    def decoder(max_frame_size: int) -> BoltObjectDecoder:
        return BoltObjectDecoder(max_frame_size)
