"""The file rule source on real files: a file per kind or one document, YAML and JSON, deletions, garbage."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from config_center.file import FileRuleSource
from config_center.kinds import RuleKind, mapping_entries
from config_center.source import Sink
from config_center.store import RuleStore


def recording_store() -> tuple[RuleStore, dict[str, list]]:
    """A store whose two kinds record what was applied (documents are JSON objects of anything)."""
    applied: dict[str, list] = {"flow": [], "routes": []}

    def kind(name: str) -> RuleKind:
        def validate(document, dialect):
            if document is not None and not isinstance(document, (dict, list)):
                from config_center.kinds import RuleRejected
                raise RuleRejected([f"{name}: expected an object or array"])
            return document or {}
        return RuleKind(name, validate, lambda normal, dialect: applied[name].append(normal), mapping_entries)

    return RuleStore([kind("flow"), kind("routes")]), applied


def write(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()                       # a distinct mtime even within one coarse timestamp tick
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


async def started(path: Path, kinds=("flow", "routes")) -> tuple[FileRuleSource, RuleStore, dict]:
    store, applied = recording_store()
    source = FileRuleSource("file", str(path), kinds, "go", poll_interval=0.02)
    await source.start(Sink(store, "file", "go"))
    return source, store, applied


async def until(pred, what: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_a_folder_holds_one_file_per_kind_json_or_yaml(tmp_path):
    async def scenario():
        write(tmp_path / "flow.json", json.dumps({"a": 1}))
        write(tmp_path / "routes.yaml", "r1: {timeout: 2s}\n")
        source, store, applied = await started(tmp_path)
        try:
            assert applied == {"flow": [{"a": 1}], "routes": [{"r1": {"timeout": "2s"}}]}
            write(tmp_path / "flow.json", json.dumps({"a": 2}))
            await until(lambda: applied["flow"][-1] == {"a": 2}, "the edited flow file")
            assert store.current["flow"].source == "file" and "flow.json mtime" in source.status()["last_seen"]["flow"]
            (tmp_path / "routes.yaml").unlink()
            await until(lambda: applied["routes"][-1] == {}, "the deleted routes file clearing its kind")
        finally:
            await source.stop()
    asyncio.run(scenario())


def test_one_document_holds_the_kinds_and_a_missing_key_clears_a_seen_kind(tmp_path):
    async def scenario():
        rules = tmp_path / "rules.json"
        write(rules, json.dumps({"flow": {"a": 1}, "routes": {"r": {}}}))
        source, store, applied = await started(rules)
        try:
            assert applied["flow"] == [{"a": 1}] and applied["routes"] == [{"r": {}}]
            write(rules, json.dumps({"flow": {"a": 1}}))
            await until(lambda: applied["routes"][-1] == {}, "routes cleared")
            assert applied["flow"] == [{"a": 1}], "an unchanged kind is not applied again"
        finally:
            await source.stop()
    asyncio.run(scenario())


def test_garbage_is_rejected_and_the_rules_in_force_stay(tmp_path):
    async def scenario():
        write(tmp_path / "flow.yaml", "a: 1\n")
        source, store, applied = await started(tmp_path, kinds=("flow",))
        try:
            write(tmp_path / "flow.yaml", "a: [1, 2\n")
            await until(lambda: store.rejected.get(("file", "flow")) == 1, "the broken file rejected")
            assert applied["flow"] == [{"a": 1}] and store.document("flow") == {"a": 1}
            assert "cannot parse" in source.status()["last_error"]
            assert store.history_json()[-1]["status"] == "rejected"
            write(tmp_path / "flow.yaml", "7\n")
            await until(lambda: store.rejected.get(("file", "flow")) == 2, "a wrong type rejected")
            write(tmp_path / "flow.yaml", "a: 3\n")
            await until(lambda: applied["flow"][-1] == {"a": 3}, "a good file again")
            assert source.status()["last_error"] is None
        finally:
            await source.stop()
    asyncio.run(scenario())


def test_files_missing_at_start_push_nothing(tmp_path):
    async def scenario():
        source, store, applied = await started(tmp_path / "nowhere")
        try:
            await asyncio.sleep(0.1)
            assert applied == {"flow": [], "routes": []} and store.history_json() == []
            assert "not found" in source.status()["last_error"]
        finally:
            await source.stop()
    asyncio.run(scenario())
