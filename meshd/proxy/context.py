"""Shared state the protocol handlers read: the runtime (clusters, stats, logs) and per-listener context."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from governance import BlockError
from meshd.accesslog import AccessLog
from meshd.codec.bolt.frame import key_names
from meshd.config import Config, ListenerConfig
from meshd.proxy.rpc_protocols import BOLT_KEY_HEADERS
from meshd.routing.table import RouteTable
from meshd.stats import RequestStats, Stats
from meshd.timers import TimerWheel
from meshd.upstream.cluster import ClusterManager


class Runtime:
    """Everything a request may touch besides its own connection. One per running meshd."""

    __slots__ = ("config", "clusters", "stats", "access_log", "rng", "loop", "timers", "draining", "connections",
                 "governance", "in_flight", "tls")

    def __init__(self, config: Config, clusters: ClusterManager, stats: Stats, access_log: AccessLog,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.clusters = clusters
        self.stats = stats
        self.access_log = access_log
        self.rng = rng or random.Random()
        self.loop = asyncio.get_running_loop()
        self.timers = TimerWheel(self.loop)
        self.draining = False
        self.connections: set[Any] = set()    # open downstream protocol objects (for drain and idle sweep)
        self.governance: Any = None           # meshd.proxy.governor.Governor once governance is wired
        self.in_flight = 0
        self.tls: Any = None                  # meshd.tls.registry.TlsRegistry (listeners' and clusters' TLS)


# What the HTTP and RPC exchanges share: each attempt enters governance, then is sent. An exchange has
# ``rt`` (the Runtime), ``entry`` (None, or the governance entry of the attempt in flight) and the methods
# ``_enter(governor)`` (an Entry, a BlockError, or None when nothing governs the request),
# ``_blocked(governor, error)`` (the in-protocol answer) and ``_send_attempt()``. Functions, not a base
# class: the compiled hot path makes RpcExchange an extension type, and a Python class (HttpExchange) that
# inherits one pays for it on every attribute access.

def attempt(ex: Any) -> None:
    """Enter governance for this attempt (block, or wait on a timer when throttled), then send it."""
    gov = ex.rt.governance
    if gov is None or not gov.active or admit(ex, gov):
        ex._send_attempt()


def admit(ex: Any, gov: Any) -> bool:
    """Enter ``gov`` for this attempt: True when it may be sent now; otherwise it was answered (blocked)
    or its sending is scheduled (throttled)."""
    entry = ex._enter(gov)
    if entry is None:
        return True
    if isinstance(entry, BlockError):
        ex._blocked(gov, entry)
        return False
    ex.entry = entry
    if entry.wait_ms > 0:
        ex.rt.loop.call_later(entry.wait_ms / 1000.0, ex._send_attempt)
        return False
    return True


def exit_entry(ex: Any, outcome: Any) -> None:
    """Exit the attempt's governance entry, if any, with ``outcome``."""
    entry = ex.entry
    if entry is not None:
        ex.entry = None
        entry.exit(error=outcome.failed)


class ListenerContext:
    __slots__ = ("name", "config", "routes", "runtime", "protocol", "records", "rpc_decisions", "rpc_plans",
                 "rpc_key_names", "rpc_paths", "open", "overflow")

    def __init__(self, config: ListenerConfig, routes: RouteTable | None, runtime: Runtime) -> None:
        self.name = config.name
        self.config = config
        self.routes = routes
        self.runtime = runtime
        self.protocol = config.protocol
        self.records: dict[str, dict[str, RequestStats]] = {}   # protocol → cluster name → record (hot path)
        self.rpc_decisions: dict[tuple, tuple] = {}  # (service, method, version) → (route, cluster, metadata)
        # protocol → routing key → meshd.proxy.rpc._Plan
        self.rpc_plans: dict[str, dict[bytes, Any]] = {"dubbo": {}, "bolt": {}}
        # the Bolt header-map entries a routing key holds: the request's own, and header_to_metadata's
        self.rpc_key_names = key_names({*BOLT_KEY_HEADERS, *(n.encode() for n in config.header_to_metadata)})
        # [common, other]: RPC requests forwarded by a plan, and routed one by one (meshd_rpc_requests_total)
        self.rpc_paths = runtime.stats.rpc_path_counts(self.name) if self.protocol in ("dubbo", "bolt", "auto") \
            else [0, 0]
        # open connections (max_connections): counted when the listener makes a connection's protocol
        # (meshd.proxy.listener.admitting), uncounted by that protocol's connection_lost (or its successor's,
        # when an auto listener hands the connection on); and the connections refused for being over the limit
        self.open = 0
        self.overflow = 0

    def record(self, cluster: str, protocol: str) -> RequestStats:
        """The stats record of this listener's ``protocol`` requests to ``cluster`` (made on first use): an
        ``auto`` listener keeps HTTP, Dubbo and Bolt requests to one cluster apart."""
        by_cluster = self.records.get(protocol)
        if by_cluster is None:
            by_cluster = self.records[protocol] = {}
        rec = by_cluster.get(cluster)
        if rec is None:
            rec = by_cluster[cluster] = self.runtime.stats.record(self.name, protocol, cluster)
        return rec
