"""LeapArray: Sentinel's sliding window (G ``core/stat/base/leap_array.go``, J ``LeapArray.java``).

A LeapArray is a fixed ring of ``sample_count`` buckets, each ``bucket_ms = interval_ms / sample_count``
long. The bucket for time ``now`` lives at ``(now // bucket_ms) % sample_count`` and starts at
``now - now % bucket_ms`` (wall-clock aligned). A slot that still holds an older start is reset in place
when it is next written; a bucket is *deprecated* (ignored by reads) when ``now - start > interval_ms``.
Memory is bounded by construction: ``sample_count`` buckets, never more.

Buckets are small Python lists indexed by the event constants below (``PASS``, ``BLOCK``...), so one
bucket fetch serves several counter updates on the hot path. Breaker windows use two-slot buckets
(``[total, bad]``) through the same class.

Reads follow sentinel-golang's ``SlidingWindowMetric``: a *view* of ``span_ms`` over an array sums the
buckets whose start lies in ``[cur_start - span_ms + bucket_ms, cur_start]`` -- the current (partial)
bucket plus the whole ones before it. Each resource keeps one 20 x 500 ms array (10 s); the default 1 s
metric is the 2-bucket view of it.
"""

from __future__ import annotations

from typing import Callable, Iterator

# MetricBucket slots (G core/stat/base/metric_bucket.go: pass, block, complete, error, rt + minRt, maxConcurrency)
PASS = 0
BLOCK = 1
COMPLETE = 2
ERROR = 3
RT = 4
MIN_RT = 5
MAX_CONCURRENCY = 6
EVENT_NAMES = ("pass", "block", "complete", "error", "rt", "min_rt", "max_concurrency")

DEFAULT_STATISTIC_MAX_RT = 60_000  # G base.DefaultStatisticMaxRt: the min-RT of an empty bucket


def new_metric_bucket() -> list[int]:
    return [0, 0, 0, 0, 0, DEFAULT_STATISTIC_MAX_RT, 0]


class LeapArray:
    """A ring of ``sample_count`` time buckets covering ``interval_ms``.

    ``factory()`` builds an empty bucket (a list). Not thread-safe: the engine is driven from one thread.
    """

    __slots__ = ("sample_count", "interval_ms", "bucket_ms", "starts", "buckets", "_factory",
                 "cur_start", "cur_end", "cur", "cur_idx")

    def __init__(self, sample_count: int, interval_ms: int, factory: Callable[[], list] = new_metric_bucket):
        if sample_count <= 0 or interval_ms <= 0 or interval_ms % sample_count != 0:
            raise ValueError(f"Invalid parameters, intervalInMs is {interval_ms}, sampleCount is {sample_count}")
        self.sample_count = sample_count
        self.interval_ms = interval_ms
        self.bucket_ms = interval_ms // sample_count
        self.starts: list[int] = [-1] * sample_count  # -1: slot never used
        self.buckets: list[list] = [factory() for _ in range(sample_count)]
        self._factory = factory
        # The bucket written last and its time span: hot-path callers test
        # ``cur_start <= now < cur_end`` and skip the index arithmetic (the cache is only ever set to the
        # live bucket of its slot, and dropped whenever buckets are replaced).
        self.cur_start = 0
        self.cur_end = 0
        self.cur: list = self.buckets[0]
        self.cur_idx = 0

    # ---- writing ------------------------------------------------------------------------------------
    def current(self, now: int) -> list | None:
        """The bucket for ``now``, reset first if its slot holds an older window.

        Returns None when the clock went backwards past the slot's window (G returns an error and the
        sample is dropped), except for single-bucket arrays, which keep writing into their only bucket.
        """
        if self.cur_start <= now < self.cur_end:
            return self.cur
        length = self.bucket_ms
        start = now - now % length
        idx = (now // length) % self.sample_count
        old = self.starts[idx]
        if old == start:
            bucket = self.buckets[idx]
        elif start > old:
            self.starts[idx] = start
            bucket = self._factory()
            self.buckets[idx] = bucket
        else:
            return self.buckets[idx] if self.sample_count == 1 else None
        self.cur_start = start
        self.cur_end = start + length
        self.cur = bucket
        self.cur_idx = idx
        return bucket

    def add(self, now: int, event: int, count: int) -> None:
        bucket = self.current(now)
        if bucket is not None:
            bucket[event] += count

    def reset_values(self) -> None:
        """Zero every bucket in place, keeping the starts (G ``resetMetric`` of a breaker)."""
        factory = self._factory
        self.buckets = [factory() for _ in range(self.sample_count)]
        self.cur_end = 0

    # ---- reading ------------------------------------------------------------------------------------
    def is_deprecated(self, now: int, start: int) -> bool:
        return start < 0 or now - start > self.interval_ms or start > now

    def values(self, now: int) -> list[list]:
        """Every non-deprecated bucket (G ``LeapArray.Values``)."""
        interval = self.interval_ms
        return [b for s, b in zip(self.starts, self.buckets) if 0 <= now - s <= interval and s >= 0]

    def windows(self, now: int) -> Iterator[tuple[int, list]]:
        """``(start, bucket)`` for every non-deprecated bucket, oldest first."""
        interval = self.interval_ms
        pairs = [(s, b) for s, b in zip(self.starts, self.buckets) if s >= 0 and 0 <= now - s <= interval]
        pairs.sort(key=lambda p: p[0])
        return iter(pairs)

    def view_sum(self, event: int, now: int, span_ms: int) -> int:
        """Sum of ``event`` over the view of ``span_ms`` ending with the bucket of ``now``."""
        length = self.bucket_ms
        cur = now - now % length
        idx = (now // length) % self.sample_count
        starts = self.starts
        buckets = self.buckets
        total = 0
        for k in range(span_ms // length):
            if starts[idx - k] == cur - k * length:
                total += buckets[idx - k][event]
        return total

    def sum_last_two(self, event: int, now: int) -> int:
        """``view_sum(event, now, 2 * bucket_ms)`` without the loop: the default 1 s metric."""
        length = self.bucket_ms
        if self.cur_start <= now < self.cur_end:
            cur = self.cur_start
            idx = self.cur_idx
            total = self.cur[event]
        else:
            cur = now - now % length
            idx = (now // length) % self.sample_count
            total = self.buckets[idx][event] if self.starts[idx] == cur else 0
        if self.starts[idx - 1] == cur - length:
            total += self.buckets[idx - 1][event]
        return total

    def view_max(self, event: int, now: int, span_ms: int) -> int:
        length = self.bucket_ms
        cur = now - now % length
        idx = (now // length) % self.sample_count
        best = 0
        for k in range(span_ms // length):
            if self.starts[idx - k] == cur - k * length:
                value = self.buckets[idx - k][event]
                if value > best:
                    best = value
        return best

    def view_min(self, event: int, now: int, span_ms: int, default: int) -> int:
        length = self.bucket_ms
        cur = now - now % length
        idx = (now // length) % self.sample_count
        best = default
        for k in range(span_ms // length):
            if self.starts[idx - k] == cur - k * length:
                value = self.buckets[idx - k][event]
                if value < best:
                    best = value
        return best

    def __repr__(self) -> str:
        return f"LeapArray(sample_count={self.sample_count}, interval_ms={self.interval_ms})"


def check_reuse(sample_count: int, interval_ms: int, parent_sample_count: int, parent_interval_ms: int) -> str | None:
    """G ``base.CheckValidityForReuseStatistic``: None when a read-only view of the parent array works.

    Returns ``"illegal"`` for impossible parameters and ``"non_reusable"`` when the view cannot be built
    on the parent (the caller then makes a standalone array).
    """
    if interval_ms <= 0 or sample_count <= 0 or interval_ms % sample_count != 0:
        return "illegal"
    if parent_interval_ms <= 0 or parent_sample_count <= 0 or parent_interval_ms % parent_sample_count != 0:
        return "illegal"
    bucket = interval_ms // sample_count
    parent_bucket = parent_interval_ms // parent_sample_count
    if parent_interval_ms % interval_ms != 0 or bucket % parent_bucket != 0:
        return "non_reusable"
    return None


class View:
    """A read-only sliding view over a LeapArray (G ``SlidingWindowMetric``).

    ``span_ms`` is the view's interval and ``bucket_ms`` the view's own bucket length (interval divided by
    its sample count), used by :meth:`previous_qps`, which reads the view one bucket earlier.
    """

    __slots__ = ("array", "span_ms", "bucket_ms", "_seconds")

    def __init__(self, array: LeapArray, sample_count: int, span_ms: int) -> None:
        if check_reuse(sample_count, span_ms, array.sample_count, array.interval_ms) is not None:
            raise ValueError(f"cannot view {sample_count} x {span_ms} ms over {array!r}")
        self.array = array
        self.span_ms = span_ms
        self.bucket_ms = span_ms // sample_count
        self._seconds = span_ms / 1000.0

    def sum(self, event: int, now: int) -> int:
        return self.array.view_sum(event, now, self.span_ms)

    def qps(self, event: int, now: int) -> float:
        return self.array.view_sum(event, now, self.span_ms) / self._seconds

    def previous_qps(self, event: int, now: int) -> float:
        return self.array.view_sum(event, now - self.bucket_ms, self.span_ms) / self._seconds


class StandaloneCounter:
    """A flow rule's own pass counter when its interval cannot view the resource array.

    G ``generateStatFor`` -> ``NewBucketLeapArray(sampleCount, interval)`` written by the
    ``StandaloneStatSlot`` on every pass of the rule's resource.
    """

    __slots__ = ("array", "view")

    def __init__(self, sample_count: int, interval_ms: int) -> None:
        self.array = LeapArray(sample_count, interval_ms)
        self.view = View(self.array, sample_count, interval_ms)

    def add_pass(self, now: int, batch: int) -> None:
        bucket = self.array.current(now)
        if bucket is not None:
            bucket[PASS] += batch
