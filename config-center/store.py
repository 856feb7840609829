"""The rule store: one versioned, persisted document per rule kind, whatever source pushed it.

A push (:meth:`RuleStore.push`, or :meth:`RuleStore.push_async`, which checks and builds large documents in
slices between which the event loop serves requests) goes decode → validate → freeze → compare → apply,
atomically:

- a document with any invalid rule is rejected whole, every problem named, and the rules in force stay;
- a document equal to the one in force (same normal form and dialect) is a no-op: no new version, and
  nothing is reloaded, so breaker states and statistics windows are untouched (as Sentinel's datasources);
- otherwise the kind applies it, and it gets the next version of the store's one monotonic counter.

Every push, applied or rejected, is a history entry (source, time, digest, a short diff of the rules added,
removed and changed, or the problems); :meth:`RuleStore.rollback` re-applies an earlier applied document of
a kind as a new version. A kind is owned by at most one source (:meth:`RuleStore.claim`); pushes of other
sources for it are rejected, except the operator's rollbacks and the store's own restore.

Persistence: with a ``state_dir``, the documents rollbacks need (the last :data:`ROLLBACK_DEPTH` applied ones
per kind, the one in force included) are written once each to ``<state_dir>/documents/<kind>-<version>.json``,
and an index (versions in force, history, kept documents) to ``<state_dir>/rules.json`` after every change;
every file is written to a temporary file, fsync'ed, renamed, and its folder fsync'ed. The writes run in a
worker thread, and each document is encoded once, so that persisting a large push does not stall the loop.
:meth:`RuleStore.restore` reads it back at start-up, so a restarted meshd serves the last applied rules even
when every source is unreachable; the restored kinds say so in :meth:`RuleStore.status`.

Threading: every method runs on the event loop's thread (sources post their pushes onto it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generator, Iterable

from config_center.kinds import RuleKind, RuleRejected, decode, diff, digest

log = logging.getLogger("meshd.config_center")

STATE_FILE = "rules.json"            # the index
DOCUMENTS = "documents"              # one file per kept document: <kind>-<version>.json, written once
STATE_FORMAT = 2
HISTORY_LIMIT = 200                  # entries kept (and persisted), oldest dropped first
SHORT_DIFF = 20                      # rule names per list in a history entry's diff (the counts are complete)
ROLLBACK_DEPTH = 10                  # applied documents kept per kind for rollbacks (the one in force included)
#: Sources that may push any kind: the operator's rollback and the store's own restore.
OPERATOR_SOURCES = frozenset({"rollback", "restore"})


@dataclass(slots=True)
class Current:
    """The document in force for one kind."""

    version: int
    source: str
    dialect: str
    normal: Any
    digest: str
    time: float
    restored: bool = False


@dataclass(frozen=True, slots=True)
class PushResult:
    """What became of one push: ``status`` is ``applied``, ``unchanged`` or ``rejected``."""

    kind: str
    status: str
    version: int | None = None
    errors: tuple[str, ...] = ()
    diff: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != "rejected"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "status": self.status, "version": self.version}
        if self.errors:
            out["errors"] = list(self.errors)
        if self.diff:
            out["diff"] = self.diff
        return out


class RuleStore:
    """See the module docstring. ``kinds`` are the kinds served; ``clock`` gives wall time in seconds."""

    def __init__(self, kinds: Iterable[RuleKind], state_dir: str | os.PathLike | None = None, *,
                 clock: Callable[[], float] = time.time, volatile_sources: Iterable[str] = ()) -> None:
        self.kinds = {k.name: k for k in kinds}
        self.state_dir = Path(state_dir) if state_dir is not None else None
        #: sources whose pushes alone do not rewrite the state file (the config file: read at every start)
        self.volatile_sources = frozenset(volatile_sources)
        self.clock = clock
        self.current: dict[str, Current] = {}
        self.owners: dict[str, str] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_LIMIT)
        self._documents: dict[tuple[str, int], tuple[Any, str]] = {}   # (kind, version) → (normal, dialect)
        self.version = 0
        self.applied: dict[tuple[str, str], int] = {}                  # (source, kind) → count
        self.rejected: dict[tuple[str, str], int] = {}
        self.source_records: dict[str, dict[str, Any]] = {}
        self.restore_error = ""
        self.persist_error = ""
        self._dirty = False
        self._written: set[tuple[str, int]] = set()    # documents already on disk
        self._writer: asyncio.Task | None = None
        self._lock: asyncio.Lock | None = None         # one asynchronous push at a time (made on first use)

    # -- ownership -------------------------------------------------------------------------------------
    def claim(self, source: str, kinds: Iterable[str]) -> None:
        """Give ``kinds`` to ``source``: other sources' pushes for them are rejected from now on."""
        for kind in kinds:
            self._kind(kind)
            owner = self.owners.get(kind)
            if owner is not None and owner != source:
                raise ValueError(f"rule kind {kind!r} is owned by source {owner!r}, not {source!r}")
            self.owners[kind] = source

    def _kind(self, name: str) -> RuleKind:
        kind = self.kinds.get(name)
        if kind is None:
            raise KeyError(f"unknown rule kind {name!r}; known: {', '.join(self.kinds)}")
        return kind

    # -- pushes ----------------------------------------------------------------------------------------
    def push(self, source: str, kind_name: str, document: Any, dialect: str | None = None) -> PushResult:
        """Apply ``document`` (bytes/text JSON or JSON values) as the whole rule set of one kind, now."""
        kind = self._kind(kind_name)
        if self._lock is not None and self._lock.locked():
            return self._rejected(source, kind.name, (f"{kind.name}: another push is being applied; try again",))
        steps = self._pipeline(source, kind, document, dialect, sliced=False)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    async def push_async(self, source: str, kind_name: str, document: Any, dialect: str | None = None) -> PushResult:
        """:meth:`push`, in slices for kinds that have them: the event loop serves requests in between, with
        the rules in force, until the new set is swapped in. Pushes are applied one at a time, in order."""
        kind = self._kind(kind_name)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            steps = self._pipeline(source, kind, document, dialect, sliced=True)
            longest = 0.0
            while True:
                started = time.perf_counter()
                try:
                    next(steps)
                except StopIteration as done:
                    result = done.value
                    break
                finally:
                    longest = max(longest, time.perf_counter() - started)
                await asyncio.sleep(0)
        if self.history and self.history[-1]["kind"] == kind.name and self.history[-1]["source"] == source \
                and result.status != "unchanged":
            self.history[-1]["longest_step_ms"] = round(longest * 1000, 3)   # the push's longest hold of the loop
        return result

    def _pipeline(self, source: str, kind: RuleKind, document: Any, dialect: str | None,
                  sliced: bool) -> Generator[None, None, PushResult]:
        """decode → validate → freeze → compare → apply; yields where a sliced push lets the loop run."""
        dialect = dialect or kind.default_dialect
        try:
            owner = self.owners.get(kind.name)
            if owner is not None and owner != source and source not in OPERATOR_SOURCES:
                raise RuleRejected([f"{kind.name}: owned by source {owner!r}; push it there"])
            if kind.dialects and dialect not in kind.dialects:
                raise RuleRejected([f"dialect: must be one of {', '.join(kind.dialects)}, got {dialect!r}"])
            decoded = decode(document)
            if sliced and kind.validate_steps is not None:
                normal = yield from kind.validate_steps(decoded, dialect)
            else:
                normal = kind.validate(decoded, dialect)
            new_digest = digest(normal, dialect)
            current = self.current.get(kind.name)
            if current is not None and current.digest == new_digest:
                self._record_source(source, kind.name, "unchanged", current.version, "")
                return PushResult(kind.name, "unchanged", current.version)
            if current is None and not kind.entries(normal):   # no rules, and none were ever in force
                self._record_source(source, kind.name, "unchanged", None, "")
                return PushResult(kind.name, "unchanged", None)
            if sliced:
                yield
            if sliced and kind.apply_steps is not None:
                yield from kind.apply_steps(normal, dialect)
            else:
                kind.apply(normal, dialect)
        except RuleRejected as exc:
            return self._rejected(source, kind.name, exc.problems)
        if sliced:
            yield
        return self._applied(source, kind, normal, dialect, new_digest, current)

    def _applied(self, source: str, kind: RuleKind, normal: Any, dialect: str, new_digest: str,
                 previous: Current | None) -> PushResult:
        self.version += 1
        new_entries = kind.entries(normal)
        changes = diff(kind.entries(previous.normal) if previous is not None else {}, new_entries)
        now = self.clock()
        self.current[kind.name] = Current(self.version, source, dialect, normal, new_digest, now,
                                          restored=source == "restore")
        self._keep_document(kind.name, self.version, normal, dialect)
        short = {what: names[:SHORT_DIFF] for what, names in changes.items()}
        short["counts"] = {what: len(names) for what, names in changes.items()}
        self._append({"version": self.version, "kind": kind.name, "source": source, "time": now,
                      "status": "applied", "digest": new_digest, "dialect": dialect, "diff": short,
                      "rules": len(new_entries)})
        self.applied[(source, kind.name)] = self.applied.get((source, kind.name), 0) + 1
        self._record_source(source, kind.name, "applied", self.version, "")
        log.info("rules %s v%d from %s: +%d -%d ~%d", kind.name, self.version, source, len(changes["added"]),
                 len(changes["removed"]), len(changes["changed"]))
        if source not in self.volatile_sources:
            self._schedule_persist()
        return PushResult(kind.name, "applied", self.version, (), changes)

    def reject(self, source: str, kind_name: str, problem: str) -> PushResult:
        """Record a document ``source`` could not even decode (counted and kept in the history like any other)."""
        return self._rejected(source, self._kind(kind_name).name, (problem,))

    def _rejected(self, source: str, kind: str, problems: tuple[str, ...]) -> PushResult:
        self.rejected[(source, kind)] = self.rejected.get((source, kind), 0) + 1
        self._append({"version": None, "kind": kind, "source": source, "time": self.clock(),
                      "status": "rejected", "errors": list(problems)})
        self._record_source(source, kind, "rejected", None, "; ".join(problems))
        log.warning("rules %s from %s rejected, the rules in force stay: %s", kind, source, "; ".join(problems))
        if source not in self.volatile_sources:
            self._schedule_persist()
        return PushResult(kind, "rejected", None, problems)

    async def rollback(self, kind_name: str, version: int) -> PushResult:
        """Re-apply the document ``kind_name`` had at ``version`` (as a new version, source ``rollback``)."""
        kind = self._kind(kind_name)
        document = self._documents.get((kind.name, version))
        if document is None:
            kept = sorted(v for k, v in self._documents if k == kind.name)
            return self._rejected("rollback", kind.name, (f"version: no applied {kind.name} document at version "
                                                          f"{version} (kept: {kept or 'none'})",))
        normal, dialect = document
        return await self.push_async("rollback", kind.name, normal, dialect)

    def _keep_document(self, kind: str, version: int, normal: Any, dialect: str) -> None:
        self._documents[(kind, version)] = (normal, dialect)
        kept = sorted(v for k, v in self._documents if k == kind)
        for old in kept[:-ROLLBACK_DEPTH]:
            del self._documents[(kind, old)]

    def _append(self, entry: dict[str, Any]) -> None:
        self.history.append(entry)

    def _record_source(self, source: str, kind: str, result: str, version: int | None, error: str) -> None:
        record = self.source_records.setdefault(source, {})
        record.update({"last_push": self.clock(), "last_kind": kind, "last_result": result})
        if version is not None:
            record["last_version"] = version
        if error:
            record["last_error"] = error

    # -- views -----------------------------------------------------------------------------------------
    def document(self, kind: str) -> Any:
        """The normal form in force for ``kind`` (None when nothing was ever applied)."""
        current = self.current.get(kind)
        return current.normal if current is not None else None

    def history_json(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [dict(e) for e in self.history if kind is None or e["kind"] == kind]

    def status(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "state_dir": str(self.state_dir) if self.state_dir is not None else None,
            "restore_error": self.restore_error or None, "persist_error": self.persist_error or None,
            "kinds": {name: self._kind_status(name) for name in self.kinds},
            "owners": dict(self.owners),
        }

    def _kind_status(self, name: str) -> dict[str, Any]:
        current = self.current.get(name)
        if current is None:
            return {"version": None, "owner": self.owners.get(name)}
        return {"version": current.version, "source": current.source, "dialect": current.dialect,
                "digest": current.digest, "applied_at": current.time, "restored": current.restored,
                "rules": len(self.kinds[name].entries(current.normal)), "owner": self.owners.get(name)}

    # -- persistence -----------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path | None:
        return self.state_dir / STATE_FILE if self.state_dir is not None else None

    def _document_file(self, kind: str, version: int) -> Path:
        return self.state_dir / DOCUMENTS / f"{kind}-{version}.json"

    def snapshot(self) -> dict[str, Any]:
        """The index: versions in force, history, and which documents are kept (each in a file of its own)."""
        return {
            "format": STATE_FORMAT, "version": self.version,
            "current": {k: {"version": c.version, "source": c.source, "dialect": c.dialect, "digest": c.digest,
                            "time": c.time} for k, c in self.current.items()},
            "history": list(self.history),
            "documents": [{"kind": k, "version": v, "dialect": dialect} for (k, v), (_, dialect) in self._documents.items()],
        }

    def restore(self) -> list[str]:
        """Load the state (if any) and put its documents in force; returns the kinds restored."""
        path = self.state_file
        if path is None:
            return []
        for stale in (*path.parent.glob(".*.tmp"), *path.parent.glob(f"{DOCUMENTS}/.*.tmp")):
            stale.unlink(missing_ok=True)                 # writes a crash interrupted: the old files hold
        if not path.exists():
            return []
        try:
            state = json.loads(path.read_text())
            if state.get("format") != STATE_FORMAT:
                raise ValueError(f"format {state.get('format')!r}, expected {STATE_FORMAT}")
            documents = {(d["kind"], int(d["version"])): (json.loads(self._document_file(d["kind"], d["version"])
                                                                     .read_text()), d["dialect"])
                         for d in state.get("documents", [])}
        except (OSError, ValueError, KeyError) as exc:
            self.restore_error = f"{path}: unreadable, starting without persisted rules: {exc}"
            log.error("rules: %s", self.restore_error)
            return []
        self.version = max(self.version, int(state.get("version", 0)))
        self.history.extend(state.get("history", []))
        self._documents.update(documents)
        self._written = set(documents)
        for orphan in path.parent.glob(f"{DOCUMENTS}/*.json"):   # written, but the index never named them
            kind, _, version = orphan.stem.rpartition("-")
            if not version.isdigit() or (kind, int(version)) not in documents:
                orphan.unlink(missing_ok=True)
        restored = []
        for kind_name, entry in state.get("current", {}).items():
            kind = self.kinds.get(kind_name)
            kept = documents.get((kind_name, int(entry["version"])))
            if kind is None or kept is None:
                continue
            try:
                normal = kind.validate(kept[0], entry["dialect"])
                kind.apply(normal, entry["dialect"])
            except RuleRejected as exc:
                self.restore_error = f"{kind_name}: persisted rules no longer valid: {'; '.join(exc.problems)}"
                log.error("rules: %s", self.restore_error)
                continue
            self.current[kind_name] = Current(int(entry["version"]), entry["source"], entry["dialect"], normal,
                                              digest(normal, entry["dialect"]), float(entry["time"]), restored=True)
            restored.append(kind_name)
        log.info("rules: restored %s from %s", ", ".join(restored) or "nothing", path)
        return restored

    def _schedule_persist(self) -> None:
        if self.state_dir is None:
            return
        self._dirty = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write(*self._changes())
            return
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_loop())

    def _changes(self) -> tuple[list[tuple[Path, Any]], dict[str, Any], list[Path]]:
        """What the next write must do: new documents, the index, documents no longer kept."""
        self._dirty = False
        new = [(self._document_file(k, v), d) for (k, v), (d, _) in self._documents.items() if (k, v) not in self._written]
        gone = [self._document_file(k, v) for (k, v) in self._written - self._documents.keys()]
        self._written = set(self._documents)
        return new, self.snapshot(), gone

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._dirty:
            # Each document is encoded once, in the worker thread (documents are never mutated): the loop
            # only builds the small index.
            await loop.run_in_executor(None, self._write, *self._changes())

    def _write(self, new: list[tuple[Path, Any]], index: dict[str, Any], gone: list[Path]) -> None:
        try:
            for path, document in new:
                _write_json(path, document)
            _write_json(self.state_file, index)
            for path in gone:
                path.unlink(missing_ok=True)
            self.persist_error = ""
        except OSError as exc:
            self.persist_error = f"{self.state_dir}: {exc.strerror or exc}"
            log.error("rules: cannot persist: %s", self.persist_error)

    async def flush(self) -> None:
        """Wait until everything applied so far is on disk."""
        while self._writer is not None and not self._writer.done():
            await self._writer


def _write_json(path: Path, value: Any) -> None:
    atomic_write(path, json.dumps(value, separators=(",", ":")).encode())


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
