"""Hessian strings: lengths count UTF-16 units, the bytes are (Java-style, CESU-8) UTF-8.

Java writes every UTF-16 unit as 1-3 UTF-8 bytes, so a supplementary character is two 3-byte surrogate
sequences; JavaScript encoders write it as one 4-byte sequence counting 2 units. Decoding accepts both;
encoding writes the Java form (Java's Hessian2Input rejects 4-byte sequences).
"""

from __future__ import annotations

import re

from meshd.codec.hessian2.values import HessianError

CHUNK_UNITS = 0x8000
"""Units per string chunk when encoding long strings (what Java's Hessian2Output uses)."""

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def scan_units(data: bytes | bytearray, pos: int, end: int, n: int) -> int:
    """The offset just past ``n`` UTF-16 units of UTF-8 starting at ``pos``; raise on truncation or bad bytes."""
    units = 0
    i = pos
    while units < n:
        if i >= end:
            raise HessianError("truncated string", pos)
        b = data[i]
        if b < 0x80:
            i += 1
            units += 1
        elif b < 0xc0:
            raise HessianError("invalid UTF-8 lead byte in string", i)
        elif b < 0xe0:
            i += 2
            units += 1
        elif b < 0xf0:
            i += 3
            units += 1
        elif b < 0xf8:
            i += 4
            units += 2
        else:
            raise HessianError("invalid UTF-8 lead byte in string", i)
    if units != n:
        raise HessianError("string length splits a 4-byte UTF-8 sequence", pos)
    if i > end:
        raise HessianError("truncated string", pos)
    return i


def decode_units(data: bytes | bytearray, pos: int, end: int, n: int) -> tuple[str, int]:
    """Decode ``n`` UTF-16 units starting at ``pos``; return the text and the offset after it."""
    q = pos + n
    if q <= end:
        raw = data[pos:q]
        if raw.isascii():
            return raw.decode("ascii"), q
    q = scan_units(data, pos, end, n)
    raw = data[pos:q]
    try:
        text = raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        raise HessianError("invalid UTF-8 in string", pos) from None
    if 0xED in raw:  # CESU-8 surrogates: join pairs into the characters they encode
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return text, q


def skip_units(data: bytes | bytearray, pos: int, end: int, n: int) -> int:
    """Like :func:`decode_units` without building the text."""
    q = pos + n
    if q <= end and data[pos:q].isascii():
        return q
    return scan_units(data, pos, end, n)


def _split_astral(match: re.Match[str]) -> str:
    cp = ord(match.group()) - 0x10000
    return chr(0xD800 + (cp >> 10)) + chr(0xDC00 + (cp & 0x3FF))


def java_units(text: str) -> str:
    """``text`` as a str of UTF-16 units (supplementary characters split into surrogate pairs)."""
    if text.isascii() or max(text) <= "\uffff":
        return text
    return _ASTRAL.sub(_split_astral, text)


def encode_units(units: str) -> bytes:
    """UTF-8 bytes of a str of UTF-16 units (from :func:`java_units`); surrogates as 3-byte sequences."""
    if units.isascii():
        return units.encode("ascii")
    return units.encode("utf-8", "surrogatepass")


def chunks(units: str) -> list[str]:
    """Split a unit string into chunks of at most ``CHUNK_UNITS``, never between a surrogate pair."""
    out = []
    start = 0
    n = len(units)
    while n - start > CHUNK_UNITS:
        stop = start + CHUNK_UNITS
        if "\ud800" <= units[stop - 1] <= "\udbff":
            stop -= 1
        out.append(units[start:stop])
        start = stop
    out.append(units[start:])
    return out
