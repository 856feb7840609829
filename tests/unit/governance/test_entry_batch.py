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
        out.append((s.pass_total, s.complete_total, s.error_total, dict(s.block_total), s.concurrency))
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
