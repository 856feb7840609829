"""Cluster runtimes: the data plane's view of each cluster, kept current from the model's diffs.

The :class:`ClusterManager` subscribes to the :class:`~discovery.model.ClusterModel` and keeps one
:class:`ClusterRuntime` per cluster: its settings (static config, else source-provided settings, else
``cluster_defaults``), its :class:`~meshd.upstream.host.Host` objects by address (updated in place from
diffs so pools and counters survive metadata changes), the subset index (updated from the same diffs),
an outlier detector and an active health checker.

Picking a host (:meth:`ClusterRuntime.pick`) is a plain function: subset lookup for the request's
metadata (with fallbacks), zone preference, the lowest priority level with healthy hosts, the panic
threshold, then that host set's balancer, avoiding hosts a retry already tried. Host sets and their
balancers are cached per metadata and rebuilt only after the hosts or their health changed.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import time
from typing import Any, Callable, Collection, Mapping

from pydantic import ValidationError

from discovery.model import ClusterDiff, ClusterModel
from meshd.codec.outcome import Outcome
from meshd.config import ClusterConfig, ClusterSettings, ClusterTls, Config
from meshd.routing.balancer import Balancer, make_balancer
from meshd.routing.subset import Selection, SubsetIndex
from meshd.upstream.health import HealthChecker
from meshd.upstream.host import Host
from meshd.upstream.outlier import OutlierDetector

log = logging.getLogger("meshd.cluster")

_EPOCHS = itertools.count()                    # unique across clusters: a re-created cluster never reuses one


class HostSet:
    """A list of candidate hosts with its balancer, rebuilt when the hosts or their health change."""

    __slots__ = ("hosts", "balancer")

    def __init__(self, hosts: list[Host], policy: str, rng: random.Random, run: int = 1) -> None:
        self.hosts = hosts
        self.balancer: Balancer = make_balancer(policy, hosts, rng, run)


#: The endpoint metadata a Dubbo provider URL carries when its protocol serves TLS (``ProtocolConfig.sslEnabled``:
#: ``CommonConstants.SSL_ENABLED_KEY``). SOFARPC publishes no such marker for Bolt (sofa-bolt's TLS is a
#: process-wide ``bolt.server.ssl.enable``), so there only the cluster's ``tls`` decides.
TLS_MARKER = "ssl-enabled"


class ClusterRuntime:
    __slots__ = ("name", "rng", "clock", "stats_sink", "hosts", "active_requests", "active_retries", "connections",
                 "pending", "stats", "attempts", "retry_attempts", "_sets", "_health_epoch", "health", "settings",
                 "max_requests", "request_metadata", "subsets", "outlier", "local_zone", "epoch", "request_selects",
                 "tls", "marked_tls")

    def tls_for(self, host: Host) -> Any:
        """The TLS to dial ``host`` with: the cluster's (for every endpoint, or with ``tls.endpoints: marked``
        for those whose registry entry says they serve TLS), else the default for such marked endpoints."""
        metadata = host.endpoint.metadata
        if self.tls is not None:
            spec = self.settings.tls
            if spec.endpoints == "all" or all(metadata.get(k) == v for k, v in spec.marker.items()):
                return self.tls
            return None
        return self.marked_tls if metadata.get(TLS_MARKER) == "true" else None

    def __init__(self, name: str, settings: ClusterSettings, rng: random.Random,
                 clock: Callable[[], float] = time.monotonic, stats: Any = None) -> None:
        self.name = name
        self.rng = rng
        self.clock = clock
        self.stats_sink = stats
        self.tls: Any = None                   # meshd.tls.context.ClientTls: dial the endpoints with TLS
        self.marked_tls: Any = None            # what an endpoint marked TLS by its registry entry is dialled with
        self.hosts: dict[str, Host] = {}
        self.active_requests = 0
        self.active_retries = 0
        self.connections = 0                   # open + connecting upstream connections (all pools)
        self.pending = 0                       # requests waiting for a connection (all pools)
        self.stats = {"requests": 0, "no_healthy": 0, "overflow": 0, "retries": 0, "retry_overflow": 0,
                      "ejections": 0}
        self.attempts: dict[str, int] = {}         # first tries by outcome value
        self.retry_attempts: dict[str, int] = {}
        self._sets: dict[tuple, HostSet] = {}
        self._health_epoch = float("inf")      # the earliest moment an ejection ends
        self.health: HealthChecker | None = None
        self.configure(settings)

    def configure(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.max_requests = settings.circuit_breakers.max_requests
        self.request_metadata = settings.subset.request_metadata
        self.subsets = SubsetIndex(settings.subset)
        for host in self.hosts.values():
            self.subsets.add(host)
        od = settings.outlier_detection
        self.outlier = OutlierDetector(od, self.clock, lambda: list(self.hosts.values()), self._ejected) \
            if od is not None else None
        zone = settings.zone_aware
        self.local_zone = (zone.local_zone or os.environ.get("MESHD_ZONE", "")) if zone else ""
        self.invalidate()

    # -- model diffs ---------------------------------------------------------------------------------
    def apply(self, diff: ClusterDiff) -> list[Host]:
        """Update hosts (and the subset index) from a diff; returns the removed hosts (pools to close)."""
        added, removed, changed = [], [], []
        for ep in diff.added:
            host = self.hosts[ep.key] = Host(ep, self.name)
            added.append(host)
        for _, ep in diff.changed:
            host = self.hosts.get(ep.key)
            if host is None:
                host = self.hosts[ep.key] = Host(ep, self.name)
                added.append(host)
            else:
                host.update(ep)
                changed.append(host)
        for ep in diff.removed:
            host = self.hosts.pop(ep.key, None)
            if host is not None:
                removed.append(host)
        self.subsets.apply(added, removed, changed)
        self.invalidate()
        return removed

    def invalidate(self) -> None:
        """Host set or health changed: host sets and balancers are rebuilt on next use, and what was
        derived from the hosts elsewhere (an RPC plan's subset selection) sees a new ``epoch``."""
        self._sets.clear()
        self.epoch = next(_EPOCHS)
        declared = self.subsets.declared
        # an RPC request's own version/group select among the hosts (see meshd.proxy.rpc)
        self.request_selects = bool(self.request_metadata and (declared["version"] or declared["group"]))

    # -- picking -------------------------------------------------------------------------------------
    def pick(self, metadata: Mapping[str, str] | None = None, exclude: Collection[Host] = ()) -> Host | None:
        now = self.clock()
        if now >= self._health_epoch:
            self._sets.clear()                # an outlier ejection ended: recompute health
        if type(metadata) is Selection:
            key = metadata.key
        else:
            key = tuple(sorted(metadata.items())) if metadata else ()
        hs = self._sets.get(key)
        if hs is None:
            hs = self._sets[key] = self._build(metadata, now)
        return hs.balancer.pick(exclude)

    def candidates(self, metadata: Mapping[str, str] | None) -> list[Host]:
        """The hosts a request with ``metadata`` may use, after subset fallbacks (health not applied)."""
        if not metadata:
            return list(self.hosts.values())
        hosts = self.subsets.lookup(metadata)
        return list(self.hosts.values()) if hosts is None else hosts

    def _build(self, metadata: Mapping[str, str] | None, now: float) -> HostSet:
        hosts = self.candidates(metadata)
        ends = [h.ejected_until for h in self.hosts.values() if h.ejected_until > now]
        self._health_epoch = min(ends) if ends else float("inf")
        if self.local_zone:
            hosts = self._zone_preferred(hosts, now)
        chosen = _priority_hosts(hosts, now, self.settings.panic_threshold)
        return HostSet(chosen, self.settings.lb_policy, self.rng, self.settings.requests_per_pick)

    def _zone_preferred(self, hosts: list[Host], now: float) -> list[Host]:
        """Local-zone hosts when enough of them are healthy; otherwise everything (spill over)."""
        local = [h for h in hosts if h.endpoint.zone == self.local_zone]
        if not local:
            return hosts
        healthy = sum(1 for h in local if h.healthy(now))
        if healthy and 100.0 * healthy / len(local) >= self.settings.zone_aware.min_healthy_percent:
            return local
        return hosts

    # -- outcomes, health, accounting ----------------------------------------------------------------
    def record(self, host: Host, outcome: Outcome, status: int | None, http: bool) -> None:
        """One finished attempt on ``host``: feeds outlier detection."""
        if self.outlier is not None and self.outlier.record(host, outcome, status, http):
            self.invalidate()

    def attempt_finished(self, host: Host, outcome: Outcome, status: int | None, http: bool, retry: bool) -> None:
        """One attempt on ``host`` ended: host counters, outlier detection, attempt counts."""
        host.active_requests -= 1
        host.requests += 1
        if outcome.failed:
            host.errors += 1
        if self.outlier is not None:
            self.record(host, outcome, status, http)
        counts = self.retry_attempts if retry else self.attempts
        value = outcome._value_                # a str key: enum members hash through a Python method
        counts[value] = counts.get(value, 0) + 1

    def _ejected(self, host: Host, duration: float) -> None:
        self.stats["ejections"] += 1
        if self.stats_sink is not None:
            self.stats_sink.outlier_ejections.labels(self.name).inc()
        log.warning("cluster %s: ejected %s for %.1fs (ejection #%d)", self.name, host.address, duration,
                    host.ejections)

    def health_changed(self, host: Host, healthy: bool) -> None:
        if self.stats_sink is not None:
            self.stats_sink.health_changes.labels(self.name, "true" if healthy else "false").inc()
        self.invalidate()

    def retry_allowed(self) -> bool:
        """Envoy's retry circuit breaker: max concurrent retries, or a retry budget of active requests."""
        cb = self.settings.circuit_breakers
        if cb.retry_budget is not None:
            budget = max(cb.retry_budget.min_retry_concurrency,
                         self.active_requests * cb.retry_budget.budget_percent / 100.0)
            return self.active_retries < budget
        return self.active_retries < cb.max_retries

    def may_connect(self, pool_connections: int) -> bool:
        """max_connections is cluster-wide; a pool with no connection may always open one (as Envoy)."""
        return pool_connections == 0 or self.connections < self.settings.circuit_breakers.max_connections

    def may_wait(self) -> bool:
        return self.pending < self.settings.circuit_breakers.max_pending_requests

    def overflowed(self, kind: str) -> None:
        if kind != "retries":
            self.stats["overflow"] += 1
        if self.stats_sink is not None:
            self.stats_sink.overflow.labels(self.name, kind).inc()

    def to_json(self) -> dict:
        now = self.clock()
        return {
            "name": self.name, "lb_policy": self.settings.lb_policy,
            "active_requests": self.active_requests, "connections": self.connections, "pending": self.pending,
            "stats": dict(self.stats),
            "subsets": self.subsets.describe() if self.settings.subset.selectors else {},
            "endpoints": [h.to_json(now) for h in sorted(self.hosts.values(), key=lambda h: h.key)],
        }

    def close(self) -> None:
        if self.health is not None:
            self.health.stop()
        for host in self.hosts.values():
            for pool in host.pools.values():
                pool.close()

    def __repr__(self) -> str:
        return f"<ClusterRuntime {self.name} hosts={sorted(self.hosts)}>"


def _priority_hosts(hosts: list[Host], now: float, panic_threshold: float) -> list[Host]:
    """The healthy hosts of the lowest priority level that has any.

    Panic (Envoy's healthy_panic_threshold): when that level's healthy share is below the threshold, or
    no level has a healthy host at all, balance over every usable host of the level rather than
    overload the few (a threshold of 0 disables panic: no healthy host means no host).
    """
    levels: dict[int, list[Host]] = {}
    for h in hosts:
        if h.endpoint.enabled and h.weight > 0:
            levels.setdefault(h.endpoint.priority, []).append(h)
    for priority in sorted(levels):
        level = levels[priority]
        healthy = [h for h in level if h.healthy(now)]
        if healthy:
            if 100.0 * len(healthy) / len(level) < panic_threshold:
                return level
            return healthy
    if levels and panic_threshold > 0:
        return levels[min(levels)]
    return []


class ClusterManager:
    """All cluster runtimes, fed by model diffs; owns the upstream pools' and health checkers' lifecycle."""

    def __init__(self, config: Config, model: ClusterModel, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic, stats: Any = None,
                 tls_for: Callable[[str, Any], Any] = lambda name, spec: None, marked_tls: bool = False) -> None:
        self.config = config
        self.model = model
        self.tls_for = tls_for                 # (cluster name, settings.tls) → ClientTls or None
        self.marked_tls = tls_for("registry-marked", ClusterTls()) if marked_tls else None
        self.rng = rng or random.Random()
        self.clock = clock
        self.stats = stats
        self.clusters: dict[str, ClusterRuntime] = {}
        self._static = {c.name: c for c in config.clusters}
        self.overrides: dict[str, Any] = {}    # cluster name → meshd.config.ClusterOverride (runtime rules)
        self.listeners: list[Callable[[ClusterRuntime, ClusterDiff, list[Host]], None]] = []
        self._unsubscribe = model.subscribe(self._on_diff)
        self._health_started = False
        for name in model.clusters():
            self._create(name)

    def get(self, name: str) -> ClusterRuntime | None:
        return self.clusters.get(name)

    def settings_for(self, name: str) -> ClusterSettings:
        """Static config, else source-provided settings, else ``cluster_defaults``; then the runtime override."""
        settings = self._base_settings(name)
        override = self.overrides.get(name)
        if override is None:
            return settings
        return settings.model_copy(update={k: getattr(override, k) for k in override.model_fields_set
                                           if getattr(override, k) is not None})

    def _base_settings(self, name: str) -> ClusterSettings:
        static = self._static.get(name)
        if static is not None:
            return static
        provided = self.model.settings(name)
        if provided is not None:
            try:
                return ClusterConfig.model_validate({**provided, "name": name})
            except ValidationError as exc:
                log.warning("cluster %s: source-provided settings rejected, using cluster_defaults: %s", name,
                            "; ".join(e["msg"] for e in exc.errors()))
        return self.config.cluster_defaults

    def set_overrides(self, overrides: Mapping[str, Any]) -> None:
        """Replace the runtime overrides (``ClusterOverride`` by cluster name) and reconfigure what they touch."""
        touched = set(self.overrides) | set(overrides)
        self.overrides = dict(overrides)
        for name in touched:
            runtime = self.clusters.get(name)
            if runtime is not None:
                self._reconfigure(runtime)

    def _reconfigure(self, runtime: ClusterRuntime) -> None:
        if runtime.health is not None:
            runtime.health.stop()
            runtime.health = None
        runtime.configure(self.settings_for(runtime.name))
        runtime.tls, runtime.marked_tls = self.tls_for(runtime.name, runtime.settings.tls), self.marked_tls
        self._start_health(runtime)

    def start_health_checks(self) -> None:
        """Start active health checking (needs a running loop); clusters created later start their own."""
        self._health_started = True
        for runtime in self.clusters.values():
            self._start_health(runtime)

    def _start_health(self, runtime: ClusterRuntime) -> None:
        if self._health_started and runtime.settings.health_checks:
            runtime.health = HealthChecker(runtime, runtime.health_changed)
            runtime.health.start()

    def _create(self, name: str) -> ClusterRuntime:
        runtime = ClusterRuntime(name, self.settings_for(name), self.rng, self.clock, self.stats)
        runtime.tls, runtime.marked_tls = self.tls_for(name, runtime.settings.tls), self.marked_tls
        cluster = self.model.cluster(name)
        if cluster is not None and cluster.endpoints:
            runtime.apply(ClusterDiff(name, added=tuple(cluster.endpoints.values())))
        self.clusters[name] = runtime
        self._start_health(runtime)
        return runtime

    def _on_diff(self, diff: ClusterDiff) -> None:
        runtime = self.clusters.get(diff.cluster)
        if diff.deleted:
            if runtime is not None:
                del self.clusters[diff.cluster]
                runtime.close()
                self._notify(runtime, diff, list(runtime.hosts.values()))
            return
        if runtime is None:
            runtime = self._create(diff.cluster)
            self._notify(runtime, diff, [])
            return
        if diff.settings_changed:
            self._reconfigure(runtime)
        removed = runtime.apply(diff)
        for host in removed:                  # what was sent to a removed host still gets its answer
            for pool in host.pools.values():
                pool.retire()
        self._notify(runtime, diff, removed)

    def _notify(self, runtime: ClusterRuntime, diff: ClusterDiff, removed: list[Host]) -> None:
        for listener in self.listeners:
            listener(runtime, diff, removed)

    def sweep(self, now: float) -> None:
        """Pool housekeeping (idle closes, RPC heartbeats); ``now`` is the loop's clock."""
        for runtime in self.clusters.values():
            for host in runtime.hosts.values():
                for pool in host.pools.values():
                    pool.sweep(now)

    def close(self) -> None:
        self._unsubscribe()
        for runtime in self.clusters.values():
            runtime.close()

    def to_json(self) -> list[dict[str, Any]]:
        return [self.cluster_json(name) for name in sorted(self.clusters)]

    def cluster_json(self, name: str) -> dict[str, Any] | None:
        """One cluster as ``/clusters`` shows it (None when there is no such cluster)."""
        runtime = self.clusters.get(name)
        if runtime is None:
            return None
        data = runtime.to_json()
        cluster = self.model.cluster(name)
        data["sources"] = list(cluster.sources) if cluster else []
        data["static"] = name in self._static
        return data
