"""Hotspot parameter flow: token buckets, throttling, concurrency, extraction, specific items."""

from __future__ import annotations

import pytest

from governance import Sentinel
from governance.hotspot.controller import HotspotController
from governance.hotspot.rule import HotspotRule

from gov_helpers import T0, blocked, count_passes, passes

R = "res_a"


def controller(**fields) -> HotspotController:
    base = dict(resource=R, metric_type=1, threshold=100, duration_sec=1)
    base.update(fields)
    return HotspotController(HotspotRule(**base), R, None)


class TestGoTrafficShapingPorts:
    """G ``core/hotspot/traffic_shaping_test.go`` with real LRU caches instead of mocks."""

    def test_concurrency_metric(self):
        # Test_baseTrafficShapingController_performCheckingForConcurrencyMetric
        ctrl = controller(metric_type=0)
        ctrl.metric.concurrency.put(666688, 50)
        assert ctrl.check(666688, 1, T0) == 0
        ctrl.metric.concurrency.put(666688, 101)
        assert ctrl.check(666688, 1, T0) == -1
        assert ctrl.block_msg == "hotspot concurrency check blocked, arg: 666688" and ctrl.snapshot == 102
        ctrl.items[666688] = 20
        assert ctrl.check(666688, 1, T0) == -1
        assert ctrl.block_msg == "hotspot specific concurrency check blocked, arg: 666688"

    def test_reject_batch_over_max_then_first_fill(self):
        # Test_defaultTrafficShapingController_performChecking_TimeCounter_Nil
        ctrl = controller(burst_count=10)
        assert ctrl.check(0o10110, 130, T0) == -1
        assert ctrl.block_msg.startswith("hotspot reject check blocked, request batch count is more than max token")
        assert ctrl.check(0o10110, 20, T0) == 0
        assert ctrl.metric.token_counter.get(0o10110) == 90

    def test_reject_subtracts_tokens_within_the_window(self):
        # ..._Sub_Token: duration 10 s, last fill 1 s ago, 50 tokens left, batch 20 -> 30
        ctrl = controller(burst_count=10, duration_sec=10)
        ctrl.metric.time_counter.put("a", T0 - 1000)
        ctrl.metric.token_counter.put("a", 50)
        assert ctrl.check("a", 20, T0) == 0
        assert ctrl.metric.token_counter.get("a") == 30

    def test_reject_first_fill_after_a_window_without_tokens(self):
        # ..._First_Fill_Token: last fill 1001 ms ago but no token entry -> fill and pass
        ctrl = controller(burst_count=10)
        ctrl.metric.time_counter.put("a", T0 - 1001)
        assert ctrl.check("a", 20, T0 + 10) == 0
        assert ctrl.metric.time_counter.get("a") == T0 + 10

    def test_reject_refills_after_the_window(self):
        # ..._Refill_Token: 1011 ms * 100 / 1000 = 101 tokens added to 50 -> capped at 110 - 20 = 90
        ctrl = controller(burst_count=10)
        ctrl.metric.time_counter.put("a", T0 - 1001)
        ctrl.metric.token_counter.put("a", 50)
        assert ctrl.check("a", 20, T0 + 10) == 0
        assert ctrl.metric.token_counter.get("a") == 90
        assert ctrl.metric.time_counter.get("a") == T0 + 10

    def test_throttling_passes_when_the_expected_time_is_due(self):
        # Test_throttlingTrafficShapingController_performChecking: last pass 201 ms ago, cost 200 ms
        ctrl = controller(behavior=1, max_queueing_ms=10)
        ctrl.metric.time_counter.put("a", T0 - 201)
        assert ctrl.check("a", 20, T0) == 0

    @pytest.mark.parametrize(("fields", "inserts", "size"), [
        # Test_newBaseTrafficShapingController
        (dict(metric_type=0), 10_000, 4_000), (dict(metric_type=0, params_max_capacity=100), 10_000, 100),
        (dict(metric_type=1, duration_sec=0), 30_000, 20_000), (dict(metric_type=1, duration_sec=2), 30_000, 8_000),
    ])
    def test_cache_capacity_bounds_memory(self, fields, inserts, size):
        ctrl = controller(**fields)
        for i in range(inserts):
            ctrl.metric.concurrency.put(i, 0)
            ctrl.metric.time_counter.put(i, 0)
        assert len(ctrl.metric.concurrency) == len(ctrl.metric.time_counter) == size

    def test_extract_args(self):
        # Test_baseTrafficShapingController_ExtractArgs
        ctrl = controller()
        args = [None] * 10
        attachments: dict = {}
        assert ctrl.extract(args, attachments) is None
        args[0], args[1] = 1, 2
        attachments["test1"] = "v1"
        for index, key, expected in ((0, "test1", "v1"), (10, "test1", "v1"), (1, "test2", 2), (3, "test2", None)):
            ctrl.index, ctrl.key = index, key
            assert ctrl.extract(args, attachments) == expected
        ctrl.index, ctrl.key = -1, ""
        args[9] = "last"
        assert ctrl.extract(args, attachments) == "last"


def java_rule(**fields) -> list[dict]:
    return [{"resource": R, "paramIdx": 0, **fields}]


class TestJavaParamFlowDefaultChecker:
    """J ``ParamFlowDefaultCheckerTest`` through the engine."""

    def test_single_qps(self, engine: Sentinel, clock):
        engine.load_rules("hotspot", java_rule(count=5), dialect="java")
        assert count_passes(engine, R, 6, args=("valueA",)) == 5
        clock.advance(3000)
        assert count_passes(engine, R, 6, args=("valueA",)) == 5

    def test_single_qps_with_burst(self, engine: Sentinel, clock):
        engine.load_rules("hotspot", java_rule(count=5, burstCount=3), dialect="java")
        for sleep, expected in ((0, 8), (1002, 5), (1002, 5), (2000, 8), (1002, 5)):
            clock.advance(sleep)
            assert count_passes(engine, R, 10, args=("valueA",)) == expected

    def test_qps_in_a_sixty_second_duration(self, engine: Sentinel, clock):
        engine.load_rules("hotspot", java_rule(count=5, durationInSec=60), dialect="java")
        assert count_passes(engine, R, 6, args=("helloWorld",)) == 5
        for seconds in (1, 10, 30):
            clock.advance(seconds * 1000)
            assert not passes(engine, R, args=("helloWorld",))
        clock.advance(30_000)
        assert count_passes(engine, R, 6, args=("helloWorld",)) == 5

    def test_long_interval_and_high_threshold(self, engine: Sentinel, clock):
        # testCheckQpsWithLongIntervalAndHighThreshold: no overflow after 24 h and 48 h
        engine.load_rules("hotspot", java_rule(count=25000), dialect="java")
        for sleep in (0, 24 * 3600 * 1000, 48 * 3600 * 1000):
            clock.advance(sleep)
            assert count_passes(engine, R, 2, args=("valueA",)) == 2

    def test_values_are_limited_independently(self, engine: Sentinel):
        engine.load_rules("hotspot", java_rule(count=1), dialect="java")
        assert passes(engine, R, args=("a",)) and passes(engine, R, args=("b",))
        err = blocked(engine, R, args=("a",))
        assert err.kind == "hotspot" and err.block_type == "BlockTypeHotSpotParamFlow"
        assert err.message == ("hotspot reject check blocked, request batch count is more than available token "
                               "count, arg: a")

    def test_throttle_check_qps(self, engine: Sentinel, clock):
        # J ParamFlowThrottleRateLimitingCheckerTest.testSingleValueThrottleCheckQps
        engine.load_rules("hotspot", java_rule(count=5, controlBehavior=2), dialect="java")
        for _ in range(2):
            succeeded = 0
            for _ in range(991):                       # keep trying for a second, one attempt per ms
                succeeded += passes(engine, R, args=("valueA",))
                clock.advance(1)
            assert succeeded == 5
            clock.advance(3000)

    def test_collection_argument_checks_every_element(self, engine: Sentinel):
        engine.load_rules("hotspot", java_rule(count=1), dialect="java")
        assert passes(engine, R, args=(["a", "b"],))
        assert not passes(engine, R, args=(["c", "a"],))
        assert not passes(engine, R, args=(["c"],))     # "c" spent its token before "a" blocked, as in J
        assert passes(engine, R, args=(["d"],))

    def test_thread_grade_counts_from_zero(self, engine: Sentinel):
        engine.load_rules("hotspot", java_rule(grade=0, count=2), dialect="java")
        held = [engine.entry(R, args=("v",)) for _ in range(2)]
        assert not passes(engine, R, args=("v",))
        held[0].exit()
        assert passes(engine, R, args=("v",))
        engine.load_rules("hotspot", java_rule(grade=0, count=0), dialect="java")
        assert not passes(engine, R, args=("w",))                # J: 0 + 1 <= 0 is false


class TestGoHotspotThroughTheEngine:
    def test_qps_reject_with_specific_items_and_param_key(self, engine: Sentinel):
        engine.load_rules("hotspot", [{
            "resource": R, "metricType": 1, "paramKey": "uid", "threshold": 2, "durationInSec": 1,
            "specificItems": [{"valKind": 1, "valStr": "vip", "threshold": 5},
                              {"valKind": 0, "valStr": "42", "threshold": 1}],
        }])
        assert count_passes(engine, R, 10, attachments={"uid": "u1"}) == 2
        assert count_passes(engine, R, 10, attachments={"uid": "vip"}) == 5
        assert count_passes(engine, R, 10, attachments={"uid": 42}) == 1
        assert count_passes(engine, R, 10, attachments={"uid": "42"}) == 2   # the int item does not match a str
        assert count_passes(engine, R, 10) == 10                             # no argument: the rule is skipped

    def test_throttling_returns_waits_below_the_queue_limit(self, engine: Sentinel):
        engine.load_rules("hotspot", [{"resource": R, "metricType": 1, "controlBehavior": 1, "threshold": 5,
                                       "durationInSec": 1, "maxQueueingTimeMs": 500}])
        waits = [engine.entry(R, args=("v",)).wait_ms for _ in range(3)]
        assert waits == [0.0, 200.0, 400.0]
        assert blocked(engine, R, args=("v",)).message == (
            "hotspot throttling check blocked, wait time exceedes max queueing time, arg: v")

    def test_go_throttling_cost_uses_integer_division(self):
        ctrl = controller(behavior=1, threshold=3, max_queueing_ms=1000)
        assert ctrl.check("v", 1, T0) == 0
        assert ctrl.check("v", 1, T0) == 333 * 1_000_000            # 1 * 1000 / 3 -> 333 (G int64 division)
        java = HotspotController(HotspotRule(resource=R, dialect="java", metric_type=1, behavior=1, threshold=3,
                                             duration_sec=1, max_queueing_ms=1000), R, None)
        assert java.check("v", 2, T0) == 0
        assert java.check("v", 2, T0) == 667 * 1_000_000            # Math.round(2000 / 3.0)

    def test_concurrency_first_sight_passes_then_limits(self, engine: Sentinel):
        engine.load_rules("hotspot", [{"resource": R, "metricType": 0, "threshold": 2, "paramIndex": -1}])
        held = [engine.entry(R, args=("x", "v")) for _ in range(2)]
        err = blocked(engine, R, args=("x", "v"))
        assert err.snapshot == 3
        held[0].exit()
        held[0].exit()                                     # a second exit changes nothing
        entry = engine.entry(R, args=("x", "v"))
        assert not passes(engine, R, args=("x", "v"))
        entry.exit()
        held[1].exit()
        engine.load_rules("hotspot", [{"resource": R, "metricType": 0, "threshold": 0}])
        assert passes(engine, R, args=("new",))             # G: the first sight of a value passes

    def test_unhashable_argument_skips_the_rule(self, engine: Sentinel):
        engine.load_rules("hotspot", [{"resource": R, "metricType": 1, "threshold": 0, "durationInSec": 1}])
        assert passes(engine, R, args=({"not": "hashable"},))
        assert not passes(engine, R, args=("hashable",))

    @pytest.mark.parametrize(("item", "value"), [
        ({"valKind": 2, "valStr": "true", "threshold": 0}, True),
        ({"valKind": "KindFloat64", "valStr": "1.123456789", "threshold": 0}, 1.12346),
        ({"valKind": 0, "valStr": " 7 ", "threshold": 0}, 7),
    ])
    def test_specific_item_kinds(self, engine: Sentinel, item, value):
        engine.load_rules("hotspot", [{"resource": R, "metricType": 1, "threshold": 9, "durationInSec": 1,
                                       "specificItems": [item]}])
        assert not passes(engine, R, args=(value,))
        assert engine.rules("hotspot")[0]["specificItems"][0]["valKind"] == {True: 2, 1.12346: 3, 7: 0}[value]
