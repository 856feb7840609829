"""Python values for Hessian types that have no exact built-in counterpart, and the decoding limits.

Decoding maps Hessian to Python as: null → None, boolean → bool, int and long → int, double → float,
string → str, binary → bytes, date → ``datetime`` (UTC; :class:`JavaDate` when out of datetime's range),
list → list, map → dict, typed object → :class:`JavaObject`. Encoding accepts the same plus the wrappers
below, which pin a Java type where Python's own type is ambiguous.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from meshd.codec.base import ProtocolError

DEFAULT_MAX_DEPTH = 128
"""Nesting limit for lists, maps and objects (far above real RPC payloads; well below Python's stack)."""

DEFAULT_MAX_VALUES = 1 << 22
"""Limit on values decoded or skipped from one body (each costs at least one byte, so 4 Mi values)."""

EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


class HessianError(ProtocolError):
    """A malformed or over-limit Hessian body (truncated value, unknown lead byte, bad reference, too deep)."""

    def __init__(self, message: str, pos: int | None = None) -> None:
        super().__init__(message if pos is None else f"{message} at offset {pos}", protocol="hessian2")
        self.pos = pos


class JavaObject(dict):
    """A Hessian typed object: ``class_name`` plus its fields, in class-definition order.

    It is a dict of field name → value (so it prints as JSON directly) with the Java class name attached.
    Two objects are equal when the class names and the fields are equal.
    """

    __slots__ = ("class_name",)

    def __init__(self, class_name: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(fields or ())
        self.class_name = class_name

    def __repr__(self) -> str:
        return f"JavaObject({self.class_name!r}, {dict.__repr__(self)})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JavaObject):
            return self.class_name == other.class_name and dict.__eq__(self, other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]


class TypedList(list):
    """A list encoded with a Java type name (e.g. ``"[java.lang.String"``); decoding returns plain lists."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str, items: Any = ()) -> None:
        super().__init__(items)
        self.type_name = type_name


class TypedMap(dict):
    """A map encoded with a Java type name (``M type ...``); decoding returns plain dicts."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str, items: Any = ()) -> None:
        super().__init__(items)
        self.type_name = type_name


class Long(int):
    """An int that must be encoded as a Java ``long`` even when it fits 32 bits."""

    __slots__ = ()


class JavaDate(int):
    """A Hessian date (milliseconds since the epoch, UTC) outside ``datetime``'s range."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"JavaDate({int(self)})"


class MapKey:
    """Wraps a decoded map key that Python cannot hash (a list, map or object used as a key).

    Equality is identity, like a Java ``IdentityHashMap`` key; ``value`` is the decoded key.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"MapKey({self.value!r})"


class SkippedRef:
    """A back-reference to a list/map/object that was skipped (not built) earlier in the same body."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"SkippedRef({self.index})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SkippedRef) and other.index == self.index

    def __hash__(self) -> int:
        return hash(("SkippedRef", self.index))


def date_from_millis(ms: int) -> _dt.datetime | JavaDate:
    try:
        return EPOCH + _dt.timedelta(milliseconds=ms)
    except OverflowError:
        return JavaDate(ms)


def millis_from_date(value: _dt.datetime | _dt.date) -> int:
    if isinstance(value, JavaDate):
        return int(value)
    if not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def hashable_key(key: Any) -> Any:
    """The key as stored in a decoded dict: unchanged when hashable, else wrapped in :class:`MapKey`."""
    try:
        hash(key)
    except TypeError:
        return MapKey(key)
    return key
