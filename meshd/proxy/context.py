"""Shared state the protocol handlers read: the runtime (clusters, stats, logs) and per-listener context."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from meshd.accesslog import AccessLog
from meshd.config import Config, ListenerConfig
from meshd.routing.table import RouteTable
from meshd.stats import RequestStats, Stats
from meshd.timers import TimerWheel
from meshd.upstream.cluster import ClusterManager


class Runtime:
    """Everything a request may touch besides its own connection. One per running meshd."""

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


class GovernedExchange:
    """What the HTTP and RPC exchanges share: the governance entry of the current attempt."""

    entry: Any = None

    def _exit_entry(self, outcome: Any) -> None:
        entry = self.entry
        if entry is not None:
            self.entry = None
            entry.exit(error=outcome.failed)


class ListenerContext:
    __slots__ = ("name", "config", "routes", "runtime", "protocol", "records", "rpc_decisions")

    def __init__(self, config: ListenerConfig, routes: RouteTable | None, runtime: Runtime) -> None:
        self.name = config.name
        self.config = config
        self.routes = routes
        self.runtime = runtime
        self.protocol = config.protocol
        self.records: dict[str, RequestStats] = {}   # per cluster name, for the hot path
        self.rpc_decisions: dict[tuple, tuple] = {}  # (service, method, version) → (route, cluster, metadata)
