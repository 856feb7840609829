"""HTTP/1.1 wire helpers for the proxy: request/response heads, hop-by-hop filtering, local replies.

Parsing itself is httptools (llhttp); this module builds the bytes meshd writes. It is sans-IO.
Header names arrive from httptools as raw bytes; comparisons use lower-cased names.
"""

from __future__ import annotations

from http import HTTPStatus

# RFC 9110 §7.6.1 hop-by-hop fields, plus the ones a proxy re-frames or answers itself.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
})
REQUEST_DROP = HOP_BY_HOP | {b"expect"}

# Deadline headers a caller may send (Envoy's names); meshd consumes them: they shorten, never extend,
# the route's timeouts, and are not forwarded.
TIMEOUT_HEADER = b"x-envoy-upstream-rq-timeout-ms"
PER_TRY_TIMEOUT_HEADER = b"x-envoy-upstream-rq-per-try-timeout-ms"
DEADLINE_HEADERS = frozenset({TIMEOUT_HEADER, PER_TRY_TIMEOUT_HEADER})

STATUS_LINES: dict[int, bytes] = {
    int(s): f"HTTP/1.1 {int(s)} {s.phrase}\r\n".encode() for s in HTTPStatus
}

# Statuses whose responses never carry a body (RFC 9110 §6.4.1).
NO_BODY_STATUS = frozenset({204, 304}) | frozenset(range(100, 200))

CRLF = b"\r\n"
LAST_CHUNK = b"0\r\n\r\n"
CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"


def whole_head(data: bytes, headers: int, start: bytes, first_line: int = -1) -> bytes | None:
    """The message head at the start of ``data`` when it is exactly what the parser read there: a first
    line beginning with ``start`` (a request line ``first_line`` bytes long ending in " HTTP/1.1", when
    given) and ``headers`` header lines, each ended by CRLF, then the empty line. None otherwise (bare LF
    line ends, folded lines, empty lines before the message, a message that began in an earlier read):
    such a head is rebuilt from its parsed headers instead."""
    end = data.find(b"\r\n\r\n") + 4
    if end < 4 or not data.startswith(start):
        return None
    if first_line >= 0 and not data.startswith(b" HTTP/1.1\r\n", first_line - 9):
        return None
    head = data if end == len(data) else data[:end]
    return head if head.count(b"\r\n") == headers + 2 else None


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Unknown\r\n".encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def connection_tokens(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in ``Connection`` (they are hop-by-hop too), lower-cased."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


def filter_headers(headers: list[tuple[bytes, bytes]], drop: frozenset[bytes],
                   add: tuple[tuple[bytes, bytes, bool], ...] = ()) -> list[bytes]:
    """Header lines to forward: without ``drop`` (lower-case names), with ``add`` applied Envoy-style."""
    replace = frozenset(name for name, _, append in add if not append)
    lines = [b"%b: %b\r\n" % (n, v) for n, v in headers if (low := n.lower()) not in drop and low not in replace]
    for name, value, _ in add:
        lines.append(b"%b: %b\r\n" % (name, value))
    return lines


def local_reply(status: int, body: bytes, close: bool, extra: tuple[tuple[bytes, bytes], ...] = (),
                head_only: bool = False) -> bytes:
    """A complete response meshd answers itself (404 NR, 503 UH, 504 UT, 429, direct responses)."""
    parts = [status_line(status), b"content-length: %d\r\n" % len(body), b"content-type: text/plain\r\n"]
    parts += [b"%b: %b\r\n" % kv for kv in extra]
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(CRLF)
    if not head_only:
        parts.append(body)
    return b"".join(parts)
