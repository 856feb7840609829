"""Helpers shared by the codec unit tests: captured traffic, the python-hessian oracle, value normalising."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

from integration.peers import read_tap_log
from meshd.codec.base import NEED_DATA
from meshd.codec.hessian2.values import JavaObject

CAPTURES = Path(__file__).resolve().parents[2] / "fixtures" / "captures"


def capture_streams(name: str) -> dict[tuple[int, str], bytes]:
    """``{(connection, "C>S"|"S>C"): joined bytes}`` of a tap log in tests/fixtures/captures."""
    out: dict[tuple[int, str], bytes] = {}
    for conn, tag, data in read_tap_log(CAPTURES / name):
        out[(conn, tag)] = out.get((conn, tag), b"") + data
    return out


def drain(decoder: Any) -> list[Any]:
    """Every event the decoder can produce from what it buffered."""
    events = []
    while (ev := decoder.next_event()) is not NEED_DATA:
        events.append(ev)
    return events


def feed_all(decoder: Any, data: bytes, chunk: int | None = None) -> list[Any]:
    """Feed ``data`` (optionally in chunks of ``chunk`` bytes) and collect the events."""
    if chunk is None:
        decoder.receive_data(data)
        return drain(decoder)
    events = []
    for i in range(0, len(data), chunk):
        decoder.receive_data(data[i:i + chunk])
        events.extend(drain(decoder))
    return events


def pyhessian_values(body: bytes) -> list[Any]:
    """python-hessian's ParserV2 (final grammar) over a whole body (docs/testing.md, "Peers")."""
    from pyhessian.parser import Parser
    p = Parser()
    p.version = 2
    p._stream = io.BytesIO(body)
    out = []
    while p._stream.tell() < len(body):
        out.append(p.read_object())
    return out


def normalize_pyhessian(value: Any) -> Any:
    """python-hessian values in our shapes: tuples → lists, Binary → bytes, objects → (class, fields)."""
    from pyhessian.protocol import Binary, Object
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, (list, tuple)):
        return [normalize_pyhessian(v) for v in value]
    if isinstance(value, dict):
        return {normalize_pyhessian_key(k): normalize_pyhessian(v) for k, v in value.items()}
    if isinstance(value, Object):
        fields = {k: normalize_pyhessian(getattr(value, k)) for k in value._hessian_field_names}
        return ("object", value._hessian_factory_args[0], fields)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def normalize_pyhessian_key(key: Any) -> Any:
    return tuple(normalize_pyhessian(key)) if isinstance(key, (list, tuple)) else key


def normalize_ours(value: Any) -> Any:
    """Our decoded values in the same comparable shapes."""
    if isinstance(value, JavaObject):
        return ("object", value.class_name, {k: normalize_ours(v) for k, v in value.items()})
    if isinstance(value, list):
        return [normalize_ours(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize_ours(v) for k, v in value.items()}
    return value
