"""Final Hessian 2.0 grammar (Caucho 4.x; Dubbo's hessian-lite, hessian.js 2.x): the Dubbo2 body dialect.

Lead bytes (docs/protocols.md §3): 00-1f/30-33/R/S strings, 20-2f/34-37/A/B binary, 38-3f/59/L/d8-ff longs,
80-d7/I ints, D/5b-5f doubles, 4a/4b dates, T/F/N, H/M maps, 55/56/57/58/70-7f lists, C class definitions,
O/60-6f objects, Q references. Types are a string (added to the type table) or an int (a type reference).
"""

from __future__ import annotations

from typing import Any

from meshd.codec.hessian2.reader import (
    _F64, _I16, _I32, _I64, _U16, SKIPPED, ClassDef, Reader, build_tables, fill,
)
from meshd.codec.hessian2.values import HessianError, date_from_millis

_STRING_LEADS = frozenset([*range(0x00, 0x20), *range(0x30, 0x34), 0x52, 0x53])
_INT_LEADS = frozenset([*range(0x80, 0xD8), 0x49])


# -- strings ---------------------------------------------------------------------------------------

def _str_len(r: Reader, b: int) -> int:
    if b < 0x20:
        return b
    if b < 0x34:
        return ((b - 0x30) << 8) + r.u8()
    return r.unpack(_U16)  # 'R' / 'S'


def _read_string(r: Reader, b: int) -> str:
    parts = []
    while b == 0x52:  # 'R' non-final chunk, then any string form
        parts.append(r.text(r.unpack(_U16)))
        b = r.u8()
        if b not in _STRING_LEADS:
            raise HessianError(f"bad string chunk lead 0x{b:02x}", r.pos - 1)
    last = r.text(_str_len(r, b))
    return "".join(parts) + last if parts else last


def _skip_string(r: Reader, b: int) -> None:
    while b == 0x52:
        r.skip_text(r.unpack(_U16))
        b = r.u8()
        if b not in _STRING_LEADS:
            raise HessianError(f"bad string chunk lead 0x{b:02x}", r.pos - 1)
    r.skip_text(_str_len(r, b))


# -- binary ----------------------------------------------------------------------------------------

def _bin_len(r: Reader, b: int) -> int:
    if b < 0x30:
        return b - 0x20
    if b < 0x38:
        return ((b - 0x34) << 8) + r.u8()
    return r.unpack(_U16)  # 'A' / 'B'


def _binary_span(r: Reader, b: int, keep: bool) -> bytes | None:
    parts = []
    while b == 0x41:  # 'A' non-final chunk
        p = r.take(r.unpack(_U16))
        if keep:
            parts.append(r.data[p:r.pos])
        b = r.u8()
        if not (0x20 <= b <= 0x2F or 0x34 <= b <= 0x37 or b in (0x41, 0x42)):
            raise HessianError(f"bad binary chunk lead 0x{b:02x}", r.pos - 1)
    p = r.take(_bin_len(r, b))
    if not keep:
        return None
    parts.append(r.data[p:r.pos])
    return bytes(b"".join(parts))


def _read_binary(r: Reader, b: int) -> bytes:
    return _binary_span(r, b, True)  # type: ignore[return-value]


def _skip_binary(r: Reader, b: int) -> None:
    _binary_span(r, b, False)


# -- numbers, dates, constants ---------------------------------------------------------------------

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
    return ((b - 0x3C) << 16) + r.unpack(_U16)  # 38-3f


_ENTRIES: dict[int, Any] = {}
fill(_ENTRIES, range(0x00, 0x20), _read_string)
fill(_ENTRIES, range(0x30, 0x34), _read_string)
fill(_ENTRIES, [0x52, 0x53], _read_string)
fill(_ENTRIES, range(0x20, 0x30), _read_binary)
fill(_ENTRIES, range(0x34, 0x38), _read_binary)
fill(_ENTRIES, [0x41, 0x42], _read_binary)
fill(_ENTRIES, range(0x80, 0xD8), _int_compact)
fill(_ENTRIES, range(0xD8, 0x100), _long_compact)
fill(_ENTRIES, range(0x38, 0x40), _long_compact)
_ENTRIES[0x49] = lambda r, b: r.unpack(_I32)                               # I
_ENTRIES[0x59] = lambda r, b: r.unpack(_I32)                               # long as int32
_ENTRIES[0x4C] = lambda r, b: r.unpack(_I64)                               # L
_ENTRIES[0x44] = lambda r, b: r.unpack(_F64)                               # D
_ENTRIES[0x5B] = lambda r, b: 0.0
_ENTRIES[0x5C] = lambda r, b: 1.0
_ENTRIES[0x5E] = lambda r, b: float(r.unpack(_I16))
_ENTRIES[0x5F] = lambda r, b: 0.001 * r.unpack(_I32)                       # int32 thousandths
_ENTRIES[0x4A] = lambda r, b: date_from_millis(r.unpack(_I64))
_ENTRIES[0x4B] = lambda r, b: date_from_millis(r.unpack(_I32) * 60000)
_ENTRIES[0x54] = lambda r, b: True
_ENTRIES[0x46] = lambda r, b: False
_ENTRIES[0x4E] = lambda r, b: None


def _double_byte(r: Reader) -> float:
    v = r.u8()
    return float(v - 256 if v >= 0x80 else v)


_ENTRIES[0x5D] = lambda r, b: _double_byte(r)


# -- types, class definitions, objects, references ---------------------------------------------------

def read_type(r: Reader) -> str:
    """A list or map type: a string (appended to the type table) or an int type reference."""
    b = r.u8()
    if b in _STRING_LEADS:
        name = _read_string(r, b)
        r.types.append(name)
        return name
    if b in _INT_LEADS:
        return r.type_ref(r.unpack(_I32) if b == 0x49 else _int_compact(r, b))
    raise HessianError(f"expected a type (string or int), found lead 0x{b:02x}", r.pos - 1)


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


def _define_classes(r: Reader) -> int:
    """Consume consecutive 'C' definitions (looped, not recursive); return the next lead byte."""
    b = r.u8()
    while b == 0x43:
        r.budget -= 1
        name = _string_value(r, "class name")
        n = r.length(_int_value(r, "field count"), "field count")
        r.classes.append(ClassDef(name, [_string_value(r, "field name") for _ in range(n)]))
        b = r.u8()
    return b


def _class_defs(r: Reader, b: int, skip: bool) -> Any:
    """'C' name n field-names, possibly repeated, then the value that follows."""
    r.pos -= 1
    b = _define_classes(r)
    return (r.SKIP if skip else r.READ)[b](r, b)


def _object(r: Reader, b: int, skip: bool) -> Any:
    index = _int_value(r, "class reference") if b == 0x4F else b - 0x60
    return r.instance(r.class_ref(index), skip)


def _ref(r: Reader, b: int) -> Any:
    return r.ref(_int_value(r, "reference"))


def _skip_ref(r: Reader, b: int) -> None:
    r.ref(_int_value(r, "reference"))


# -- lists and maps ----------------------------------------------------------------------------------

def _list(r: Reader, b: int, skip: bool) -> Any:
    if b == 0x55:                      # typed, variable length
        read_type(r)
        return r.list_until(0x5A, skip)
    if b == 0x57:                      # untyped, variable length
        return r.list_until(0x5A, skip)
    if b == 0x56:                      # typed, fixed length
        read_type(r)
        return r.list_fixed(_int_value(r, "list length"), skip)
    if b == 0x58:                      # untyped, fixed length
        return r.list_fixed(_int_value(r, "list length"), skip)
    if b < 0x78:                       # 70-77 typed, length b-0x70
        read_type(r)
        return r.list_fixed(b - 0x70, skip)
    return r.list_fixed(b - 0x78, skip)  # 78-7f untyped


def _map(r: Reader, b: int, skip: bool) -> Any:
    if b == 0x4D:
        read_type(r)
    return r.map_until(0x5A, skip)


_SKIP: dict[int, Any] = {}
for _lead in [*range(0x00, 0x20), *range(0x30, 0x34), 0x52, 0x53]:
    _SKIP[_lead] = _skip_string
for _lead in [*range(0x20, 0x30), *range(0x34, 0x38), 0x41, 0x42]:
    _SKIP[_lead] = _skip_binary
_ENTRIES[0x43] = lambda r, b: _class_defs(r, b, False)
_SKIP[0x43] = lambda r, b: _class_defs(r, b, True)
for _lead in [0x4F, *range(0x60, 0x70)]:
    _ENTRIES[_lead] = lambda r, b: _object(r, b, False)
    _SKIP[_lead] = lambda r, b: _object(r, b, True)
_ENTRIES[0x51] = _ref
_SKIP[0x51] = _skip_ref
for _lead in [0x55, 0x56, 0x57, 0x58, *range(0x70, 0x80)]:
    _ENTRIES[_lead] = lambda r, b: _list(r, b, False)
    _SKIP[_lead] = lambda r, b: _list(r, b, True)
for _lead in [0x48, 0x4D]:
    _ENTRIES[_lead] = lambda r, b: _map(r, b, False)
    _SKIP[_lead] = lambda r, b: _map(r, b, True)

_READ_TABLE, _SKIP_TABLE = build_tables(_ENTRIES, _SKIP, "final")


class FinalReader(Reader):
    """Reader for the final Hessian 2.0 grammar (Dubbo2 bodies)."""

    __slots__ = ()
    READ = _READ_TABLE
    SKIP = _SKIP_TABLE
    GRAMMAR = "final"

    def begin_object(self) -> ClassDef | None:
        """Consume class definitions and an object-instance lead; return its class, positioned at the
        first field (the instance is registered for references). None when the next value is not an
        object: then only leading class definitions were consumed (they stay defined)."""
        b = _define_classes(self)
        if b == 0x4F or 0x60 <= b <= 0x6F:
            cdef = self.class_ref(_int_value(self, "class reference") if b == 0x4F else b - 0x60)
            self.refs.append(SKIPPED)
            return cdef
        self.pos -= 1
        return None


STRING_LEADS = _STRING_LEADS
