"""Circuit-breaker slot (order 5000, last in the chain): the first breaker that refuses blocks.

``check_breakers`` returns the breakers whose Open -> HalfOpen probe this request is, so that the chain
can roll them back if anything after them blocks (another breaker of the resource, or the next resource
of an ``entry_many``). ``complete_breakers`` feeds every breaker of the resource on exit (passed entries
only), with the entry's RT in milliseconds and whether it failed.
"""

from __future__ import annotations

from typing import Sequence

from governance.base import MSG_BREAKER, BlockError
from governance.circuitbreaker.breaker import CircuitBreaker


def check_breakers(breakers: Sequence[CircuitBreaker], resource: str, now: int) -> list[CircuitBreaker] | None:
    probes: list[CircuitBreaker] | None = None
    for breaker in breakers:
        verdict = breaker.try_pass(now)
        if verdict == 1:
            continue
        if verdict == 2:
            if probes is None:
                probes = [breaker]
            else:
                probes.append(breaker)
            continue
        if probes:
            rollback(probes)
        raise BlockError("circuit_breaking", resource, breaker.rule, MSG_BREAKER)
    return probes


def rollback(probes: Sequence[CircuitBreaker]) -> None:
    for breaker in probes:
        breaker.rollback_probe()


def complete_breakers(breakers: Sequence[CircuitBreaker], now: int, rt: int, error: bool) -> None:
    for breaker in breakers:
        breaker.on_complete(now, rt, error)
