"""Warm-up weights: a freshly started provider gets a reduced weight that grows until it is warm (pure).

Dubbo (``dubbo-cluster/.../loadbalance/AbstractLoadBalance.java``, ``getWeight`` and
``calculateWarmupWeight``), for a provider URL with ``timestamp`` (ms since the epoch, the provider's start):

    uptime = now - timestamp
    uptime < 0                 -> weight 1                       (clock skew: the provider looks "from the future")
    0 < uptime < warmup        -> ww = (int)(uptime / ((float) warmup / weight)), clamped to [1, weight]
    otherwise                  -> weight

Java evaluates the division in 32-bit floats; :func:`dubbo_warmup_weight` reproduces that bit for bit so that
meshd and a Dubbo consumer compute the same weights. Dubbo applies a default ``warmup`` of 10 minutes to every
provider with a timestamp; meshd does so only when configured (``default_warmup_ms``), see the source.

SOFARPC (``RegistryUtils.processWarmUpWeight``): with ``warmupTime``, ``warmupWeight`` and ``startTime`` the
provider has the flat ``warmupWeight`` until ``startTime + warmupTime``, then its weight.

Every function returns ``(weight, warming)``; ``warming`` says the value will change with time, so the caller
re-evaluates it periodically.
"""

from __future__ import annotations

import struct

#: Dubbo's ``DEFAULT_WARMUP`` (ms): what a Dubbo consumer assumes when a provider sets no ``warmup``.
DUBBO_DEFAULT_WARMUP_MS = 10 * 60 * 1000


def f32(value: float) -> float:
    """Round to the nearest IEEE-754 single-precision value (Java ``float``)."""
    return struct.unpack("f", struct.pack("f", value))[0]


def dubbo_warmup_weight(uptime_ms: int, warmup_ms: int, weight: int) -> int:
    """Dubbo's ``calculateWarmupWeight(int uptime, int warmup, int weight)`` with Java float semantics."""
    # (float) warmup / weight: both float32, quotient rounded to float32 (double rounding is exact here);
    # uptime / <float>: uptime converted to float32, quotient rounded to float32, then (int) truncates.
    step = f32(f32(warmup_ms) / f32(weight))
    ww = int(f32(f32(uptime_ms) / step)) if step else weight
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


def sofa_weight(weight: int, start_ms: int, warmup_time_ms: int, warmup_weight: int, now_ms: int) -> tuple[int, bool]:
    """The effective weight of a SOFARPC provider: ``warmup_weight`` until ``start + warmup_time``."""
    if warmup_time_ms > 0 and start_ms > 0 and now_ms < start_ms + warmup_time_ms:
        return max(warmup_weight, 0), True
    return max(weight, 0), False
