"""The ``file`` source: clusters from a YAML/JSON file, reloaded live when the file changes.

The file has the shape of the config's ``clusters:`` section: a list of clusters (or a mapping with a
``clusters`` key), each with a ``name``, ``endpoints`` (``address``, ``weight``, ``metadata``, ``zone``,
``priority``) and optionally cluster settings (``lb_policy``, ``subset``, ...) which are handed to the
model as source-provided settings.

The file is polled (``stat`` every ``poll_interval``, 250 ms by default, so a write is applied within
a second without inotify). File timestamps tick coarsely (a few ms), so two writes of the same size
inside one tick look alike to ``stat``: while the file was modified in the last two seconds, its
content hash is compared too. Content is decoded and validated as a whole: a broken file is rejected with
one log line naming the problem and the previous content stays in force.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import logging
import os
from typing import Any, Callable, Literal, Mapping

import yaml

from configkit import Duration, Model, Name
from discovery.model import ClusterModel, EndpointSpec, assign_instances
from discovery.source import Source, SourceContext, SourceType

log = logging.getLogger("meshd.discovery.file")

ENDPOINT_KEYS = {"address", "weight", "metadata", "zone", "priority", "group", "version", "enabled", "health"}

Validator = Callable[[Mapping[str, Any]], None]


class FileSourceError(ValueError):
    pass


def parse_clusters(text: str, origin: str, validate: Validator | None = None
                   ) -> tuple[dict[str, list[EndpointSpec]], dict[str, dict]]:
    """Decode and validate a clusters file → (endpoints by cluster, settings by cluster).

    ``validate`` (optional) checks each cluster mapping against the full cluster schema and raises
    ValueError with a readable message; the built-in checks cover endpoints only.
    """
    try:
        data = json.loads(text) if origin.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise FileSourceError(f"{origin}: cannot parse: {exc}") from None
    if isinstance(data, dict) and "clusters" in data:
        data = data["clusters"]
    if data is None:
        data = []
    if not isinstance(data, list):
        raise FileSourceError(f"{origin}: expected a list of clusters, got {type(data).__name__}")
    clusters: dict[str, list[EndpointSpec]] = {}
    settings: dict[str, dict] = {}
    for i, entry in enumerate(data):
        where = f"{origin}: clusters[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise FileSourceError(f"{where}: expected a mapping with a string 'name'")
        name = entry["name"]
        if name in clusters:
            raise FileSourceError(f"{where}: cluster {name!r} appears twice")
        if validate is not None:
            try:
                validate(entry)
            except ValueError as exc:
                raise FileSourceError(f"{where} ({name}): {exc}") from None
        endpoints = entry.get("endpoints") or []
        if not isinstance(endpoints, list):
            raise FileSourceError(f"{where}.endpoints: expected a list")
        specs = [_endpoint(e, f"{where}.endpoints[{j}]") for j, e in enumerate(endpoints)]
        try:
            clusters[name] = assign_instances(specs)
        except ValueError as exc:
            raise FileSourceError(f"{where} ({name}): {exc}") from None
        rest = {k: v for k, v in entry.items() if k not in ("name", "endpoints")}
        if rest:
            settings[name] = rest
    return clusters, settings


def _endpoint(entry: Any, where: str) -> EndpointSpec:
    if not isinstance(entry, dict):
        raise FileSourceError(f"{where}: expected a mapping")
    unknown = set(entry) - ENDPOINT_KEYS
    if unknown:
        raise FileSourceError(f"{where}: unknown key(s) {sorted(unknown)}")
    metadata = entry.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise FileSourceError(f"{where}.metadata: expected a mapping")
    try:
        return EndpointSpec(
            address=str(entry.get("address", "")),
            weight=int(entry.get("weight", 100)),
            zone=str(entry.get("zone", "")),
            priority=int(entry.get("priority", 0)),
            group=str(entry.get("group", metadata.get("group", ""))),
            version=str(entry.get("version", metadata.get("version", ""))),
            enabled=bool(entry.get("enabled", True)),
            metadata={str(k): str(v) for k, v in metadata.items()},
        )
    except (TypeError, ValueError) as exc:
        raise FileSourceError(f"{where}: {exc}") from None


class FileSource(Source):
    kind = "file"

    def __init__(self, name: str, path: str, poll_interval: float = 0.25, validate: Validator | None = None) -> None:
        super().__init__(name)
        self.path = path
        self.poll_interval = poll_interval
        self.validate = validate
        self._task: asyncio.Task | None = None
        self._seen: tuple | None = None
        self._digest: bytes | None = None       # of the content last read
        self.loads = 0
        self.rejects = 0

    async def start(self, model: ClusterModel) -> None:
        self.model = model
        self._check()
        self.mark_synced()                    # a missing or broken file is a (logged) empty view, not a hang
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            self._check()

    def _check(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._seen != ("missing",):
                self._seen = ("missing",)
                self.last_error = f"{self.path}: file not found; keeping the last loaded clusters"
                log.warning("discovery %s: %s", self.name, self.last_error)
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._seen:
            if time.time() - st.st_mtime > 2.0 or self._content_digest() == self._digest:
                return
        self._seen = stamp
        self.reload()

    def _content_digest(self) -> bytes | None:
        try:
            with open(self.path, "rb") as f:
                return hashlib.sha1(f.read()).digest()
        except OSError:
            return None

    def reload(self) -> bool:
        """Read, validate and apply the file now; False (and the old content kept) when it is broken."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
            self._digest = hashlib.sha1(raw).digest()
            clusters, settings = parse_clusters(raw.decode(), self.path, self.validate)
        except (OSError, UnicodeDecodeError, FileSourceError) as exc:
            self.rejects += 1
            self.last_error = f"{exc}; keeping the previous content"
            log.error("discovery %s: rejected %s", self.name, self.last_error)
            return False
        assert self.model is not None
        diffs = self.model.replace_source(self.name, clusters, settings)
        self.loads += 1
        self.last_error = ""
        log.info("discovery %s: loaded %d cluster(s) from %s (%d changed)", self.name, len(clusters), self.path,
                 len(diffs))
        return True

    def status(self) -> dict[str, Any]:
        return {**super().status(), "path": self.path, "loads": self.loads, "rejects": self.rejects}


class FileSourceConfig(Model):
    """``discovery: - type: file``."""

    type: Literal["file"]
    name: Name = "file"
    path: str
    poll_interval: Duration = 0.25           # reload within 1 s of a write, cheaply


def build(spec: FileSourceConfig, ctx: SourceContext) -> FileSource:
    return FileSource(spec.name, ctx.resolve_path(spec.path), spec.poll_interval, ctx.validate_cluster)


SOURCE = SourceType(FileSourceConfig, FileSource, build)
