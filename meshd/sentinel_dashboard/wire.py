"""What Sentinel's Java transport does to bytes, reproduced exactly (pure functions, no I/O).

* :func:`parse_request` -- ``sentinel-transport-simple-http`` ``HttpEventTask``: the command name is the
  request target after the first ``/`` up to ``?`` (not decoded); parameters come from the query string,
  then, for ``POST``, from the form body (a body parameter replaces a query parameter of the same name);
  a POST with a ``Content-Type`` that is not form-urlencoded is refused with 415, one without a positive
  ``Content-Length`` with 411.
* :func:`parse_params` -- ``HttpEventTask.parseParams``/``parseSingleParam``: split on ``&`` after
  dropping a ``#anchor``; pieces shorter than 3 characters, without a key or without a value are
  skipped; key and value are trimmed, then decoded by :func:`java_url_decode`.
* :func:`java_url_decode` / :func:`java_url_encode` -- ``java.net.URLDecoder`` / ``URLEncoder`` (UTF-8):
  ``+`` is a space; a malformed ``%`` escape raises ``ValueError`` (Java's ``IllegalArgumentException``).
* :func:`hashmap_order` -- the iteration order of a ``java.util.HashMap`` (fastjson's ``JSONObject``, the
  heartbeat message, the command registry), so maps Java writes from a HashMap come out in its order.

``SimpleHttpCommandCenter`` writes ``HTTP/1.0 <code> <reason>``, ``Content-Length`` and
``Connection: close`` and no ``Content-Type``; the reasons are :data:`REASONS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

REASONS = {200: "OK", 400: "Bad Request", 408: "Request Timeout", 411: "Length Required",
           415: "Unsupported Media Type", 500: "Internal Server Error"}
_UNRESERVED = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*_")


@dataclass(frozen=True)
class CommandRequest:
    """J ``CommandRequest``: the command name (``target``) and its merged parameters."""

    target: str
    params: Mapping[str, str] = field(default_factory=dict)


class RequestError(Exception):
    """J ``RequestException``: answered with ``status`` and ``message`` before any command runs."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def java_url_decode(text: str) -> str:
    """``URLDecoder.decode(text, "UTF-8")``."""
    if "%" not in text and "+" not in text:
        return text
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "+":
            out += b" "
            i += 1
        elif char == "%":
            while i + 2 < n and text[i] == "%":
                pair = text[i + 1:i + 3]
                if not all(c in "0123456789abcdefABCDEF" for c in pair):
                    raise ValueError("URLDecoder: Illegal hex characters in escape (%) pattern - "
                                     f'Error at index 0 in: "{pair}"')
                out.append(int(pair, 16))
                i += 3
            if i < n and text[i] == "%":
                raise ValueError("URLDecoder: Incomplete trailing escape (%) pattern")
        else:
            out += char.encode("utf-8")
            i += 1
    return out.decode("utf-8", errors="replace")


def java_url_encode(text: str) -> str:
    """``URLEncoder.encode(text, "UTF-8")``: unreserved ``a-zA-Z0-9.-*_``, space as ``+``."""
    out = []
    for byte in text.encode("utf-8"):
        if byte in _UNRESERVED:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def parse_params(query: str, into: dict[str, str]) -> None:
    """``HttpEventTask.parseParams`` into ``into`` (later pieces replace earlier ones)."""
    if not query:
        return
    anchor = query.find("#")
    if anchor >= 0:
        query = query[:anchor]
    for single in query.split("&"):
        if len(single) < 3:
            continue
        index = single.find("=")
        if index <= 0 or index >= len(single) - 1:
            continue
        key = java_url_decode(single[:index].strip())
        into[key] = java_url_decode(single[index + 1:].strip())


def parse_request(method: str, target: str, headers: Mapping[str, str], body: bytes) -> CommandRequest:
    """One HTTP request as ``HttpEventTask`` reads it; ``target`` is the raw request target (path?query).

    Raises :class:`RequestError` (415/411) for POST bodies simple-http refuses and ``ValueError`` for a
    malformed escape (simple-http answers those 500).
    """
    start = target.find("/")
    ask = target.find("?")
    name = target[start + 1 if start >= 0 else 0:ask if ask >= 0 else len(target)]
    params: dict[str, str] = {}
    if ask >= 0:
        parse_params(target[ask + 1:], params)
    if method.upper() == "POST":
        lowered = {k.lower(): v.strip() for k, v in headers.items()}
        content_type = lowered.get("content-type")
        if content_type and "application/x-www-form-urlencoded" not in content_type.split(";")[0].lower().strip():
            raise RequestError(415, "Only form-encoded post request is supported")
        try:
            length = int(lowered.get("content-length", ""))
        except ValueError:
            length = 0
        if length < 1:
            raise RequestError(411, "No legal Content-Length")
        parse_params(body[:length].decode("utf-8", errors="replace"), params)
    return CommandRequest(name, params)


def java_string_hash(text: str) -> int:
    """``String.hashCode`` (over UTF-16 code units, 32-bit signed arithmetic)."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h


def hashmap_order(keys: Iterable[str], capacity: int = 16) -> list[str]:
    """The iteration order of a ``HashMap`` (initial ``capacity``) after putting ``keys`` in order.

    Buckets are iterated by index; a bucket keeps insertion order, and resizing splits buckets without
    reordering, so the order is (bucket in the final table, insertion order).
    """
    ordered = list(dict.fromkeys(keys))
    size = max(1, capacity)
    table = 1
    while table < size:
        table <<= 1
    while len(ordered) > table * 0.75:
        table <<= 1

    def bucket(key: str) -> int:
        h = java_string_hash(key)
        return (h ^ (h >> 16)) & (table - 1)

    return sorted(ordered, key=lambda k: bucket(k))  # sorted() is stable: insertion order within a bucket


def form_body(fields: Mapping[str, str], capacity: int = 16) -> str:
    """``SimpleHttpClient.encodeRequestParams`` over a ``HashMap`` holding ``fields``."""
    return "&".join(f"{java_url_encode(k)}={java_url_encode(fields[k])}" for k in hashmap_order(fields, capacity))
