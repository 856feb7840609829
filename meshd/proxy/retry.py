"""Retry decisions: one :class:`RetryState` per request, a plain object over Outcomes (Envoy's model).

``next_delay(result)`` answers whether the attempt that produced ``result`` may be retried and, if so,
after which backoff. It never sleeps and never touches a socket; the proxy loop schedules the retry.

Conditions (``retry_on``), as Envoy's where the names match:

- ``5xx``: HTTP status >= 500, and connect failures, resets and per-try timeouts;
- ``gateway-error``: HTTP 502/503/504, connect failures, resets, per-try timeouts;
- ``reset``, ``reset-before-request`` (reset, nothing of the response received), ``connect-failure``;
- ``timeout``: a per-try timeout fired (meshd's name; Envoy folds it into 5xx);
- ``retriable-4xx`` (409), ``retriable-status-codes`` (``retriable_status_codes``), ``envoy-ratelimited``
  (an upstream 429 ... counted by Outcome OVERLOADED with status 429);
- RPC: ``overloaded`` (Dubbo 100 / Bolt 4 / HTTP 429, 503), ``upstream-error`` (Dubbo 70/80 and
  other error statuses, Bolt error statuses), ``app-error`` (exception results).

Backoff: full jitter, ``uniform(0, min(max, base * 2**(n-1)))`` for retry n (Envoy's
``JitteredExponentialBackOffStrategy``); ``max_interval`` defaults to 10 × ``base_interval``.
"""

from __future__ import annotations

import random

from meshd.codec.outcome import Outcome, Result
from meshd.config import RetryPolicy

IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})

_TRANSPORT = {Outcome.CONNECT_FAILURE, Outcome.RESET, Outcome.TIMEOUT}


class RetryState:
    __slots__ = ("policy", "conditions", "remaining", "attempts", "rng", "http", "_codes")

    def __init__(self, policy: RetryPolicy | None, rng: random.Random, *, http: bool,
                 idempotent: bool = True) -> None:
        self.policy = policy
        self.rng = rng
        self.http = http
        self.attempts = 1
        if policy is None or (http and not idempotent and not policy.retry_non_idempotent):
            self.remaining = 0
            self.conditions: frozenset[str] = frozenset()
        else:
            self.remaining = policy.num_retries
            self.conditions = policy.conditions
        self._codes = policy.status_codes if policy else frozenset()

    @property
    def enabled(self) -> bool:
        return self.remaining > 0

    def retriable(self, result: Result) -> bool:
        c = self.conditions
        if not c:
            return False
        o = result.outcome
        if o in _TRANSPORT:
            if "5xx" in c or "gateway-error" in c:
                return True
            if o is Outcome.CONNECT_FAILURE:
                return "connect-failure" in c or "reset-before-request" in c
            if o is Outcome.RESET:
                return "reset" in c or "reset-before-request" in c
            return "timeout" in c
        status = result.status
        if self.http and status is not None:
            if status >= 500 and "5xx" in c:
                return True
            if status in (502, 503, 504) and "gateway-error" in c:
                return True
            if status == 409 and "retriable-4xx" in c:
                return True
            if status == 429 and "envoy-ratelimited" in c:
                return True
            if status in self._codes and "retriable-status-codes" in c:
                return True
        if o is Outcome.OVERLOADED:
            return "overloaded" in c
        if o is Outcome.UPSTREAM_ERROR:
            return "upstream-error" in c
        if o is Outcome.APP_ERROR:
            return "app-error" in c
        return False

    def next_delay(self, result: Result) -> float | None:
        """Seconds to wait before the next attempt, or None when ``result`` is final. Consumes a retry."""
        if self.remaining <= 0 or not self.retriable(result):
            return None
        self.remaining -= 1
        self.attempts += 1
        backoff = self.policy.retry_back_off  # type: ignore[union-attr]
        base = backoff.base_interval
        cap = backoff.max_interval if backoff.max_interval is not None else 10 * base
        return self.rng.uniform(0.0, min(cap, base * (2 ** (self.attempts - 2))))

    def __repr__(self) -> str:
        return f"<RetryState attempts={self.attempts} remaining={self.remaining} on={sorted(self.conditions)}>"
