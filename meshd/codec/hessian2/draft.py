"""Hessian 2.0 *draft* grammar (Caucho 3.1 era): sofa-hessian 3.x and hessian.js-1, the Bolt body dialect.

It shares ints, longs (plus ``0x77`` long-as-int32), ``I``/``L``/``D``/``N``/``T``/``F`` and compact
strings/binaries with the final grammar; the rest collides (docs/protocols.md §3):

| lead | draft meaning |
|---|---|
| ``O`` | class definition: int name length + name chars, int n, n field-name strings; a value follows |
| ``o`` | instance: int definition index, then the field values |
| ``V`` | list: optional type (``t`` u16 + chars, ``T``/``u`` int ref), optional length (``n`` u8, ``l`` i32), values, ``z`` |
| ``v`` | fixed list: int type ref, int length, values |
| ``M`` / ``H`` | map: (``M``: optional type) key/value pairs until ``z`` |
| ``R`` / ``J`` / ``K`` | reference: int32 / u8 / u16 |
| ``s`` / ``S`` | string chunk non-final / final (u16 units); ``b`` / ``B`` binary chunks |
| ``d`` | date (int64 ms); ``g h i j k`` doubles 0.0, 1.0, int8, int16, float32 |
"""

from __future__ import annotations

from typing import Any

from meshd.codec.hessian2.reader import (
    _F32, _F64, _I16, _I32, _I64, _U16, SKIPPED, ClassDef, Reader, build_tables, fill,
)
from meshd.codec.hessian2.values import HessianError, date_from_millis

_STRING_LEADS = frozenset([*range(0x00, 0x20), 0x53, 0x73])
_BINARY_LEADS = frozenset([*range(0x20, 0x30), 0x42, 0x62])
_INT_LEADS = frozenset([*range(0x80, 0xD8), 0x49])


def _read_string(r: Reader, b: int) -> str:
    parts = []
    while b == 0x73:  # 's' non-final chunk
        parts.append(r.text(r.unpack(_U16)))
        b = r.u8()
        if b not in _STRING_LEADS:
            raise HessianError(f"bad string chunk lead 0x{b:02x}", r.pos - 1)
    last = r.text(b if b < 0x20 else r.unpack(_U16))
    return "".join(parts) + last if parts else last


def _skip_string(r: Reader, b: int) -> None:
    while b == 0x73:
        r.skip_text(r.unpack(_U16))
        b = r.u8()
        if b not in _STRING_LEADS:
            raise HessianError(f"bad string chunk lead 0x{b:02x}", r.pos - 1)
    r.skip_text(b if b < 0x20 else r.unpack(_U16))


def _binary_span(r: Reader, b: int, keep: bool) -> bytes | None:
    parts = []
    while b == 0x62:  # 'b' non-final chunk
        p = r.take(r.unpack(_U16))
        if keep:
            parts.append(r.data[p:r.pos])
        b = r.u8()
        if b not in _BINARY_LEADS:
            raise HessianError(f"bad binary chunk lead 0x{b:02x}", r.pos - 1)
    p = r.take(b - 0x20 if b < 0x30 else r.unpack(_U16))
    if not keep:
        return None
    parts.append(r.data[p:r.pos])
    return b"".join(parts)


def _int_compact(r: Reader, b: int) -> int:
    if b < 0xC0:
        return b - 0x90
    if b < 0xD0:
        return ((b - 0xC8) << 8) + r.u8()
    return ((b - 0xD4) << 16) + r.unpack(_U16)


def _long_compact(r: Reader, b: int) -> int:
    if b >= 0xF0:
        return ((b - 0xF8) << 8) + r.u8()
    if b >= 0xD8:
        return b - 0xE0
    return ((b - 0x3C) << 16) + r.unpack(_U16)


def _int_value(r: Reader, what: str) -> int:
    b = r.u8()
    if b == 0x49:
        return r.unpack(_I32)
    if 0x80 <= b < 0xD8:
        return _int_compact(r, b)
    raise HessianError(f"expected an int ({what}), found lead 0x{b:02x}", r.pos - 1)


def _string_value(r: Reader, what: str) -> str:
    b = r.u8()
    if b not in _STRING_LEADS:
        raise HessianError(f"expected a string ({what}), found lead 0x{b:02x}", r.pos - 1)
    return _read_string(r, b)


def _signed_byte(r: Reader) -> float:
    v = r.u8()
    return float(v - 256 if v >= 0x80 else v)


_ENTRIES: dict[int, Any] = {}
fill(_ENTRIES, _STRING_LEADS, _read_string)
fill(_ENTRIES, _BINARY_LEADS, lambda r, b: _binary_span(r, b, True))
fill(_ENTRIES, range(0x80, 0xD8), _int_compact)
fill(_ENTRIES, range(0xD8, 0x100), _long_compact)
fill(_ENTRIES, range(0x38, 0x40), _long_compact)
_ENTRIES[0x49] = lambda r, b: r.unpack(_I32)                     # I
_ENTRIES[0x77] = lambda r, b: r.unpack(_I32)                     # long as int32
_ENTRIES[0x4C] = lambda r, b: r.unpack(_I64)                     # L
_ENTRIES[0x44] = lambda r, b: r.unpack(_F64)                     # D
_ENTRIES[0x67] = lambda r, b: 0.0
_ENTRIES[0x68] = lambda r, b: 1.0
_ENTRIES[0x69] = lambda r, b: _signed_byte(r)
_ENTRIES[0x6A] = lambda r, b: float(r.unpack(_I16))
_ENTRIES[0x6B] = lambda r, b: r.unpack(_F32)                     # float bits, widened
_ENTRIES[0x64] = lambda r, b: date_from_millis(r.unpack(_I64))  # d
_ENTRIES[0x54] = lambda r, b: True
_ENTRIES[0x46] = lambda r, b: False
_ENTRIES[0x4E] = lambda r, b: None


def read_type(r: Reader) -> str:
    """Optional list/map type: ``t`` u16 + chars (recorded), ``T``/``u`` int ref, or nothing (``""``)."""
    b = r.peek()
    if b == 0x74:
        r.pos += 1
        name = r.text(r.unpack(_U16))
        r.types.append(name)
        return name
    if b in (0x54, 0x75):
        r.pos += 1
        return r.type_ref(_int_value(r, "type reference"))
    return ""


def _optional_length(r: Reader) -> None:
    b = r.peek()
    if b == 0x6E:       # 'n' u8
        r.take(2)
    elif b == 0x6C:     # 'l' i32
        r.take(5)


def _define_classes(r: Reader) -> int:
    """Consume consecutive 'O' definitions (looped, not recursive); return the next lead byte."""
    b = r.u8()
    while b == 0x4F:
        r.budget -= 1
        name = r.text(r.length(_int_value(r, "class name length"), "class name length"))
        n = r.length(_int_value(r, "field count"), "field count")
        r.classes.append(ClassDef(name, [_string_value(r, "field name") for _ in range(n)]))
        b = r.u8()
    return b


def _class_defs(r: Reader, b: int, skip: bool) -> Any:
    """'O' definitions, then the value that follows."""
    r.pos -= 1
    b = _define_classes(r)
    return (r.SKIP if skip else r.READ)[b](r, b)


def _instance(r: Reader, b: int, skip: bool) -> Any:
    return r.instance(r.class_ref(_int_value(r, "class reference")), skip)


def _ref_index(r: Reader, b: int) -> int:
    if b == 0x4A:
        return r.u8()
    if b == 0x4B:
        return r.unpack(_U16)
    return r.unpack(_I32)  # 'R'


def _list(r: Reader, b: int, skip: bool) -> Any:
    if b == 0x56:  # 'V'
        read_type(r)
        _optional_length(r)   # a hint only: Java reads values until 'z'
        return r.list_until(0x7A, skip)
    r.type_ref(_int_value(r, "type reference"))  # 'v'
    return r.list_fixed(_int_value(r, "list length"), skip)


def _map(r: Reader, b: int, skip: bool) -> Any:
    if b == 0x4D:
        read_type(r)
    return r.map_until(0x7A, skip)


_SKIP: dict[int, Any] = {}
fill(_SKIP, _STRING_LEADS, _skip_string)
fill(_SKIP, _BINARY_LEADS, lambda r, b: _binary_span(r, b, False))
_ENTRIES[0x4F] = lambda r, b: _class_defs(r, b, False)
_SKIP[0x4F] = lambda r, b: _class_defs(r, b, True)
_ENTRIES[0x6F] = lambda r, b: _instance(r, b, False)
_SKIP[0x6F] = lambda r, b: _instance(r, b, True)
def _skip_ref(r: Reader, b: int) -> None:
    r.ref(_ref_index(r, b))           # validated, not resolved


for _lead in (0x4A, 0x4B, 0x52):
    _ENTRIES[_lead] = lambda r, b: r.ref(_ref_index(r, b))
    _SKIP[_lead] = _skip_ref
for _lead in (0x56, 0x76):
    _ENTRIES[_lead] = lambda r, b: _list(r, b, False)
    _SKIP[_lead] = lambda r, b: _list(r, b, True)
for _lead in (0x48, 0x4D):
    _ENTRIES[_lead] = lambda r, b: _map(r, b, False)
    _SKIP[_lead] = lambda r, b: _map(r, b, True)

_READ_TABLE, _SKIP_TABLE = build_tables(_ENTRIES, _SKIP, "draft")


class DraftReader(Reader):
    """Reader for the Hessian 2.0 draft grammar (Bolt bodies written by sofa-hessian 3.x / hessian.js-1)."""

    __slots__ = ()
    READ = _READ_TABLE
    SKIP = _SKIP_TABLE
    GRAMMAR = "draft"

    def begin_object(self) -> ClassDef | None:
        """Consume class definitions and an ``o`` instance lead; return its class, positioned at the first
        field (the instance is registered for references). None when the next value is not an object."""
        b = _define_classes(self)
        if b == 0x6F:
            cdef = self.class_ref(_int_value(self, "class reference"))
            self.refs.append(SKIPPED)
            return cdef
        self.pos -= 1
        return None
