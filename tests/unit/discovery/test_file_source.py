"""The file source: live reloads, broken files keep the previous content, same-size writes in one tick."""

from __future__ import annotations

import asyncio
import os

import pytest

from discovery.file import FileSource, FileSourceError, parse_clusters
from discovery.model import ClusterModel


def clusters_yaml(address: str, weight: int = 100) -> str:
    return f"clusters:\n  - name: c\n    endpoints: [{{address: '{address}', weight: {weight}}}]\n"


def run(coro):
    return asyncio.run(coro)


async def started(path):
    """A FileSource on ``path`` that polls only when a test calls ``_check``, and its model."""
    model = ClusterModel()
    source = FileSource("file", str(path), poll_interval=3600)
    await source.start(model)
    return model, source


def test_same_size_write_within_one_timestamp_tick_is_applied(tmp_path):
    path = tmp_path / "clusters.yaml"
    path.write_text(clusters_yaml("127.0.0.1:10001"))

    async def scenario():
        model, source = await started(path)
        assert list(model.cluster("c").endpoints) == ["127.0.0.1:10001"]
        st = os.stat(path)
        path.write_text(clusters_yaml("127.0.0.1:10002"))           # same size, same inode
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))        # and the same (coarse) timestamp
        source._check()
        endpoints = list(model.cluster("c").endpoints)
        await source.stop()
        return endpoints

    assert run(scenario()) == ["127.0.0.1:10002"]


def test_broken_file_keeps_previous_content_and_is_reported_once(tmp_path):
    path = tmp_path / "clusters.yaml"
    path.write_text(clusters_yaml("127.0.0.1:10001"))

    async def scenario():
        model, source = await started(path)
        path.write_text("clusters: [{name: c, endpoints: [{address: nope}]}]\n")
        source._check()
        source._check()
        await source.stop()
        return list(model.cluster("c").endpoints), source.rejects, source.last_error

    endpoints, rejects, error = run(scenario())
    assert endpoints == ["127.0.0.1:10001"] and rejects == 1
    assert "'nope' is not host:port" in error and "keeping the previous content" in error


def test_parse_tells_versions_at_one_address_apart_and_rejects_true_duplicates():
    text = ("clusters:\n  - name: c\n    endpoints:\n      - {address: '127.0.0.1:1', metadata: {version: v1}}\n"
            "      - {address: '127.0.0.1:1', metadata: {version: v2}}\n")
    clusters, _ = parse_clusters(text, "f.yaml")
    assert sorted(e.key for e in clusters["c"]) == ["127.0.0.1:1#/v1", "127.0.0.1:1#/v2"]
    with pytest.raises(FileSourceError, match="127.0.0.1:1 is listed twice"):
        parse_clusters(text.replace("version: v2", "version: v1"), "f.yaml")
