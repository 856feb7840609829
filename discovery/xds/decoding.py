"""What every xDS resource decoder shares: the error type, unpacking an ``Any``, field paths, scalars.

Contract (habit 5, grpc-go's ``xdsresource/unmarshal_*.go``): a decoder turns the ``Any`` received on the
wire into a frozen value or raises :class:`ResourceError`, and nothing else. The message names the
resource and the field, ``cluster "outbound|9080||reviews": lb_policy: MAGLEV is not supported``, and is
what a NACK's ``error_detail`` carries.

Inside a decoder, helpers raise :class:`Problem` with a message about the value at hand; each level that
descends into a field wraps the call in :func:`at` so the path grows outwards
(``virtual_hosts[0](reviews:9080).routes[1].match.headers[0]``). :func:`run` turns the problem into the
final :class:`ResourceError`, and turns *any* unexpected exception into one too, so that a decoder bug
becomes a NACK naming the resource instead of a crashed stream.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, Callable, Iterator, TypeVar

from google.protobuf import any_pb2, message
from google.protobuf.struct_pb2 import Struct, Value

from configkit import format_duration

T = TypeVar("T")

TYPE_PREFIX = "type.googleapis.com/"
RESOURCE_WRAPPER = TYPE_PREFIX + "envoy.service.discovery.v3.Resource"


class ResourceError(ValueError):
    """A resource that does not decode or is not supported; the message names resource and field."""


class Problem(Exception):
    """A problem at a field path (inside a decoder only; :func:`run` makes it a :class:`ResourceError`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []

    def __str__(self) -> str:
        return f"{'.'.join(self.path)}: {self.message}" if self.path else self.message


@contextmanager
def at(name: str) -> Iterator[None]:
    """Problems raised inside are located under field ``name``."""
    try:
        yield
    except Problem as problem:
        problem.path.insert(0, name)
        raise


def indexed(field: str, index: int, name: str = "") -> str:
    """``routes[2]`` or, for a named element, ``routes[2](default)``."""
    return f"{field}[{index}]({name})" if name else f"{field}[{index}]"


def unpack(any_: Any, cls: type[T], kind: str) -> T:
    """The ``cls`` message inside ``any_`` (also when wrapped in a ``discovery.v3.Resource``)."""
    if not isinstance(any_, any_pb2.Any):
        raise ResourceError(f"{kind}: expected a google.protobuf.Any, got {type(any_).__name__}")
    if any_.type_url == RESOURCE_WRAPPER:
        from envoy.service.discovery.v3 import discovery_pb2
        wrapper = discovery_pb2.Resource()
        _parse(wrapper, any_.value, kind)
        if not wrapper.HasField("resource"):
            raise ResourceError(f"{kind}: a discovery.v3.Resource {wrapper.name!r} without a resource")
        any_ = wrapper.resource
    want = TYPE_PREFIX + cls.DESCRIPTOR.full_name  # type: ignore[attr-defined]
    if any_.type_url != want:
        raise ResourceError(f"{kind}: type_url {any_.type_url!r} is not {want!r}")
    out = cls()
    _parse(out, any_.value, kind)  # type: ignore[arg-type]
    return out


def unpack_field(any_: any_pb2.Any, cls: type[T]) -> T:
    """A nested typed ``Any`` (``typed_config``) of type ``cls``; a :class:`Problem` otherwise."""
    want = TYPE_PREFIX + cls.DESCRIPTOR.full_name  # type: ignore[attr-defined]
    if any_.type_url != want:
        raise Problem(f"type_url {any_.type_url!r} is not {want!r}")
    out = cls()
    try:
        out.ParseFromString(any_.value)  # type: ignore[attr-defined]
    except message.DecodeError as exc:
        raise Problem(f"an Any of type {want!r} that does not decode: {exc}") from None
    return out


def _parse(msg: message.Message, data: bytes, kind: str) -> None:
    try:
        msg.ParseFromString(data)
    except message.DecodeError as exc:
        raise ResourceError(f"{kind}: an Any of type {msg.DESCRIPTOR.full_name!r} that does not decode: "
                            f"{exc}") from None


def run(kind: str, name: str, decode: Callable[[], T]) -> T:
    """Call ``decode()``; every failure becomes ``ResourceError('<kind> "<name>": <path>: <message>')``."""
    try:
        return decode()
    except ResourceError:
        raise
    except Problem as problem:
        raise ResourceError(f'{kind} "{name}": {problem}') from None
    except Exception as exc:  # a decoder bug must still be a NACK, never a dead stream
        raise ResourceError(f'{kind} "{name}": could not be decoded ({type(exc).__name__}: {exc})') from exc


# -- scalars -----------------------------------------------------------------------------------------
def seconds(duration: Any) -> float:
    """A ``google.protobuf.Duration`` in seconds; negative ones are a :class:`Problem`."""
    value = duration.seconds + duration.nanos / 1e9
    if value < 0:
        raise Problem(f"negative duration {value:g}s")
    return value


def duration(duration: Any) -> str:
    """A ``Duration`` in meshd's form: ``"250ms"``, ``"2s"``."""
    return format_duration(seconds(duration))


def positive_duration(msg: Any, field: str) -> str:
    with at(field):
        value = seconds(getattr(msg, field))
        if value <= 0:
            raise Problem("must be greater than 0")
        return format_duration(value)


def at_least(value: int, low: int, field: str, high: int | None = None) -> int:
    """Check a meshd bound (meshd's own model would refuse the value later, less precisely)."""
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise Problem(f"{field}: {value} is not supported (meshd needs {bound})")
    return value


def value_string(value: Value) -> str:
    """A ``Struct`` value as meshd metadata: strings as they are, anything else JSON (``1`` not ``1.0``)."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    return json.dumps(_plain(value), separators=(",", ":"), sort_keys=True)


def _plain(value: Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        n = value.number_value
        return int(n) if n.is_integer() and abs(n) < 2 ** 53 else n
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {k: _plain(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_plain(v) for v in value.list_value.values]
    if kind == "string_value":
        return value.string_value
    return None


def struct_strings(struct: Struct) -> dict[str, str]:
    """A ``Struct`` flattened one level: key → :func:`value_string`."""
    return {key: value_string(v) for key, v in sorted(struct.fields.items())}


_NAME = re.compile(r"^[A-Za-z0-9_.:\-/@$|]+$")


def check_name(value: str, field: str) -> str:
    """A name meshd's config will hold as a ``configkit.Name`` (whose letters, digits and ``_ . : - / @ $``
    are extended here by Istio's ``|``, see the report on configkit); a Problem naming ``field`` otherwise."""
    if not value:
        raise Problem(f"{field}: must not be empty")
    if not _NAME.match(value):
        raise Problem(f"{field}: {value!r} is not a valid name (letters, digits, _ . : - / @ $ |)")
    return value


def check_ads(source: Any) -> None:
    """A ConfigSource must be ``ads {}`` or ``self {}`` (gRPC's rule; meshd speaks ADS only)."""
    which = source.WhichOneof("config_source_specifier")
    if which not in ("ads", "self"):
        raise Problem(f"config source {which or 'unset'} is not supported (only ads or self)")


def refuse(msg: Any, fields: tuple[str, ...]) -> None:
    """A Problem naming the first of ``fields`` that ``msg`` sets (fields this proto version lacks are skipped)."""
    by_name = msg.DESCRIPTOR.fields_by_name
    for name in fields:
        fd = by_name.get(name)
        if fd is None:
            continue
        if fd.is_repeated:
            is_set = len(getattr(msg, name)) > 0
        elif fd.message_type is not None:
            is_set = msg.HasField(name)
        else:
            is_set = getattr(msg, name) != fd.default_value
        if is_set:
            raise Problem(f"{name}: is not supported")


def freeze(value: Any) -> Any:
    """dicts → read-only mappings, lists → tuples, all the way down (decoded values are frozen)."""
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value
