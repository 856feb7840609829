"""What every sans-IO codec shares: the error hierarchy, the NEED_DATA / CLOSED sentinels, the frame buffer.

Contract (h11 style):

- A connection-side decoder takes bytes with ``receive_data(data)`` and hands out one event at a time from
  ``next_event()``: a typed, immutable event, ``NEED_DATA`` when the buffered bytes hold no complete frame,
  or ``CLOSED`` once ``receive_data(b"")`` announced end of stream and every buffered frame was returned.
- Every problem with the bytes is a :class:`CodecError`; no other exception type escapes a codec for any
  input. Errors are split by blame: :class:`ProtocolError` (the peer sent bytes that break the protocol)
  and :class:`EncodeError` (we were asked to encode something the protocol cannot carry).
- :class:`FrameTooLarge` is the one *recoverable* protocol error: the header was valid but declared more
  than ``max_frame_size`` bytes. It carries the request id and the header fields needed to answer in the
  caller's protocol; the decoder discards the oversized body as it arrives (never buffering it) and goes
  on with the next frame. Any other ``ProtocolError`` from ``next_event`` leaves the decoder broken: every
  later call raises the same error, and the connection should be closed.
- Codecs never import asyncio or socket; they never block and never allocate from a declared length.

Forwarding-path recipe (Dubbo shown; Bolt is the same with ``meshd.codec.bolt``)::

    kind = sniff(prefix, ("dubbo", "bolt", "http1"))          # meshd.codec.sniff: MATCH / NEED_MORE / NO_MATCH
    dec = DubboDecoder(max_frame_size)                        # one per connection and direction
    dec.receive_data(prefix_and_following_bytes)
    while (ev := dec.next_event()) is not NEED_DATA:          # FrameTooLarge: answer reject(err.header, ...)
        if isinstance(ev, DubboRequest):
            head = ev.head()                                  # service / version / method: ~5 strings
            group = ev.meta().group if route_needs_group else None
            pos = len(out); out += ev.frame                   # ev.frame is yours: no copy needed
            patch_request_id(out, upstream_id, pos)           # multiplexing without re-encoding
        elif isinstance(ev, DubboHeartbeat):
            out += encode_heartbeat_ack(ev.request_id, serialization_id=ev.serialization_id)
    transport.write(out)                                      # one write per batch

Events are immutable NamedTuples (cheap to build); their ``frame`` is a fresh bytearray owned by the
receiver. Body accessors parse on demand, never cache, and raise ``UnsupportedSerialization`` (reject with
``reject(ev, Outcome.BAD_REQUEST, ...)`` if the body is needed) or ``ProtocolError``. Status mapping both
ways lives in ``<protocol>.status``; synthesized errors in ``<protocol>.encode.reject``.
"""

from __future__ import annotations

from typing import Any

try:
    import cython
    COMPILED: bool = cython.compiled
    """True in the compiled hot path (meshd/compiled.py): the frame splitters and the proxy's id patchers then
    read and write header fields byte by byte as C integers, where Python uses one ``struct`` call (the
    reference: tests hold the two equal, and CI runs both)."""
except ImportError:                           # Cython is a build requirement, not a runtime one
    COMPILED = False

DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024
"""Default limit on a frame's declared length (Dubbo's default ``payload``, 8 MiB)."""


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name


NEED_DATA: Any = _Sentinel("NEED_DATA")
"""``next_event()`` result: no complete frame is buffered; call ``receive_data`` with more bytes."""

CLOSED: Any = _Sentinel("CLOSED")
"""``next_event()`` result: the peer closed the stream (``receive_data(b"")``) and every frame was returned."""


class CodecError(Exception):
    """Base of every codec failure. ``protocol`` names the codec; ``request_id`` is set when it was readable."""

    def __init__(self, message: str, *, protocol: str = "", request_id: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.protocol = protocol
        self.request_id = request_id

    def __str__(self) -> str:
        prefix = f"{self.protocol}: " if self.protocol else ""
        rid = f" (request id {self.request_id})" if self.request_id is not None else ""
        return f"{prefix}{self.message}{rid}"


class ProtocolError(CodecError):
    """The peer's bytes break the protocol (remote blame): bad magic, bad lengths, malformed body."""


class FrameTooLarge(ProtocolError):
    """A frame declared ``declared`` bytes, more than ``limit``: refused without buffering it.

    ``header`` holds the parsed fixed header (protocol-specific NamedTuple) so that the caller can answer
    in-protocol (Dubbo: request id + serialization id; Bolt: version, request id, cmdcode). The decoder
    that raised it stays usable: it drops the body bytes as they arrive and then decodes the next frame.
    """

    def __init__(self, message: str, *, protocol: str, request_id: int | None, declared: int, limit: int,
                 header: Any = None) -> None:
        super().__init__(message, protocol=protocol, request_id=request_id)
        self.declared = declared
        self.limit = limit
        self.header = header


class UnsupportedSerialization(CodecError):
    """The frame is well formed but its body uses a serialization meshd does not parse (only hessian2 is).

    The frame can still be forwarded untouched; body fields (service, method, group, ...) are unavailable.
    """

    def __init__(self, message: str, *, protocol: str, request_id: int | None, serialization_id: int) -> None:
        super().__init__(message, protocol=protocol, request_id=request_id)
        self.serialization_id = serialization_id


class EncodeError(CodecError):
    """We were asked to encode something the protocol cannot carry (local blame)."""


class FrameBuffer:
    """The receive buffer shared by the frame decoders: one bytearray, a read offset, EOF and discard state.

    Decoders read ``buf`` from ``pos`` with ``struct.unpack_from`` and slice complete frames out; ``consume``
    advances. ``receive_data`` compacts lazily (only when a read offset exists), so a frame costs one slice.
    """

    __slots__ = ("buf", "pos", "eof", "discard", "error")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.eof = False
        self.discard = 0          # body bytes of a refused (too large) frame still to drop
        self.error: CodecError | None = None

    def feed(self, data: bytes | bytearray | memoryview, protocol: str) -> None:
        if self.eof and data:
            raise ProtocolError("data received after end of stream", protocol=protocol)
        if not data:
            self.eof = True
            return
        if self.discard:
            n = len(data)
            if n <= self.discard:
                self.discard -= n
                return
            data = memoryview(data)[self.discard:]
            self.discard = 0
        buf = self.buf
        if self.pos:
            del buf[:self.pos]
            self.pos = 0
        buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as events."""
        return len(self.buf) - self.pos

    def refuse(self, frame_end_offset: int) -> None:
        """Drop a refused frame: everything buffered up to ``frame_end_offset`` (relative to ``pos``)."""
        avail = len(self.buf) - self.pos
        if frame_end_offset <= avail:
            self.pos += frame_end_offset
        else:
            self.discard = frame_end_offset - avail
            self.buf.clear()
            self.pos = 0

    def settle(self, out: list, pos: int) -> list:
        """The end of a decoder's ``events()``: its inline split consumed up to ``pos``; when it split
        nothing, the one event (or error) ``next_event`` gives instead."""
        if pos == len(self.buf):
            self.buf.clear()
            self.pos = 0
        else:
            self.pos = pos
        if not out:
            ev = self.next_event()  # type: ignore[attr-defined]
            if ev is not NEED_DATA:
                out.append(ev)
        return out

    def at_rest(self, protocol: str) -> Any:
        """What ``next_event`` answers when no complete frame is buffered."""
        if not self.eof:
            return NEED_DATA
        if self.buffered or self.discard:
            raise self.fail(ProtocolError(f"connection closed inside a frame ({self.buffered} bytes buffered)",
                                          protocol=protocol))
        return CLOSED

    def fail(self, err: CodecError) -> CodecError:
        """Remember a fatal error so that later calls raise it again; return it for ``raise``."""
        self.error = err
        return err
