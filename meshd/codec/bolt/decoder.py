"""The connection-side Bolt decoder (v1 and v2 on one stream): bytes in, one event per frame out.

```python
dec = BoltDecoder(max_frame_size=8 << 20)
dec.receive_data(chunk)                 # b"" announces end of stream
while (ev := dec.next_event()) is not NEED_DATA:
    ...                                 # BoltRequest | BoltResponse | BoltHeartbeat | BoltHeartbeatAck | CLOSED
```

Per frame: one ``struct.unpack_from`` of the fixed header and one slice. A v2 frame with a CRC is
verified (``verify_crc``). A frame whose class + header + content (+ CRC) exceed ``max_frame_size``
raises :class:`FrameTooLarge` carrying the parsed :class:`BoltHeader` (version, request id, cmdcode, type:
all an in-protocol answer needs) and its bytes are dropped as they arrive; decoding then continues. An
unknown protocol code or command type, a negative length or a CRC mismatch raise :class:`ProtocolError`
and break the decoder: close the connection.
"""

from __future__ import annotations

from typing import Any

from meshd.codec.base import COMPILED, DEFAULT_MAX_FRAME_SIZE, FrameBuffer, FrameTooLarge, ProtocolError
from meshd.codec.bolt.events import BoltHeartbeat, BoltHeartbeatAck, BoltRequest, BoltResponse
from meshd.codec.bolt.frame import (
    CMD_HEARTBEAT, PROTO_V1, PROTOCOL, TYPE_RESPONSE, V1_REQUEST, V1_RESPONSE, crc_ok, parse_header,
)

_new = tuple.__new__


def _u16(buf: bytearray, p: int) -> int:
    """The big-endian unsigned 16-bit field at ``p`` (the compiled splitter's, as a C integer)."""
    return (buf[p] << 8) | buf[p + 1]


def _u32(buf: bytearray, p: int) -> int:
    """The big-endian unsigned 32-bit field at ``p`` (the compiled splitter's, as a C integer)."""
    value = buf[p]                            # compiled: a 64-bit integer, so the shifts cannot overflow
    value = (value << 8) | buf[p + 1]
    value = (value << 8) | buf[p + 2]
    return (value << 8) | buf[p + 3]


class BoltDecoder(FrameBuffer):
    """Splits a Bolt byte stream into frame events. Not thread-safe; one per connection and direction."""

    __slots__ = ("max_frame_size", "verify_crc")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, *, verify_crc: bool = True) -> None:
        super().__init__()
        self.max_frame_size = max_frame_size
        self.verify_crc = verify_crc

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
        if size - pos >= 22 and buf[pos] == PROTO_V1:      # fast path: v1, the common case
            typ = buf[pos + 1]
            if typ == TYPE_RESPONSE:
                _, _, cmd, _, rid, _, status, clen, hlen, blen = V1_RESPONSE.unpack_from(buf, pos)
                declared = clen + hlen + blen
                end = pos + 20 + declared
            elif typ <= 2:
                _, _, cmd, _, rid, _, timeout, clen, hlen, blen = V1_REQUEST.unpack_from(buf, pos)
                declared = clen + hlen + blen
                end = pos + 22 + declared
            else:
                return self._general(buf, pos, size)
            if declared > self.max_frame_size:   # refusal (and negative lengths) take the validating path
                return self._general(buf, pos, size)
            if end > size:
                return self.at_rest(PROTOCOL)
            frame = self._take(buf, pos, end, size)
            if typ == TYPE_RESPONSE:
                if cmd == CMD_HEARTBEAT:
                    return _new(BoltHeartbeatAck, (rid, status, frame))
                return _new(BoltResponse, (rid, status, cmd, frame))
            if cmd == CMD_HEARTBEAT:
                return _new(BoltHeartbeat, (rid, typ, timeout, frame))
            return _new(BoltRequest, (rid, typ, cmd, timeout, frame))
        return self._general(buf, pos, size)

    def events(self) -> list[Any]:
        """Every event ``next_event`` would return before ``NEED_DATA``, or some of them, as a list; ``[]``
        means ``NEED_DATA``. One call per read instead of one per frame: v1 frames within the limit are
        split here; anything else (v2, a bad or oversized header) ends the list and is left to
        ``next_event`` (so a list never holds an event after a frame that raises). CLOSED comes alone."""
        out: list[Any] = []
        pos = self.pos
        if self.error is None:
            append = out.append
            buf, limit = self.buf, self.max_frame_size
            size = len(buf)
            while size - pos >= 20 and buf[pos] == PROTO_V1:
                typ = buf[pos + 1]
                if typ == TYPE_RESPONSE:
                    if COMPILED:                          # V1_RESPONSE's fields as C integers
                        cmd, rid, status = _u16(buf, pos + 2), _u32(buf, pos + 5), _u16(buf, pos + 10)
                        clen, hlen, blen = _u16(buf, pos + 12), _u16(buf, pos + 14), _u32(buf, pos + 16)
                    else:
                        _, _, cmd, _, rid, _, status, clen, hlen, blen = V1_RESPONSE.unpack_from(buf, pos)
                    declared = clen + hlen + blen
                    end = pos + 20 + declared
                elif typ <= 2 and size - pos >= 22:
                    if COMPILED:                          # V1_REQUEST's fields as C integers
                        cmd, rid, timeout = _u16(buf, pos + 2), _u32(buf, pos + 5), _u32(buf, pos + 10)
                        if timeout >= 0x80000000:
                            timeout -= 0x100000000        # ">i": signed
                        clen, hlen, blen = _u16(buf, pos + 14), _u16(buf, pos + 16), _u32(buf, pos + 18)
                    else:
                        _, _, cmd, _, rid, _, timeout, clen, hlen, blen = V1_REQUEST.unpack_from(buf, pos)
                    declared = clen + hlen + blen
                    end = pos + 22 + declared
                else:
                    break
                if declared > limit or end > size:
                    break
                frame = buf[pos:end]
                pos = end
                if typ == TYPE_RESPONSE:
                    if cmd == CMD_HEARTBEAT:
                        append(_new(BoltHeartbeatAck, (rid, status, frame)))
                    else:
                        append(_new(BoltResponse, (rid, status, cmd, frame)))
                elif cmd == CMD_HEARTBEAT:
                    append(_new(BoltHeartbeat, (rid, typ, timeout, frame)))
                else:
                    append(_new(BoltRequest, (rid, typ, cmd, timeout, frame)))
        return self.settle(out, pos)

    def _take(self, buf: bytearray, pos: int, end: int, size: int) -> bytearray:
        frame = buf[pos:end]
        if end == size:
            buf.clear()
            self.pos = 0
        else:
            self.pos = end
        return frame

    def _general(self, buf: bytearray, pos: int, size: int) -> Any:
        """Any version, with full validation (v2, short buffers, limits, errors)."""
        try:
            header = parse_header(buf, pos)
        except ProtocolError as e:
            raise self.fail(e) from None
        if header is None:
            return self.at_rest(PROTOCOL)
        if header.declared > self.max_frame_size:
            self.refuse(header.total)
            raise FrameTooLarge(f"frame of {header.declared} bytes after the header exceeds the limit of "
                                f"{self.max_frame_size}", protocol=PROTOCOL, request_id=header.request_id,
                                declared=header.declared, limit=self.max_frame_size, header=header)
        end = pos + header.total
        if end > size:
            return self.at_rest(PROTOCOL)
        frame = self._take(buf, pos, end, size)
        if header.has_crc and self.verify_crc and not crc_ok(frame, header):
            raise self.fail(ProtocolError("CRC check failed", protocol=PROTOCOL, request_id=header.request_id))
        rid, cmd = header.request_id, header.cmdcode
        if header.type == TYPE_RESPONSE:
            if cmd == CMD_HEARTBEAT:
                return _new(BoltHeartbeatAck, (rid, header.status, frame))
            return _new(BoltResponse, (rid, header.status, cmd, frame))
        if cmd == CMD_HEARTBEAT:
            return _new(BoltHeartbeat, (rid, header.type, header.timeout, frame))
        return _new(BoltRequest, (rid, header.type, cmd, header.timeout, frame))
