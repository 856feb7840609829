"""The ``zookeeper`` rule source: Sentinel's ZooKeeper datasource layout, watched.

Layout (``sentinel-datasource-zookeeper``'s ``ZookeeperDataSource(serverAddr, groupId, dataId)``): the rules
of one kind are the data of node ``/{group}/{dataId}``, a JSON document; ``data_ids`` maps meshd's kinds to
data ids (``{flow: meshd-flow-rules, routes: meshd-routes}``) and the source owns those kinds.

Each node has a kazoo ``DataWatch``: every change of its data is pushed through the rule store; a node that
was seen and is then deleted clears its kind; a node missing from the start pushes nothing. Losing the
connection, or the session, changes nothing: the rules in force stay, and once connected again the watch
reads the node afresh (an unchanged document is a no-op in the store). kazoo runs the watches in its own
threads; they only post onto the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from kazoo.client import KazooClient, KazooState
from kazoo.recipe.watchers import DataWatch
from pydantic import Field

from configkit import DigestAuth, Duration, Model, Name
from config_center.kinds import ALL_KINDS
from config_center.source import RuleSource, RuleSourceContext, RuleSourceType, Sink
from governance import DIALECTS

log = logging.getLogger("meshd.config_center")


class ZooKeeperRuleSourceConfig(Model):
    type: Literal["zookeeper"]
    name: Name = "zookeeper"
    servers: str = Field(min_length=1)      # "host:port[,host:port][/chroot]"
    group: str = Field(default="SENTINEL_GROUP", pattern=r"^[^/\s]+$")
    data_ids: dict[Literal[ALL_KINDS], str] = Field(min_length=1)  # type: ignore[valid-type]
    dialect: Literal[DIALECTS] = "java"  # type: ignore[valid-type]  # Sentinel's ZooKeeper datasource is Java's
    session_timeout: Duration = 30.0
    auth: DigestAuth | None = None            # redacted in /config_dump

    @property
    def owned_kinds(self) -> tuple[str, ...]:
        """The kinds this source owns (no other source may push them)."""
        return tuple(self.data_ids)


class ZooKeeperRuleSource(RuleSource):
    type = "zookeeper"

    def __init__(self, name: str, servers: str, group: str, data_ids: dict[str, str], dialect: str = "java",
                 session_timeout: float = 30.0, auth: str | None = None) -> None:
        super().__init__(name, tuple(data_ids), dialect)
        self.servers = servers
        self.paths = {kind: f"/{group}/{data_id}" for kind, data_id in data_ids.items()}
        self.session_timeout = session_timeout
        self.auth = auth
        self.client: KazooClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watches: list[DataWatch] = []
        self._seen: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False

    async def start(self, sink: Sink) -> None:
        self.sink = sink
        self._loop = asyncio.get_running_loop()
        self.client = KazooClient(
            hosts=self.servers, timeout=self.session_timeout,
            connection_retry={"max_tries": -1, "delay": 0.1, "backoff": 2, "max_delay": 2.0},
            auth_data=[("digest", self.auth)] if self.auth else None)
        self.client.add_listener(self._on_state)
        self.client.start_async()

    async def stop(self) -> None:
        self._stopping = True
        await asyncio.gather(*self._tasks, return_exceptions=True)   # pushes already under way finish
        client, self.client = self.client, None
        if client is not None:
            await asyncio.get_running_loop().run_in_executor(None, _close, client)
        self.connected = False

    # -- kazoo threads: post, never block ---------------------------------------------------------------
    def _on_state(self, state: str) -> None:
        self._post(self._state_changed, state)
        if state == KazooState.CONNECTED and not self._watches and self.client is not None:
            self.client.handler.spawn(self._install_watches)

    def _install_watches(self) -> None:
        for kind, path in self.paths.items():
            self._watches.append(DataWatch(self.client, path, self._watcher(kind)))

    def _watcher(self, kind: str):
        def on_data(data: bytes | None, stat: Any) -> None:
            self._post(self._on_data, kind, data, stat)
        return on_data

    def _post(self, fn, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed() and not self._stopping:
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:                  # the loop closed meanwhile
                pass

    # -- on the loop -----------------------------------------------------------------------------------
    def _state_changed(self, state: str) -> None:
        self.connected = state == KazooState.CONNECTED
        if not self.connected:
            self.last_error = f"ZooKeeper {state.lower()}; the rules in force stay"
            log.warning("rule source %s: %s", self.name, self.last_error)

    def _on_data(self, kind: str, data: bytes | None, stat: Any) -> None:
        """A watch fired (on the loop): push what the node holds now; pushes apply in the order they fired."""
        if self._stopping:
            return
        path = self.paths[kind]
        if stat is None:                          # no node
            self.last_seen[kind] = "no node"
            if kind in self._seen:
                self._seen.discard(kind)
                log.info("rule source %s: %s deleted: %s rules cleared", self.name, path, kind)
                self._spawn(self._push(kind, None))
            return
        self._seen.add(kind)
        self.last_seen[kind] = f"{path} version {stat.version} mzxid {stat.mzxid}"
        self._spawn(self._push(kind, data or b""))

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push(self, kind: str, document: Any) -> None:
        result = await self.sink.push(kind, document)
        self.last_error = "" if result.ok else f"{self.paths[kind]}: {'; '.join(result.errors)}"

    def status(self) -> dict[str, Any]:
        return {**super().status(), "servers": self.servers, "paths": dict(self.paths)}


def _close(client: KazooClient) -> None:
    try:
        client.stop()
        client.close()
    except Exception:  # noqa: BLE001 - closing a client that never connected must not fail a shutdown
        log.debug("closing the ZooKeeper client", exc_info=True)


def build(spec: ZooKeeperRuleSourceConfig, ctx: RuleSourceContext) -> ZooKeeperRuleSource:
    auth = spec.auth.token() if spec.auth else None
    return ZooKeeperRuleSource(spec.name, spec.servers, spec.group, dict(spec.data_ids), spec.dialect,
                               spec.session_timeout, auth)


SOURCE = RuleSourceType(ZooKeeperRuleSourceConfig, ZooKeeperRuleSource, build)
