"""On-disk snapshots of a registry view (like Dubbo's registry cache file), shared by the registry sources.

A snapshot is one JSON object with a ``format`` marker naming the source kind and version
(``meshd.zookeeper.snapshot/1``, ``meshd.nacos.snapshot/1``). :func:`write_json_atomic` is atomic (temporary
file in the same directory, fsync, ``os.replace``), so a crash leaves the previous file or the new one, never
half of one. :func:`read_json_snapshot` raises :class:`SnapshotError` naming the file and the problem for
anything it cannot use. What a source keeps inside (raw registry data, so that loading goes through the same
validation as live data) is the source's business.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class SnapshotError(ValueError):
    """The snapshot file is missing, unreadable or not one of ours; the message says which."""


def write_json_atomic(path: str | os.PathLike, doc: dict[str, Any], fmt: str) -> None:
    """Write ``doc`` plus ``{"format": fmt}`` to ``path`` atomically (creating its directory)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"format": fmt, **doc}, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json_snapshot(path: str | os.PathLike, fmt: str) -> dict[str, Any]:
    """The document at ``path``, checked to be an object with ``format == fmt``."""
    try:
        with open(path, encoding="utf-8") as src:
            doc = json.load(src)
    except FileNotFoundError:
        raise SnapshotError(f"snapshot {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"snapshot {path}: unreadable ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise SnapshotError(f"snapshot {path}: not a {fmt} document")
    return doc
