"""Scalar types of the configuration: durations, byte sizes, addresses, names, regular expressions.

Each type validates strictly and raises an error whose message contains the bad value, so that the
formatter in :mod:`meshd.config` can print ``listeners[1].address: '127.0.0.1:99999' is not a valid port``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h)\s*$")
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """``"250ms"`` → 0.25 (seconds). Numbers are refused: a bare number hides its unit."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise PydanticCustomError("duration", "{value} is not a duration: write it with a unit, e.g. '250ms' or '2s'",
                                  {"value": repr(value)})
    if not isinstance(value, str) or not (m := _DURATION.match(value)):
        raise PydanticCustomError("duration", "{value} is not a duration like '250ms', '1s', '2m'", {"value": repr(value)})
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1 and (seconds * 1000) == int(seconds * 1000):
        return f"{int(seconds * 1000)}ms"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000, 3):g}ms"


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "KB": 1000, "MB": 1000 ** 2,
               "GB": 1000 ** 3}


def parse_size(value: Any) -> int:
    """``"8MiB"`` → 8388608; a plain integer is bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (m := _SIZE.match(value)):
        return int(m.group(1)) * _SIZE_UNITS[m.group(2)]
    raise PydanticCustomError("size", "{value} is not a size like '8MiB', '64KiB' or a number of bytes",
                              {"value": repr(value)})


ByteSize = Annotated[int, BeforeValidator(parse_size)]


def _check_address(value: Any, allow_zero: bool) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("address", "{value} is not an address 'host:port'", {"value": repr(value)})
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise PydanticCustomError("address", "{value} is not an address 'host:port'", {"value": repr(value)})
    low = 0 if allow_zero else 1
    if not port.isdigit() or not low <= int(port) <= 65535:
        raise PydanticCustomError("address", "{value} is not a valid port", {"value": repr(value)})
    return value


ListenAddress = Annotated[str, BeforeValidator(lambda v: _check_address(v, allow_zero=True))]
"""An address to bind; port 0 asks the kernel for a free port (the bound port is logged and shown in /listeners)."""

EndpointAddress = Annotated[str, BeforeValidator(lambda v: _check_address(v, allow_zero=False))]


def split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (of an address, brackets allowed) is this machine only: 127.0.0.0/8, ::1 (also as
    ::ffff:127.x) or ``localhost``. Any other name is not: it may resolve to an address others reach."""
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError("regex", "{value} is not a valid regular expression: {reason}",
                                  {"value": repr(value), "reason": str(exc)}) from None
    return value


Regex = Annotated[str, BeforeValidator(lambda v: check_regex(v) if isinstance(v, str) else v)]

_NAME = re.compile(r"^[A-Za-z0-9_.:\-/@$|]+$")


def check_name(value: Any) -> Any:
    if isinstance(value, str) and not _NAME.match(value):
        raise PydanticCustomError("name", "{value} is not a valid name (letters, digits, _ . : - / @ $ |)",
                                  {"value": repr(value)})
    return value


Name = Annotated[str, BeforeValidator(check_name)]
