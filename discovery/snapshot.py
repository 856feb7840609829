"""On-disk snapshots of a registry view (like Dubbo's registry cache file), shared by the registry sources.

A snapshot is one JSON object with a ``format`` marker naming the source kind and version
(``meshd.zookeeper.snapshot/1``, ``meshd.nacos.snapshot/1``). :func:`write_json_atomic` is atomic (temporary
file in the same directory, fsync, ``os.replace``), so a crash leaves the previous file or the new one, never
half of one. :func:`read_json_snapshot` raises :class:`SnapshotError` naming the file and the problem for
anything it cannot use. What a source keeps inside (raw registry data, so that loading goes through the same
validation as live data) is the source's business. :class:`SnapshotWriter` debounces a source's writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


class SnapshotError(ValueError):
    """The snapshot file is missing, unreadable or not one of ours; the message says which."""


def write_json_atomic(path: str | os.PathLike, doc: dict[str, Any], fmt: str) -> None:
    """Write ``doc`` plus ``{"format": fmt}`` to ``path`` atomically (creating its directory)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps({"format": fmt, **doc}, separators=(",", ":")))   # 2x json.dump's speed
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


class SnapshotWriter:
    """Debounced snapshot writes for one source: at most one write at a time, in a worker thread, the last
    state wins (changes during a write schedule another one).

    ``document()`` builds what to write, on the event loop (it must carry ``saved_at_ms``); ``write(path,
    doc)`` writes it, in a worker thread; a failed write is reported through ``on_error(message)``;
    ``spawn(coro)`` runs the write as one of the source's tasks (so that stopping the source cancels it).
    """

    def __init__(self, path: str | None, delay: float, document: Callable[[], dict[str, Any]],
                 write: Callable[[str, dict[str, Any]], None], on_error: Callable[[str], None],
                 spawn: Callable[[Any], None]) -> None:
        self.path, self.delay = path, delay
        self._document, self._write_fn, self._on_error, self._spawn = document, write, on_error, spawn
        self.dirty = False
        self.writing = False
        self.written_ms: int | None = None
        self._handle: asyncio.TimerHandle | None = None

    def status(self, loaded: int) -> dict[str, Any]:
        """The ``snapshot`` entry of a source's status; ``loaded``: services it restored at start-up."""
        return {"path": self.path, "loaded_services": loaded, "written_at_ms": self.written_ms}

    def schedule(self) -> None:
        """A change to persist: write it after ``delay`` (one write for a burst of changes)."""
        if not self.path:
            return
        self.dirty = True
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self.delay, lambda: self._spawn(self.write()))

    async def write(self) -> None:
        self.cancel()
        if self.writing:
            self.schedule()
            return
        self.dirty, self.writing = False, True
        doc = self._document()
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._write_fn, self.path, doc)
            self.written_ms = doc.get("saved_at_ms")
        except OSError as exc:
            self._on_error(f"writing snapshot {self.path}: {exc}")
        finally:
            self.writing = False
        if self.dirty:
            self.schedule()

    async def flush(self) -> None:
        """Write now what is still to be written (at stop)."""
        self.cancel()
        if self.dirty and not self.writing:
            await self.write()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
