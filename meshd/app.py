"""Wiring and lifecycle: build the model, sources, clusters, listeners and admin API; drain; stop.

Start order: model with static clusters → cluster manager → discovery sources (not awaited to sync) →
listeners → admin. ``/ready`` turns 200 once every source synced or its ``sync_timeout`` passed.

Drain (SIGTERM, ``POST /drain``): stop accepting, close idle keep-alive connections, answer in-flight
requests with ``connection: close``, and wait until none is in flight or ``drain_timeout`` passed.
SIGTERM then stops everything and exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import time
from collections import ChainMap
from typing import Any

from pydantic import ValidationError

from discovery.catalog import BY_NAME as SOURCE_TYPES
from discovery.model import ClusterModel, EndpointSpec, assign_instances
from discovery.registration import Registry
from discovery.source import ListenerPublisher, RoutePublisher, Source, SourceContext
from config_center.center import ConfigCenter
from governance import MetricLogWriter
from meshd import __version__, compiled, writebatch
from meshd.accesslog import AccessLog
from meshd.admin import AdminServer
from meshd.auth import TokenError
from meshd.config import (ClusterConfig, Config, ConfigError, DiscoveredRoutes, ListenerConfig, RouteConfiguration,
                          format_errors, load_config)
from meshd.discovery_wire import BoltObjectWire
from meshd.looplag import LoopLagProbe
from meshd.proxy.context import ListenerContext, Runtime
from meshd.proxy.governor import Governor
from meshd.proxy.listener import Listener
from meshd.registry_api import build_registry_apis
from meshd.routing.table import RouteTable
from meshd.runtime_rules import (RulesCollector, build_config_center, cluster_kind, governance_kinds,
                                 load_config_rules, route_kind)
from meshd.sentinel_dashboard import DashboardComponent
from meshd.stats import Stats
from meshd.tls.certs import CertError
from meshd.tls.context import ClientTls, ServerTls
from meshd.tls.registry import TlsRegistry
from meshd.upstream.cluster import ClusterManager

log = logging.getLogger("meshd")

STATIC_SOURCE = "static"


def validate_cluster_entry(entry: Any) -> None:
    """The file source's validator: the full cluster schema, errors as one readable line."""
    try:
        ClusterConfig.model_validate(entry)
    except ValidationError as exc:
        raise ValueError("; ".join(format_errors(exc))) from None


def build_source(spec: Any, config: Config, publish_routes: RoutePublisher | None = None,
                 publish_listeners: ListenerPublisher | None = None) -> Source:
    """The source a ``discovery:`` entry describes, built by its type's factory (:mod:`discovery.catalog`)."""
    route_names = frozenset(lc.route_config.name for lc in config.listeners
                            if isinstance(lc.route_config, DiscoveredRoutes) and lc.route_config.xds == spec.name)
    publishers = {k: v for k, v in (("publish_routes", publish_routes), ("publish_listeners", publish_listeners))
                  if v is not None}
    ctx = SourceContext(resolve_path=lambda path: str(config.resolve_path(path)),
                        validate_cluster=validate_cluster_entry, route_names=route_names, bolt=BoltObjectWire(),
                        **publishers)
    return SOURCE_TYPES[spec.type].build(spec, ctx)


class Meshd:
    """One running sidecar."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.model = ClusterModel(source_order=[STATIC_SOURCE] + [s.name for s in config.discovery])
        self.stats = Stats()
        self.access_log = AccessLog(config.access_log.path)
        self.tls = TlsRegistry()
        self.sources: list[Source] = []
        self.listeners: list[Listener] = []
        self.routes = {rc.name: RouteTable(rc) for rc in config.route_configs}
        self.discovered_routes: dict[str, RouteTable] = {}    # "<source>:<name>" → routes a source serves
        self.listener_errors: dict[str, str] = {}             # discovered listeners that could not be bound
        self._tasks: set[asyncio.Task] = set()
        self.clusters: ClusterManager | None = None
        self.runtime: Runtime | None = None
        self.admin: AdminServer | None = None
        self.rules: ConfigCenter | None = None
        self.extras: list[Any] = []            # registry APIs and other components with start/stop
        self._sync_waits: list[asyncio.Task] = []
        self._sweeper: asyncio.Task | None = None
        self._stopped = asyncio.Event()
        self.ready_reasons: dict[str, str] = {}

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        for c in self.config.clusters:
            self.model.apply(STATIC_SOURCE, c.name, assign_instances(
                EndpointSpec(address=e.address, weight=e.weight, zone=e.zone, priority=e.priority,
                             group=e.metadata.get("group", ""), version=e.metadata.get("version", ""),
                             metadata=e.metadata) for e in c.endpoints))
        for lc in self.config.listeners:
            if lc.tls is not None:
                self._listener_tls(lc)
        admin_tls = self._server_tls("admin", self.config.admin.tls) if self.config.admin.tls is not None else None
        self.clusters = ClusterManager(self.config, self.model, stats=self.stats, tls_for=self._cluster_tls,
                                       marked_tls=True)
        self.stats.clusters = lambda: list(self.clusters.clusters.values())
        self.runtime = Runtime(self.config, self.clusters, self.stats, self.access_log)
        self.runtime.tls = self.tls
        self.stats.registry.register(self.tls)
        self.tls.start()
        self.runtime.governance = self._governor()
        self.rules = self._config_center()
        await self.rules.start()
        for spec in self.config.discovery:
            source = build_source(spec, self.config, self._publish_routes, self._publish_listeners)
            self.sources.append(source)
            if hasattr(source, "collect"):
                self.stats.registry.register(source)
            await source.start(self.model)
            self.ready_reasons[source.name] = "waiting for first sync"
            self._sync_waits.append(asyncio.create_task(self._wait_synced(source, source.sync_timeout)))
        for lc in self.config.listeners:
            await self.add_listener(lc)
        registries = {s.name: s for s in self.sources if isinstance(s, Registry)}
        self.extras = build_registry_apis(self.config.registry_api, registries, self.model, self.listeners,
                                          self.add_listener, resolve_path=self.config.resolve_path)
        if self.config.sentinel_dashboard is not None:
            self.extras.append(self._dashboard(self.config.sentinel_dashboard))
        for extra in self.extras:
            await extra.start()
        self.admin = AdminServer(self.config, self.runtime, self.rules, sources=self.sources,
                                 routes=ChainMap(self.routes, self.discovered_routes),
                                 listeners=self.listeners, listener_errors=self.listener_errors, waiting=self.waiting,
                                 drain=self.drain, tls=admin_tls)
        await self.admin.start()
        log.info("admin on %s", self.admin.bound)
        self._report_hot_path()
        self._sweeper = asyncio.create_task(self._sweep())
        self.loop_lag = LoopLagProbe(self.config.loop_lag_interval)
        self.stats.registry.register(self.loop_lag)
        self.loop_lag.start()
        self.clusters.start_health_checks()   # last: probes must not time out on start-up work
        writebatch.defer(True)                 # the reads of one loop iteration answer in one burst of writes
        # Everything built so far lives as long as the process: keep it out of the cyclic collector's
        # scans, which otherwise walk the whole start-up heap on every older-generation collection.
        gc.freeze()
        # Per-request objects are acyclic and die by reference counting; collect young cycles rarely.
        gc.set_threshold(50_000, 20, 20)

    def _report_hot_path(self) -> None:
        """``meshd_build_info{hot_path}`` and a line at start: compiled, or why not (meshd/compiled.py)."""
        from prometheus_client import Gauge
        hot = compiled.probe()
        Gauge("meshd_build_info", "meshd's version and whether its hot path runs compiled (1)", ["version", "hot_path"],
              registry=self.stats.registry).labels(__version__, hot).set(1)
        if hot == compiled.COMPILED or hot == compiled.PURE:
            log.info("hot path: %s", hot)
        else:
            log.warning("hot path: %s (%s); `make install` rebuilds it", hot, ", ".join(
                f"{name} {how}" for name, how in compiled.status().items() if how != compiled.COMPILED))

    def _governor(self) -> Governor:
        gov = Governor(self.config.governance)
        self.stats.registry.register(gov)
        ml = self.config.governance.metric_log
        if ml is not None:
            gov.metric_log = MetricLogWriter(gov.sentinel, str(self.config.resolve_path(ml.path)),
                                             max_bytes=ml.max_bytes, max_files=ml.backups)
        return gov

    def _config_center(self) -> ConfigCenter:
        """The rule store with the restored state and the config file's rules in force; sources not started."""
        kinds = [*governance_kinds(self.runtime.governance, self.config.governance.dialect),
                 route_kind(self.config.route_configs, self._install_routes), cluster_kind(self.clusters.set_overrides)]
        center = build_config_center(self.config, kinds)
        load_config_rules(center.store, self.config, center.store.restore())
        self.stats.registry.register(RulesCollector(center.store))
        return center

    def _dashboard(self, config: Any) -> DashboardComponent:
        """Sentinel's command center: its rule pushes go through the store as source ``dashboard``."""
        sink = self.rules.sink("dashboard", "java")

        def push(kind: str, rules: Any, dialect: str) -> str | None:
            result = sink.push_now(kind, rules, dialect)
            return None if result.ok else "; ".join(result.errors)

        gov = self.runtime.governance
        return DashboardComponent(config, gov.sentinel, push, on_switch=gov.set_enabled)

    def _install_routes(self, tables: dict[str, RouteTable]) -> None:
        """Swap in route tables compiled with runtime overrides; listeners drop their cached decisions."""
        self.routes.update(tables)
        for listener in self.listeners:
            name = listener.ctx.config.route_config
            if isinstance(name, str) and name in tables:
                _set_routes(listener.ctx, tables[name])

    def _publish_routes(self, source: str, configs: Any) -> str | None:
        """A discovery source's route configurations: all validated like the config file's, then all in force
        on the listeners that take them (``route_config: {xds: <source>, name: <name>}``); None withdraws one."""
        tables, problems = _validated("route configuration", configs, lambda name, config: RouteTable(
            RouteConfiguration.model_validate({**config, "name": name})))
        if problems:
            return problems
        for name, table in tables.items():
            key = f"{source}:{name}"
            if table is None:
                self.discovered_routes.pop(key, None)
            else:
                self.discovered_routes[key] = table
        for listener in self.listeners:
            ref = listener.ctx.config.route_config
            if isinstance(ref, DiscoveredRoutes) and ref.xds == source and ref.name in tables:
                _set_routes(listener.ctx, tables[ref.name])
        return None

    def _publish_listeners(self, source: str, specs: Any) -> str | None:
        """Listeners a discovery source serves: all validated like the config file's, then (re)bound or
        closed in the background; a listener the source no longer serves stops accepting (its open
        connections finish)."""
        configs, problems = _validated("listener", specs, lambda name, spec: ListenerConfig.model_validate(spec))
        if problems:
            return problems
        task = asyncio.ensure_future(self._rebind(configs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def _rebind(self, configs: dict[str, ListenerConfig | None]) -> None:
        for name, lc in configs.items():
            old = next((x for x in self.listeners if x.ctx.config.name == name), None)
            if old is not None and lc is not None and old.ctx.config == lc:
                continue
            if old is not None:
                old.stop_accepting()
                self.listeners.remove(old)
                log.info("listener %s closed (no longer served by discovery)", name)
            if lc is not None:
                try:
                    await self.add_listener(lc)
                except OSError as exc:
                    log.error("listener %s from discovery: cannot bind %s: %s", name, lc.address, exc)
                    self.listener_errors[name] = f"cannot bind {lc.address}: {exc.strerror or exc}"
                else:
                    self.listener_errors.pop(name, None)

    async def _wait_synced(self, source: Source, timeout: float) -> None:
        if await source.wait_synced(timeout):
            self.ready_reasons.pop(source.name, None)
        else:
            log.warning("discovery %s: no sync within %.1fs; ready anyway with what it has", source.name, timeout)
            self.ready_reasons.pop(source.name, None)

    def _listener_tls(self, lc: Any) -> ServerTls:
        """The TLS of listener ``lc`` (files read and checked now: a bad set fails the start, naming the file)."""
        return self._server_tls(f"listener:{lc.name}", lc.tls)

    def _server_tls(self, name: str, spec: Any) -> ServerTls:
        """A server's TLS (a listener's, the admin's) from its ``tls`` block, registered so that it rotates."""
        path = lambda p: str(self.config.resolve_path(p)) if p else None
        tls = ServerTls(name, [(path(c.cert), path(c.key)) for c in spec.certificates], client_ca=path(spec.client_ca),
                        require_client_cert=spec.require_client_cert, allowed_sans=spec.allowed_sans,
                        min_version=spec.min_version, alpn=spec.alpn, spec=spec)
        return self.tls.add(tls)

    def _cluster_tls(self, name: str, spec: Any) -> ClientTls | None:
        """The TLS of cluster ``name`` for its settings' ``tls`` (one context per cluster, rebuilt when it changes)."""
        if spec is None:
            self.tls.materials.pop(f"cluster:{name}", None)
            return None
        key = f"cluster:{name}"
        found = self.tls.client(key)
        if found is not None and found.spec == spec:
            return found
        path = lambda p: str(self.config.resolve_path(p)) if p else None
        tls = ClientTls(key, ca=path(spec.ca), cert=path(spec.cert), key=path(spec.key), sni=spec.sni,
                        verify_san=spec.verify_san, min_version=spec.min_version, alpn=spec.alpn, spec=spec)
        self.tls.add(tls)
        return tls

    async def add_listener(self, lc: Any) -> Listener:
        """Bind one listener (also at runtime: registry APIs add the Bolt port SOFARPC's mesh client uses)."""
        found = self.tls.server(f"listener:{lc.name}") if lc.tls is not None else None
        if lc.tls is not None and (found is None or found.spec != lc.tls):
            self._listener_tls(lc)             # new, or its tls changed (an LDS listener rebound on other secrets)
        ref = lc.route_config
        routes = self.discovered_routes.get(str(ref)) if isinstance(ref, DiscoveredRoutes) else \
            self.routes.get(ref) if ref else None
        listener = Listener(ListenerContext(lc, routes, self.runtime))
        await listener.start()
        self.listeners.append(listener)
        log.info("listener %s (%s) on %s", lc.name, lc.protocol, listener.bound)
        return listener

    @property
    def ready(self) -> bool:
        return not self.waiting()

    def waiting(self) -> dict[str, str]:
        """What ``/ready`` still waits for: sources not synced yet, listeners not bound yet (empty: ready)."""
        reasons = dict(self.ready_reasons)
        bound = {x.ctx.config.name for x in self.listeners}
        unbound = [lc.name for lc in self.config.listeners if lc.name not in bound]
        if unbound:
            reasons["listeners"] = f"not bound yet: {', '.join(unbound)}"
        return reasons

    async def _sweep(self) -> None:
        """Once a second: close idle upstream and downstream connections, flush the access log."""
        while True:
            await asyncio.sleep(1.0)
            self.clusters.sweep(self.runtime.loop.time())
            self.access_log.flush()
            self.runtime.governance.write_metric_log(int(time.time() * 1000))
            now = self.runtime.loop.time()
            for conn in list(self.runtime.connections):
                if conn.idle_expired(now):      # waited on its peer longer than its listener's idle_timeout
                    conn.close()

    async def drain(self, timeout: float | None = None) -> bool:
        """Stop accepting and let in-flight requests finish; True when none was left in flight."""
        rt = self.runtime
        timeout = self.config.drain_timeout if timeout is None else timeout
        if not rt.draining:
            rt.draining = True
            log.info("draining: %d request(s) in flight", rt.in_flight)
            for listener in self.listeners:
                listener.stop_accepting()
        for conn in list(rt.connections):
            if conn.idle:
                conn.close()
        loop = rt.loop
        deadline = loop.time() + timeout
        while rt.in_flight > 0 and loop.time() < deadline:
            await asyncio.sleep(0.02)
            for conn in list(rt.connections):
                if conn.idle:
                    conn.close()
        if rt.in_flight:
            log.warning("drain timeout: %d request(s) still in flight", rt.in_flight)
        return rt.in_flight == 0

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self.loop_lag.stop()
        for t in self._sync_waits:
            t.cancel()
        for t in list(self._tasks):            # a rebind of discovered listeners must not bind after this
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for listener in self.listeners:
            listener.stop_accepting()
        await self.tls.stop()
        for conn in list(self.runtime.connections if self.runtime else ()):
            conn.close()
        for extra in reversed(self.extras):
            await extra.stop()
        for source in self.sources:
            try:
                await source.stop()
            except Exception:
                log.exception("discovery %s: error while stopping", source.name)
        if self.rules is not None:
            await self.rules.stop()
        if self.clusters is not None:
            self.clusters.close()
        if self.admin is not None:
            await self.admin.stop()
        self.access_log.close()
        writebatch.defer(False)
        self._stopped.set()

    async def run_until_signal(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("signal received: draining (up to %.1fs)", self.config.drain_timeout)
        await self.drain()
        await self.stop()


def _validated(what: str, specs: Any, build: Any) -> tuple[dict[str, Any], str]:
    """``build(name, spec)`` for each spec a source publishes (None: withdrawn, kept as None), and every
    validation problem, each naming ``what`` and the name, in one message ("" when there is none)."""
    built: dict[str, Any] = {}
    problems = []
    for name, spec in specs.items():
        try:
            built[name] = None if spec is None else build(name, spec)
        except ValidationError as exc:
            problems.append(f"{what} {name!r}: " + "; ".join(format_errors(exc)))
    return built, "; ".join(problems)


def _set_routes(ctx: ListenerContext, table: RouteTable | None) -> None:
    ctx.routes = table
    ctx.rpc_decisions.clear()
    for plans in ctx.rpc_plans.values():
        plans.clear()


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("kazoo").setLevel(logging.WARNING)


def run_command(path: str, log_level: str = "info") -> int:
    setup_logging(log_level)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{path}: invalid configuration", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 1

    async def main() -> int:
        app = Meshd(config)
        try:
            await app.start()
        except (OSError, CertError, TokenError) as exc:
            log.error("cannot start: %s", exc)
            await app.stop()
            return 1
        await app.run_until_signal()
        return 0

    import uvloop
    return uvloop.run(main())
