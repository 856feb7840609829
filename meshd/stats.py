"""Prometheus metrics of the data plane, per listener and per cluster.

One :class:`Stats` per running meshd, on its own registry (so several can live in one test process).
Labelled children are cached by their label tuple: the hot path does one dict lookup and one ``inc``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Stats:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("meshd_requests", "Downstream requests by listener, cluster, outcome and status",
                                ["listener", "protocol", "cluster", "outcome", "status"], registry=r)
        self.latency = Histogram("meshd_request_duration_seconds", "Downstream request duration",
                                 ["listener", "cluster"], buckets=LATENCY_BUCKETS, registry=r)
        self.attempts = Counter("meshd_upstream_attempts", "Upstream attempts (first tries and retries)",
                                ["cluster", "outcome", "retry"], registry=r)
        self.downstream_cx = Gauge("meshd_downstream_connections", "Open downstream connections", ["listener"],
                                   registry=r)
        self.downstream_cx_total = Counter("meshd_downstream_connections_accepted", "Accepted downstream connections",
                                           ["listener"], registry=r)
        self.upstream_cx = Gauge("meshd_upstream_connections", "Open upstream connections", ["cluster"], registry=r)
        self.upstream_cx_total = Counter("meshd_upstream_connections_opened", "Opened upstream connections", ["cluster"],
                                         registry=r)
        self.upstream_cx_fail = Counter("meshd_upstream_connect_failures", "Failed upstream connects", ["cluster"],
                                        registry=r)
        self.outlier_ejections = Counter("meshd_outlier_ejections", "Outlier detection ejections", ["cluster"],
                                         registry=r)
        self.health_changes = Counter("meshd_health_check_changes", "Active health check verdict changes",
                                      ["cluster", "healthy"], registry=r)
        self.overflow = Counter("meshd_upstream_overflow", "Requests refused by cluster circuit breakers",
                                ["cluster", "kind"], registry=r)
        self._cache: dict[tuple, object] = {}

    def request_done(self, listener: str, protocol: str, cluster: str, outcome: str, status: int | str,
                     seconds: float) -> None:
        key = (listener, protocol, cluster, outcome, status)
        child = self._cache.get(key)
        if child is None:
            child = self._cache[key] = self.requests.labels(listener, protocol, cluster, outcome, str(status))
        child.inc()                                           # type: ignore[attr-defined]
        lkey = ("lat", listener, cluster)
        hist = self._cache.get(lkey)
        if hist is None:
            hist = self._cache[lkey] = self.latency.labels(listener, cluster)
        hist.observe(seconds)                                 # type: ignore[attr-defined]

    def attempt_done(self, cluster: str, outcome: str, retry: bool) -> None:
        key = ("att", cluster, outcome, retry)
        child = self._cache.get(key)
        if child is None:
            child = self._cache[key] = self.attempts.labels(cluster, outcome, "true" if retry else "false")
        child.inc()                                           # type: ignore[attr-defined]

    def downstream_connection(self, listener: str, delta: int) -> None:
        self.downstream_cx.labels(listener).inc(delta)
        if delta > 0:
            self.downstream_cx_total.labels(listener).inc()

    def upstream_connection_opened(self, host) -> None:
        self.upstream_cx.labels(host.cluster).inc()
        self.upstream_cx_total.labels(host.cluster).inc()

    def upstream_connection_closed(self, host) -> None:
        self.upstream_cx.labels(host.cluster).dec()

    def upstream_connect_failed(self, host) -> None:
        self.upstream_cx_fail.labels(host.cluster).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
