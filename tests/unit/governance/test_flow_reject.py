"""Flow control, Direct + Reject (G ``tc_default``) and the Java ``DefaultController``, with stat binding."""

from __future__ import annotations

import json

import pytest

from governance import BlockError, Sentinel
from governance.flow.controller import GoRejectController, GoThrottlingController
from governance.stat.window import PASS

from gov_helpers import blocked, count_passes, passes

R = "org.example.DemoService:sayHello"


def go_rule(**fields) -> list[dict]:
    return [{"resource": R, **fields}]


class TestDirectReject:
    def test_threshold_per_second_then_block_with_sentinel_message(self, engine: Sentinel):
        engine.load_rules("flow", go_rule(threshold=10))
        assert count_passes(engine, R, 10) == 10
        err = blocked(engine, R)
        assert err.kind == "flow" and err.block_type == "BlockTypeFlowControl"
        assert err.message == "flow reject check blocked"
        assert err.snapshot == 10.0
        assert err.rule.threshold == 10
        assert str(err).startswith("SentinelBlockError: BlockTypeFlowControl, message: flow reject check blocked")
        assert R in str(err) and '"threshold":10.0' in str(err)

    def test_batch_counts_against_the_threshold(self, engine: Sentinel):
        engine.load_rules("flow", go_rule(threshold=10))
        assert count_passes(engine, R, 3, batch=3) == 3   # 9 tokens used
        blocked(engine, R, batch=2)                      # 9 + 2 > 10
        assert passes(engine, R, batch=1)                # 9 + 1 == 10 passes (block iff > threshold)

    def test_blocked_requests_do_not_count_as_pass(self, engine: Sentinel, clock):
        engine.load_rules("flow", go_rule(threshold=2))
        assert count_passes(engine, R, 50) == 2
        stats = engine.resource_stats(R)
        assert stats.pass_total == 2 and stats.block_total == {"BlockTypeFlowControl": 48}

    def test_the_one_second_window_slides_by_half_seconds(self, engine: Sentinel, clock):
        engine.load_rules("flow", go_rule(threshold=10))
        assert count_passes(engine, R, 10) == 10      # bucket [T0, T0+500)
        clock.advance(500)
        assert count_passes(engine, R, 5) == 0        # view = [T0, T0+1000): still 10
        clock.advance(499)
        assert not passes(engine, R)
        clock.advance(1)                              # view = [T0+500, T0+1500): empty
        assert count_passes(engine, R, 12) == 10

    def test_zero_threshold_blocks_everything(self, engine: Sentinel):
        engine.load_rules("flow", go_rule(threshold=0))
        assert not passes(engine, R)

    def test_first_block_wins_and_names_its_rule(self, engine: Sentinel):
        engine.load_rules("flow", [{"resource": R, "threshold": 5, "id": "loose"},
                                   {"resource": R, "threshold": 2, "id": "tight"}])
        assert count_passes(engine, R, 2) == 2
        assert blocked(engine, R).rule.id == "tight"

    def test_regex_rule_gets_one_controller_per_matching_resource(self, engine: Sentinel):
        engine.load_rules("flow", [{"resource": r"svc:.*", "regex": True, "threshold": 2}])
        assert count_passes(engine, "svc:a", 5) == 2
        assert count_passes(engine, "svc:b", 5) == 2      # its own controller and window
        assert count_passes(engine, "other:svc:a", 5) == 5  # full match only
        assert engine.plan("svc:a").flow[0] is not engine.plan("svc:b").flow[0]


class TestStatisticBinding:
    """G ``generateStatFor``: default metric, views of the 10 s array, standalone windows."""

    @pytest.mark.parametrize("interval", [0, 1000])
    def test_default_interval_reads_the_resource_metric(self, engine: Sentinel, interval):
        engine.load_rules("flow", go_rule(threshold=100, statIntervalInMs=interval))
        ctrl = engine.plan(R).flow[0]
        assert ctrl.view is engine.nodes[R].default_view and ctrl.standalone is None

    @pytest.mark.parametrize(("interval", "buckets"), [(2000, 4), (5000, 10), (10000, 20), (2500, 5)])
    def test_reusable_intervals_view_the_resource_array(self, engine: Sentinel, interval, buckets):
        engine.load_rules("flow", go_rule(threshold=100, statIntervalInMs=interval))
        ctrl = engine.plan(R).flow[0]
        assert ctrl.view.array is engine.nodes[R].array
        assert ctrl.view.span_ms == interval and ctrl.view.bucket_ms == interval // buckets
        assert ctrl.standalone is None

    @pytest.mark.parametrize(("interval", "samples"), [(20000, 1), (50000, 1), (750, 1), (300, 1), (3000, 6)])
    def test_other_intervals_get_a_standalone_window(self, engine: Sentinel, interval, samples):
        engine.load_rules("flow", go_rule(threshold=100, statIntervalInMs=interval))
        ctrl = engine.plan(R).flow[0]
        assert ctrl.standalone is not None and ctrl.view.array is ctrl.standalone.array
        assert ctrl.view.array.sample_count == samples and ctrl.view.span_ms == interval

    def test_throttling_with_direct_tokens_reads_no_statistic(self, engine: Sentinel):
        # G TestGetRules/getRules: Direct + Throttling is bound to the nop statistic
        engine.load_rules("flow", go_rule(threshold=10, controlBehavior=1, maxQueueingTimeMs=10))
        ctrl = engine.plan(R).flow[0]
        assert isinstance(ctrl, GoThrottlingController) and ctrl.view is None and ctrl.standalone is None

    def test_standalone_window_counts_every_pass(self, engine: Sentinel):
        # G Test_FlowSlot_StandaloneStat: 50 passes -> the rule's own window holds 50
        engine.load_rules("flow", go_rule(threshold=100, statIntervalInMs=20000))
        assert count_passes(engine, R, 50) == 50
        ctrl = engine.plan(R).flow[0]
        assert ctrl.view.sum(PASS, engine.clock.now_ms()) == 50

    def test_two_second_interval_limits_per_two_seconds(self, engine: Sentinel, clock):
        engine.load_rules("flow", go_rule(threshold=10, statIntervalInMs=2000))
        assert count_passes(engine, R, 15) == 10
        clock.advance(1500)
        assert not passes(engine, R)            # view [T0, T0+2000) still holds 10
        clock.advance(500)
        assert count_passes(engine, R, 15) == 10

    def test_twenty_second_standalone_window_tumbles(self, engine: Sentinel, clock):
        engine.load_rules("flow", go_rule(threshold=100, statIntervalInMs=20000))
        assert count_passes(engine, R, 120) == 100
        clock.advance(19_999)
        assert not passes(engine, R)
        clock.advance(1)
        assert count_passes(engine, R, 120) == 100


class TestAssociatedResource:
    def test_go_associated_resource_limits_by_the_other_resources_traffic(self, engine: Sentinel):
        engine.load_rules("flow", [{"resource": "read", "threshold": 3, "relationStrategy": 1,
                                    "refResource": "write"}])
        assert count_passes(engine, "read", 10) == 10       # the rule reads write's QPS: 0
        assert count_passes(engine, "write", 3) == 3
        assert not passes(engine, "read")
        assert isinstance(engine.plan("read").flow[0], GoRejectController)

    def test_java_relate_strategy_passes_while_the_reference_is_unknown(self, engine: Sentinel):
        engine.load_rules("flow", [{"resource": "read", "count": 1, "strategy": 1, "refResource": "write"}],
                          dialect="java")
        assert count_passes(engine, "read", 5) == 5         # J: no cluster node for "write" -> pass
        assert passes(engine, "write")
        assert not passes(engine, "read")


class TestJavaDefaultController:
    def test_qps_grade_uses_the_integer_pass_qps(self, engine: Sentinel):
        # J DefaultControllerTest.testCanPassForQps: passQps 9 -> pass, 10 -> block (threshold 10)
        engine.load_rules("flow", [{"resource": R, "count": 10}], dialect="java")
        assert count_passes(engine, R, 9) == 9
        assert passes(engine, R)
        err = blocked(engine, R)
        assert err.kind == "flow" and err.snapshot == 10

    def test_thread_grade_limits_concurrency(self, engine: Sentinel):
        # J DefaultControllerTest.testCanPassForThreadCount: 7 threads -> pass, 8 -> block (count 8)
        engine.load_rules("flow", [{"resource": R, "grade": 0, "count": 8}], dialect="java")
        held = [engine.entry(R) for _ in range(8)]
        err = blocked(engine, R)
        assert err.kind == "flow" and err.snapshot == 8
        held.pop().exit()
        assert passes(engine, R)
        for e in held:
            e.exit()

    def test_thread_grade_ignores_qps(self, engine: Sentinel):
        engine.load_rules("flow", [{"resource": R, "grade": 0, "count": 1, "controlBehavior": 1}], dialect="java")
        assert count_passes(engine, R, 100) == 100

    def test_cluster_rule_without_token_server_falls_back_or_passes(self, engine: Sentinel):
        base = {"resource": R, "count": 1, "clusterMode": True}
        engine.load_rules("flow", [{**base, "clusterConfig": {"flowId": 7, "fallbackToLocalWhenFail": False}}],
                          dialect="java")
        assert count_passes(engine, R, 5) == 5               # the rule is not activated
        engine.load_rules("flow", [{**base, "clusterConfig": {"flowId": 7}}], dialect="java")
        assert not passes(engine, R)                          # fallback: checked locally, 5 already passed

    def test_duplicate_java_rules_collapse(self, engine: Sentinel):
        rule = {"resource": R, "count": 3}
        engine.load_rules("flow", json.dumps([rule, rule]), dialect="java")
        assert len(engine.plan(R).flow) == 1


def test_flow_block_is_recorded_on_the_resource_and_inbound_nodes(engine: Sentinel):
    engine.load_rules("flow", go_rule(threshold=1))
    assert passes(engine, R, inbound=True)
    with pytest.raises(BlockError):
        engine.entry(R, inbound=True)
    stats = engine.stats()
    assert stats[R].block_total == {"BlockTypeFlowControl": 1}
    assert stats["__total_inbound_traffic__"].block_total == {"BlockTypeFlowControl": 1}
    assert stats["__total_inbound_traffic__"].pass_total == 1
