"""``entry_batch``: n requests that arrived together enter as n sequential ``entry_many`` calls would.

Two engines get the same rules and the same history; then n requests arrive at one instant. One engine
enters them with ``entry_batch`` (falling back to one ``entry_many`` each when it answers None, as meshd
does), the other one by one. Both must admit the same requests, block the same ones for the same reason,
and leave the same statistics behind, through the completions and beyond.
"""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from governance import BlockError, ManualClock, Sentinel, StaticSystemMetrics

from gov_helpers import T0

SVC = "org.example.Svc"
METHOD = SVC + ":call"


def _engine(rules: dict, clock: ManualClock) -> Sentinel:
    engine = Sentinel(clock=clock, system_metrics=StaticSystemMetrics())
    for kind, (dialect, docs) in rules.items():
        if docs:
            engine.load_rules(kind, docs, dialect=dialect)
    return engine


_FLOW = st.one_of(
    st.builds(lambda t: {"threshold": t}, st.integers(0, 30)),                              # Direct + Reject
    st.builds(lambda t: {"threshold": t, "controlBehavior": 1, "maxQueueingTimeMs": 50}, st.integers(1, 30)),
    st.builds(lambda t: {"threshold": t, "tokenCalculateStrategy": 1, "warmUpPeriodSec": 2},
              st.integers(5, 40)),
)
_RULES = st.fixed_dictionaries({
    "flow": st.lists(st.tuples(st.sampled_from([SVC, METHOD]), _FLOW), max_size=2),
    "isolation": st.lists(st.tuples(st.sampled_from([SVC, METHOD]), st.integers(1, 30)), max_size=1),
    "breaker": st.lists(st.sampled_from([SVC, METHOD]), max_size=2),
    "java_flow": st.lists(st.tuples(st.sampled_from([SVC, METHOD]), st.integers(0, 30)), max_size=1),
})


def _documents(r: dict) -> dict:
    return {
        "flow": ("go", [{"resource": res, **doc} for res, doc in r["flow"]]),
        "isolation": ("go", [{"resource": res, "threshold": t} for res, t in r["isolation"]]),
        "circuit_breaker": ("go", [{"resource": res, "strategy": 1, "retryTimeoutMs": 200, "minRequestAmount": 3,
                                    "statIntervalMs": 1000, "threshold": 0.5} for res in r["breaker"]]),
    } if not r["java_flow"] else {"flow": ("java", [{"resource": res, "count": t, "grade": 1}
                                                    for res, t in r["java_flow"]])}


def _stats(engine: Sentinel) -> list:
    out = []
    for res in (SVC, METHOD):
        s = engine.resource_stats(res)
        out.append(s and (s.pass_total, s.complete_total, s.error_total, dict(s.block_total), s.concurrency))
    return out


@settings(max_examples=300, deadline=None)
@given(rules=_RULES, history=st.lists(st.tuples(st.integers(0, 4), st.booleans(), st.integers(0, 300)), max_size=8),
       n=st.integers(2, 12), held=st.integers(0, 6))
def test_a_batch_admits_blocks_and_counts_what_sequential_entries_do(rules, history, n, held):
    docs = _documents(rules)
    clocks = ManualClock(now_ms=T0), ManualClock(now_ms=T0)
    engines = _engine(docs, clocks[0]), _engine(docs, clocks[1])
    kept: tuple[list, list] = ([], [])
    for count, failing, advance in history:            # the same past on both: passes, errors, time
        for engine, clock, keep in zip(engines, clocks, kept):
            for _ in range(count):
                try:
                    entry = engine.entry_many((SVC, METHOD))
                except BlockError:
                    continue
                if len(keep) < held:
                    keep.append(entry)                   # still in flight when the batch arrives
                else:
                    entry.exit(error=RuntimeError("boom") if failing else None)
            clock.advance(advance)
    batch, single = engines
    entries = batch.entry_batch((SVC, METHOD), n)
    batched = entries is not None
    event("batched" if batched else "one by one")
    results: tuple[list, list] = ([], [])
    if entries is None:
        entries = []
        for _ in range(n):
            try:
                entries.append(batch.entry_many((SVC, METHOD)))
            except BlockError as err:
                results[0].append(err.block_type)
    for _ in range(n):
        try:
            results[1].append(single.entry_many((SVC, METHOD)))
        except BlockError as err:
            results[1].append(err.block_type)
    single_entries = [e for e in results[1] if not isinstance(e, str)]
    assert len(entries) == len(single_entries), (batched, results)
    event("some blocked" if len(single_entries) < n else "all passed")
    assert [r for r in results[0]] == [r for r in results[1] if isinstance(r, str)]
    assert _stats(batch) == _stats(single)
    for engine, clock, mine in ((batch, clocks[0], entries), (single, clocks[1], single_entries)):
        clock.advance(3)
        for i, entry in enumerate(mine):
            entry.exit(error=RuntimeError("boom") if i % 3 == 0 else None)
        for entry in kept[0 if engine is batch else 1]:
            entry.exit()
        clock.advance(5)
    assert _stats(batch) == _stats(single)
    assert [(b.resource, b.state) for b in batch.breaker_states()] == \
        [(b.resource, b.state) for b in single.breaker_states()], "the breakers saw the same completions"


def test_a_batch_is_taken_only_where_the_answer_is_plainly_the_same():
    clock = ManualClock(now_ms=T0)
    engine = _engine({"flow": ("go", [{"resource": METHOD, "threshold": 10}])}, clock)
    entries = engine.entry_batch((SVC, METHOD), 8)
    assert entries is not None and len(entries) == 8
    assert engine.resource_stats(METHOD).concurrency == 8 and engine.resource_stats(METHOD).pass_total == 8
    assert engine.entry_batch((SVC, METHOD), 3) is None, "8 + 3 > 10: one by one"
    assert engine.resource_stats(METHOD).pass_total == 8, "nothing recorded by a batch not taken"
    for entry in entries:
        entry.exit()
    throttled = _engine({"flow": ("go", [{"resource": METHOD, "threshold": 100, "controlBehavior": 1}])}, clock)
    assert throttled.entry_batch((SVC, METHOD), 2) is None, "throttling spaces each request"


def test_a_batch_shares_one_entry_that_takes_one_exit_per_request():
    clock = ManualClock(now_ms=T0)
    engine = _engine({"flow": ("go", [{"resource": METHOD, "threshold": 10}])}, clock)
    entries = engine.entry_batch((SVC, METHOD), 3)
    assert len(entries) == 3 and len({id(e) for e in entries}) == 1
    shared = entries[0]
    shared.exit()
    entries[1].exit_held()
    engine.flush_held()
    assert not shared.exited and engine.resource_stats(METHOD).concurrency == 1
    assert engine.resource_stats(METHOD).complete_total == 2
    shared.exit(error=RuntimeError("boom"))
    assert shared.exited and shared.resources == (SVC, METHOD)
    shared.exit()                                        # one exit too many: a no-op, as for any entry
    stats = engine.resource_stats(METHOD)
    assert (stats.concurrency, stats.complete_total, stats.error_total) == (0, 3, 1)


_BREAKERS = st.lists(st.fixed_dictionaries({
    "resource": st.sampled_from([SVC, METHOD]), "strategy": st.sampled_from([0, 1, 2]),
    "threshold": st.sampled_from([0.2, 0.5, 1.0, 2, 3]), "minRequestAmount": st.integers(1, 12),
    "statIntervalMs": st.sampled_from([1000, 2000]), "maxAllowedRtMs": st.sampled_from([1, 5, 50]),
    "retryTimeoutMs": st.sampled_from([5, 200])}), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(breakers=_BREAKERS, dialect=st.sampled_from(["go", "java"]),
       entries=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6)), min_size=1, max_size=14),
       exits=st.lists(st.tuples(st.booleans(), st.integers(0, 3)), max_size=14), before=st.integers(0, 6))
def test_successes_held_and_recorded_together_leave_what_exits_one_by_one_leave(breakers, dialect, entries, exits,
                                                                               before):
    rules = [{k: v for k, v in b.items() if dialect == "go" or k != "statIntervalMs"} for b in breakers]
    if dialect == "java":
        rules = [{"resource": r["resource"], "grade": {0: 0, 1: 1, 2: 2}[r["strategy"]], "count": r["threshold"] if
                  r["strategy"] != 0 else r["maxAllowedRtMs"], "minRequestAmount": r["minRequestAmount"],
                  "timeWindow": 1, "slowRatioThreshold": 0.5, "statIntervalMs": 1000} for r in rules]
    clocks = ManualClock(now_ms=T0), ManualClock(now_ms=T0)
    engines = []
    for clock in clocks:
        engine = Sentinel(clock=clock, system_metrics=StaticSystemMetrics())
        try:
            engine.load_rules("circuit_breaker", rules, dialect=dialect)
        except Exception:
            return                                       # a combination the dialect refuses
        engines.append(engine)
    for engine, clock in zip(engines, clocks):            # the same past: some errors already counted
        for i in range(before):
            try:
                engine.entry_many((SVC, METHOD)).exit(error=RuntimeError() if i % 2 else None)
            except BlockError:
                pass
        clock.advance(1)
    live: tuple[list, list] = ([], [])
    for count, advance in entries:                        # requests entered at a few different moments
        for engine, clock, mine in zip(engines, clocks, live):
            for _ in range(count):
                try:
                    mine.append(engine.entry_many((SVC, METHOD)))
                except BlockError:
                    mine.append(None)
            clock.advance(advance)
    held, single = engines
    for (failed, advance), a, b in zip(exits, live[0], live[1]):
        if a is None or b is None:
            assert a is b
            continue
        if failed:
            a.exit(error=RuntimeError("boom"))
            b.exit(error=RuntimeError("boom"))
        else:
            a.exit_held()                                 # held, recorded with the next ones like it
            b.exit()
        if advance:
            held.flush_held()                             # a read ends
            for clock in clocks:
                clock.advance(advance)
    held.flush_held()
    event("a breaker left closed" if any(b.state.name != "CLOSED" for b in single.breaker_states()) else "all closed")
    assert _stats(held) == _stats(single)
    assert [(b.resource, b.state, b.next_retry_ms) for b in held.breaker_states()] == \
        [(b.resource, b.state, b.next_retry_ms) for b in single.breaker_states()]


def test_held_successes_that_reach_the_minimum_trip_where_the_first_of_them_would():
    """Errors below minRequestAmount, then successes in one read: the breaker is evaluated at the success
    that reaches the minimum, where the error ratio is highest, exactly as one by one."""
    for held_exits in (False, True):
        clock = ManualClock(now_ms=T0)
        engine = Sentinel(clock=clock, system_metrics=StaticSystemMetrics())
        engine.load_rules("circuit_breaker", [{"resource": METHOD, "strategy": 1, "threshold": 0.5,
                                               "minRequestAmount": 5, "statIntervalMs": 1000,
                                               "retryTimeoutMs": 1000}], dialect="go")
        for _ in range(3):
            engine.entry(METHOD).exit(error=RuntimeError("boom"))
        entries = [engine.entry(METHOD) for _ in range(4)]
        for entry in entries:
            entry.exit_held() if held_exits else entry.exit()
        engine.flush_held()
        # one by one: the 2nd success makes 5 requests, 3 of them errors (0.6 > 0.5): open
        assert [b.state.name for b in engine.breaker_states()] == ["OPEN"], held_exits
