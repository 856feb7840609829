"""The Python API contract: clocks, entries, exits, entry_many, errors, metrics, bounded resources."""

from __future__ import annotations

import pytest

from governance import BlockError, Entry, ManualClock, RealClock, Sentinel, State, StaticSystemMetrics

from gov_helpers import T0, blocked, passes

R = "org.example.DemoService:sayHello"
SVC = "org.example.DemoService"


class TestManualClock:
    def test_advance_and_set(self):
        clock = ManualClock(now_ms=1_000)
        assert clock.now_ms() == 1_000 and clock.now_ns() == 1_000_000_000
        clock.advance(1.5)
        assert clock.now_ns() == 1_001_500_000 and clock.now_ms() == 1_001
        clock.set(500)
        assert clock.now_ms() == 500
        with pytest.raises(ValueError):
            clock.advance(-1)
        with pytest.raises(TypeError):
            clock.advance("1")

    def test_real_clock_is_the_default(self):
        engine = Sentinel(system_metrics=StaticSystemMetrics())
        assert isinstance(engine.clock, RealClock)
        engine.entry(R).exit()
        assert engine.resource_stats(R).complete_total == 1


class TestExit:
    def test_rt_is_clock_time_since_entry_unless_overridden(self, engine: Sentinel, clock):
        engine.load_rules("circuit_breaker", [{"resource": R, "strategy": 0, "maxAllowedRtMs": 100,
                                               "retryTimeoutMs": 1000, "minRequestAmount": 2, "statIntervalMs": 10000,
                                               "threshold": 1.0}])
        slow = engine.entry(R)
        clock.advance(101)
        slow.exit()                                               # 101 ms > 100: slow
        fast = engine.entry(R)
        clock.advance(500)
        fast.exit(rt_ms=5)                                        # overridden: fast
        assert engine.breaker_states()[0].state is State.CLOSED
        late = engine.entry(R)
        late.exit(rt_ms=100.9)                                    # int(): 100 is not slow
        assert engine.breaker_states()[0].state is State.CLOSED
        stats = engine.nodes[R].array.view_sum(4, clock.now_ms(), 10_000)
        assert stats == 101 + 5 + 100

    def test_double_exit_is_harmless(self, engine: Sentinel):
        entry = engine.entry(R)
        entry.exit()
        entry.exit(error=RuntimeError())
        stats = engine.resource_stats(R)
        assert (stats.complete_total, stats.error_total, stats.concurrency) == (1, 0, 0)
        assert entry.exited and entry.resource == R

    @pytest.mark.parametrize(("error", "counted"), [
        (None, False), (False, False), (RuntimeError("x"), True), (True, True), ("timeout", True),
    ])
    def test_what_counts_as_an_error(self, engine: Sentinel, error, counted):
        engine.entry(R).exit(error=error)
        assert engine.resource_stats(R).error_total == int(counted)

    def test_outcome_like_objects_decide_with_is_error(self, engine: Sentinel):
        class Outcome:
            def __init__(self, is_error: bool) -> None:
                self.is_error = is_error

        engine.entry(R).exit(error=Outcome(False))
        engine.entry(R).exit(error=Outcome(True))
        assert engine.resource_stats(R).error_total == 1

    def test_context_manager_records_the_exception(self, engine: Sentinel):
        with pytest.raises(KeyError):
            with engine.entry(R):
                raise KeyError("boom")
        with engine.entry(R) as entry:
            assert isinstance(entry, Entry) and entry.wait_ms == 0.0
        stats = engine.resource_stats(R)
        assert (stats.complete_total, stats.error_total) == (2, 1)


class TestEntryMany:
    def test_service_and_method_pass_and_complete_together(self, engine: Sentinel):
        engine.load_rules("isolation", [{"resource": SVC, "threshold": 1}])
        entry = engine.entry_many((SVC, R), origin="app-a", args=("v",), inbound=True)
        assert entry.resources == (SVC, R)
        assert engine.nodes[SVC].concurrency == engine.nodes[R].concurrency == 1
        err = blocked(engine, SVC)
        assert err.kind == "isolation"
        entry.exit()
        assert engine.nodes[SVC].concurrency == engine.nodes[R].concurrency == 0
        assert engine.resource_stats("__total_inbound_traffic__").complete_total == 1

    def test_a_block_on_the_method_records_nothing_as_passed(self, engine: Sentinel):
        engine.load_rules("flow", [{"resource": R, "threshold": 0}])
        with pytest.raises(BlockError) as info:
            engine.entry_many((SVC, R))
        assert info.value.resource == R
        assert engine.resource_stats(SVC).pass_total == 0 and engine.resource_stats(SVC).block_total == {}
        assert engine.resource_stats(R).block_total == {"BlockTypeFlowControl": 1}

    def test_later_resources_are_checked_after_the_earlier_wait(self, engine: Sentinel, clock):
        throttle = {"threshold": 10, "controlBehavior": 1, "maxQueueingTimeMs": 1000}
        engine.load_rules("flow", [{"resource": SVC, **throttle}, {"resource": R, **throttle}])
        engine.entry_many((SVC, R)).exit()
        # the service queues 100 ms; the method, asked at now + 100 ms, is due exactly then: no extra wait
        assert engine.entry_many((SVC, R)).wait_ms == 100.0
        assert engine.plan(R).flow[0].last_passed == clock.now_ns() + 100_000_000

    def test_waits_add_up_when_the_later_resource_is_slower(self, engine: Sentinel):
        throttle = {"controlBehavior": 1, "maxQueueingTimeMs": 1000}
        engine.load_rules("flow", [{"resource": SVC, "threshold": 10, **throttle},
                                   {"resource": R, "threshold": 5, **throttle}])
        engine.entry_many((SVC, R)).exit()
        assert engine.entry_many((SVC, R)).wait_ms == 200.0     # 100 ms, then 100 ms more for the method

    def test_needs_a_resource(self, engine: Sentinel):
        with pytest.raises(ValueError):
            engine.entry_many(())


class TestBlockError:
    def test_attributes_and_text(self, engine: Sentinel):
        engine.load_rules("circuit_breaker", [{"resource": R, "strategy": 2, "retryTimeoutMs": 1000,
                                               "minRequestAmount": 1, "statIntervalMs": 1000, "threshold": 1}])
        engine.entry(R).exit(error=RuntimeError())
        err = blocked(engine, R)
        assert (err.kind, err.block_type, err.exception_name, err.message, err.resource) == (
            "circuit_breaking", "BlockTypeCircuitBreaking", "DegradeException", "circuit breaker check blocked", R)
        assert str(err) == (
            "SentinelBlockError: BlockTypeCircuitBreaking, message: circuit breaker check blocked, resource: "
            f'{R}, rule: {{"resource":"{R}","strategy":2,"retryTimeoutMs":1000,"minRequestAmount":1,'
            '"statIntervalMs":1000,"statSlidingWindowBucketCount":0,"maxAllowedRtMs":0,"threshold":1.0,"probeNum":0}')


class TestMetrics:
    def test_stats_and_breaker_states(self, engine: Sentinel, clock):
        engine.load_rules("flow", [{"resource": R, "threshold": 2}])
        engine.load_rules("circuit_breaker", [{"resource": SVC, "strategy": 1, "retryTimeoutMs": 10,
                                               "minRequestAmount": 5, "statIntervalMs": 1000, "threshold": 0.5}])
        for _ in range(3):
            passes(engine, R)
        engine.entry(SVC).exit(error=RuntimeError())
        stats = engine.stats()
        assert stats[R].pass_total == 2 and stats[R].block_total == {"BlockTypeFlowControl": 1}
        assert stats[R].pass_qps == 2.0 and stats[R].block_qps == 1.0
        assert stats[SVC].error_total == 1 and stats[SVC].error_qps == 1.0
        (status,) = engine.breaker_states()
        assert (status.resource, status.state) == (SVC, State.CLOSED)
        clock.advance(1000)
        assert engine.resource_stats(R).pass_qps == 0.0 and engine.resource_stats(R).pass_total == 2
        assert engine.resource_stats("unknown") is None

    def test_resources_beyond_the_limit_share_one_untracked_node(self, clock, metrics):
        engine = Sentinel(clock=clock, system_metrics=metrics, max_resources=2)
        engine.load_rules("flow", [{"resource": "ruled", "threshold": 1}])
        for name in ("a", "b", "c", "d"):
            engine.entry(name).exit()
        assert sorted(engine.stats()) == ["__total_inbound_traffic__", "a", "ruled"]
        assert engine.plan("c") is engine.plan("d")              # the shared overflow plan
        engine.load_rules("flow", [{"resource": "e", "threshold": 0}])
        assert not passes(engine, "e")                           # rules always get their node
        engine.load_rules("isolation", [{"resource": "r.*", "regex": True, "threshold": 1}])
        for n in range(50):                                      # regex matches past the limit: untracked
            engine.entry(f"r{n}")
        assert len(engine.nodes) == 3 and engine._isolation.resources() == ["ruled"]  # known ones only

    def test_plans_are_compiled_once_per_rule_generation(self, engine: Sentinel):
        plan = engine.plan(R)
        assert engine.plan(R) is plan and engine.entry(R) is not None
        engine.load_rules("isolation", [{"resource": R, "threshold": 5}])
        assert engine.plan(R) is not plan and len(engine.plan(R).isolation) == 1


def test_clock_going_backwards_does_not_break_entries(engine: Sentinel, clock):
    engine.load_rules("flow", [{"resource": R, "threshold": 5}])
    entry = engine.entry(R)
    clock.set(T0 - 60_000)
    entry.exit()                                                  # rt clamps to 0, the old bucket is dropped
    assert passes(engine, R)
    assert engine.resource_stats(R).concurrency == 0
