"""Invariants checked with hypothesis: windows, flow limits, spacing, breakers, rule-document fuzzing."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance import BlockError, ManualClock, RuleError, Sentinel, State, StaticSystemMetrics
from governance.stat.window import PASS, LeapArray

from gov_helpers import T0

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
steps = st.lists(st.tuples(st.integers(0, 1500), st.integers(1, 5)), max_size=150)


def fresh() -> tuple[Sentinel, ManualClock]:
    clock = ManualClock(now_ms=T0)
    return Sentinel(clock=clock, system_metrics=StaticSystemMetrics()), clock


@SETTINGS
@given(steps, st.sampled_from([(2, 1000), (4, 2000), (20, 10000), (1, 500), (10, 5000)]))
def test_view_sums_equal_an_oracle_and_memory_is_fixed(history_steps, view):
    _, span = view
    array = LeapArray(20, 10_000)
    now, history, added = T0, [], 0
    for gap, count in history_steps:
        now += gap
        array.add(now, PASS, count)
        added += count
        history.append((now - now % 500, count))
        current = now - now % 500
        expected = sum(c for start, c in history if current - span + 500 <= start <= current)
        assert array.view_sum(PASS, now, span) == expected <= added
        assert array.sum_last_two(PASS, now) == array.view_sum(PASS, now, 1000)
        assert len(array.starts) == len(array.buckets) == 20


@SETTINGS
@given(st.integers(0, 20), st.lists(st.tuples(st.integers(0, 700), st.integers(1, 4)), max_size=120))
def test_direct_reject_blocks_exactly_when_the_window_would_overflow(threshold, arrivals):
    engine, clock = fresh()
    engine.load_rules("flow", [{"resource": "r", "threshold": threshold}])
    node = engine.stat_node("r")
    for gap, batch in arrivals:
        clock.advance(gap)
        before = node.array.view_sum(PASS, clock.now_ms(), 1000)
        try:
            engine.entry("r", batch=batch).exit()
        except BlockError:
            assert before + batch > threshold
        else:
            assert before + batch <= threshold
        assert node.array.view_sum(PASS, clock.now_ms(), 1000) <= threshold


@SETTINGS
@given(st.integers(1, 50), st.integers(0, 1000), st.lists(st.integers(0, 300), max_size=80))
def test_throttled_sends_are_spaced_and_never_queue_too_long(qps, max_queue, gaps):
    engine, clock = fresh()
    engine.load_rules("flow", [{"resource": "r", "threshold": qps, "controlBehavior": 1,
                                "maxQueueingTimeMs": max_queue}])
    interval_ns = -(-10**9 // qps)
    previous = None
    for gap in gaps:
        clock.advance(gap)
        try:
            entry = engine.entry("r")
        except BlockError:
            continue
        assert entry.wait_ms <= max_queue
        send = clock.now_ns() + round(entry.wait_ms * 1_000_000)
        if previous is not None:
            assert send - previous >= interval_ns - 1
        previous = send
        entry.exit()


@SETTINGS
@given(st.sampled_from(["go", "java"]), st.lists(st.tuples(st.integers(0, 800), st.booleans()), max_size=100))
def test_breaker_transitions_form_a_chain_and_open_blocks_until_retry(dialect, outcomes):
    engine, clock = fresh()
    if dialect == "go":
        rule = {"resource": "r", "strategy": 1, "retryTimeoutMs": 1000, "minRequestAmount": 3,
                "statIntervalMs": 1000, "threshold": 0.5, "probeNum": 2}
    else:
        rule = {"resource": "r", "grade": 1, "count": 0.5, "timeWindow": 1, "minRequestAmount": 3}
    engine.load_rules("circuit_breaker", [rule], dialect=dialect)
    events: list = []
    engine.on_state_change(lambda res, old, new, rule, snap: events.append((old, new)))
    breaker = engine.plan("r").breakers[0]
    for gap, failed in outcomes:
        clock.advance(gap)
        state, next_retry = breaker.state, breaker.next_retry
        try:
            entry = engine.entry("r")
        except BlockError:
            assert state is not State.CLOSED
            continue
        assert state is State.CLOSED or clock.now_ms() >= next_retry or state is State.HALF_OPEN
        entry.exit(error=RuntimeError() if failed else None)
    for (_, new), (old, _) in zip(events, events[1:]):
        assert new == old
    assert all(old != new for old, new in events)


KEYS = ["resource", "threshold", "count", "grade", "strategy", "controlBehavior", "tokenCalculateStrategy",
        "statIntervalInMs", "statIntervalMs", "retryTimeoutMs", "timeWindow", "minRequestAmount", "maxAllowedRtMs",
        "slowRatioThreshold", "probeNum", "metricType", "triggerCount", "paramIndex", "paramIdx", "paramKey",
        "durationInSec", "burstCount", "maxQueueingTimeMs", "warmUpPeriodSec", "warmUpColdFactor", "limitApp",
        "refResource", "relationStrategy", "regex", "specificItems", "paramFlowItemList", "qps", "maxThread",
        "highestCpuUsage", "statSlidingWindowBucketCount", "clusterMode", "clusterConfig"]
scalars = (st.none() | st.booleans() | st.integers(-3, 3000) | st.floats(-2, 2000, allow_nan=False)
           | st.sampled_from(["r", "", "svc:.*", "[", "default", "other", "app"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["valKind", "valStr", "threshold", "object", "count", "classType", "flowId"]), inner, max_size=3),
    max_leaves=6)
rule_objects = st.dictionaries(st.sampled_from(KEYS), values, max_size=8).map(lambda d: {"resource": "r", **d})
documents = st.lists(rule_objects | scalars, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["flow", "circuit_breaker", "isolation", "hotspot", "system"]),
       st.sampled_from(["go", "java"]), documents, st.lists(st.tuples(st.integers(0, 600), scalars), max_size=10))
def test_any_document_validates_without_crashing_and_valid_rules_round_trip(kind, dialect, document, traffic):
    engine, clock = fresh()
    result = engine.validate_rules(kind, document, dialect)
    assert all(isinstance(message, str) and message for message in result.errors)
    engine.load_rules(kind, document, dialect)              # invalid rules are skipped, never raise
    assert engine.load_rules(kind, [r.to_json() for r in result.rules], dialect, strict=True) is False
    for gap, arg in traffic:                                 # whatever loaded, the engine keeps serving
        clock.advance(gap)
        try:
            engine.entry_many(("r", "x"), origin="app", args=(arg,), inbound=True).exit()
        except BlockError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40) | st.text(max_size=40))
def test_garbage_documents_raise_rule_errors_only(raw):
    engine, _ = fresh()
    try:
        json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        engine.load_rules("flow", raw)
    except RuleError as exc:
        assert exc.messages
    assert isinstance(engine.validate_rules("flow", raw).errors, tuple)
