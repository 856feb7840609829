"""Prometheus metrics of the data plane, per listener and per cluster.

The hot path never touches prometheus-client objects: a request adds to plain integers in
:class:`RequestStats` records (one per listener × cluster, found once per request) and a custom
collector turns them into metric families when ``/stats/prometheus`` is scraped. Rare events
(connections, ejections, health changes) use ordinary prometheus-client counters and gauges.
One :class:`Stats` per running meshd, on its own registry.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RequestStats:
    """Counters of one (listener, protocol, cluster): requests by (outcome, status), a latency histogram."""

    __slots__ = ("labels", "counts", "buckets", "sum")

    def __init__(self, labels: tuple[str, str, str]) -> None:
        self.labels = labels
        self.counts: dict[tuple[str, str], int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def done(self, outcome: str, status: int | str, seconds: float, _bisect=bisect_left,
             _bounds=LATENCY_BUCKETS) -> None:
        key = (outcome, status)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        self.buckets[_bisect(_bounds, seconds)] += 1
        self.sum += seconds

    @property
    def total(self) -> int:
        return sum(self.buckets)


class _Collector:
    def __init__(self, stats: "Stats") -> None:
        self.stats = stats

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator:
        requests = CounterMetricFamily("meshd_requests", "Downstream requests by listener, cluster, outcome, status",
                                       labels=["listener", "protocol", "cluster", "outcome", "status"])
        latency = HistogramMetricFamily("meshd_request_duration_seconds", "Downstream request duration",
                                        labels=["listener", "protocol", "cluster"])
        for rec in list(self.stats.records.values()):
            for (outcome, status), n in sorted(rec.counts.items(), key=str):
                requests.add_metric([*rec.labels, outcome, str(status)], n)
            acc, buckets = 0, []
            for bound, n in zip(LATENCY_BUCKETS, rec.buckets):
                acc += n
                buckets.append((repr(bound), acc))
            buckets.append(("+Inf", rec.total))
            latency.add_metric(list(rec.labels), buckets, rec.sum)
        attempts = CounterMetricFamily("meshd_upstream_attempts", "Upstream attempts (first tries and retries)",
                                       labels=["cluster", "outcome", "retry"])
        for cluster in list(self.stats.clusters()):
            for retry, counts in (("false", cluster.attempts), ("true", cluster.retry_attempts)):
                for outcome, n in sorted(counts.items()):
                    attempts.add_metric([cluster.name, outcome, retry], n)
        paths = CounterMetricFamily("meshd_rpc_requests", "Dubbo and Bolt requests by the path they took",
                                    labels=["listener", "path"])
        for listener, (common, other) in sorted(self.stats.rpc_paths.items()):
            paths.add_metric([listener, "common"], common)
            paths.add_metric([listener, "other"], other)
        yield requests
        yield latency
        yield paths
        yield attempts


class Stats:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.records: dict[tuple[str, str, str], RequestStats] = {}
        #: per listener, the RPC requests forwarded by a plan and those routed one by one: [common, other]
        self.rpc_paths: dict[str, list[int]] = {}
        self.clusters: Callable[[], Iterable[Any]] = lambda: ()   # the app points this at its cluster runtimes
        r.register(_Collector(self))
        self.downstream_cx = Gauge("meshd_downstream_connections", "Open downstream connections", ["listener"],
                                   registry=r)
        self.downstream_cx_total = Counter("meshd_downstream_connections_accepted", "Accepted downstream connections",
                                           ["listener"], registry=r)
        self.listener_overflow = Counter("meshd_listener_connections_overflow",
                                         "Connections closed at accept: the listener had max_connections open",
                                         ["listener"], registry=r)
        self.upstream_cx = Gauge("meshd_upstream_connections", "Open upstream connections", ["cluster"], registry=r)
        self.upstream_cx_total = Counter("meshd_upstream_connections_opened", "Opened upstream connections",
                                         ["cluster"], registry=r)
        self.upstream_cx_fail = Counter("meshd_upstream_connect_failures", "Failed upstream connects", ["cluster"],
                                        registry=r)
        self.outlier_ejections = Counter("meshd_outlier_ejections", "Outlier detection ejections", ["cluster"],
                                         registry=r)
        self.health_changes = Counter("meshd_health_check_changes", "Active health check verdict changes",
                                      ["cluster", "healthy"], registry=r)
        self.overflow = Counter("meshd_upstream_overflow", "Requests refused by cluster circuit breakers",
                                ["cluster", "kind"], registry=r)

    def record(self, listener: str, protocol: str, cluster: str) -> RequestStats:
        key = (listener, protocol, cluster)
        rec = self.records.get(key)
        if rec is None:
            rec = self.records[key] = RequestStats(key)
        return rec

    def rpc_path_counts(self, listener: str) -> list[int]:
        """The ``[common, other]`` counters of ``listener``'s RPC requests (the hot path adds to them)."""
        counts = self.rpc_paths.get(listener)
        if counts is None:
            counts = self.rpc_paths[listener] = [0, 0]
        return counts

    def request_done(self, listener: str, protocol: str, cluster: str, outcome: str, status: int | str,
                     seconds: float) -> None:
        self.record(listener, protocol, cluster).done(outcome, status, seconds)

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
