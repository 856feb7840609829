"""The ``file`` rule source: rule documents in files, watched.

``path`` is either a folder with one file per kind (``flow.json``, ``circuit_breaker.yaml``, ``routes.json``;
``.json``, ``.yaml`` or ``.yml``), or one file holding a mapping of kinds to documents
(``{"flow": [...], "circuit_breaker": [...]}``), of which the source takes the kinds it owns.

Watching is by polling (``stat`` every ``poll_interval``; while a file changed in the last two seconds its
content digest is compared too, because timestamps tick too coarsely to tell quick writes apart). A
changed file is read and pushed whole; one the source cannot parse is a rejected push (the rules in
force stay); a file (or, in a single document, a kind's key) that was seen and then disappears clears the
kind, as Sentinel's file datasource does. A file missing from the start pushes nothing: the rules restored
from the store's state, or the config file's, stay.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from configkit import Duration, Model, Name
from config_center.kinds import ALL_KINDS
from config_center.source import RuleSource, RuleSourceContext, RuleSourceType, Sink
from governance import DIALECTS

log = logging.getLogger("meshd.config_center")

EXTENSIONS = (".json", ".yaml", ".yml")
_MISSING = ("missing",)
_UNREADABLE = object()


class FileRuleSourceConfig(Model):
    type: Literal["file"]
    name: Name = "file"
    path: str                                 # a folder (a file per kind) or one file (a mapping of kinds)
    kinds: list[Literal[ALL_KINDS]] = Field(default=list(ALL_KINDS), min_length=1)  # type: ignore[valid-type]
    dialect: Literal[DIALECTS] = "go"  # type: ignore[valid-type]  # of the Sentinel kinds' documents
    poll_interval: Duration = 0.02           # a write applies within ~20 ms; a stat per file per tick costs µs

    @property
    def owned_kinds(self) -> tuple[str, ...]:
        """The kinds this source owns (no other source may push them)."""
        return tuple(dict.fromkeys(self.kinds))


class FileRuleSource(RuleSource):
    type = "file"

    def __init__(self, name: str, path: str, kinds: tuple[str, ...], dialect: str = "go",
                 poll_interval: float = 0.25) -> None:
        super().__init__(name, kinds, dialect)
        self.path = Path(path)
        self.poll_interval = poll_interval
        self._stamps: dict[Path, tuple] = {}
        self._digests: dict[Path, bytes] = {}
        self._seen: set[str] = set()            # kinds whose document was read at least once
        self._task: asyncio.Task | None = None

    async def start(self, sink: Sink) -> None:
        self.sink = sink
        self.connected = True
        await self.check()
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            await self.check()

    # -- reading ---------------------------------------------------------------------------------------
    async def check(self) -> None:
        """Look at the file(s) now and push what changed."""
        if self.path.is_dir():
            for kind in self.kinds:
                await self._check_file(self._kind_file(kind), (kind,))
        else:
            await self._check_file(self.path, self.kinds)

    def _kind_file(self, kind: str) -> Path:
        for ext in EXTENSIONS:
            candidate = self.path / f"{kind}{ext}"
            if candidate.exists():
                return candidate
        return self.path / f"{kind}.json"

    async def _check_file(self, path: Path, kinds: tuple[str, ...]) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            if self._stamps.get(path) != _MISSING:
                self._stamps[path] = _MISSING
                self._digests.pop(path, None)
                gone = [k for k in kinds if k in self._seen]
                self.last_error = f"{path}: not found" + ("; its kinds are cleared" if gone else "")
                for kind in gone:
                    self._seen.discard(kind)
                    await self._deliver(kind, None, "deleted")
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamps.get(path) and (time.time() - st.st_mtime > 2.0 or
                                                self._digest(path) == self._digests.get(path)):
            return
        self._stamps[path] = stamp
        await self._read(path, kinds, st.st_mtime_ns)

    @staticmethod
    def _digest(path: Path) -> bytes | None:
        try:
            return hashlib.sha1(path.read_bytes()).digest()
        except OSError:
            return None

    async def _read(self, path: Path, kinds: tuple[str, ...], mtime_ns: int) -> None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            self.last_error = f"{path}: cannot read: {exc.strerror}"
            return
        self._digests[path] = hashlib.sha1(raw).digest()
        seen = f"{path.name} mtime {mtime_ns}"
        value = self._parse(path, raw)
        if value is _UNREADABLE:
            for kind in kinds:
                await self._deliver(kind, _UNREADABLE, seen)
            return
        if len(kinds) == 1 and path != self.path:
            await self._deliver(kinds[0], value, seen)
            return
        if value is not None and not isinstance(value, dict):
            self.last_error = f"{path}: expected a mapping of rule kinds to documents, got {type(value).__name__}"
            for kind in kinds:
                self.sink.reject(kind, self.last_error)
            return
        for kind in kinds:
            if value and kind in value:
                await self._deliver(kind, value[kind], seen)
            elif kind in self._seen:
                self._seen.discard(kind)
                await self._deliver(kind, None, f"{seen} (no {kind} key)")

    def _parse(self, path: Path, raw: bytes) -> Any:
        try:
            if path.suffix in (".yaml", ".yml"):
                return yaml.safe_load(raw.decode("utf-8"))
            return json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
            self.last_error = f"{path}: cannot parse: {str(exc).splitlines()[0]}"
            return _UNREADABLE

    async def _deliver(self, kind: str, document: Any, seen: str) -> None:
        self.last_seen[kind] = seen
        if document is _UNREADABLE:
            self.sink.reject(kind, self.last_error)
            return
        if document is not None:
            self._seen.add(kind)
        result = await self.sink.push(kind, document)
        self.last_error = "; ".join(result.errors) if not result.ok else ""

    def status(self) -> dict[str, Any]:
        return {**super().status(), "path": str(self.path)}


def build(spec: FileRuleSourceConfig, ctx: RuleSourceContext) -> FileRuleSource:
    return FileRuleSource(spec.name, ctx.resolve_path(spec.path), spec.owned_kinds, spec.dialect,
                          spec.poll_interval)


SOURCE = RuleSourceType(FileRuleSourceConfig, FileRuleSource, build)
