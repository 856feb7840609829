"""Protocol sniffing over the first bytes a client sends (docs/protocols.md §1), sans-IO.

Each matcher answers ``MATCH``, ``NEED_MORE`` (the prefix is consistent but too short to decide) or
``NO_MATCH`` for a byte prefix, like MOSN's protocol matchers. :func:`sniff` runs the matchers of the
protocols a listener accepts and answers the first match; while any of them still needs bytes it answers
``NEED_MORE``; at most :data:`MAX_SNIFF_BYTES` bytes are ever needed. Apply a read deadline while sniffing
(the first frame may be a heartbeat, and a silent client must not hold the connection forever).

| protocol | decided on |
|---|---|
| ``dubbo`` | magic ``da bb`` + a flag byte with REQUEST set and a known serialization id (3 bytes) |
| ``bolt`` | v1: ``01``, type 0-2, cmdcode 0-2 (4 bytes); v2: ``02``, ver1 1-2, type 0-2, cmdcode 0-2 (5 bytes) |
| ``http2`` | the full 24-byte prior-knowledge preface ``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n`` |
| ``http1`` | a method token followed by a space (MOSN's list: OPTIONS GET HEAD POST PUT DELETE TRACE CONNECT PATCH LINK UNLINK) |
| ``tls`` | ``16 03`` (a handshake record): reported so the caller can refuse or inspect it; not proxied here |
"""

from __future__ import annotations

import enum
from typing import Callable, Iterable, NamedTuple

from meshd.codec.dubbo.frame import FLAG_REQUEST, SERIALIZATION_MASK, SERIALIZATIONS


class Sniff(enum.Enum):
    MATCH = "match"
    NEED_MORE = "need_more"
    NO_MATCH = "no_match"


MATCH, NEED_MORE, NO_MATCH = Sniff.MATCH, Sniff.NEED_MORE, Sniff.NO_MATCH

DUBBO, BOLT, HTTP1, HTTP2, TLS = "dubbo", "bolt", "http1", "http2", "tls"
ALL_PROTOCOLS = (DUBBO, BOLT, HTTP2, HTTP1, TLS)

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HTTP1_METHODS = (b"OPTIONS", b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"TRACE", b"CONNECT", b"PATCH",
                 b"LINK", b"UNLINK")
_HTTP1_TOKENS = tuple(m + b" " for m in HTTP1_METHODS)
MAX_SNIFF_BYTES = len(HTTP2_PREFACE)


class SniffResult(NamedTuple):
    """``status`` and, for a match, the ``protocol`` name."""

    status: Sniff
    protocol: str | None = None


def sniff_dubbo(prefix: bytes | bytearray | memoryview) -> Sniff:
    n = len(prefix)
    if n == 0:
        return NEED_MORE
    if prefix[0] != 0xDA:
        return NO_MATCH
    if n == 1:
        return NEED_MORE
    if prefix[1] != 0xBB:
        return NO_MATCH
    if n == 2:
        return NEED_MORE
    flag = prefix[2]
    if flag & FLAG_REQUEST and flag & SERIALIZATION_MASK in SERIALIZATIONS:
        return MATCH
    return NO_MATCH


def sniff_bolt(prefix: bytes | bytearray | memoryview) -> Sniff:
    n = len(prefix)
    if n == 0:
        return NEED_MORE
    proto = prefix[0]
    if proto == 0x01:
        fields = ((1, (0, 1, 2)),)
        cmd_at = 2
    elif proto == 0x02:
        fields = ((1, (1, 2)), (2, (0, 1, 2)))
        cmd_at = 3
    else:
        return NO_MATCH
    for index, allowed in fields:
        if n <= index:
            return NEED_MORE
        if prefix[index] not in allowed:
            return NO_MATCH
    if n <= cmd_at:
        return NEED_MORE
    if prefix[cmd_at] != 0:          # cmdcode is a u16 in 0..2: its high byte is 0
        return NO_MATCH
    if n <= cmd_at + 1:
        return NEED_MORE
    return MATCH if prefix[cmd_at + 1] in (0, 1, 2) else NO_MATCH


def sniff_http2(prefix: bytes | bytearray | memoryview) -> Sniff:
    head = bytes(prefix[:MAX_SNIFF_BYTES])
    if not HTTP2_PREFACE.startswith(head):
        return NO_MATCH
    return MATCH if len(head) == MAX_SNIFF_BYTES else NEED_MORE


def sniff_http1(prefix: bytes | bytearray | memoryview) -> Sniff:
    head = bytes(prefix[:8])
    need_more = False
    for token in _HTTP1_TOKENS:
        if head.startswith(token):
            return MATCH
        if token.startswith(head):
            need_more = True
    return NEED_MORE if need_more else NO_MATCH


def sniff_tls(prefix: bytes | bytearray | memoryview) -> Sniff:
    n = len(prefix)
    if n == 0:
        return NEED_MORE
    if prefix[0] != 0x16:
        return NO_MATCH
    if n == 1:
        return NEED_MORE
    return MATCH if prefix[1] == 0x03 else NO_MATCH


MATCHERS: dict[str, Callable[[bytes | bytearray | memoryview], Sniff]] = {
    DUBBO: sniff_dubbo, BOLT: sniff_bolt, HTTP2: sniff_http2, HTTP1: sniff_http1, TLS: sniff_tls,
}


def sniff(prefix: bytes | bytearray | memoryview, protocols: Iterable[str] = ALL_PROTOCOLS) -> SniffResult:
    """Decide among ``protocols`` (names from :data:`MATCHERS`) on the bytes received so far."""
    need_more = False
    for name in protocols:
        try:
            matcher = MATCHERS[name]
        except KeyError:
            raise ValueError(f"unknown protocol {name!r} (known: {', '.join(MATCHERS)})") from None
        result = matcher(prefix)
        if result is MATCH:
            return SniffResult(MATCH, name)
        if result is NEED_MORE:
            need_more = True
    return SniffResult(NEED_MORE if need_more else NO_MATCH)
