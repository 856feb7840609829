"""The ``nacos`` rule source: Sentinel's Nacos datasource layout, read and listened to with the official client.

Layout (Sentinel's ``NacosDataSource(serverAddr, groupId, dataId)`` and the dashboard's convention): the rules of
one kind are the content of one Nacos config, a JSON document, in group ``SENTINEL_GROUP`` of ``namespace``;
``data_ids`` maps meshd's kinds to data ids. Left out, they follow Sentinel's names from ``app``:

=================  ============================  =================================================
kind               data id                       whose name
=================  ============================  =================================================
flow               ``{app}-flow-rules``          Sentinel (dashboard ``FlowRuleNacosPublisher``)
circuit_breaker    ``{app}-degrade-rules``       Sentinel
system             ``{app}-system-rules``        Sentinel
hotspot            ``{app}-param-rules``         Sentinel
isolation          ``{app}-isolation-rules``     meshd's (Sentinel has no Nacos name for it)
routes             ``{app}-meshd-routes``        meshd's
clusters           ``{app}-meshd-clusters``      meshd's
=================  ============================  =================================================

(``kinds`` picks which of them; explicit ``data_ids`` win over the defaults). The source owns those kinds.

Contract, as the other watched sources (:mod:`config_center.source`): ``start`` returns at once; a background
task creates the nacos-sdk-python 3.x client (``v2.nacos.NacosConfigService``, gRPC), reads every data id
(``get_config``, retried until the server answers) and then listens (``add_listener``). Every content read or
pushed is handed, in the order it arrived, to ``sink.push(kind, content)``; the store rejects a bad document
whole and the rules in force stay. A config that was seen and then deleted (the client hands the listener an
empty content: Nacos cannot hold an empty config) clears its kind; a config missing at start pushes nothing,
so the persisted rules stay. Losing the connection changes nothing; the client reconnects by itself,
re-listens with the md5 it holds, and is told of what changed meanwhile (an unchanged document is a no-op
in the store). ``last_seen`` per kind is the content's md5, as Nacos computes it (the client's ``get_config``
and listener give the content only, not the server's md5 or ``lastModified``).

The client keeps a failover/snapshot cache and a log file; both go under ``cache_dir`` (default: the system
temp dir, ``meshd-nacos/{name}``), never the client's ``~/nacos`` and ``~/logs/nacos``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator

from configkit import Duration, Model, Name
from config_center.kinds import ALL_KINDS, CLUSTER_KIND, ROUTE_KIND
from config_center.source import RuleSource, RuleSourceContext, RuleSourceType, Sink
from governance import DIALECTS

log = logging.getLogger("meshd.config_center")

#: Sentinel's data id suffixes (``{app}{suffix}``), and meshd's for the kinds Sentinel has none for.
DATA_ID_SUFFIXES: dict[str, str] = {
    "flow": "-flow-rules", "circuit_breaker": "-degrade-rules", "system": "-system-rules",
    "hotspot": "-param-rules", "isolation": "-isolation-rules",          # isolation: meshd's name
    ROUTE_KIND: "-meshd-routes", CLUSTER_KIND: "-meshd-clusters",
}
CLIENT_LOGGER = "config"                     # nacos-sdk-python's config module logger (Constants.CONFIG_MODULE)


def default_data_ids(app: str, kinds: list[str] | tuple[str, ...] = ALL_KINDS) -> dict[str, str]:
    """Sentinel's data ids for ``app`` (see the module docstring), for ``kinds``."""
    return {kind: f"{app}{DATA_ID_SUFFIXES[kind]}" for kind in dict.fromkeys(kinds)}


class NacosRuleAuth(Model):
    username: str = Field(min_length=1)
    password: SecretStr                      # redacted in /config_dump


class NacosRuleSourceConfig(Model):
    type: Literal["nacos"]
    name: Name = "nacos"
    server_addresses: str = Field(min_length=1)   # "host:port[,host:port]" (HTTP port; gRPC is port + 1000)
    namespace: str = ""                      # "" is the public namespace on every server version
    group: str = Field(default="SENTINEL_GROUP", min_length=1)
    app: str | None = Field(default=None, min_length=1)   # data ids default to Sentinel's {app}-flow-rules, ...
    kinds: list[Literal[ALL_KINDS]] | None = Field(default=None, min_length=1)  # type: ignore[valid-type]
    # explicit data ids: they win over the defaults; with ``app`` but no ``kinds`` they are the only ones
    data_ids: dict[Literal[ALL_KINDS], str] = {}   # type: ignore[valid-type]
    dialect: Literal[DIALECTS] = "java"  # type: ignore[valid-type]  # Sentinel's Nacos datasource documents
    cache_dir: str | None = None             # the client's cache and log; default under the system temp dir
    timeout: Duration = 10.0                 # of one request to the server
    auth: NacosRuleAuth | None = None

    @model_validator(mode="after")
    def _some_data_id(self) -> "NacosRuleSourceConfig":
        if self.kinds is not None and self.app is None:
            missing = [k for k in self.kinds if k not in self.data_ids]
            if missing:
                raise ValueError(f"kinds {missing} have no data id: give `app` (Sentinel's names) or `data_ids`")
        if not self.resolved_data_ids:
            raise ValueError("give `app` (data ids {app}-flow-rules, ...) or `data_ids` (at least one kind)")
        for kind, data_id in self.resolved_data_ids.items():
            if not data_id.strip():
                raise ValueError(f"data id of {kind} is empty")
        return self

    @property
    def resolved_data_ids(self) -> dict[str, str]:
        """kind → data id: the explicit ``data_ids``, plus Sentinel's names from ``app`` for ``kinds``."""
        defaults: dict[str, str] = {}
        if self.app is not None:
            defaults = default_data_ids(self.app, self.kinds if self.kinds is not None
                                        else [k for k in ALL_KINDS if not self.data_ids])
        return {**defaults, **self.data_ids}

    @property
    def owned_kinds(self) -> tuple[str, ...]:
        """The kinds this source owns (no other source may push them)."""
        return tuple(self.resolved_data_ids)


class NacosRuleSource(RuleSource):
    type = "nacos"

    def __init__(self, name: str, server_addresses: str, data_ids: dict[str, str], *, namespace: str = "",
                 group: str = "SENTINEL_GROUP", dialect: str = "java", cache_dir: str | None = None,
                 timeout: float = 10.0, username: str | None = None, password: SecretStr | None = None,
                 retry_delay: float = 0.2) -> None:
        super().__init__(name, tuple(data_ids), dialect)
        self.server_addresses = server_addresses
        self.namespace = namespace
        self.group = group
        self.data_ids = dict(data_ids)
        self.cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), "meshd-nacos", name)
        self.timeout = timeout
        self.username = username
        self.password = password
        self.retry_delay = retry_delay
        self.client: Any = None              # v2.nacos.NacosConfigService once created
        self._by_data_id = {data_id: kind for kind, data_id in self.data_ids.items()}
        self._seen: set[str] = set()
        self._queue: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._listening: list[str] = []
        self._stopping = False

    async def start(self, sink: Sink) -> None:
        self.sink = sink
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name=f"nacos rule source {self.name}"),
                       loop.create_task(self._deliver(), name=f"nacos rule source {self.name} pushes")]

    async def stop(self) -> None:
        self._stopping = True
        runner, deliver = self._tasks or (None, None)
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        client, self.client = self.client, None
        if client is not None:
            for data_id in self._listening:
                try:
                    await client.remove_listener(data_id, self.group, self._on_change)
                except Exception:  # noqa: BLE001 - a shutdown goes on
                    log.debug("removing the Nacos listener of %s", data_id, exc_info=True)
            _cancel_listen(client)
            try:
                await asyncio.wait_for(client.shutdown(), 10)
            except Exception:  # noqa: BLE001 - closing a client that never connected must not fail a shutdown
                log.debug("shutting the Nacos config client down", exc_info=True)
        self._listening = []
        if deliver is not None:
            if not deliver.done():           # pushes already read finish
                await asyncio.wait_for(self._queue.join(), 30)
            deliver.cancel()
            await asyncio.gather(deliver, return_exceptions=True)
        self._tasks = []
        self._release_client_log()
        self.connected = False

    # -- the client's side -----------------------------------------------------------------------------
    def _client_config(self) -> Any:
        from v2.nacos import ClientConfigBuilder
        os.makedirs(self.cache_dir, exist_ok=True)
        builder = (ClientConfigBuilder().server_address(self.server_addresses).namespace_id(self.namespace)
                   .cache_dir(os.path.join(self.cache_dir, "cache")).log_dir(os.path.join(self.cache_dir, "log"))
                   .log_level("WARNING").timeout_ms(int(self.timeout * 1000)).load_cache_at_start(False))
        if self.username:
            builder = builder.username(self.username).password(
                self.password.get_secret_value() if self.password is not None else "")
        return builder.build()

    async def _run(self) -> None:
        from v2.nacos import ConfigParam, NacosConfigService
        try:
            # connects, or retries in the background when the server is down (rpc_client.start)
            self.client = await NacosConfigService.create_config_service(self._client_config())
            for kind, data_id in self.data_ids.items():
                content = await self._read(ConfigParam(data_id=data_id, group=self.group))
                self._on_content(kind, content)
                await self.client.add_listener(data_id, self.group, self._on_change)
                self._listening.append(data_id)
            _kick_listen(self.client)
            while True:                      # the client reconnects by itself; this only tells the status
                self._set_connected(await self._healthy())
                await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a source that fails keeps the rules in force
            self.last_error = f"Nacos client: {exc}"
            log.exception("rule source %s: the Nacos client failed; the rules in force stay", self.name)

    async def _read(self, param: Any) -> str:
        """``get_config``, retried until the server answers ("" when the config does not exist)."""
        delay = self.retry_delay
        while True:
            try:
                content = await self.client.get_config(param)
                self._set_connected(True)
                return content
            except Exception as exc:  # noqa: BLE001 - NacosException, timeouts: the server is not there yet
                self._set_connected(False, f"reading {param.data_id}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _healthy(self) -> bool:
        try:
            return bool(await self.client.server_health())
        except Exception:  # noqa: BLE001
            return False

    def _set_connected(self, connected: bool, problem: str = "") -> None:
        if connected == self.connected:
            return
        self.connected = connected
        if not connected:
            self.last_error = problem or f"Nacos {self.server_addresses} unreachable; the rules in force stay"
            log.warning("rule source %s: %s", self.name, self.last_error)

    async def _on_change(self, tenant: str, group: str, data_id: str, content: str | None) -> None:
        """The client's listener (on the loop, awaited by the client's listen task): queue, never wait."""
        kind = self._by_data_id.get(data_id)
        if kind is not None and group == self.group and not self._stopping:
            self._on_content(kind, content)

    def _on_content(self, kind: str, content: str | None) -> None:
        data_id = self.data_ids[kind]
        if not content:                      # missing, or deleted: Nacos holds no empty config
            self.last_seen[kind] = "no config"
            if kind in self._seen:
                self._seen.discard(kind)
                log.info("rule source %s: %s/%s deleted: %s rules cleared", self.name, self.group, data_id, kind)
                self._queue.put_nowait((kind, None))
            return
        self._seen.add(kind)
        self.last_seen[kind] = f"{self.group}/{data_id} md5 {hashlib.md5(content.encode('utf-8')).hexdigest()}"
        self._queue.put_nowait((kind, content))

    async def _deliver(self) -> None:
        """Pushes, one at a time, in the order the contents arrived."""
        while True:
            kind, content = await self._queue.get()
            try:
                result = await self.sink.push(kind, content)
                self.last_error = "" if result.ok else f"{self.group}/{self.data_ids[kind]}: {'; '.join(result.errors)}"
            except Exception as exc:  # noqa: BLE001 - one failed push must not stop the next ones
                self.last_error = f"{self.group}/{self.data_ids[kind]}: {exc}"
                log.exception("rule source %s: pushing %s", self.name, kind)
            finally:
                self._queue.task_done()

    def _release_client_log(self) -> None:
        """The client adds a file handler to its ``config`` logger per client and never removes it: close ours."""
        logger = logging.getLogger(CLIENT_LOGGER)
        ours = os.path.join(self.cache_dir, "log")
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler) and handler.baseFilename.startswith(ours):
                logger.removeHandler(handler)
                handler.close()

    def status(self) -> dict[str, Any]:
        return {**super().status(), "server_addresses": self.server_addresses, "namespace": self.namespace or "public",
                "group": self.group, "data_ids": dict(self.data_ids)}


# -- client gaps (nacos-sdk-python 3.2.0, v2/nacos/config/remote/config_grpc_client_proxy.py) ------------------
# ``add_listener`` only records the listener: the batch listen that tells the server goes out on the listen
# task's next turn, up to 5 s later (it waits 5 s on ``execute_config_listen_channel``); and ``shutdown`` sets
# ``stop_event`` and then awaits that task, which is in the same 5 s wait. Both are shortened here when the
# client has those attributes; without them the client just takes its 5 s.
def _listen_proxy(client: Any) -> Any:
    return getattr(client, "grpc_client_proxy", None)


def _kick_listen(client: Any) -> None:
    """Have the listen task send the batch listen now (as the client itself does after a change notice)."""
    channel = getattr(_listen_proxy(client), "execute_config_listen_channel", None)
    if isinstance(channel, asyncio.Queue):
        channel.put_nowait(None)


def _cancel_listen(client: Any) -> None:
    """End the listen task before ``shutdown`` awaits it (the task returns on cancellation)."""
    task = getattr(_listen_proxy(client), "listen_task", None)
    if isinstance(task, asyncio.Task) and not task.done():
        task.cancel()


def build(spec: NacosRuleSourceConfig, ctx: RuleSourceContext) -> NacosRuleSource:
    return NacosRuleSource(
        spec.name, spec.server_addresses, spec.resolved_data_ids, namespace=spec.namespace, group=spec.group,
        dialect=spec.dialect, cache_dir=ctx.resolve_path(spec.cache_dir) if spec.cache_dir else None,
        timeout=spec.timeout, username=spec.auth.username if spec.auth else None,
        password=spec.auth.password if spec.auth else None)


SOURCE = RuleSourceType(NacosRuleSourceConfig, NacosRuleSource, build)
