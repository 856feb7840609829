"""Isolation (concurrency limits) and system adaptive protection (G ``core/system/slot_test.go``)."""

from __future__ import annotations

import pytest

from governance import Sentinel
from governance.system.slot import bbr_allows

from gov_helpers import blocked, count_passes, passes

R = "res"


class TestIsolation:
    def test_concurrency_limit(self, engine: Sentinel):
        engine.load_rules("isolation", [{"resource": R, "metricType": 0, "threshold": 2}])
        held = [engine.entry(R), engine.entry(R)]
        err = blocked(engine, R)
        assert (err.kind, err.block_type, err.message, err.snapshot) == (
            "isolation", "BlockTypeIsolation", "concurrency exceeds threshold", 2)
        held[0].exit()
        assert passes(engine, R)
        held[1].exit()

    def test_batch_counts_against_the_limit(self, engine: Sentinel):
        engine.load_rules("isolation", [{"resource": R, "threshold": 2}])
        assert not passes(engine, R, batch=3)
        assert passes(engine, R, batch=2)

    def test_java_dialect_has_no_isolation_rules(self, engine: Sentinel):
        result = engine.validate_rules("isolation", [{"resource": R, "threshold": 2}], dialect="java")
        assert result.rules == () and "grade 0 (THREAD)" in result.errors[0]


class TestGoSystemRules:
    def test_concurrency_rule(self, engine: Sentinel):
        # G TestDoCheckRuleConcurrency: trigger 0.5 -> 0 passes, 1 concurrent inbound request blocks
        engine.load_rules("system", [{"metricType": 2, "triggerCount": 0.5}])
        first = engine.entry(R, inbound=True)
        err = blocked(engine, R, inbound=True)
        assert (err.kind, err.block_type, err.message, err.snapshot) == (
            "system", "BlockTypeSystem", "system concurrency check blocked", 1.0)
        assert passes(engine, R)                       # outbound traffic is not protected
        first.exit()
        assert passes(engine, R, inbound=True)

    def test_load_not_retrieved_passes_and_bbr_allows_an_idle_system(self, engine: Sentinel, metrics):
        # G TestDoCheckRuleLoad: NotRetrieved load passes; BBR with load 1.0 and no concurrency passes
        engine.load_rules("system", [{"metricType": 0, "triggerCount": 0.5}])
        assert passes(engine, R, inbound=True)
        metrics.set(load=1.0)
        assert not passes(engine, R, inbound=True)     # not BBR: load 1.0 > 0.5 blocks
        engine.load_rules("system", [{"metricType": 0, "triggerCount": 0.5, "strategy": 1}])
        assert passes(engine, R, inbound=True)

    def test_cpu_usage_with_bbr(self, engine: Sentinel, metrics):
        # G TestDoCheckRuleCpuUsage
        engine.load_rules("system", [{"metricType": "CpuUsage", "triggerCount": 0.5, "strategy": "BBR"}])
        assert passes(engine, R, inbound=True)
        metrics.set(cpu_usage=0.8)
        assert passes(engine, R, inbound=True)
        held = [engine.entry(R, inbound=True) for _ in range(2)]
        err = blocked(engine, R, inbound=True)         # 2 in flight > 0 completions * min RT
        assert err.message == "system cpu usage check blocked" and err.snapshot == 0.8
        for e in held:
            e.exit()

    def test_bbr_uses_max_completions_times_min_rt(self, engine: Sentinel, clock):
        for _ in range(100):                           # 100 completions of 20 ms in one bucket
            e = engine.entry(R, inbound=True)
            e.exit(rt_ms=20)
        inbound = engine._inbound
        now = clock.now_ms()
        assert inbound.max_complete_per_sec(now) == 200.0 and inbound.min_rt(now) == 20.0
        held = [engine.entry(R, inbound=True) for _ in range(4)]
        assert bbr_allows(inbound, now)                # 4 <= 200 * 20 / 1000
        held += [engine.entry(R, inbound=True) for _ in range(1)]
        assert not bbr_allows(inbound, now)            # 5 > 4
        for e in held:
            e.exit()

    def test_inbound_qps_and_avg_rt(self, engine: Sentinel, clock):
        engine.load_rules("system", [{"metricType": 3, "triggerCount": 3}])
        assert count_passes(engine, R, 5, inbound=True) == 3
        assert blocked(engine, R, inbound=True).message == "system qps check blocked"
        clock.advance(1000)
        engine.load_rules("system", [{"metricType": 1, "triggerCount": 50}])
        e = engine.entry(R, inbound=True)
        e.exit(rt_ms=120)
        err = blocked(engine, R, inbound=True)
        assert err.message == "system avg rt check blocked" and err.snapshot == 120.0

    def test_entry_many_counts_the_request_once(self, engine: Sentinel):
        engine.load_rules("system", [{"metricType": 3, "triggerCount": 2}])
        for _ in range(2):
            engine.entry_many(("svc", "svc:m"), inbound=True).exit()
        assert engine.resource_stats("__total_inbound_traffic__").pass_total == 2
        err = blocked(engine, "x", inbound=True)
        assert err.kind == "system"


class TestJavaSystemRules:
    def test_effective_limits_are_the_minimum_over_rules(self, engine: Sentinel):
        engine.load_rules("system", [{"qps": 5, "maxThread": -1}, {"qps": 2, "highestSystemLoad": 10}],
                          dialect="java")
        assert count_passes(engine, R, 5, inbound=True) == 2       # passQps + 1 > 2 blocks the third
        err = blocked(engine, R, inbound=True)
        assert err.message == "system qps check blocked" and err.rule.to_json()["qps"] == 2

    def test_max_thread_is_strictly_greater(self, engine: Sentinel):
        engine.load_rules("system", [{"maxThread": 1}], dialect="java")
        first = engine.entry(R, inbound=True)
        second = engine.entry(R, inbound=True)                    # 1 thread is not > 1
        assert not passes(engine, R, inbound=True)                # 2 threads > 1
        first.exit()
        second.exit()

    def test_avg_rt_uses_double_division(self, engine: Sentinel):
        engine.load_rules("system", [{"avgRt": 10}], dialect="java")
        for rt in (10, 11):
            e = engine.entry(R, inbound=True)
            e.exit(rt_ms=rt)
        err = blocked(engine, R, inbound=True)                    # 10.5 > 10 (G would floor to 10)
        assert err.snapshot == 10.5

    def test_load_uses_bbr_and_cpu_does_not(self, engine: Sentinel, metrics):
        engine.load_rules("system", [{"highestSystemLoad": 1.0, "highestCpuUsage": 0.5}], dialect="java")
        metrics.set(load=4.0)
        assert passes(engine, R, inbound=True)                    # BBR: nothing in flight
        metrics.set(cpu_usage=0.6)
        assert blocked(engine, R, inbound=True).message == "system cpu usage check blocked"

    @pytest.mark.parametrize("cpu", [1.5, 2])
    def test_cpu_limit_above_one_is_refused(self, engine: Sentinel, cpu):
        result = engine.validate_rules("system", [{"highestCpuUsage": cpu}], dialect="java")
        assert result.errors == (f'system rule #0 (resource ""): highestCpuUsage: must be within [0.0, 1.0] '
                                 f"(or -1 for unset), got {cpu:g}",)
