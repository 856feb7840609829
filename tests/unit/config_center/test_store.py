"""The rule store with the real governance engine: atomic pushes, no-op repeats, versions, history, rollback,
ownership, persistence and restore."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from config_center.kinds import RuleKind, RuleRejected, mapping_entries, sentinel_kind
from config_center.store import DOCUMENTS, STATE_FILE, RuleStore
from governance import BlockError, ManualClock, Sentinel

T0 = 1_700_000_000_000
FLOW = [{"resource": "svc:m", "threshold": 0}]
BREAKER = [{"resource": "svc:m", "strategy": 2, "threshold": 1, "minRequestAmount": 1, "statIntervalMs": 10000,
            "retryTimeoutMs": 60000}]


def engine_store(tmp_path=None, clock=None) -> tuple[Sentinel, RuleStore]:
    engine = Sentinel(clock=clock or ManualClock(now_ms=T0))
    kinds = [sentinel_kind(k, engine.validate_rules, lambda kind, doc, dialect: engine.load_rules(
        kind, doc, dialect=dialect, strict=True)) for k in ("flow", "circuit_breaker")]
    return engine, RuleStore(kinds, state_dir=tmp_path, clock=lambda: 1000.0)


def blocked(engine: Sentinel, resource: str = "svc:m") -> bool:
    try:
        engine.entry(resource).exit()
    except BlockError:
        return True
    return False


def test_a_push_is_applied_versioned_and_in_the_history():
    engine, store = engine_store()
    result = store.push("http", "flow", json.dumps(FLOW).encode(), "go")
    assert (result.status, result.version, result.diff) == ("applied", 1, {"added": ["svc:m#0"], "removed": [],
                                                                           "changed": []})
    assert blocked(engine)
    second = store.push("file", "flow", [{"resource": "svc:m", "threshold": 10}], "go")
    assert (second.status, second.version, second.diff["changed"]) == ("applied", 2, ["svc:m#0"])
    assert not blocked(engine)
    entries = store.history_json("flow")
    assert [(e["version"], e["source"], e["status"]) for e in entries] == [(1, "http", "applied"), (2, "file", "applied")]
    assert entries[1]["digest"] and entries[1]["rules"] == 1 and entries[1]["time"] == 1000.0
    assert store.status()["kinds"]["flow"]["version"] == 2 and store.status()["kinds"]["flow"]["source"] == "file"


def test_a_document_with_any_bad_rule_is_rejected_whole_and_the_old_rules_stay():
    engine, store = engine_store()
    store.push("http", "flow", FLOW, "go")
    bad = [{"resource": "svc:m", "threshold": 100}, {"resource": "x", "threshold": -5}, {"resource": ""}]
    result = store.push("http", "flow", bad, "go")
    assert result.status == "rejected" and result.version is None
    assert len(result.errors) == 2
    assert 'flow rule #1 (resource "x"): threshold: must be >= 0, got -5' in result.errors[0]
    assert "flow rule #2" in result.errors[1] and "resource" in result.errors[1]
    assert blocked(engine), "the rules in force stay in force"
    assert store.current["flow"].version == 1 and store.rejected == {("http", "flow"): 1}
    assert store.history_json()[-1]["status"] == "rejected" and store.history_json()[-1]["errors"] == list(result.errors)
    for garbage, message in ((b"[{", "document: invalid JSON at line 1 column 3"),
                             (b"\xff", "document: not UTF-8"), ({"a": 1}, "flow: expected a JSON array"),
                             ([1], "flow rule #0")):
        result = store.push("http", "flow", garbage, "go")
        assert result.status == "rejected" and result.errors[0].startswith(message), (garbage, result.errors)
    assert store.push("http", "flow", FLOW, "yaml").errors == ("dialect: must be one of go, java, got 'yaml'",)
    assert blocked(engine) and store.version == 1


def test_an_identical_push_is_a_no_op_that_keeps_breaker_state():
    clock = ManualClock(now_ms=T0)
    engine, store = engine_store(clock=clock)
    store.push("zk", "circuit_breaker", BREAKER, "go")
    entry = engine.entry("svc:m")
    entry.exit(error=RuntimeError("boom"))
    assert blocked(engine), "the breaker opened"
    reformatted = json.dumps(BREAKER, indent=4).encode()            # same rules, other bytes
    result = store.push("zk", "circuit_breaker", reformatted, "go")
    assert (result.status, result.version) == ("unchanged", 1)
    assert blocked(engine), "no reload: the open breaker stays open"
    assert len(store.history_json()) == 1
    assert store.push("zk", "circuit_breaker", BREAKER, "java").status == "rejected"   # Java keys differ


def test_an_empty_document_clears_the_kind():
    engine, store = engine_store()
    store.push("http", "flow", FLOW, "go")
    for empty in (b"", b"  ", "[]", None):
        store.push("http", "flow", FLOW, "go")
        result = store.push("http", "flow", empty, "go")
        assert result.status == "applied" and result.diff["removed"] == ["svc:m#0"]
        assert not blocked(engine) and engine.rules("flow") == []


def test_rollback_restores_an_earlier_document_and_its_effect():
    engine, store = engine_store()
    store.push("http", "flow", FLOW, "go")                                   # v1: blocks
    store.push("http", "flow", [{"resource": "svc:m", "threshold": 100}], "go")   # v2: passes
    assert not blocked(engine)
    result = asyncio.run(store.rollback("flow", 1))
    assert (result.status, result.version) == ("applied", 3) and blocked(engine)
    assert store.current["flow"].source == "rollback"
    assert asyncio.run(store.rollback("flow", 99)).errors[0].startswith("version: no applied flow document at version 99")
    assert asyncio.run(store.rollback("flow", 3)).status == "unchanged"


def test_a_kind_has_one_owner():
    engine, store = engine_store()
    store.claim("zk", ["flow"])
    with pytest.raises(ValueError, match="owned by source 'zk'"):
        store.claim("file", ["flow"])
    assert store.push("http", "flow", FLOW, "go").errors == ("flow: owned by source 'zk'; push it there",)
    assert store.push("zk", "flow", FLOW, "go").status == "applied"
    store.push("zk", "flow", [], "go")
    assert asyncio.run(store.rollback("flow", 1)).status == "applied", "an operator's rollback may touch an owned kind"
    with pytest.raises(KeyError, match="unknown rule kind 'routes'"):
        store.push("http", "routes", {}, "")


def test_persisted_rules_survive_a_restart_and_say_so(tmp_path):
    engine, store = engine_store(tmp_path)
    store.push("http", "flow", FLOW, "go")
    store.push("zk", "circuit_breaker", BREAKER, "go")
    store.push("http", "flow", [{"resource": "svc:m", "threshold": 5}], "go")
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["current"]["flow"]["version"] == 3 and len(state["history"]) == 3
    assert sorted(os.listdir(tmp_path / DOCUMENTS)) == ["circuit_breaker-2.json", "flow-1.json", "flow-3.json"]
    assert json.loads((tmp_path / DOCUMENTS / "flow-3.json").read_text())[0]["threshold"] == 5
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")], "the temporary file was renamed"
    (tmp_path / DOCUMENTS / "flow-77.json").write_text("[]")         # a document whose index never got written

    (tmp_path / f".{STATE_FILE}.999.tmp").write_text("{half a wri")   # a crash in the middle of a write
    engine2, store2 = engine_store(tmp_path)
    assert sorted(store2.restore()) == ["circuit_breaker", "flow"]
    assert sorted(os.listdir(tmp_path)) == [DOCUMENTS, STATE_FILE], "the interrupted write's file is removed"
    assert "flow-77.json" not in os.listdir(tmp_path / DOCUMENTS), "so is a document the index does not name"
    assert engine2.rules("flow")[0]["threshold"] == 5 and engine2.rules("circuit_breaker")
    status = store2.status()["kinds"]
    assert status["flow"]["restored"] is True and status["flow"]["version"] == 3 and status["flow"]["source"] == "http"
    assert store2.push("http", "flow", [{"resource": "svc:m", "threshold": 5}], "go").status == "unchanged"
    assert store2.push("http", "flow", FLOW, "go").version == 4, "versions go on from the persisted ones"
    assert asyncio.run(store2.rollback("flow", 3)).status == "applied", "rollback documents are persisted too"


def test_an_unreadable_state_file_is_reported_and_nothing_is_restored(tmp_path):
    (tmp_path / STATE_FILE).write_text("{not json")
    engine, store = engine_store(tmp_path)
    assert store.restore() == [] and "unreadable" in store.status()["restore_error"]
    assert engine.rules("flow") == []


def test_a_kind_that_fails_while_applying_is_rejected_and_unchanged():
    applied: list = []

    def validate(document, dialect):
        return document or {}

    def apply(normal, dialect):
        if "boom" in normal:
            raise RuleRejected(["things: boom cannot be applied"])
        applied.append(normal)

    store = RuleStore([RuleKind("things", validate, apply, mapping_entries)])
    assert store.push("x", "things", {"a": 1}).status == "applied"
    assert store.push("x", "things", {"boom": 1}).errors == ("things: boom cannot be applied",)
    assert applied == [{"a": 1}] and store.document("things") == {"a": 1}


def staged_store() -> tuple[Sentinel, RuleStore]:
    """The flow kind as the daemon builds it: sliced validation and a staged load beside the rules in force."""
    engine = Sentinel(clock=ManualClock(now_ms=T0))
    kind = sentinel_kind("flow", engine.validate_rules,
                         lambda k, doc, dialect: engine.load_rules(k, doc, dialect=dialect, strict=True),
                         stage=engine.stage_rules, build=engine.build_staged,
                         commit=lambda staged, dialect: engine.commit_staged(staged))
    return engine, RuleStore([kind])


def test_a_large_push_is_built_in_slices_and_swapped_in_at_once():
    engine, store = staged_store()
    old = [{"resource": f"svc{i}:m", "threshold": 0} for i in range(1000)]
    new = [{"resource": f"svc{i}:m", "threshold": 1000} for i in range(1000)]
    store.push("http", "flow", old, "go")
    seen: list[set] = []

    async def watch(done: asyncio.Event) -> None:
        while not done.is_set():          # between two slices: every resource still has the old rule, or all the new
            seen.append({r.threshold for r in engine.rule_objects("flow")})
            await asyncio.sleep(0)

    async def scenario():
        done = asyncio.Event()
        watcher = asyncio.ensure_future(watch(done))
        await asyncio.sleep(0)
        result = await store.push_async("http", "flow", new, "go")
        done.set()
        await watcher
        return result

    result = asyncio.run(scenario())
    assert result.status == "applied" and len(result.diff["changed"]) == 1000
    assert len(seen) > 5, "the loop ran between slices"
    assert all(s in ({0.0}, {1000.0}) for s in seen) and seen[0] == {0.0} and seen[-1] == {1000.0}
    assert blocked(engine, "svc7:m") is False


def test_a_sliced_push_names_bad_rules_by_their_index_in_the_whole_document():
    engine, store = staged_store()
    rules = [{"resource": f"svc{i}:m", "threshold": 1} for i in range(1000)]
    rules[450] = {"resource": "bad", "threshold": -1}
    result = asyncio.run(store.push_async("http", "flow", rules, "go"))
    assert result.errors == ('flow rule #450 (resource "bad"): threshold: must be >= 0, got -1',)
    assert engine.rules("flow") == []


def test_clearing_a_kind_that_never_had_rules_is_no_new_version():
    engine, store = engine_store()
    assert store.push("file", "flow", None, "go").status == "unchanged" and store.version == 0


def test_only_the_last_documents_are_kept_on_disk_for_rollbacks(tmp_path):
    from config_center.store import ROLLBACK_DEPTH
    engine, store = engine_store(tmp_path)
    for i in range(ROLLBACK_DEPTH + 5):
        store.push("http", "flow", [{"resource": "svc:m", "threshold": i}], "go")
    files = sorted(os.listdir(tmp_path / DOCUMENTS), key=lambda name: int(name[5:-5]))
    assert files == [f"flow-{v}.json" for v in range(6, ROLLBACK_DEPTH + 6)]
    assert asyncio.run(store.rollback("flow", 5)).errors[0].startswith("version: no applied flow document at version 5")
