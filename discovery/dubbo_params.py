"""Dubbo URL parameters, registry-neutral (pure): weights, warm-up, enabled, and the provider/consumer
parameter sets the Dubbo SDK registers. Shared by the ZooKeeper layouts (URL parameters of a znode name) and
the Nacos source (Dubbo's ``NacosRegistry`` copies every URL parameter into the instance metadata).

Warm-up (``dubbo-cluster/.../loadbalance/AbstractLoadBalance.java``, ``getWeight`` / ``calculateWarmupWeight``),
for a provider with ``timestamp`` (ms since the epoch, the provider's start)::

    uptime = now - timestamp
    uptime < 0                 -> weight 1                       (clock skew: the provider looks "from the future")
    0 < uptime < warmup        -> ww = (int)(uptime / ((float) warmup / weight)), clamped to [1, weight]
    otherwise                  -> weight

Java evaluates the division in 32-bit floats; :func:`dubbo_warmup_weight` reproduces that bit for bit.
``dubbo_weight`` returns ``(weight, warming)``; ``warming`` says the value changes with time.

:func:`dubbo_params` renders the parameters Dubbo's ``ServiceConfig`` / ``ReferenceConfig`` put on a provider /
consumer URL (what :mod:`discovery.zookeeper.registration` sorts into ``URL.toFullString`` and the Nacos
registration copies into metadata). Caller ``parameters`` win over every default.
"""

from __future__ import annotations

import math
import struct
from typing import Mapping

from discovery.model import parse_int
from discovery.registration import ServiceInfo

#: Dubbo's ``DEFAULT_WARMUP`` (ms): what a Dubbo consumer assumes when a provider sets no ``warmup``.
DUBBO_DEFAULT_WARMUP_MS = 10 * 60 * 1000
DUBBO_PROTOCOL_VERSION = "2.0.2"   # the `dubbo` parameter: the Dubbo2 wire-protocol version
DUBBO_RELEASE = "2.7.23"           # the `release` parameter: the Dubbo SDK release meshd speaks for
DEFAULT_WEIGHT = 100


def f32(value: float) -> float:
    """Round to the nearest IEEE-754 single-precision value (Java ``float``); beyond its range, infinity."""
    try:
        value = float(value)
    except OverflowError:       # an int past the double range (a weight of hundreds of digits)
        value = math.inf if value > 0 else -math.inf
    return struct.unpack("f", struct.pack("f", value))[0]


def _java_int(value: float) -> int:
    """Java's ``(int)`` of a float: NaN is 0, beyond the int range the nearest end (Python's ``int`` raises).
    Only weights and warm-ups past Java's int range (which meshd reads as Python ints) get there."""
    if value != value:
        return 0
    if value >= (1 << 31) - 1:
        return (1 << 31) - 1
    if value <= -(1 << 31):
        return -(1 << 31)
    return int(value)


def dubbo_warmup_weight(uptime_ms: int, warmup_ms: int, weight: int) -> int:
    """Dubbo's ``calculateWarmupWeight(int uptime, int warmup, int weight)`` with Java float semantics."""
    # (float) warmup / weight: both float32, quotient rounded to float32 (double rounding is exact here);
    # uptime / <float>: uptime converted to float32, quotient rounded to float32, then (int) truncates.
    step = f32(f32(warmup_ms) / f32(weight))
    ww = _java_int(f32(f32(uptime_ms) / step)) if step else weight
    return 1 if ww < 1 else min(ww, weight)


def dubbo_weight(weight: int, timestamp_ms: int, warmup_ms: int | None, now_ms: int) -> tuple[int, bool]:
    """The effective weight of a Dubbo provider at ``now_ms`` (``warmup_ms`` None: no warm-up)."""
    if weight <= 0:
        return max(weight, 0), False
    if timestamp_ms <= 0 or not warmup_ms or warmup_ms <= 0:
        return weight, False
    uptime = now_ms - timestamp_ms
    if uptime < 0:
        return 1, True
    if 0 < uptime < warmup_ms:
        return dubbo_warmup_weight(uptime, warmup_ms, weight), True
    return weight, uptime < warmup_ms  # uptime == 0: Dubbo gives the full weight, but it is still warming


def param(params: Mapping[str, str], key: str) -> str:
    """Dubbo's ``getParameter``: an empty value falls back to ``default.<key>`` (2.6 URLs)."""
    return params.get(key) or params.get(f"default.{key}") or ""


def int_param(params: Mapping[str, str], key: str, default: int) -> int:
    """An integer parameter; anything that is not an integer falls back to ``default``."""
    value = parse_int(param(params, key).strip())
    return default if value is None else value


def enabled(params: Mapping[str, str]) -> bool:
    """Dubbo ``RegistryDirectory``: ``disabled`` when present decides, else ``enabled`` (default true)."""
    if "disabled" in params:
        return params["disabled"].strip().lower() != "true"
    value = params.get("enabled", "").strip().lower()
    return value in ("", "true")


def _common(info: ServiceInfo, side: str, pid: int, timestamp_ms: int) -> dict[str, str]:
    params = {
        "application": info.application, "dubbo": DUBBO_PROTOCOL_VERSION, "interface": info.interface,
        "methods": ",".join(dict.fromkeys(info.methods)) or "*", "pid": str(pid), "release": DUBBO_RELEASE,
        "side": side, "timestamp": str(timestamp_ms), "version": info.version, "revision": info.version,
        "group": info.group, "serialization": info.serialization,
    }
    return {k: v for k, v in params.items() if v}


def dubbo_params(side: str, info: ServiceInfo, *, pid: int, timestamp_ms: int) -> dict[str, str]:
    """The URL parameters Dubbo registers for a ``side="provider"`` or ``"consumer"`` of ``info``."""
    if side == "provider":
        params = {"anyhost": "true", "deprecated": "false", "dynamic": "true", "generic": "false",
                  **_common(info, "provider", pid, timestamp_ms)}
        if info.weight is not None:
            params["weight"] = str(info.weight)
    elif side == "consumer":
        params = {"category": "consumers", "check": "false", "sticky": "false",
                  **_common(info, "consumer", pid, timestamp_ms)}
    else:
        raise ValueError(f"side {side!r} is not 'provider' or 'consumer'")
    params.update(info.parameters)
    return params
