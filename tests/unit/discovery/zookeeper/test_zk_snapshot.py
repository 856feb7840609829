"""Snapshot file: atomic write, read-back, and clear errors for anything unusable."""

import json
import os

import pytest

from discovery.zookeeper.snapshot import SnapshotError, read_snapshot, write_snapshot

DOC = {"source": "zk", "layout": "dubbo", "root": "/dubbo", "saved_at_ms": 1,
       "services": {"org.example.S": {"exists": True, "providers": {"n": None}, "configurators": []}}}


def test_write_then_read(tmp_path):
    path = tmp_path / "sub" / "zk.json"
    write_snapshot(path, DOC)
    assert read_snapshot(path, layout="dubbo", root="/dubbo") == DOC["services"]
    assert os.listdir(path.parent) == ["zk.json"]            # no temporary file left behind


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "zk.json"
    write_snapshot(path, DOC)
    with pytest.raises(TypeError):
        write_snapshot(path, {**DOC, "services": {"x": object()}})
    assert read_snapshot(path, layout="dubbo", root="/dubbo") == DOC["services"]
    assert os.listdir(tmp_path) == ["zk.json"]


@pytest.mark.parametrize("content, why", [
    (None, "no such file"),
    ("{not json", "unreadable"),
    (json.dumps({"format": "other"}), "not a meshd.zookeeper.snapshot/1 document"),
    (json.dumps({**DOC, "format": "meshd.zookeeper.snapshot/1", "layout": "sofarpc"}), "written for layout 'sofarpc'"),
    (json.dumps({**DOC, "format": "meshd.zookeeper.snapshot/1", "services": []}), "'services' is not an object"),
])
def test_unusable_snapshots_are_named(tmp_path, content, why):
    path = tmp_path / "zk.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SnapshotError, match=why):
        read_snapshot(path, layout="dubbo", root="/dubbo")
