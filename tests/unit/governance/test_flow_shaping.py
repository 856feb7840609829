"""Traffic shaping: throttling (uniform spacing), warm-up and memory-adaptive thresholds, both dialects."""

from __future__ import annotations

import math

import pytest

from governance import BlockError, Sentinel
from governance.flow.controller import JavaWarmUpRater, MemoryAdaptive, WarmUpCalculator
from governance.flow.rule import FlowRule

from gov_helpers import T0, blocked, count_passes, passes

R = "res"


class TestGoThrottling:
    """G ``tc_throttling_test.go`` through the engine (threshold 50 per 10 s: one request per 200 ms)."""

    rule = {"resource": R, "threshold": 50, "controlBehavior": 1, "statIntervalInMs": 10000}

    def test_no_queueing(self, engine: Sentinel, clock):
        # TestThrottlingChecker_DoCheckNoQueueingSingleThread
        engine.load_rules("flow", [{**self.rule, "maxQueueingTimeMs": 0}])
        assert blocked(engine, R, batch=51).message == "flow throttling check blocked, batch count is more than threshold"
        assert passes(engine, R, batch=50)                   # the first request passes
        for _ in range(10):
            err = blocked(engine, R)
            assert err.message == "flow throttling check blocked, estimated queueing time exceeds max queueing time"
        clock.advance(10000 // 50 * 10 + 10)
        assert passes(engine, R)
        assert not passes(engine, R)

    def test_queueing_returns_exact_waits(self, engine: Sentinel):
        # TestThrottlingChecker_DoCheckSingleThread: waitCount = 2000 / (10000 / 50) = 10
        engine.load_rules("flow", [{**self.rule, "maxQueueingTimeMs": 2000}])
        blocked(engine, R, batch=51)
        first = engine.entry(R, batch=50)
        assert first.wait_ms == 0.0
        waits = []
        for _ in range(20):
            try:
                waits.append(engine.entry(R).wait_ms)
            except BlockError:
                waits.append(None)
        assert waits[:10] == [200.0 * (i + 1) for i in range(10)]
        assert waits[10:] == [None] * 10
        assert engine.resource_stats(R).wait_total == 10

    def test_waits_use_nanosecond_ceilings(self, engine: Sentinel):
        # interval = ceil(batch / threshold * 1e9 ns): 3 per second -> 333 333 334 ns
        engine.load_rules("flow", [{"resource": R, "threshold": 3, "controlBehavior": 1, "maxQueueingTimeMs": 1000}])
        assert engine.entry(R).wait_ms == 0.0
        assert engine.entry(R).wait_ms == pytest.approx(333.333334)
        assert engine.entry(R).wait_ms == pytest.approx(666.666668)
        assert not passes(engine, R)

    def test_queue_drains_with_time(self, engine: Sentinel, clock):
        engine.load_rules("flow", [{"resource": R, "threshold": 10, "controlBehavior": 1, "maxQueueingTimeMs": 100}])
        assert [engine.entry(R).wait_ms for _ in range(2)] == [0.0, 100.0]
        assert not passes(engine, R)
        clock.advance(100)
        assert engine.entry(R).wait_ms == 100.0
        clock.advance(250)                      # last passed at T0+200, expected T0+300 <= now
        assert engine.entry(R).wait_ms == 0.0

    def test_later_controllers_are_asked_after_the_earlier_wait(self, engine: Sentinel):
        # G's flow slot sleeps between controllers; the engine asks the next one at now + wait
        engine.load_rules("flow", [
            {"resource": R, "threshold": 10, "controlBehavior": 1, "maxQueueingTimeMs": 1000},
            {"resource": R, "threshold": 5, "controlBehavior": 1, "maxQueueingTimeMs": 1000},
        ])
        assert engine.entry(R).wait_ms == 0.0
        assert engine.entry(R).wait_ms == 200.0  # 100 ms for the first, then 100 ms more for the second

    def test_zero_threshold_blocks(self, engine: Sentinel):
        engine.load_rules("flow", [{"resource": R, "threshold": 0, "controlBehavior": 1}])
        assert blocked(engine, R).message == "flow throttling check blocked, threshold is <= 0.0"


class TestJavaThrottling:
    """J ``ThrottlingControllerTest`` (count 10, queue 500 ms: one request per 100 ms)."""

    def load(self, engine: Sentinel, count: float, queue: int = 500) -> None:
        engine.load_rules("flow", [{"resource": R, "count": count, "controlBehavior": 2,
                                    "maxQueueingTimeMs": queue}], dialect="java")

    def test_normal(self, engine: Sentinel):
        # testThrottlingControllerNormal: 6 requests pass and wait more than 400 ms in total
        self.load(engine, 10)
        waits = [engine.entry(R).wait_ms for _ in range(6)]
        assert waits == [0.0, 100.0, 200.0, 300.0, 400.0, 500.0]
        assert not passes(engine, R)                       # 600 ms > 500 ms

    def test_zero_threshold(self, engine: Sentinel):
        # testThrottlingControllerZeroThreshold
        self.load(engine, 0)
        for _ in range(2):
            assert not passes(engine, R, batch=1)
            assert passes(engine, R, batch=0)

    def test_nanosecond_mode_when_count_does_not_divide_a_second(self, engine: Sentinel):
        self.load(engine, 3, queue=1000)
        waits = [engine.entry(R).wait_ms for _ in range(3)]
        assert waits == [0.0, pytest.approx(333.333333), pytest.approx(666.666666)]

    def test_millisecond_mode_rounds_half_up(self, engine: Sentinel):
        self.load(engine, 8, queue=1000)                   # 1000 % 8 == 0: ms mode, cost round(125.0)
        assert [engine.entry(R).wait_ms for _ in range(3)] == [0.0, 125.0, 250.0]


class TestWarmUpCalculator:
    def test_guava_parameters(self):
        calc = WarmUpCalculator(10, 10, 3)
        assert (calc.warning, calc.max_token) == (50, 100)
        assert calc.slope == pytest.approx(2 / 10 / 50)
        big = WarmUpCalculator(100, 10, 3)
        assert (big.warning, big.max_token) == (500, 1000)

    def test_cold_start_fills_the_bucket(self):
        calc = WarmUpCalculator(100, 10, 3)
        calc.sync(T0 + 123, 0)
        assert calc.stored == 1000 and calc.last_filled == T0
        assert calc.allowed() == math.nextafter(1 / (500 * calc.slope + 0.01), math.inf)
        assert int(calc.allowed()) == 33                      # about count / cold factor
        calc.sync(T0 + 999, 0)                                # same second: no sync
        assert calc.stored == 1000


class FakeNode:
    """The two reads ``WarmUpController.canPass`` makes (J's test mocks exactly these)."""

    def __init__(self) -> None:
        self.qps = 0.0
        self.previous = 0.0

    def pass_qps(self, now: int) -> float:
        return self.qps

    def java_previous_pass_qps(self, now: int) -> float:
        return self.previous


def test_java_warm_up_controller():
    # J WarmUpControllerTest.testWarmUp: WarmUpController(10, 10, 3)
    rater = JavaWarmUpRater(FlowRule(resource=R, dialect="java", threshold=10, warm_up_period_sec=10), 3)
    node = FakeNode()
    now = T0 + 37
    node.qps, node.previous = 8, 1
    assert rater.can_pass(node, now, 0, 1) < 0               # cold: about 3.4 QPS allowed
    assert rater.calc.stored == 99
    node.qps = 1
    assert rater.can_pass(node, now, 0, 1) == 0
    node.previous = 10
    for _ in range(100):                                     # 10 s at a steady 10 QPS
        now += 100
        rater.can_pass(node, now, 0, 1)
    assert rater.calc.stored < rater.calc.warning            # warmed: below the warning line
    node.qps = 8
    assert rater.can_pass(node, now, 0, 1) == 0
    node.qps = 10
    assert rater.can_pass(node, now, 0, 1) < 0


class TestGoWarmUp:
    rule = {"resource": R, "threshold": 100, "tokenCalculateStrategy": 1, "warmUpPeriodSec": 10}

    def test_first_seconds_follow_the_token_arithmetic(self, engine: Sentinel, clock):
        engine.load_rules("flow", [self.rule])
        assert count_passes(engine, R, 100) == 33            # 1 / (500 * 0.00004 + 0.01) = 33.3
        clock.advance(1000)                                   # sync: 1000 - previous 33 = 967 tokens
        assert count_passes(engine, R, 100) == 34             # 1 / (467 * 0.00004 + 0.01) = 34.8

    def test_rate_climbs_to_the_threshold_under_full_load(self, engine: Sentinel, clock):
        engine.load_rules("flow", [self.rule])
        per_second = []
        for _ in range(16):
            per_second.append(count_passes(engine, R, 200))
            clock.advance(1000)
        assert per_second[0] == 33
        assert all(a <= b for a, b in zip(per_second, per_second[1:]))
        assert per_second[-1] == 100 and per_second[8] < 100

    def test_cold_factor(self, engine: Sentinel):
        engine.load_rules("flow", [{**self.rule, "warmUpColdFactor": 5}])
        assert count_passes(engine, R, 100) == 20            # count / cold factor

    def test_warm_up_with_throttling_spaces_at_the_warming_rate(self, engine: Sentinel):
        engine.load_rules("flow", [{**self.rule, "controlBehavior": 1, "maxQueueingTimeMs": 1000}])
        assert engine.entry(R).wait_ms == 0.0
        rate = math.nextafter(1 / (500 * (2 / 100 / 500) + 0.01), math.inf)
        assert engine.entry(R).wait_ms == pytest.approx(math.ceil(1 / rate * 1e9) / 1e6)


class TestMemoryAdaptive:
    rule = FlowRule(resource=R, token_strategy=2, low_mem_threshold=1000, high_mem_threshold=100,
                    mem_low_water_mark=1024, mem_high_water_mark=2048)

    @pytest.mark.parametrize(("memory", "threshold"), [(100, 1000), (1024, 1000), (1536, 550), (2048, 100),
                                                        (3072, 100), (-1, 1000)])
    def test_threshold_by_memory(self, metrics, memory, threshold):
        # G TestMemoryAdaptiveTrafficShapingCalculator_CalculateAllowedTokens (+ unreadable memory -> low)
        metrics.set(memory_usage=memory)
        assert MemoryAdaptive(self.rule, metrics).allowed_at(T0) == pytest.approx(threshold)

    def test_engine_applies_the_current_memory(self, engine: Sentinel, metrics, clock):
        engine.load_rules("flow", [{"resource": R, "tokenCalculateStrategy": 2, "lowMemUsageThreshold": 4,
                                    "highMemUsageThreshold": 1, "memLowWaterMarkBytes": 1024,
                                    "memHighWaterMarkBytes": 2048}])
        metrics.set(memory_usage=100)
        assert count_passes(engine, R, 10) == 4
        clock.advance(1000)
        metrics.set(memory_usage=4096)
        assert count_passes(engine, R, 10) == 1


def test_java_warm_up_rate_limiter_spaces_at_the_cold_rate(engine: Sentinel):
    engine.load_rules("flow", [{"resource": R, "count": 100, "controlBehavior": 3, "warmUpPeriodSec": 10,
                                "maxQueueingTimeMs": 1000}], dialect="java")
    assert engine.entry(R).wait_ms == 0.0
    rate = math.nextafter(1 / (500 * (2 / 100 / 500) + 0.01), math.inf)
    assert engine.entry(R).wait_ms == float(math.floor(1 / rate * 1000 + 0.5))  # J Math.round


def test_flow_slot_sums_waits_and_asks_later_controllers_after_them(engine: Sentinel):
    from governance.flow.slot import check_flow
    throttle = {"resource": R, "controlBehavior": 1, "maxQueueingTimeMs": 1000}
    engine.load_rules("flow", [{**throttle, "threshold": 10}, {**throttle, "threshold": 5},
                               {"resource": R, "threshold": 2}])
    controllers = engine.plan(R).flow
    now_ns = engine.clock.now_ns()
    assert check_flow(controllers, R, T0, now_ns, 1, "") == 0
    assert check_flow(controllers, R, T0, now_ns, 1, "") == 200_000_000
    engine.entry(R).exit()
    engine.entry(R).exit()
    with pytest.raises(BlockError) as info:
        check_flow(controllers, R, T0, now_ns, 1, "")
    assert info.value.rule.threshold == 2 and info.value.message == "flow reject check blocked"
