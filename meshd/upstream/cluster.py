"""Cluster runtimes: the data plane's view of each cluster, kept current from the model's diffs.

The :class:`ClusterManager` subscribes to the :class:`~discovery.model.ClusterModel` and keeps one
:class:`ClusterRuntime` per cluster: its settings (static config, else source-provided settings, else
``cluster_defaults``), its :class:`~meshd.upstream.host.Host` objects by address (updated in place from
diffs so pools and counters survive metadata changes) and the balancers over the candidate hosts.

Picking a host (:meth:`ClusterRuntime.pick`) is a plain function: filter by the request's subset
metadata, choose the lowest priority level that has healthy hosts, apply the panic threshold, then ask
that host set's balancer, avoiding hosts a retry already tried.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, Collection, Mapping

from pydantic import ValidationError

from discovery.model import ClusterDiff, ClusterModel
from meshd.config import ClusterConfig, ClusterSettings, Config
from meshd.routing.balancer import Balancer, make_balancer
from meshd.upstream.host import Host

log = logging.getLogger("meshd.cluster")


class HostSet:
    """A list of candidate hosts with its balancer, rebuilt when the hosts or their health change."""

    __slots__ = ("hosts", "balancer")

    def __init__(self, hosts: list[Host], policy: str, rng: random.Random) -> None:
        self.hosts = hosts
        self.balancer: Balancer = make_balancer(policy, hosts, rng)


class ClusterRuntime:
    def __init__(self, name: str, settings: ClusterSettings, rng: random.Random,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.settings = settings
        self.rng = rng
        self.clock = clock
        self.hosts: dict[str, Host] = {}
        self.active_requests = 0
        self.pending_requests = 0
        self.active_retries = 0
        self.stats = {"requests": 0, "no_healthy": 0, "overflow": 0, "retries": 0, "retry_overflow": 0}
        self._sets: dict[tuple, HostSet] = {}
        self._health_epoch = 0.0               # the earliest moment a cached health verdict may change

    # -- model diffs ---------------------------------------------------------------------------------
    def apply(self, diff: ClusterDiff) -> list[Host]:
        """Update hosts from a diff; returns the hosts that were removed (their pools must close)."""
        removed = []
        for ep in diff.added:
            self.hosts[ep.address] = Host(ep, self.name)
        for _, ep in diff.changed:
            host = self.hosts.get(ep.address)
            if host is None:
                self.hosts[ep.address] = Host(ep, self.name)
            else:
                host.update(ep)
        for ep in diff.removed:
            host = self.hosts.pop(ep.address, None)
            if host is not None:
                removed.append(host)
        self.invalidate()
        return removed

    def invalidate(self) -> None:
        """Host set or health changed: balancers are rebuilt on next use."""
        self._sets.clear()

    # -- picking -------------------------------------------------------------------------------------
    def pick(self, metadata: Mapping[str, str] | None = None, exclude: Collection[Host] = ()) -> Host | None:
        now = self.clock()
        if self._sets and now >= self._health_epoch:
            self._sets.clear()                # an outlier ejection ended: recompute health
        key = tuple(sorted(metadata.items())) if metadata else ()
        hs = self._sets.get(key)
        if hs is None:
            hs = self._sets[key] = self._build(metadata, now)
        return hs.balancer.pick(exclude)

    def candidates(self, metadata: Mapping[str, str] | None) -> list[Host]:
        """Hosts whose metadata (and typed group/version) match every requested key."""
        if not metadata:
            return list(self.hosts.values())
        return [h for h in self.hosts.values() if _matches(h, metadata)]

    def _build(self, metadata: Mapping[str, str] | None, now: float) -> HostSet:
        hosts = self.candidates(metadata)
        self._health_epoch = min((h.ejected_until for h in self.hosts.values() if h.ejected_until > now),
                                 default=float("inf"))
        chosen = _priority_hosts(hosts, now, self.settings.panic_threshold)
        return HostSet(chosen, self.settings.lb_policy, self.rng)

    # -- accounting ----------------------------------------------------------------------------------
    def retry_allowed(self) -> bool:
        """Envoy's retry circuit breaker: max concurrent retries, or a retry budget of active requests."""
        cb = self.settings.circuit_breakers
        if cb.retry_budget is not None:
            budget = max(cb.retry_budget.min_retry_concurrency,
                         self.active_requests * cb.retry_budget.budget_percent / 100.0)
            return self.active_retries < budget
        return self.active_retries < cb.max_retries

    def to_json(self) -> dict:
        now = self.clock()
        return {
            "name": self.name, "lb_policy": self.settings.lb_policy,
            "active_requests": self.active_requests, "stats": dict(self.stats),
            "endpoints": [h.to_json(now) for h in sorted(self.hosts.values(), key=lambda h: h.address)],
        }

    def __repr__(self) -> str:
        return f"<ClusterRuntime {self.name} hosts={sorted(self.hosts)}>"


def _matches(host: Host, metadata: Mapping[str, str]) -> bool:
    ep = host.endpoint
    for key, want in metadata.items():
        have = ep.metadata.get(key)
        if have is None:
            have = ep.group if key == "group" else (ep.version if key == "version" else None)
        if have != want:
            return False
    return True


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
    """All cluster runtimes, fed by model diffs; owns the upstream pools' lifecycle."""

    def __init__(self, config: Config, model: ClusterModel, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.model = model
        self.rng = rng or random.Random()
        self.clock = clock
        self.clusters: dict[str, ClusterRuntime] = {}
        self._static = {c.name: c for c in config.clusters}
        self.listeners: list[Callable[[ClusterRuntime, ClusterDiff, list[Host]], None]] = []
        self._unsubscribe = model.subscribe(self._on_diff)
        for name, cluster in model.clusters().items():
            self._create(name)

    def get(self, name: str) -> ClusterRuntime | None:
        return self.clusters.get(name)

    def settings_for(self, name: str) -> ClusterSettings:
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

    def _create(self, name: str) -> ClusterRuntime:
        runtime = ClusterRuntime(name, self.settings_for(name), self.rng, self.clock)
        cluster = self.model.cluster(name)
        if cluster is not None and cluster.endpoints:
            runtime.apply(ClusterDiff(name, added=tuple(cluster.endpoints.values())))
        self.clusters[name] = runtime
        return runtime

    def _on_diff(self, diff: ClusterDiff) -> None:
        runtime = self.clusters.get(diff.cluster)
        if diff.deleted:
            if runtime is not None:
                removed = list(runtime.hosts.values())
                del self.clusters[diff.cluster]
                self._closed(runtime, diff, removed)
            return
        if runtime is None:
            runtime = self._create(diff.cluster)
            self._notify(runtime, diff, [])
            return
        if diff.settings_changed:
            runtime.settings = self.settings_for(diff.cluster)
        removed = runtime.apply(diff)
        self._closed(runtime, diff, removed)

    def _closed(self, runtime: ClusterRuntime, diff: ClusterDiff, removed: list[Host]) -> None:
        for host in removed:
            for pool in host.pools.values():
                pool.close()
        self._notify(runtime, diff, removed)

    def _notify(self, runtime: ClusterRuntime, diff: ClusterDiff, removed: list[Host]) -> None:
        for listener in self.listeners:
            listener(runtime, diff, removed)

    def sweep(self) -> None:
        now = time.monotonic()
        for runtime in self.clusters.values():
            for host in runtime.hosts.values():
                for pool in host.pools.values():
                    pool.sweep(now)

    def close(self) -> None:
        self._unsubscribe()
        for runtime in self.clusters.values():
            for host in runtime.hosts.values():
                for pool in host.pools.values():
                    pool.close()

    def to_json(self) -> list[dict[str, Any]]:
        out = []
        for name in sorted(self.clusters):
            data = self.clusters[name].to_json()
            cluster = self.model.cluster(name)
            data["sources"] = list(cluster.sources) if cluster else []
            data["static"] = name in self._static
            out.append(data)
        return out
