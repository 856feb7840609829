"""The on-disk cache of the last known registry view (like Dubbo's registry cache file).

The file holds the *raw* nodes of every service (provider znode names, their data, configurator names), not
computed endpoints, so that loading it goes through the same validation, rules and warm-up as live data::

    {"format": "meshd.zookeeper.snapshot/1", "source": "zk", "layout": "dubbo", "root": "/dubbo",
     "saved_at_ms": 1700000000000,
     "services": {"org.example.DemoService": {"exists": true, "providers": {"dubbo%3A%2F%2F...": null},
                                              "configurators": ["override%3A%2F%2F..."]}}}

(The atomic write and the checks live in :mod:`discovery.snapshot`.) :func:`write_snapshot` is atomic (temporary file in the same directory, fsync, ``os.replace``), so a crash
leaves the previous file or the new one, never half of one. :func:`read_snapshot` raises
:class:`SnapshotError` naming the file and the problem for anything it cannot use.
"""

from __future__ import annotations

import os

from discovery.snapshot import SnapshotError, read_json_snapshot, write_json_atomic

FORMAT = "meshd.zookeeper.snapshot/1"
__all__ = ["FORMAT", "SnapshotError", "read_snapshot", "write_snapshot"]


def write_snapshot(path: str | os.PathLike, doc: dict) -> None:
    """Write ``doc`` (plus the format marker) to ``path`` atomically."""
    write_json_atomic(path, doc, FORMAT)


def read_snapshot(path: str | os.PathLike, *, layout: str, root: str) -> dict[str, dict]:
    """The services of the snapshot at ``path``, checked to be for the same ``layout`` and ``root``."""
    doc = read_json_snapshot(path, FORMAT)
    if doc.get("layout") != layout or doc.get("root") != root:
        raise SnapshotError(f"snapshot {path}: written for layout {doc.get('layout')!r} root {doc.get('root')!r}, "
                            f"not {layout!r} {root!r}")
    services = doc.get("services")
    if not isinstance(services, dict) or not all(isinstance(v, dict) for v in services.values()):
        raise SnapshotError(f"snapshot {path}: 'services' is not an object of objects")
    return services
