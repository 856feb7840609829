"""Resource statistic nodes (G ``core/stat/resource_node.go``/``base_node.go``, J ``ClusterNode``).

Every resource the engine has seen owns one :class:`ResourceNode`: a 20 x 500 ms LeapArray (10 s) of
pass / block / complete / error / rt / min-rt / max-concurrency buckets, the current concurrency, and
cumulative counters for metrics export. Rule reloads never touch nodes: QPS, concurrency and RT keep
counting across every push (G and J agree on that).

Reads used by the slots:

* ``pass_qps`` -- the default 1 s metric (2-bucket view), what flow rules with the default interval and
  system QPS rules compare against;
* ``previous_pass_qps`` -- G ``GetPreviousQPS``: the same view read one 500 ms bucket earlier;
* ``java_previous_pass_qps`` -- J ``previousPassQps``: the previous wall-clock-aligned second;
* ``avg_rt``, ``min_rt``, ``max_complete_per_sec`` -- for system rules and BBR.

The engine is single-threaded (one event loop), so the counters are plain ints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from governance.stat.window import (
    BLOCK, COMPLETE, DEFAULT_STATISTIC_MAX_RT, ERROR, MAX_CONCURRENCY, MIN_RT, PASS, RT, LeapArray, View,
)

GLOBAL_SAMPLE_COUNT = 20       # G config.GlobalStatisticSampleCountTotal
GLOBAL_INTERVAL_MS = 10_000    # G config.GlobalStatisticIntervalMsTotal
DEFAULT_SAMPLE_COUNT = 2       # G config.MetricStatisticSampleCount
DEFAULT_INTERVAL_MS = 1_000    # G config.MetricStatisticIntervalMs
INBOUND_RESOURCE = "__total_inbound_traffic__"


class ResourceNode:
    """Statistics of one resource (or of the global inbound entrance, or of one caller origin)."""

    __slots__ = (
        "name", "resource_type", "array", "default_view", "concurrency",
        "pass_total", "block_total", "complete_total", "error_total", "wait_total", "origins",
    )

    def __init__(self, name: str, resource_type: int = 0) -> None:
        self.name = name
        self.resource_type = resource_type
        self.array = LeapArray(GLOBAL_SAMPLE_COUNT, GLOBAL_INTERVAL_MS)
        self.default_view = View(self.array, DEFAULT_SAMPLE_COUNT, DEFAULT_INTERVAL_MS)
        self.concurrency = 0
        self.pass_total = 0
        self.block_total: dict[str, int] = {}
        self.complete_total = 0
        self.error_total = 0
        self.wait_total = 0
        self.origins: dict[str, ResourceNode] | None = None

    # ---- writes (hot path) --------------------------------------------------------------------------
    def record_pass(self, now: int, batch: int, entries: int = 1) -> None:
        """A pass of ``batch``; ``entries`` requests that passed at once (``Chain.entry_batch``) leave what
        that many passes of one leave."""
        concurrency = self.concurrency + entries
        self.concurrency = concurrency
        self.pass_total += batch
        array = self.array
        bucket = array.cur if array.cur_start <= now < array.cur_end else array.current(now)
        if bucket is not None:
            bucket[PASS] += batch
            if concurrency > bucket[MAX_CONCURRENCY]:
                bucket[MAX_CONCURRENCY] = concurrency

    def record_complete(self, now: int, batch: int, rt: int, error: bool) -> None:
        self.concurrency -= 1
        self.complete_total += batch
        array = self.array
        bucket = array.cur if array.cur_start <= now < array.cur_end else array.current(now)
        if bucket is not None:
            bucket[COMPLETE] += batch
            bucket[RT] += rt
            if rt < bucket[MIN_RT]:
                bucket[MIN_RT] = rt
            if error:
                bucket[ERROR] += batch
        if error:
            self.error_total += batch

    def record_block(self, now: int, batch: int, block_type: str) -> None:
        self.block_total[block_type] = self.block_total.get(block_type, 0) + batch
        self.array.add(now, BLOCK, batch)

    # ---- origin nodes (J limitApp) ------------------------------------------------------------------
    def origin_node(self, origin: str, create: bool, limit: int) -> ResourceNode | None:
        origins = self.origins
        if origins is None:
            if not create:
                return None
            origins = self.origins = {}
        node = origins.get(origin)
        if node is None and create and len(origins) < limit:
            node = origins[origin] = ResourceNode(origin, self.resource_type)
        return node

    # ---- reads --------------------------------------------------------------------------------------
    def pass_qps(self, now: int) -> float:
        return float(self.array.sum_last_two(PASS, now))

    def qps(self, event: int, now: int) -> float:
        return float(self.array.sum_last_two(event, now))

    def previous_pass_qps(self, now: int) -> float:
        return self.default_view.previous_qps(PASS, now)

    def java_previous_pass_qps(self, now: int) -> float:
        second = now - now % 1000
        return float(self.array.view_sum(PASS, second - 1, DEFAULT_INTERVAL_MS))

    def avg_rt(self, now: int) -> float:
        """G ``BaseStatNode.AvgRT``: integer division of the 1 s RT sum by completions."""
        complete = self.array.view_sum(COMPLETE, now, DEFAULT_INTERVAL_MS)
        if complete <= 0:
            return 0.0
        return float(self.array.view_sum(RT, now, DEFAULT_INTERVAL_MS) // complete)

    def java_avg_rt(self, now: int) -> float:
        complete = self.array.view_sum(COMPLETE, now, DEFAULT_INTERVAL_MS)
        if complete <= 0:
            return 0.0
        return self.array.view_sum(RT, now, DEFAULT_INTERVAL_MS) / complete

    def min_rt(self, now: int) -> float:
        value = self.array.view_min(MIN_RT, now, DEFAULT_INTERVAL_MS, DEFAULT_STATISTIC_MAX_RT)
        return float(max(value, 1))

    def max_complete_per_sec(self, now: int) -> float:
        """G ``GetMaxAvg(Complete)``: the busiest bucket of the 1 s view scaled to a second."""
        best = self.array.view_max(COMPLETE, now, DEFAULT_INTERVAL_MS)
        return best * DEFAULT_SAMPLE_COUNT / DEFAULT_INTERVAL_MS * 1000.0

    def second_items(self, now: int, since_ms: int, until_ms: int) -> dict[int, MetricItem]:
        """Per-second aggregates of buckets starting in ``[since_ms, until_ms)`` (the metric log)."""
        grouped: dict[int, list[list]] = {}
        for start, bucket in self.array.windows(now):
            if since_ms <= start < until_ms:
                grouped.setdefault(start - start % 1000, []).append(bucket)
        items = {}
        for second, buckets in grouped.items():
            item = MetricItem.from_buckets(self.name, self.resource_type, second, buckets)
            if item.is_active():
                items[second] = item
        return items

    def snapshot(self, now: int) -> ResourceStats:
        return ResourceStats(
            resource=self.name, pass_total=self.pass_total, block_total=dict(self.block_total),
            complete_total=self.complete_total, error_total=self.error_total, wait_total=self.wait_total,
            concurrency=self.concurrency, pass_qps=self.pass_qps(now), block_qps=self.qps(BLOCK, now),
            complete_qps=self.qps(COMPLETE, now), error_qps=self.qps(ERROR, now), avg_rt=self.java_avg_rt(now),
        )

    def __repr__(self) -> str:
        return f"ResourceNode({self.name!r}, concurrency={self.concurrency}, pass_total={self.pass_total})"


@dataclass(frozen=True)
class MetricItem:
    """One metric-log line: a resource's totals for one second (G ``base.MetricItem``)."""

    resource: str
    classification: int
    timestamp: int
    pass_qps: int = 0
    block_qps: int = 0
    complete_qps: int = 0
    error_qps: int = 0
    avg_rt: int = 0
    occupied_pass_qps: int = 0
    concurrency: int = 0

    @classmethod
    def from_buckets(cls, resource: str, classification: int, second: int, buckets: list[list]) -> MetricItem:
        complete = sum(b[COMPLETE] for b in buckets)
        all_rt = sum(b[RT] for b in buckets)
        return cls(
            resource=resource, classification=classification, timestamp=second,
            pass_qps=sum(b[PASS] for b in buckets), block_qps=sum(b[BLOCK] for b in buckets),
            complete_qps=complete, error_qps=sum(b[ERROR] for b in buckets),
            avg_rt=all_rt // complete if complete > 0 else all_rt,
            concurrency=max(b[MAX_CONCURRENCY] for b in buckets),
        )

    def is_active(self) -> bool:
        return bool(self.pass_qps or self.block_qps or self.complete_qps or self.error_qps
                    or self.avg_rt or self.concurrency)


@dataclass(frozen=True)
class ResourceStats:
    """A point-in-time view of one resource for metrics export (no Prometheus types here).

    ``block_total`` is keyed by sentinel-golang block type (``BlockTypeFlowControl``...), matching the
    ``block_type`` label of ``sentinel_go_handled_total``; ``wait_total`` counts throttled passes that
    had to wait (``sentinel_go_flow_wait_total``).
    """

    resource: str
    pass_total: int
    block_total: dict[str, int] = field(default_factory=dict)
    complete_total: int = 0
    error_total: int = 0
    wait_total: int = 0
    concurrency: int = 0
    pass_qps: float = 0.0
    block_qps: float = 0.0
    complete_qps: float = 0.0
    error_qps: float = 0.0
    avg_rt: float = 0.0
