"""Java ``limitApp``: which statistic node a flow rule reads, by caller origin (J ``FlowRuleCheckerTest``)."""

from __future__ import annotations

from governance import Sentinel

from gov_helpers import blocked, count_passes, passes

R = "testOriginFlowSelectNode"


def load(engine: Sentinel, *rules: dict) -> None:
    engine.load_rules("flow", [{"resource": R, **rule} for rule in rules], dialect="java")


def test_default_limit_app_reads_the_cluster_node(engine: Sentinel):
    # testDefaultLimitAppFlowSelectNode: every caller shares the resource's node
    load(engine, {"count": 1})
    assert passes(engine, R, origin="appA")
    assert not passes(engine, R, origin="appB")
    assert not passes(engine, R)


def test_custom_origin_reads_the_origin_node(engine: Sentinel):
    # testCustomOriginFlowSelectNode: origin matches -> its own node; another origin -> no node (pass)
    load(engine, {"count": 1, "limitApp": "appA"})
    assert passes(engine, R, origin="appA")
    assert not passes(engine, R, origin="appA")
    assert count_passes(engine, R, 3, origin="appB") == 3
    assert count_passes(engine, R, 3) == 3
    assert engine.nodes[R].origins["appA"].pass_total == 1
    assert engine.nodes[R].origins["appA"].block_total == {"BlockTypeFlowControl": 1}


def test_other_applies_to_origins_without_their_own_rule(engine: Sentinel):
    # testOtherOriginFlowSelectNode: ruleA for appA (1), ruleB for "other" (2)
    load(engine, {"count": 1, "limitApp": "appA"}, {"count": 2, "limitApp": "other"})
    assert count_passes(engine, R, 5, origin="appB") == 2       # ruleB with appB's node
    assert count_passes(engine, R, 5, origin="appC") == 2       # ruleB with appC's own node
    assert count_passes(engine, R, 5, origin="appA") == 1       # only ruleA applies to appA
    assert count_passes(engine, R, 5) == 5                      # no origin: "other" does not apply


def test_unmatched_limit_app_passes(engine: Sentinel):
    # testPassCheckSelectEmptyNodeSuccess: limitApp "abc", origin "def"
    load(engine, {"count": 0, "limitApp": "abc"})
    assert passes(engine, R, origin="def")


def test_origin_rule_is_reported_before_the_default_rule(engine: Sentinel):
    # J FlowRuleComparator: specific limitApp first, then other, then default
    load(engine, {"count": 100, "id": 1}, {"count": 1, "limitApp": "appA", "id": 2})
    assert [c.rule.id for c in engine.plan(R).flow] == [2, 1]
    assert passes(engine, R, origin="appA")
    assert blocked(engine, R, origin="appA").rule.id == 2


def test_origin_with_relate_strategy_reads_the_related_resource(engine: Sentinel):
    load(engine, {"count": 1, "limitApp": "appA", "strategy": 1, "refResource": "write"})
    assert count_passes(engine, "write", 1) == 1
    assert not passes(engine, R, origin="appA")                 # write's QPS is 1
    assert passes(engine, R, origin="appB")


def test_thread_grade_per_origin(engine: Sentinel):
    load(engine, {"grade": 0, "count": 1, "limitApp": "appA"})
    held = engine.entry(R, origin="appA")
    assert not passes(engine, R, origin="appA")
    assert passes(engine, R, origin="appB")
    held.exit()
    assert engine.nodes[R].origins["appA"].concurrency == 0
    assert passes(engine, R, origin="appA")


def test_origin_nodes_are_bounded(clock, metrics):
    engine = Sentinel(clock=clock, system_metrics=metrics, origin_limit=2)
    load(engine, {"count": 1, "limitApp": "other"})
    for origin in ("a", "b", "c", "d"):
        passes(engine, R, origin=origin)
    assert sorted(engine.nodes[R].origins) == ["a", "b"]
    assert count_passes(engine, R, 3, origin="z") == 3           # no node to read: the rule does not apply
