"""Circuit-breaker rules in both dialects (G ``circuitbreaker.Rule``, J ``DegradeRule``).

Go: ``strategy`` (0 SlowRequestRatio, 1 ErrorRatio, 2 ErrorCount), ``retryTimeoutMs``,
``minRequestAmount``, ``statIntervalMs``, ``statSlidingWindowBucketCount``, ``maxAllowedRtMs`` (slow iff
``rt > maxAllowedRtMs``), ``threshold`` (ratio or count), ``probeNum``.

Java: ``grade`` (0 slow-RT ratio, 1 exception ratio, 2 exception count), ``count`` (max RT for grade 0,
rounded with ``Math.round``; the ratio or count otherwise), ``timeWindow`` (seconds), ``minRequestAmount``
(default 5), ``slowRatioThreshold`` (default 1.0), ``statIntervalMs`` (default 1000). ``limitApp`` is
kept but, as in Sentinel, degrade rules apply to every caller.

The dialect stays on the rule: the breaker uses it for the trip comparison (G ``>=``; J ``>``, except a
slow-ratio rule with threshold 1.0 that also trips on equality) and for half-open probing (G ``probeNum``;
J a single probe).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from governance.rules import UINT32_MAX, UINT64_MAX, RuleReader, Validation, float_equals, java_round, parse_items

log = logging.getLogger("governance.circuitbreaker")

SLOW_REQUEST_RATIO, ERROR_RATIO, ERROR_COUNT = 0, 1, 2
_STRATEGIES = {"SlowRequestRatio": SLOW_REQUEST_RATIO, "ErrorRatio": ERROR_RATIO, "ErrorCount": ERROR_COUNT}
STRATEGY_NAMES = {v: k for k, v in _STRATEGIES.items()}


@dataclass(frozen=True)
class CircuitBreakerRule:
    resource: str
    dialect: str = "go"
    id: str | int | None = None
    regex: bool = False
    strategy: int = SLOW_REQUEST_RATIO
    retry_timeout_ms: int = 0
    min_request_amount: int = 0
    stat_interval_ms: int = 0
    bucket_count: int = 0
    max_allowed_rt_ms: int = 0
    threshold: float = 0.0
    probe_num: int = 0
    # Java-only originals (for round-trips)
    limit_app: str = "default"
    count: float = 0.0
    time_window_sec: int = 0

    @property
    def effective_bucket_count(self) -> int:
        """G ``getRuleStatSlidingWindowBucketCount``: 0 or a non-divisor falls back to one bucket."""
        count = self.bucket_count
        if count == 0 or self.stat_interval_ms % count != 0:
            return 1
        return count

    def same_as(self, other: CircuitBreakerRule) -> bool:
        """G ``isEqualsTo`` plus ``probeNum`` (a changed probe count must take effect) and the dialect."""
        if not (self.dialect == other.dialect and self.resource == other.resource and self.regex == other.regex
                and self.strategy == other.strategy and self.retry_timeout_ms == other.retry_timeout_ms
                and self.min_request_amount == other.min_request_amount
                and self.stat_interval_ms == other.stat_interval_ms and self.bucket_count == other.bucket_count
                and self.probe_num == other.probe_num and self.limit_app == other.limit_app):
            return False
        if self.strategy == SLOW_REQUEST_RATIO and self.max_allowed_rt_ms != other.max_allowed_rt_ms:
            return False
        return float_equals(self.threshold, other.threshold)

    def stat_reusable(self, other: CircuitBreakerRule) -> bool:
        """G only (J builds a fresh breaker unless the rule is equal)."""
        return (self.dialect == other.dialect == "go" and self.resource == other.resource
                and self.strategy == other.strategy and self.stat_interval_ms == other.stat_interval_ms
                and self.bucket_count == other.bucket_count)

    @property
    def retry_ms(self) -> int:
        return self.retry_timeout_ms

    def to_json(self) -> dict:
        if self.dialect == "java":
            out: dict = {"id": self.id} if self.id is not None else {}
            out.update({
                "resource": self.resource, "limitApp": self.limit_app, "grade": self.strategy, "count": self.count,
                "timeWindow": self.time_window_sec, "minRequestAmount": self.min_request_amount,
                "slowRatioThreshold": self.threshold if self.strategy == SLOW_REQUEST_RATIO else 1.0,
                "statIntervalMs": self.stat_interval_ms,
            })
            return out
        out = {"id": self.id} if self.id not in (None, "") else {}
        out.update({
            "resource": self.resource, "strategy": self.strategy, "retryTimeoutMs": self.retry_timeout_ms,
            "minRequestAmount": self.min_request_amount, "statIntervalMs": self.stat_interval_ms,
            "statSlidingWindowBucketCount": self.bucket_count, "maxAllowedRtMs": self.max_allowed_rt_ms,
            "threshold": self.threshold, "probeNum": self.probe_num,
        })
        if self.regex:
            out["regex"] = True
        return out

    def describe(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))


def parse_breaker_rules(items: list, dialect: str) -> Validation:
    return parse_items("circuit_breaker", items, _decode_java if dialect == "java" else _decode_go)


def _decode_go(r: RuleReader) -> CircuitBreakerRule:
    rule = CircuitBreakerRule(
        resource=r.string("resource"), dialect="go", id=r.string("id") or None, regex=r.boolean("regex"),
        strategy=r.enum("strategy", SLOW_REQUEST_RATIO, _STRATEGIES),
        retry_timeout_ms=r.integer("retryTimeoutMs", 0, 0, UINT32_MAX),
        min_request_amount=r.integer("minRequestAmount", 0, 0, UINT64_MAX),
        stat_interval_ms=r.integer("statIntervalMs", 0, 0, UINT32_MAX),
        bucket_count=r.integer("statSlidingWindowBucketCount", 0, 0, UINT32_MAX),
        max_allowed_rt_ms=r.integer("maxAllowedRtMs", 0, 0, UINT64_MAX),
        threshold=r.number("threshold"), probe_num=r.integer("probeNum", 0, 0, UINT64_MAX),
    )
    if not rule.resource:
        r.fail("resource", "must be a non-empty string")
    if rule.strategy not in STRATEGY_NAMES:
        r.fail("strategy", f"unsupported value {rule.strategy} (0 SlowRequestRatio, 1 ErrorRatio, 2 ErrorCount)")
    if rule.stat_interval_ms <= 0:
        r.fail("statIntervalMs", "must be > 0")
    if rule.retry_timeout_ms <= 0:
        r.fail("retryTimeoutMs", "must be > 0")
    if rule.threshold < 0:
        r.fail("threshold", f"must be >= 0, got {rule.threshold:g}")
    elif rule.strategy in (SLOW_REQUEST_RATIO, ERROR_RATIO) and rule.threshold > 1.0:
        r.fail("threshold", f"a ratio must be within [0.0, 1.0], got {rule.threshold:g}")
    if rule.bucket_count and rule.stat_interval_ms and rule.stat_interval_ms % rule.bucket_count:
        log.warning("circuit breaker rule %r: statIntervalMs %% statSlidingWindowBucketCount != 0, using 1 bucket",
                    rule.resource)
    if rule.regex:
        r.regex_ok("resource", rule.resource)
    return rule


def _decode_java(r: RuleReader) -> CircuitBreakerRule:
    grade = r.integer("grade", SLOW_REQUEST_RATIO)
    count = r.number("count")
    window = r.integer("timeWindow", 0)
    slow_ratio = r.number("slowRatioThreshold", 1.0)
    rule = CircuitBreakerRule(
        resource=r.string("resource"), dialect="java", id=r.get("id") if r.has("id") else None,
        regex=r.boolean("regex"), strategy=grade, retry_timeout_ms=window * 1000,
        min_request_amount=r.integer("minRequestAmount", 5), stat_interval_ms=r.integer("statIntervalMs", 1000),
        bucket_count=1, max_allowed_rt_ms=java_round(count) if grade == SLOW_REQUEST_RATIO else 0,
        threshold=slow_ratio if grade == SLOW_REQUEST_RATIO else count,
        limit_app=r.string("limitApp", "default").strip() or "default", count=count, time_window_sec=window,
    )
    if not rule.resource.strip():
        r.fail("resource", "must be a non-empty string")
    if count < 0:
        r.fail("count", f"must be >= 0, got {count:g}")
    if window <= 0:
        r.fail("timeWindow", f"must be > 0 (seconds), got {window}")
    if rule.min_request_amount <= 0:
        r.fail("minRequestAmount", f"must be > 0, got {rule.min_request_amount}")
    if rule.stat_interval_ms <= 0:
        r.fail("statIntervalMs", f"must be > 0, got {rule.stat_interval_ms}")
    if grade not in STRATEGY_NAMES:
        r.fail("grade", f"must be 0 (slow RT ratio), 1 (exception ratio) or 2 (exception count), got {grade}")
    elif grade == SLOW_REQUEST_RATIO and not 0.0 <= slow_ratio <= 1.0:
        r.fail("slowRatioThreshold", f"must be within [0.0, 1.0], got {slow_ratio:g}")
    elif grade == ERROR_RATIO and count > 1:
        r.fail("count", f"an exception ratio must be <= 1, got {count:g}")
    if rule.regex:
        r.regex_ok("resource", rule.resource)
    return rule
