"""The connection-side Dubbo2 decoder: bytes in, one event per frame out (sans-IO, h11 style).

```python
dec = DubboDecoder(max_frame_size=8 << 20)
dec.receive_data(chunk)                 # b"" announces end of stream
while (ev := dec.next_event()) is not NEED_DATA:
    ...                                 # DubboRequest | DubboResponse | DubboHeartbeat | DubboHeartbeatAck | DubboEvent | CLOSED
```

Per frame the decoder does one ``struct.unpack_from`` on its bytearray (compiled, ``events()`` reads the
header's bytes as C integers instead) and one slice (the event's ``frame``); nothing in the body is parsed
until the receiver asks. Event frames (heartbeats, readonly) are
classified by their tiny body. A frame declaring more than ``max_frame_size`` body bytes raises
:class:`FrameTooLarge` (with the request id and the header) and its body is dropped as it arrives; the
decoder then continues. A bad magic or a negative length raises :class:`ProtocolError` and breaks the
decoder (every later call raises it again): close the connection.
"""

from __future__ import annotations

from typing import Any

from meshd.codec.base import COMPILED, DEFAULT_MAX_FRAME_SIZE, FrameBuffer, FrameTooLarge, ProtocolError
from meshd.codec.dubbo.events import DubboEvent, DubboHeartbeat, DubboHeartbeatAck, DubboRequest, DubboResponse
from meshd.codec.dubbo.frame import (
    FLAG_EVENT, FLAG_REQUEST, FLAG_TWOWAY, HEADER, HEADER_SIZE, HESSIAN2, MAGIC, PROTOCOL, SERIALIZATION_MASK,
    DubboHeader,
)

_new = tuple.__new__
_HEARTBEAT_BODY = b"N"


class DubboDecoder(FrameBuffer):
    """Splits a Dubbo2 byte stream into frame events. Not thread-safe; one per connection and direction."""

    __slots__ = ("max_frame_size",)

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        super().__init__()
        self.max_frame_size = max_frame_size

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes from the peer; ``b""`` means the peer closed its side."""
        self.feed(data, PROTOCOL)

    def next_event(self) -> Any:
        """The next frame event, ``NEED_DATA``, or ``CLOSED``; raises :class:`ProtocolError`."""
        if self.error is not None:
            raise self.error
        buf = self.buf
        pos = self.pos
        size = len(buf)
        if size - pos < HEADER_SIZE:
            return self.at_rest(PROTOCOL)
        magic, flag, status, rid, length = HEADER.unpack_from(buf, pos)
        if magic != MAGIC or length < 0 or length > self.max_frame_size:
            return self._bad_header(magic, flag, status, rid, length)
        end = pos + HEADER_SIZE + length
        if end > size:
            return self.at_rest(PROTOCOL)
        frame = buf[pos:end]
        if end == size:
            buf.clear()
            self.pos = 0
        else:
            self.pos = end
        if flag & FLAG_REQUEST:
            if not flag & FLAG_EVENT:
                return _new(DubboRequest, (rid, flag, frame))
            return self._event_request(rid, flag, frame)
        if flag & FLAG_EVENT:
            return _new(DubboHeartbeatAck, (rid, flag, status, frame))
        return _new(DubboResponse, (rid, flag, status, frame))

    def events(self) -> list[Any]:
        """Every event ``next_event`` would return before ``NEED_DATA``, or some of them, as a list; ``[]``
        means ``NEED_DATA``. One call per read instead of one per frame: well-formed frames are split here;
        anything else (an event frame, a bad or oversized header) ends the list and is left to
        ``next_event`` (so a list never holds an event after a frame that raises). CLOSED comes alone."""
        out: list[Any] = []
        pos = self.pos
        if self.error is None:
            append, new, unpack = out.append, _new, HEADER.unpack_from
            Request, Response = DubboRequest, DubboResponse
            buf, limit = self.buf, self.max_frame_size
            size = len(buf)
            while size - pos >= 16:                       # HEADER_SIZE
                if COMPILED:                              # HEADER's fields as C integers (no tuple, no ints)
                    magic = (buf[pos] << 8) | buf[pos + 1]
                    flag = buf[pos + 2]
                    status = buf[pos + 3]
                    rid = buf[pos + 4]
                    for i in range(pos + 5, pos + 12):
                        rid = (rid << 8) | buf[i]         # wraps to the signed ">q" value (C's int64, -fwrapv)
                    length = buf[pos + 12]
                    for i in range(pos + 13, pos + 16):
                        length = (length << 8) | buf[i]
                    if length >= 0x80000000:
                        length -= 0x100000000             # ">i": signed
                else:
                    magic, flag, status, rid, length = unpack(buf, pos)
                if magic != 0xDABB or length < 0 or length > limit:
                    break
                end = pos + 16 + length
                if end > size:
                    break
                if flag & 0x80:                           # FLAG_REQUEST
                    if flag & 0x20:                       # FLAG_EVENT
                        break
                    append(new(Request, (rid, flag, buf[pos:end])))
                elif flag & 0x20:
                    append(new(DubboHeartbeatAck, (rid, flag, status, buf[pos:end])))
                else:
                    append(new(Response, (rid, flag, status, buf[pos:end])))
                pos = end
        return self.settle(out, pos)

    def _bad_header(self, magic: int, flag: int, status: int, rid: int, length: int) -> Any:
        if magic != MAGIC:
            raise self.fail(ProtocolError(f"bad magic 0x{magic:04x} (expected 0xdabb)", protocol=PROTOCOL))
        if length < 0:
            raise self.fail(ProtocolError(f"negative body length {length}", protocol=PROTOCOL, request_id=rid))
        self.refuse(HEADER_SIZE + length)
        raise FrameTooLarge(f"frame body of {length} bytes exceeds the limit of {self.max_frame_size}",
                            protocol=PROTOCOL, request_id=rid, declared=length, limit=self.max_frame_size,
                            header=DubboHeader(flag, status, rid, length))

    @staticmethod
    def _event_request(rid: int, flag: int, frame: bytearray) -> Any:
        if flag & SERIALIZATION_MASK == HESSIAN2:
            if frame[HEADER_SIZE:] == _HEARTBEAT_BODY or len(frame) == HEADER_SIZE:
                return _new(DubboHeartbeat, (rid, flag, frame))
            return _new(DubboEvent, (rid, flag, frame))
        # another serialization: its null is not ours to read; two-way events are heartbeats in practice
        if flag & FLAG_TWOWAY:
            return _new(DubboHeartbeat, (rid, flag, frame))
        return _new(DubboEvent, (rid, flag, frame))
