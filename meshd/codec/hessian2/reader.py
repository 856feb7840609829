"""The table-driven Hessian reader shared by both grammars.

A :class:`Reader` walks ``data[pos:end]`` one value at a time. ``read()`` builds the value, ``skip()``
walks it without building it (strings are not decoded, binaries not copied, containers not created).
Both dispatch on the lead byte through a 256-entry table that a grammar module fills (``final.py``,
``draft.py``); every entry is ``fn(reader, lead) -> value``.

Per body state, shared by read and skip so that they can be mixed on one body (Dubbo skips the
arguments and then reads the attachments): the class-definition table, the type table and the
reference table (skipped containers leave a placeholder, so later references keep their numbers; a
reference to a skipped container reads as :class:`SkippedRef`).

Bounds: ``max_depth`` nested containers, ``max_values`` values in total; every length is checked against
``end`` before use and nothing is pre-allocated from a declared length, so work is linear in the input.
Every failure is a :class:`HessianError`.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from meshd.codec.hessian2.strings import decode_units, skip_units
from meshd.codec.hessian2.values import (
    DEFAULT_MAX_DEPTH, DEFAULT_MAX_VALUES, HessianError, JavaObject, SkippedRef, hashable_key,
)

_U16 = struct.Struct(">H")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")
_F32 = struct.Struct(">f")

SKIPPED = object()
"""Placeholder in the reference table for a container that was skipped."""

Handler = Callable[["Reader", int], Any]


class ClassDef:
    """One class definition of the body: the Java class name and its field names."""

    __slots__ = ("name", "fields")

    def __init__(self, name: str, fields: list[str]) -> None:
        self.name = name
        self.fields = fields

    def __repr__(self) -> str:
        return f"ClassDef({self.name!r}, {self.fields!r})"


class Reader:
    """Reads one Hessian body; subclasses bind the grammar tables ``READ`` and ``SKIP``."""

    READ: list[Handler]
    SKIP: list[Handler]
    GRAMMAR = "?"

    __slots__ = ("data", "pos", "end", "max_depth", "budget", "depth", "classes", "types", "refs")

    def __init__(self, data: bytes | bytearray, pos: int = 0, end: int | None = None, *,
                 max_depth: int = DEFAULT_MAX_DEPTH, max_values: int = DEFAULT_MAX_VALUES) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else min(end, len(data))
        self.max_depth = max_depth
        self.budget = max_values
        self.depth = 0
        self.classes: list[ClassDef] = []
        self.types: list[str] = []
        self.refs: list[Any] = []

    # -- public ------------------------------------------------------------------------------------

    @property
    def at_end(self) -> bool:
        return self.pos >= self.end

    def read(self) -> Any:
        """Decode the next value."""
        self.budget -= 1
        if self.budget < 0:
            raise HessianError("too many values", self.pos)
        pos = self.pos
        if pos >= self.end:
            raise HessianError("truncated: a value was expected", pos)
        b = self.data[pos]
        self.pos = pos + 1
        return self.READ[b](self, b)

    def skip(self) -> None:
        """Walk over the next value without building it."""
        self.budget -= 1
        if self.budget < 0:
            raise HessianError("too many values", self.pos)
        pos = self.pos
        if pos >= self.end:
            raise HessianError("truncated: a value was expected", pos)
        b = self.data[pos]
        self.pos = pos + 1
        self.SKIP[b](self, b)

    def read_all(self) -> list[Any]:
        """Decode values until the end of the body."""
        out = []
        while self.pos < self.end:
            out.append(self.read())
        return out

    def read_string(self) -> str | None:
        """Read a value that must be a string or null."""
        lead_pos = self.pos
        value = self.read()
        if value is not None and not isinstance(value, str):
            raise HessianError(f"expected a string, found {type(value).__name__}", lead_pos)
        return value

    def read_int(self) -> int:
        """Read a value that must be an int or long."""
        lead_pos = self.pos
        value = self.read()
        if type(value) is not int:
            raise HessianError(f"expected an int, found {type(value).__name__}", lead_pos)
        return value

    # -- primitives for handlers ------------------------------------------------------------------

    def take(self, n: int) -> int:
        """Reserve ``n`` bytes; return their start offset."""
        p = self.pos
        q = p + n
        if q > self.end:
            raise HessianError(f"truncated: {n} bytes needed", p)
        self.pos = q
        return p

    def u8(self) -> int:
        p = self.pos
        if p >= self.end:
            raise HessianError("truncated: 1 byte needed", p)
        self.pos = p + 1
        return self.data[p]

    def unpack(self, st: struct.Struct) -> Any:
        return st.unpack_from(self.data, self.take(st.size))[0]

    def peek(self) -> int:
        p = self.pos
        if p >= self.end:
            raise HessianError("truncated: a value or terminator was expected", p)
        return self.data[p]

    def text(self, n: int) -> str:
        """Decode ``n`` UTF-16 units of string data."""
        s, self.pos = decode_units(self.data, self.pos, self.end, n)
        return s

    def skip_text(self, n: int) -> None:
        self.pos = skip_units(self.data, self.pos, self.end, n)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise HessianError(f"nesting deeper than {self.max_depth}", self.pos)

    def leave(self) -> None:
        self.depth -= 1

    def length(self, n: int, what: str) -> int:
        if n < 0:
            raise HessianError(f"negative {what}", self.pos)
        return n

    def ref(self, index: int) -> Any:
        if not 0 <= index < len(self.refs):
            raise HessianError(f"reference {index} out of range ({len(self.refs)} known)", self.pos)
        value = self.refs[index]
        return SkippedRef(index) if value is SKIPPED else value

    def type_ref(self, index: int) -> str:
        if not 0 <= index < len(self.types):
            raise HessianError(f"type reference {index} out of range ({len(self.types)} known)", self.pos)
        return self.types[index]

    def class_ref(self, index: int) -> ClassDef:
        if not 0 <= index < len(self.classes):
            raise HessianError(f"class reference {index} out of range ({len(self.classes)} known)", self.pos)
        return self.classes[index]

    # -- container bodies shared by both grammars ---------------------------------------------------

    def list_until(self, terminator: int, skip: bool) -> Any:
        self.enter()
        if skip:
            self.refs.append(SKIPPED)
            while self.peek() != terminator:
                self.skip()
            self.pos += 1
            self.leave()
            return None
        out: list[Any] = []
        self.refs.append(out)
        while self.peek() != terminator:
            out.append(self.read())
        self.pos += 1
        self.leave()
        return out

    def list_fixed(self, n: int, skip: bool) -> Any:
        self.length(n, "list length")
        self.enter()
        if skip:
            self.refs.append(SKIPPED)
            for _ in range(n):
                self.skip()
            self.leave()
            return None
        out: list[Any] = []
        self.refs.append(out)
        for _ in range(n):
            out.append(self.read())
        self.leave()
        return out

    def map_until(self, terminator: int, skip: bool) -> Any:
        self.enter()
        if skip:
            self.refs.append(SKIPPED)
            while self.peek() != terminator:
                self.skip()
                self.skip()
            self.pos += 1
            self.leave()
            return None
        out: dict[Any, Any] = {}
        self.refs.append(out)
        while self.peek() != terminator:
            key = self.read()
            out[hashable_key(key)] = self.read()
        self.pos += 1
        self.leave()
        return out

    def instance(self, cdef: ClassDef, skip: bool) -> Any:
        self.enter()
        if skip:
            self.refs.append(SKIPPED)
            for _ in cdef.fields:
                self.skip()
            self.leave()
            return None
        obj = JavaObject(cdef.name)
        self.refs.append(obj)
        for name in cdef.fields:
            obj[name] = self.read()
        self.leave()
        return obj


def build_tables(entries: dict[int, Handler], skip_entries: dict[int, Handler],
                 grammar: str) -> tuple[list[Handler], list[Handler]]:
    """256-entry read and skip tables; unknown leads raise; skip falls back to read for scalars."""
    def unknown(r: Reader, b: int) -> Any:
        raise HessianError(f"unexpected lead byte 0x{b:02x} in {grammar} hessian", r.pos - 1)

    read = [entries.get(b, unknown) for b in range(256)]
    skip = [skip_entries.get(b) or entries.get(b, unknown) for b in range(256)]
    return read, skip


def fill(table: dict[int, Handler], leads: range | list[int], fn: Handler) -> None:
    for b in leads:
        table[b] = fn

