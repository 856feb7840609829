"""Hessian encoders for both grammars: :class:`FinalEncoder` (Dubbo2) and :class:`DraftEncoder` (Bolt).

One encoder instance writes one body: class definitions, list/map types and back-references are
numbered per instance, exactly as the matching reader expects. ``write(value)`` maps Python to Hessian:

| Python | Hessian |
|---|---|
| None / bool | null / boolean |
| int (not bool) | int when it fits 32 bits, else long; :class:`Long` always long |
| float | double (compact forms as Java writes them) |
| str | string (UTF-16 unit lengths, chunked beyond 32 Ki units) |
| bytes / bytearray / memoryview | binary |
| datetime / date / :class:`JavaDate` | date (ms since the epoch, naive datetimes taken as UTC) |
| list / tuple / :class:`TypedList` | list (typed when a :class:`TypedList`) |
| dict / :class:`TypedMap` | map (untyped ``H`` / ``M`` with a type) |
| :class:`JavaObject` | class definition (once per class and field list) + object instance |

A list, map or object written twice (same Python object) becomes a back-reference, so shared and cyclic
structures encode as Java would. Anything else raises :class:`EncodeError`.
"""

from __future__ import annotations

import datetime as _dt
import math
import struct
from typing import Any

from meshd.codec.base import EncodeError
from meshd.codec.hessian2.strings import chunks, encode_units, java_units
from meshd.codec.hessian2.values import (
    DEFAULT_MAX_DEPTH, JavaDate, JavaObject, Long, TypedList, TypedMap, millis_from_date,
)

_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_BIN_CHUNK = 0x8000


class _Encoder:
    """Grammar-independent dispatch and bookkeeping; subclasses write the grammar's forms."""

    def __init__(self, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.buf = bytearray()
        self.max_depth = max_depth
        self._depth = 0
        self._classes: dict[tuple[str, tuple[str, ...]], int] = {}
        self._types: dict[str, int] = {}
        self._refs: dict[int, int] = {}
        self._keep: list[Any] = []   # keeps written containers alive so that their ids stay unique

    def getvalue(self) -> bytes:
        return bytes(self.buf)

    def write(self, value: Any) -> "_Encoder":
        """Append one value; return self so that calls chain."""
        if value is None:
            self.buf.append(0x4E)
        elif value is True:
            self.buf.append(0x54)
        elif value is False:
            self.buf.append(0x46)
        elif isinstance(value, str):
            self.write_string(value)
        elif isinstance(value, int):
            if isinstance(value, Long):
                self.write_long(value)
            elif isinstance(value, JavaDate):
                self.write_date(value)
            elif INT32_MIN <= value <= INT32_MAX:
                self.write_int(value)
            else:
                self.write_long(value)
        elif isinstance(value, float):
            self.write_double(value)
        elif isinstance(value, (bytes, bytearray, memoryview)):
            self.write_binary(bytes(value))
        elif isinstance(value, (_dt.datetime, _dt.date)):
            self.write_date(millis_from_date(value))
        else:
            self._write_container(value)
        return self

    def _write_container(self, value: Any) -> None:
        if not isinstance(value, (list, tuple, dict)):
            raise EncodeError(f"cannot encode {type(value).__name__} as hessian", protocol="hessian2")
        index = self._refs.get(id(value))
        if index is not None:
            self.write_ref(index)
            return
        self._refs[id(value)] = len(self._refs)
        self._keep.append(value)
        self._depth += 1
        if self._depth > self.max_depth:
            raise EncodeError(f"value nested deeper than {self.max_depth}", protocol="hessian2")
        if isinstance(value, JavaObject):
            self.write_object(value)
        elif isinstance(value, dict):
            self.write_map(value, value.type_name if isinstance(value, TypedMap) else None)
        else:
            self.write_list(value, value.type_name if isinstance(value, TypedList) else None)
        self._depth -= 1

    # -- shared forms ------------------------------------------------------------------------------

    def write_int(self, v: int) -> None:
        buf = self.buf
        if -0x10 <= v <= 0x2F:
            buf.append(0x90 + v)
        elif -0x800 <= v <= 0x7FF:
            buf.append(0xC8 + (v >> 8))
            buf.append(v & 0xFF)
        elif -0x40000 <= v <= 0x3FFFF:
            buf.append(0xD4 + (v >> 16))
            buf += _U16.pack(v & 0xFFFF)
        elif INT32_MIN <= v <= INT32_MAX:
            buf.append(0x49)
            buf += _I32.pack(v)
        else:
            raise EncodeError(f"int {v} out of 32-bit range", protocol="hessian2")

    def _long_common(self, v: int, int32_lead: int) -> None:
        buf = self.buf
        if -8 <= v <= 15:
            buf.append(0xE0 + v)
        elif -0x800 <= v <= 0x7FF:
            buf.append(0xF8 + (v >> 8))
            buf.append(v & 0xFF)
        elif -0x40000 <= v <= 0x3FFFF:
            buf.append(0x3C + (v >> 16))
            buf += _U16.pack(v & 0xFFFF)
        elif INT32_MIN <= v <= INT32_MAX:
            buf.append(int32_lead)
            buf += _I32.pack(v)
        elif INT64_MIN <= v <= INT64_MAX:
            buf.append(0x4C)
            buf += _I64.pack(v)
        else:
            raise EncodeError(f"long {v} out of 64-bit range", protocol="hessian2")

    def _integral_double(self, v: float, zero_lead: int) -> bool:
        """The compact forms of an integral double both grammars have, at consecutive lead bytes (0.0,
        1.0, a byte, a short from ``zero_lead`` on); False when ``v`` fits none of them."""
        i = int(v)
        if i != v:
            return False
        buf = self.buf
        if i == 0:
            buf.append(zero_lead)
        elif i == 1:
            buf.append(zero_lead + 1)
        elif -0x80 <= i < 0x80:
            buf.append(zero_lead + 2)
            buf.append(i & 0xFF)
        elif -0x8000 <= i < 0x8000:
            buf.append(zero_lead + 3)
            buf += _I16.pack(i)
        else:
            return False
        return True

    def _string_chunks(self, value: str, nonfinal_lead: int) -> tuple[int, bytes]:
        """Write every non-final chunk; return (units, bytes) of the final chunk."""
        parts = chunks(java_units(value))
        for part in parts[:-1]:
            self.buf.append(nonfinal_lead)
            self.buf += _U16.pack(len(part))
            self.buf += encode_units(part)
        last = parts[-1]
        return len(last), encode_units(last)

    def _binary_chunks(self, data: bytes, nonfinal_lead: int) -> bytes:
        start = 0
        while len(data) - start > _BIN_CHUNK:
            self.buf.append(nonfinal_lead)
            self.buf += _U16.pack(_BIN_CHUNK)
            self.buf += data[start:start + _BIN_CHUNK]
            start += _BIN_CHUNK
        return data[start:]

    def _class_index(self, obj: JavaObject) -> tuple[int, bool]:
        key = (obj.class_name, tuple(obj.keys()))
        index = self._classes.get(key)
        if index is not None:
            return index, False
        index = self._classes[key] = len(self._classes)
        return index, True

    def _type_index(self, type_name: str) -> int | None:
        """The type's reference when it was written before; else record it and return None."""
        index = self._types.get(type_name)
        if index is None:
            self._types[type_name] = len(self._types)
        return index

    # -- grammar-specific forms (overridden) --------------------------------------------------------

    def write_long(self, v: int) -> None: raise NotImplementedError
    def write_double(self, v: float) -> None: raise NotImplementedError
    def write_string(self, v: str) -> None: raise NotImplementedError
    def write_binary(self, v: bytes) -> None: raise NotImplementedError
    def write_date(self, ms: int) -> None: raise NotImplementedError
    def write_ref(self, index: int) -> None: raise NotImplementedError
    def write_list(self, items: Any, type_name: str | None) -> None: raise NotImplementedError
    def write_map(self, items: dict[Any, Any], type_name: str | None) -> None: raise NotImplementedError
    def write_object(self, obj: JavaObject) -> None: raise NotImplementedError


class FinalEncoder(_Encoder):
    """Final Hessian 2.0 (Dubbo's hessian-lite output)."""

    def write_long(self, v: int) -> None:
        self._long_common(v, 0x59)

    def write_double(self, v: float) -> None:
        buf = self.buf
        if math.isfinite(v):
            if self._integral_double(v, 0x5B):
                return
            mills = v * 1000
            if INT32_MIN <= mills <= INT32_MAX and 0.001 * int(mills) == v:
                buf.append(0x5F)
                buf += _I32.pack(int(mills))
                return
        buf.append(0x44)
        buf += _F64.pack(v)

    def write_string(self, v: str) -> None:
        n, data = self._string_chunks(v, 0x52)
        buf = self.buf
        if n <= 31:
            buf.append(n)
        elif n <= 1023:
            buf.append(0x30 + (n >> 8))
            buf.append(n & 0xFF)
        else:
            buf.append(0x53)
            buf += _U16.pack(n)
        buf += data

    def write_binary(self, v: bytes) -> None:
        last = self._binary_chunks(v, 0x41)
        n = len(last)
        buf = self.buf
        if n <= 15:
            buf.append(0x20 + n)
        elif n <= 1023:
            buf.append(0x34 + (n >> 8))
            buf.append(n & 0xFF)
        else:
            buf.append(0x42)
            buf += _U16.pack(n)
        buf += last

    def write_date(self, ms: int) -> None:
        if ms % 60000 == 0 and INT32_MIN <= ms // 60000 <= INT32_MAX:
            self.buf.append(0x4B)
            self.buf += _I32.pack(ms // 60000)
        else:
            self.buf.append(0x4A)
            self.buf += _I64.pack(ms)

    def write_ref(self, index: int) -> None:
        self.buf.append(0x51)
        self.write_int(index)

    def _write_type(self, type_name: str) -> None:
        index = self._type_index(type_name)
        if index is None:
            self.write_string(type_name)
        else:
            self.write_int(index)

    def write_list(self, items: Any, type_name: str | None) -> None:
        n = len(items)
        if type_name:
            if n <= 7:
                self.buf.append(0x70 + n)
                self._write_type(type_name)
            else:
                self.buf.append(0x56)
                self._write_type(type_name)
                self.write_int(n)
        elif n <= 7:
            self.buf.append(0x78 + n)
        else:
            self.buf.append(0x58)
            self.write_int(n)
        for item in items:
            self.write(item)

    def write_map(self, items: dict[Any, Any], type_name: str | None) -> None:
        if type_name:
            self.buf.append(0x4D)
            self._write_type(type_name)
        else:
            self.buf.append(0x48)
        for key, value in items.items():
            self.write(key)
            self.write(value)
        self.buf.append(0x5A)

    def write_object(self, obj: JavaObject) -> None:
        index, new = self._class_index(obj)
        if new:
            self.buf.append(0x43)
            self.write_string(obj.class_name)
            self.write_int(len(obj))
            for name in obj:
                self.write_string(name)
        if index <= 15:
            self.buf.append(0x60 + index)
        else:
            self.buf.append(0x4F)
            self.write_int(index)
        for value in obj.values():
            self.write(value)


class DraftEncoder(_Encoder):
    """Hessian 2.0 draft (sofa-hessian 3.x / hessian.js-1 output, as sofa-rpc-node writes Bolt bodies)."""

    def write_long(self, v: int) -> None:
        self._long_common(v, 0x77)

    def write_double(self, v: float) -> None:
        buf = self.buf
        if math.isfinite(v):
            if self._integral_double(v, 0x67):
                return
            try:
                packed = _F32.pack(v)
            except OverflowError:
                packed = b""
            if packed and _F32.unpack(packed)[0] == v:
                buf.append(0x6B)
                buf += packed
                return
        buf.append(0x44)
        buf += _F64.pack(v)

    def write_string(self, v: str) -> None:
        n, data = self._string_chunks(v, 0x73)
        if n <= 31:
            self.buf.append(n)
        else:
            self.buf.append(0x53)
            self.buf += _U16.pack(n)
        self.buf += data

    def write_binary(self, v: bytes) -> None:
        last = self._binary_chunks(v, 0x62)
        n = len(last)
        if n <= 15:
            self.buf.append(0x20 + n)
        else:
            self.buf.append(0x42)
            self.buf += _U16.pack(n)
        self.buf += last

    def write_date(self, ms: int) -> None:
        self.buf.append(0x64)
        self.buf += _I64.pack(ms)

    def write_ref(self, index: int) -> None:
        if index < 0x100:
            self.buf.append(0x4A)
            self.buf.append(index)
        elif index < 0x10000:
            self.buf.append(0x4B)
            self.buf += _U16.pack(index)
        else:
            self.buf.append(0x52)
            self.buf += _I32.pack(index)

    def _write_new_type(self, type_name: str) -> None:
        units = java_units(type_name)
        self.buf.append(0x74)
        self.buf += _U16.pack(len(units))
        self.buf += encode_units(units)

    def write_list(self, items: Any, type_name: str | None) -> None:
        n = len(items)
        index = self._type_index(type_name) if type_name else None
        if index is not None:           # 'v' type-ref length values (no terminator)
            self.buf.append(0x76)
            self.write_int(index)
            self.write_int(n)
        else:
            self.buf.append(0x56)
            if type_name:
                self._write_new_type(type_name)
            if n < 0x100:
                self.buf.append(0x6E)
                self.buf.append(n)
            else:
                self.buf.append(0x6C)
                self.buf += _I32.pack(n)
        for item in items:
            self.write(item)
        if index is None:
            self.buf.append(0x7A)

    def write_map(self, items: dict[Any, Any], type_name: str | None) -> None:
        self.buf.append(0x4D)
        if type_name:
            index = self._type_index(type_name)
            if index is None:
                self._write_new_type(type_name)
            else:
                self.buf.append(0x75)
                self.write_int(index)
        for key, value in items.items():
            self.write(key)
            self.write(value)
        self.buf.append(0x7A)

    def write_object(self, obj: JavaObject) -> None:
        index, new = self._class_index(obj)
        if new:
            units = java_units(obj.class_name)
            self.buf.append(0x4F)
            self.write_int(len(units))
            self.buf += encode_units(units)
            self.write_int(len(obj))
            for name in obj:
                self.write_string(name)
        self.buf.append(0x6F)
        self.write_int(index)
        for value in obj.values():
            self.write(value)


def encode_final(*values: Any) -> bytes:
    """Encode values one after another in the final grammar (one body)."""
    enc = FinalEncoder()
    for v in values:
        enc.write(v)
    return enc.getvalue()


def encode_draft(*values: Any) -> bytes:
    """Encode values one after another in the draft grammar (one body)."""
    enc = DraftEncoder()
    for v in values:
        enc.write(v)
    return enc.getvalue()
