"""Circuit breaking: the state machine, both dialects' comparisons, probing, rollback and listeners."""

from __future__ import annotations

import pytest

from governance import BlockError, Sentinel, State
from governance.circuitbreaker.breaker import CircuitBreaker
from governance.circuitbreaker.rule import CircuitBreakerRule

from gov_helpers import T0, blocked, passes

R = "abc"
HUGE_RT = 10**9  # G tests complete with base.NewEmptyEntryContext().Rt(): "now - 0", i.e. enormous


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def __call__(self, breaker: CircuitBreaker, old: State, new: State, snapshot) -> None:
        self.events.append((old, new, snapshot))


def make(strategy: int, **fields) -> tuple[CircuitBreaker, Recorder]:
    base = dict(resource=R, strategy=strategy, retry_timeout_ms=3000, min_request_amount=10,
                stat_interval_ms=10000, max_allowed_rt_ms=50, threshold=0.5 if strategy < 2 else 1.0)
    base.update(fields)
    recorder = Recorder()
    return CircuitBreaker(CircuitBreakerRule(**base), R, None, recorder), recorder


@pytest.mark.parametrize("strategy", [0, 1, 2])
class TestGoBreakerPorts:
    """G ``TestSlowRtCircuitBreaker_TryPass`` / ``TestErrorRatioCircuitBreaker_TryPass`` /
    ``TestErrorCountCircuitBreaker_TryPass`` and the ``*_OnRequestComplete`` tables."""

    def failure(self, strategy: int) -> tuple[int, bool]:
        return (HUGE_RT, False) if strategy == 0 else (0, True)

    def test_try_pass_closed(self, strategy):
        breaker, _ = make(strategy)
        assert breaker.try_pass(T0) == 1

    def test_try_pass_probe(self, strategy):
        breaker, recorder = make(strategy)
        breaker.state = State.OPEN
        assert breaker.try_pass(T0) == 2
        assert breaker.state is State.HALF_OPEN
        assert recorder.events == [(State.OPEN, State.HALF_OPEN, None)]

    def test_try_pass_probe_num(self, strategy):
        breaker, _ = make(strategy, probe_num=10)
        breaker.state = State.OPEN
        for _ in range(10):
            assert breaker.try_pass(T0) in (1, 2)
            assert breaker.state is State.HALF_OPEN
            breaker.on_complete(T0, 1, False)
        assert breaker.state is State.CLOSED

    def test_on_request_complete_table(self, strategy):
        breaker, _ = make(strategy)
        rt, err = self.failure(strategy)
        breaker.on_complete(T0, rt, err)                     # less than minRequestAmount
        assert breaker.state is State.CLOSED
        breaker.state = State.HALF_OPEN                      # probe failed
        breaker.on_complete(T0, rt, err)
        assert breaker.state is State.OPEN
        breaker.state = State.HALF_OPEN                      # probe succeeded
        breaker.on_complete(T0, 10, False)
        assert breaker.state is State.CLOSED
        breaker.probe_num = 2                                # ProbeNum_Success
        breaker.state = State.HALF_OPEN
        breaker.on_complete(T0, 10, False)
        assert breaker.state is State.HALF_OPEN and breaker.cur_probe == 1
        breaker.on_complete(T0, rt, err)                     # ProbeNum_Failed
        assert breaker.state is State.OPEN and breaker.cur_probe == 0


def test_transitions_move_next_retry_and_notify():
    # G TestFromClosedToOpen / TestFromHalfOpenToOpen
    breaker, recorder = make(2, min_request_amount=1, threshold=1)
    breaker.on_complete(T0, 0, True)
    assert breaker.state is State.OPEN and breaker.next_retry == T0 + 3000
    assert recorder.events == [(State.CLOSED, State.OPEN, 1)]
    assert breaker.try_pass(T0 + 2999) == 0
    assert breaker.try_pass(T0 + 3000) == 2
    breaker.on_complete(T0 + 3000, 0, True)
    assert breaker.state is State.OPEN and breaker.next_retry == T0 + 6000
    assert recorder.events[-1] == (State.HALF_OPEN, State.OPEN, 1.0)


def degrade(resource: str, **fields) -> list[dict]:
    return [{"resource": resource, **fields}]


def call(engine: Sentinel, clock, resource: str, sleep_ms: int = 0, error: Exception | None = None) -> bool:
    """J's entryAndSleepFor / entryWithErrorIfPresent: enter, let time pass, exit (with the error)."""
    try:
        entry = engine.entry(resource)
    except BlockError:
        return False
    clock.advance(sleep_ms)
    entry.exit(error=error)
    return True


def test_java_exception_ratio_record_error_or_success(engine: Sentinel, clock):
    # J ExceptionCircuitBreakerTest.testRecordErrorOrSuccess
    res = "testRecordErrorOrSuccess"
    engine.load_rules("circuit_breaker", degrade(res, count=0.2, grade=1, statIntervalMs=20000, timeWindow=10,
                                                  minRequestAmount=1), dialect="java")
    boom = ValueError("IllegalArgumentException")
    assert call(engine, clock, res, 10)
    assert call(engine, clock, res, error=boom)          # -> open
    assert not call(engine, clock, res, error=boom)
    assert not call(engine, clock, res, 100)
    clock.advance(5000)
    assert not call(engine, clock, res, 100)
    clock.advance(5000)
    assert call(engine, clock, res, error=boom)          # -> half-open -> open
    assert not call(engine, clock, res, 100)
    assert not call(engine, clock, res, 100)
    clock.advance(10_000)
    assert call(engine, clock, res, 100)                 # -> half-open -> closed
    for _ in range(6):
        assert call(engine, clock, res, 100)
    assert call(engine, clock, res, error=boom)          # 1 error in 8: below 0.2
    assert call(engine, clock, res, 100)


def test_java_slow_ratio_threshold_one_trips_on_equality(engine: Sentinel, clock):
    # J ResponseTimeCircuitBreakerTest.testMaxSlowRatioThreshold
    res = "testMaxSlowRatioThreshold"
    engine.load_rules("circuit_breaker", degrade(res, count=10, grade=0, minRequestAmount=3, slowRatioThreshold=1,
                                                  statIntervalMs=5000, timeWindow=5), dialect="java")
    for _ in range(3):
        assert call(engine, clock, res, 20)
    assert not call(engine, clock, res, 20)              # 3/3 slow == 1.0
    clock.advance(1000)
    assert not call(engine, clock, res, 20)
    clock.advance(4000)
    assert call(engine, clock, res, 20)


class TestDialectComparisons:
    def test_error_ratio_equal_to_threshold(self, engine: Sentinel, clock):
        engine.load_rules("circuit_breaker", degrade("go", strategy=1, retryTimeoutMs=1000, minRequestAmount=2,
                                                     statIntervalMs=1000, threshold=0.5))
        call(engine, clock, "go")
        call(engine, clock, "go", error=RuntimeError())
        assert blocked(engine, "go").kind == "circuit_breaking"           # G: 0.5 >= 0.5
        java = Sentinel(clock=clock, system_metrics=engine.system_metrics)
        java.load_rules("circuit_breaker", degrade("j", grade=1, count=0.5, timeWindow=1, minRequestAmount=2),
                        dialect="java")
        call(java, clock, "j")
        call(java, clock, "j", error=RuntimeError())
        assert passes(java, "j")                                          # J: 0.5 > 0.5 is false

    def test_error_count_equal_to_threshold(self, engine: Sentinel, clock):
        engine.load_rules("circuit_breaker", degrade("go", strategy=2, retryTimeoutMs=1000, minRequestAmount=1,
                                                     statIntervalMs=1000, threshold=2))
        for _ in range(2):
            call(engine, clock, "go", error=RuntimeError())
        assert not passes(engine, "go")                                   # G: 2 >= 2
        engine.load_rules("circuit_breaker", degrade("j", grade=2, count=2, timeWindow=1, minRequestAmount=1),
                          dialect="java")
        for _ in range(2):
            call(engine, clock, "j", error=RuntimeError())
        assert passes(engine, "j")                                        # J: 2 > 2 is false
        call(engine, clock, "j", error=RuntimeError())
        assert not passes(engine, "j")

    def test_slow_ratio_below_one_needs_strictly_greater_in_java(self, engine: Sentinel, clock):
        engine.load_rules("circuit_breaker", degrade("j", grade=0, count=10, slowRatioThreshold=0.5,
                                                     minRequestAmount=2, timeWindow=1), dialect="java")
        call(engine, clock, "j", 20)
        call(engine, clock, "j", 5)
        assert passes(engine, "j")                                        # 0.5 is not > 0.5
        engine.load_rules("circuit_breaker", degrade("g", strategy=0, maxAllowedRtMs=10, threshold=0.5,
                                                     minRequestAmount=2, retryTimeoutMs=1000, statIntervalMs=1000))
        call(engine, clock, "g", 20)
        call(engine, clock, "g", 5)
        assert not passes(engine, "g")                                    # G: 0.5 >= 0.5

    def test_java_rt_threshold_is_rounded_half_up(self, engine: Sentinel, clock):
        engine.load_rules("circuit_breaker", degrade("j", grade=0, count=10.5, minRequestAmount=1,
                                                     slowRatioThreshold=0.0, timeWindow=1), dialect="java")
        assert engine.rule_objects("circuit_breaker")[0].max_allowed_rt_ms == 11
        call(engine, clock, "j", 11)                                       # 11 is not slow (rt > 11)
        assert passes(engine, "j")


class TestHalfOpen:
    def test_go_probe_num_lets_every_request_through_until_enough_successes(self, engine: Sentinel, clock):
        engine.load_rules("circuit_breaker", degrade(R, strategy=2, retryTimeoutMs=1000, minRequestAmount=1,
                                                     statIntervalMs=1000, threshold=1, probeNum=3))
        call(engine, clock, R, error=RuntimeError())
        assert not passes(engine, R)
        clock.advance(1000)
        entries = [engine.entry(R) for _ in range(3)]        # the probe and two more: all pass
        assert engine.breaker_states()[0].state is State.HALF_OPEN
        for entry in entries[:2]:
            entry.exit()
        assert engine.breaker_states()[0].state is State.HALF_OPEN
        entries[2].exit()
        assert engine.breaker_states()[0].state is State.CLOSED

    def test_java_allows_a_single_probe(self, engine: Sentinel, clock):
        engine.load_rules("circuit_breaker", degrade(R, grade=2, count=0, timeWindow=1, minRequestAmount=1),
                          dialect="java")
        call(engine, clock, R, error=RuntimeError())
        clock.advance(1000)
        probe = engine.entry(R)
        assert not passes(engine, R)                          # half-open: everything else is blocked
        probe.exit()
        assert engine.breaker_states()[0].state is State.CLOSED
        assert passes(engine, R)

    def test_probe_blocked_by_a_later_breaker_rolls_back(self, engine: Sentinel, clock):
        events = []
        engine.on_state_change(lambda *args: events.append(args))
        engine.load_rules("circuit_breaker", [
            {"resource": R, "strategy": 2, "retryTimeoutMs": 1000, "minRequestAmount": 1, "statIntervalMs": 1000,
             "threshold": 1},
            {"resource": R, "strategy": 1, "retryTimeoutMs": 5000, "minRequestAmount": 1, "statIntervalMs": 1000,
             "threshold": 0.5},
        ])
        call(engine, clock, R, error=RuntimeError())          # both open
        first, second = engine.breaker_states()
        assert first.state is second.state is State.OPEN
        clock.advance(1000)
        err = blocked(engine, R)                              # the first probes, the second refuses
        assert err.rule.strategy == 1
        first_state = engine.breaker_states()[0]
        assert first_state.state is State.OPEN and first_state.next_retry_ms == T0 + 1000  # not moved
        assert events[-2][1:3] == (State.OPEN, State.HALF_OPEN)
        assert events[-1][1:3] == (State.HALF_OPEN, State.OPEN) and events[-1][4] == 1.0
        blocked(engine, R)                                    # may probe again at once (and is rolled back)
        assert engine.state_change_counts()[(R, "HalfOpen", "Open")] == 2

    def test_probe_of_the_service_rolls_back_when_the_method_blocks(self, engine: Sentinel, clock):
        engine.load_rules("circuit_breaker", degrade("svc", strategy=2, retryTimeoutMs=1000, minRequestAmount=1,
                                                     statIntervalMs=1000, threshold=1))
        engine.load_rules("flow", [{"resource": "svc:m", "threshold": 0}])
        e = engine.entry("svc")
        e.exit(error=RuntimeError())
        clock.advance(1000)
        with pytest.raises(BlockError) as info:
            engine.entry_many(("svc", "svc:m"))
        assert info.value.kind == "flow" and info.value.resource == "svc:m"
        assert engine.breaker_states()[0].state is State.OPEN
        assert engine.resource_stats("svc").block_total == {}
        assert engine.resource_stats("svc:m").block_total == {"BlockTypeFlowControl": 1}


def test_listener_receives_resource_states_rule_and_snapshot(engine: Sentinel, clock):
    seen = []
    engine.on_state_change(lambda res, old, new, rule, snap: seen.append((res, old.label, new.label, snap)))
    engine.on_state_change(lambda *args: 1 / 0)               # a failing listener never breaks the engine
    engine.load_rules("circuit_breaker", degrade(R, strategy=1, retryTimeoutMs=500, minRequestAmount=4,
                                                 statIntervalMs=1000, threshold=0.5))
    for error in (None, None, RuntimeError(), RuntimeError()):
        call(engine, clock, R, error=error)
    clock.advance(500)
    call(engine, clock, R)
    assert seen == [(R, "Closed", "Open", 0.5), (R, "Open", "HalfOpen", None), (R, "HalfOpen", "Closed", None)]
    assert engine.state_change_counts() == {(R, "Closed", "Open"): 1, (R, "Open", "HalfOpen"): 1,
                                            (R, "HalfOpen", "Closed"): 1}


def test_only_passed_requests_complete_into_the_breaker(engine: Sentinel, clock):
    engine.load_rules("flow", [{"resource": R, "threshold": 1}])
    engine.load_rules("circuit_breaker", degrade(R, strategy=2, retryTimeoutMs=500, minRequestAmount=1,
                                                 statIntervalMs=1000, threshold=2))
    call(engine, clock, R, error=RuntimeError())
    assert not passes(engine, R)                              # blocked by flow: no completion recorded
    assert engine.breaker_states()[0].state is State.CLOSED


def test_sliding_breaker_window_with_buckets(engine: Sentinel, clock):
    sliding = {"strategy": 2, "retryTimeoutMs": 1000, "minRequestAmount": 1, "statIntervalMs": 1000, "threshold": 3}
    engine.load_rules("circuit_breaker", [{"resource": "slide", **sliding, "statSlidingWindowBucketCount": 2},
                                          {"resource": "tumble", **sliding}])
    clock.advance(900)
    for res in ("slide", "tumble"):
        for _ in range(2):
            call(engine, clock, res, error=RuntimeError())
    clock.advance(200)                                        # T0 + 1100: the tumbling window restarted
    for res in ("slide", "tumble"):
        call(engine, clock, res, error=RuntimeError())
    assert not passes(engine, "slide")                        # 3 errors within the last second
    assert passes(engine, "tumble")                           # only 1 in the current window
