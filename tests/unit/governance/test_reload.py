"""Reload semantics (sentinel-golang core/*/rule_manager.go): what survives a rule push."""

from __future__ import annotations

from governance import Sentinel, State

from gov_helpers import T0, count_passes, passes

R = "abc1"


def flow(**fields) -> dict:
    return {"resource": R, "relationStrategy": 0, "tokenCalculateStrategy": 0, "controlBehavior": 0, **fields}


def test_flow_controllers_and_statistics_are_reused(engine: Sentinel):
    # G Test_buildResourceTrafficShapingController_reuse_stat
    r0 = flow(threshold=100, controlBehavior=1, statIntervalInMs=1000)
    r1 = flow(threshold=100, statIntervalInMs=1000)
    r2 = flow(threshold=200, maxQueueingTimeMs=10, statIntervalInMs=2000)
    r3 = flow(threshold=300, maxQueueingTimeMs=10, statIntervalInMs=5000)
    r4 = flow(threshold=400, maxQueueingTimeMs=10, statIntervalInMs=50000)
    engine.load_rules("flow", [r0, r1, r2, r3, r4])
    tc0, tc1, tc2, tc3, tc4 = engine.plan(R).flow
    assert tc0.view is None and tc1.view is engine.nodes[R].default_view
    assert tc2.view.array is tc3.view.array is engine.nodes[R].array and tc4.standalone is not None

    r12 = flow(threshold=300, statIntervalInMs=1000)                        # reuse stat with rule 1
    r22 = flow(threshold=400, maxQueueingTimeMs=10, statIntervalInMs=10000)  # generated from the global array
    r32 = flow(threshold=300, maxQueueingTimeMs=10, statIntervalInMs=5000)   # equal to rule 3
    r42 = flow(threshold=4000, maxQueueingTimeMs=10, statIntervalInMs=50000)  # reuse rule 4's own window
    assert engine.load_rules("flow", [r12, r22, r32, r42]) is True
    new = engine.plan(R).flow
    assert len(new) == 4
    assert new[0] is not tc1 and new[0].view is tc1.view and new[0].rule.threshold == 300
    assert new[1].view is not tc2.view and new[1].view.span_ms == 10000
    assert new[2] is tc3
    assert new[3] is not tc4 and new[3].standalone is tc4.standalone and new[3].rule.threshold == 4000


def test_breakers_are_reused(engine: Sentinel):
    # G Test_onRuleUpdate (circuit breaker rule manager)
    base = {"resource": "abc", "retryTimeoutMs": 1000, "minRequestAmount": 5, "statIntervalMs": 1000}
    r1 = {**base, "strategy": 0, "maxAllowedRtMs": 20, "threshold": 0.1}
    r2 = {**base, "strategy": 1, "threshold": 0.3}
    r3 = {**base, "strategy": 2, "threshold": 10.0}
    engine.load_rules("circuit_breaker", [r1, r2, r3])
    b1, b2, _ = engine.plan("abc").breakers
    r4 = dict(r1)
    r5 = {**base, "strategy": 1, "retryTimeoutMs": 100, "minRequestAmount": 25, "threshold": 0.5}
    r6 = {**base, "strategy": 2, "statIntervalMs": 100, "threshold": 10.0}
    r7 = {**base, "strategy": 2, "statIntervalMs": 1100, "threshold": 10.0}
    engine.load_rules("circuit_breaker", [r4, r5, r6, r7])
    new = engine.plan("abc").breakers
    assert len(new) == 4
    assert new[0] is b1
    assert new[1] is not b2 and new[1].window is b2.window
    assert new[2].rule.stat_interval_ms == 100 and new[3].rule.stat_interval_ms == 1100


def trip(engine: Sentinel, resource: str = R) -> None:
    entry = engine.entry(resource)
    entry.exit(error=RuntimeError("boom"))


BREAKER = {"resource": R, "strategy": 2, "retryTimeoutMs": 5000, "minRequestAmount": 1, "statIntervalMs": 1000,
           "threshold": 1}


def test_identical_rule_keeps_breaker_state(engine: Sentinel):
    engine.load_rules("circuit_breaker", [BREAKER])
    trip(engine)
    breaker = engine.plan(R).breakers[0]
    assert breaker.state is State.OPEN
    other = {**BREAKER, "resource": "other"}
    assert engine.load_rules("circuit_breaker", [other, dict(BREAKER)]) is True
    assert engine.plan(R).breakers[0] is breaker and breaker.state is State.OPEN
    assert breaker.next_retry == T0 + 5000
    assert not passes(engine, R)


def test_compatible_rule_keeps_counters_and_starts_closed(engine: Sentinel):
    engine.load_rules("circuit_breaker", [{**BREAKER, "threshold": 3}])
    trip(engine)
    trip(engine)
    assert engine.load_rules("circuit_breaker", [{**BREAKER, "threshold": 3, "retryTimeoutMs": 100}]) is True
    breaker = engine.plan(R).breakers[0]
    assert breaker.state is State.CLOSED and breaker.window.current(T0)[1] == 2
    trip(engine)                                     # the third error in the kept window trips it
    assert breaker.state is State.OPEN and breaker.next_retry == T0 + 100


def test_java_breaker_starts_fresh_unless_equal(engine: Sentinel):
    rule = {"resource": R, "grade": 2, "count": 2, "timeWindow": 5, "minRequestAmount": 1}
    engine.load_rules("circuit_breaker", [rule], dialect="java")
    trip(engine)
    trip(engine)
    old = engine.plan(R).breakers[0]
    engine.load_rules("circuit_breaker", [{**rule, "timeWindow": 6}], dialect="java")
    new = engine.plan(R).breakers[0]
    assert new is not old and new.window is not old.window   # J getExistingSameCbOrNew: a brand new breaker
    trip(engine)
    assert new.state is State.CLOSED


def test_open_breaker_changed_compatibly_closes(engine: Sentinel):
    engine.load_rules("circuit_breaker", [BREAKER])
    trip(engine)
    engine.load_rules("circuit_breaker", [{**BREAKER, "probeNum": 2}])
    assert engine.plan(R).breakers[0].state is State.CLOSED and passes(engine, R)


def test_flow_counters_survive_a_compatible_change(engine: Sentinel):
    engine.load_rules("flow", [flow(threshold=50, statIntervalInMs=20000)])
    assert count_passes(engine, R, 50) == 50
    engine.load_rules("flow", [flow(threshold=60, statIntervalInMs=20000)])
    assert count_passes(engine, R, 20) == 10


def test_resource_node_is_never_reset(engine: Sentinel):
    engine.load_rules("flow", [flow(threshold=5)])
    assert count_passes(engine, R, 5) == 5
    engine.load_rules("flow", [])
    engine.load_rules("flow", [{"resource": R, "count": 6}], dialect="java")  # a different dialect entirely
    assert count_passes(engine, R, 5) == 1                 # the node still holds 5 passes this second
    assert engine.resource_stats(R).pass_total == 6


def test_warm_up_state_kept_when_equal_reset_when_compatible(engine: Sentinel, clock):
    rule = flow(threshold=100, tokenCalculateStrategy=1, warmUpPeriodSec=10)
    engine.load_rules("flow", [rule])
    for _ in range(12):                                    # warm up fully
        count_passes(engine, R, 200)
        clock.advance(1000)
    assert count_passes(engine, R, 200) == 100
    clock.advance(1000)
    engine.load_rules("flow", [dict(rule), flow(resource="x", threshold=1)])
    assert count_passes(engine, R, 200) == 100             # same controller: still warm
    clock.advance(1000)
    engine.load_rules("flow", [flow(threshold=100, tokenCalculateStrategy=1, warmUpPeriodSec=20)])
    assert count_passes(engine, R, 200) < 40               # new controller on the old window: cold again


def test_throttling_schedule_kept_for_an_equal_rule(engine: Sentinel):
    rule = flow(threshold=10, controlBehavior=1, maxQueueingTimeMs=1000)
    engine.load_rules("flow", [rule])
    assert [engine.entry(R).wait_ms for _ in range(3)] == [0.0, 100.0, 200.0]
    engine.load_rules("flow", [rule, flow(resource="x", threshold=1)])
    assert engine.entry(R).wait_ms == 300.0
    engine.load_rules("flow", [flow(threshold=10, controlBehavior=1, maxQueueingTimeMs=999)])
    assert engine.entry(R).wait_ms == 0.0                  # changed rule: fresh lastPassedTime


def test_hotspot_tokens_kept_for_compatible_rules(engine: Sentinel):
    rule = {"resource": R, "metricType": 1, "threshold": 5, "durationInSec": 1, "paramIndex": 0}
    engine.load_rules("hotspot", [rule])
    assert count_passes(engine, R, 3, args=("v",)) == 3
    ctrl = engine.plan(R).hotspot[0]
    engine.load_rules("hotspot", [dict(rule)])
    assert engine.plan(R).hotspot[0] is ctrl
    engine.load_rules("hotspot", [{**rule, "threshold": 6}])
    new = engine.plan(R).hotspot[0]
    assert new is not ctrl and new.metric is ctrl.metric
    assert count_passes(engine, R, 5, args=("v",)) == 2   # 2 tokens left in the kept bucket


def test_identical_document_is_a_no_op(engine: Sentinel):
    document = '[{"resource": "abc1", "threshold": 3}, {"resource": "b", "threshold": 1}]'
    assert engine.load_rules("flow", document) is True
    plan = engine.plan(R)
    assert engine.load_rules("flow", document) is False
    assert engine.load_rules("flow", '[{"RESOURCE": "abc1", "Threshold": 3.0}, {"resource": "b", "threshold": 1}]') is False
    assert engine.plan(R) is plan                          # plans were not even recompiled


def test_in_flight_entries_finish_on_the_breaker_they_entered_with(engine: Sentinel):
    engine.load_rules("circuit_breaker", [BREAKER])
    old = engine.plan(R).breakers[0]
    entry = engine.entry(R)
    engine.load_rules("circuit_breaker", [{**BREAKER, "statIntervalMs": 2000}])  # not reusable: fresh
    new = engine.plan(R).breakers[0]
    entry.exit(error=RuntimeError())
    assert old.state is State.OPEN and new.state is State.CLOSED


def test_regex_rules_apply_to_resources_already_seen(engine: Sentinel):
    assert passes(engine, "svc:a")
    engine.load_rules("isolation", [{"resource": "svc:.*", "regex": True, "threshold": 1}])
    held = engine.entry("svc:a")
    assert not passes(engine, "svc:a")
    held.exit()
    assert [r.resource for r in engine.rule_objects("isolation")] == ["svc:.*"]
