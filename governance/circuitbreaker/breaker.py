"""The circuit-breaker state machine (G ``circuit_breaker.go``; J ``AbstractCircuitBreaker``,
``ResponseTimeCircuitBreaker``, ``ExceptionCircuitBreaker``).

::

    Closed --(threshold reached)--> Open --(retry timeout elapsed, a request probes)--> HalfOpen
      ^                                ^                                                   |
      +------(probe(s) succeed)--------+----------(probe fails / probe blocked later)------+

* ``try_pass``: Closed passes. Open passes only once ``now >= next_retry``: that request moves the
  breaker to HalfOpen and is the probe. HalfOpen passes every request when ``probeNum > 0`` (G) and
  blocks otherwise (G with probeNum 0, and always J: a single probe).
* ``on_complete`` (passed requests only): record into the window; Open ignores it; HalfOpen opens again
  on a failure (slow or error; snapshot 1.0, ``next_retry`` moved) and closes on success (G after
  ``probeNum`` consecutive successes, resetting all buckets; J at once, resetting the current bucket);
  Closed trips when ``total >= minRequestAmount`` and the ratio/count reaches the threshold
  (G ``>=``, J ``>``; J slow ratio 1.0 also trips on equality).
* ``rollback_probe``: the probe was blocked by a later check -> back to Open (snapshot 1.0) *without*
  moving ``next_retry``, so the next request may probe at once.

The window is a LeapArray of ``[total, bad]`` buckets, one bucket of ``statIntervalMs`` by default: a
tumbling window aligned to ``now - now % statIntervalMs``.
"""

from __future__ import annotations

from typing import Any, Callable

from governance.base import State
from governance.circuitbreaker.rule import ERROR_COUNT, SLOW_REQUEST_RATIO, CircuitBreakerRule
from governance.stat.window import LeapArray

CLOSED, HALF_OPEN, OPEN = State.CLOSED, State.HALF_OPEN, State.OPEN
TOTAL, BAD = 0, 1

Notify = Callable[["CircuitBreaker", State, State, Any], None]


def _counter() -> list[int]:
    return [0, 0]


def new_breaker_window(rule: CircuitBreakerRule) -> LeapArray:
    return LeapArray(rule.effective_bucket_count, rule.stat_interval_ms, _counter)


class CircuitBreaker:
    """One breaker for one (rule, resource). ``notify(breaker, old, new, snapshot)`` reports transitions."""

    __slots__ = ("rule", "resource", "slow", "java", "retry_ms", "probe_num", "min_request", "threshold",
                 "trip_at", "count_mode", "count_threshold", "max_rt", "window", "single", "state", "next_retry",
                 "cur_probe", "notify")

    def __init__(self, rule: CircuitBreakerRule, resource: str, window: LeapArray | None, notify: Notify) -> None:
        self.rule = rule
        self.resource = resource
        self.slow = rule.strategy == SLOW_REQUEST_RATIO
        self.java = rule.dialect == "java"
        self.retry_ms = rule.retry_timeout_ms
        self.probe_num = 0 if self.java else rule.probe_num
        self.min_request = rule.min_request_amount
        self.threshold = rule.threshold
        self.trip_at = rule.threshold - 1e-8
        self.count_mode = rule.strategy == ERROR_COUNT
        # G compares the error count with uint64(threshold); J with the double itself
        self.count_threshold = rule.threshold if self.java else int(rule.threshold)
        self.max_rt = rule.max_allowed_rt_ms
        self.window = window if window is not None else new_breaker_window(rule)
        self.single = self.window.sample_count == 1
        self.state = CLOSED
        self.next_retry = 0
        self.cur_probe = 0
        self.notify = notify

    # ---- entry side ---------------------------------------------------------------------------------
    def try_pass(self, now: int) -> int:
        """1: pass; 2: pass as the probe that moved Open -> HalfOpen; 0: blocked."""
        state = self.state
        if state is CLOSED:
            return 1
        if state is OPEN:
            if now >= self.next_retry:
                self.state = HALF_OPEN
                self.notify(self, OPEN, HALF_OPEN, None)
                return 2
            return 0
        return 1 if self.probe_num > 0 else 0

    def rollback_probe(self) -> None:
        """The probe was blocked after passing this breaker: back to Open, ``next_retry`` unchanged."""
        if self.state is HALF_OPEN:
            self.state = OPEN
            self.notify(self, HALF_OPEN, OPEN, 1.0)

    # ---- exit side ----------------------------------------------------------------------------------
    def on_complete(self, now: int, rt: int, error: bool) -> None:
        bad = rt > self.max_rt if self.slow else error
        window = self.window
        bucket = window.cur if window.cur_start <= now < window.cur_end else window.current(now)
        if bucket is None:  # the clock went back past the window: G drops the sample and returns
            return
        bucket[TOTAL] += 1
        if bad:
            bucket[BAD] += 1
        state = self.state
        if state is not CLOSED:
            if state is HALF_OPEN:
                self._probe_done(now, bad)
            return
        if self.single:
            total = bucket[TOTAL]
            bad_count = bucket[BAD]
        else:
            total, bad_count = self._window_sums(now)
        if total >= self.min_request:
            self._evaluate(now, total, bad_count)

    def _window_sums(self, now: int) -> tuple[int, int]:
        """(requests, bad requests) over the breaker's whole window."""
        total = bad_count = 0
        for counter in self.window.values(now):
            total += counter[TOTAL]
            bad_count += counter[BAD]
        return total, bad_count

    def _evaluate(self, now: int, total: int, bad_count: int) -> None:
        """Closed, with ``total`` requests (at least ``min_request``), ``bad_count`` of them bad: trip or not."""
        if self.count_mode:
            if (bad_count > self.count_threshold) if self.java else (bad_count >= self.count_threshold):
                self._to_open(now, CLOSED, bad_count)
            return
        ratio = bad_count / total
        threshold = self.threshold
        if self.java:
            if ratio > threshold or (self.slow and ratio == threshold == 1.0):
                self._to_open(now, CLOSED, ratio)
        elif ratio > self.trip_at:  # G: ratio > threshold || Float64Equals(ratio, threshold) (precision 1e-8)
            self._to_open(now, CLOSED, ratio)

    def on_successes(self, now: int, rt: int, k: int) -> None:
        """``k`` successful completions at ``now``, each of ``rt`` ms: what ``k`` calls of :meth:`on_complete`
        leave. Closed, the rule is first evaluated at the completion that reaches ``min_request``, where the
        ratio is highest (each later success lowers it); it trips there or not at all."""
        if self.state is not CLOSED or (self.slow and rt > self.max_rt):
            for _ in range(k):
                self.on_complete(now, rt, False)
            return
        window = self.window
        bucket = window.cur if window.cur_start <= now < window.cur_end else window.current(now)
        if bucket is None:
            return
        if self.single:
            total = bucket[TOTAL]
            bad_count = bucket[BAD]
        else:
            total, bad_count = self._window_sums(now)
        bucket[TOTAL] += k
        first = self.min_request - total if self.min_request - total > 1 else 1
        if first <= k:
            self._evaluate(now, total + first, bad_count)

    def _probe_done(self, now: int, bad: bool) -> None:
        if bad:
            self._to_open(now, HALF_OPEN, 1.0)
            return
        if self.java:
            self.state = CLOSED
            bucket = self.window.current(now)  # J resets the current bucket only
            if bucket is not None:
                bucket[TOTAL] = bucket[BAD] = 0
            self.notify(self, HALF_OPEN, CLOSED, None)
            return
        self.cur_probe += 1
        if self.probe_num == 0 or self.cur_probe >= self.probe_num:
            self.state = CLOSED
            self.cur_probe = 0
            self.notify(self, HALF_OPEN, CLOSED, None)
            self.window.reset_values()

    def _to_open(self, now: int, previous: State, snapshot: Any) -> None:
        self.state = OPEN
        self.next_retry = now + self.retry_ms
        if previous is HALF_OPEN:
            self.cur_probe = 0
        self.notify(self, previous, OPEN, snapshot)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.resource!r}, state={self.state.label}, next_retry={self.next_retry})"
