"""Hotspot traffic shaping (G ``core/hotspot/traffic_shaping.go``, J ``ParamFlowChecker``).

Per parameter value, in LRU caches of ``rule.capacity`` entries (the memory bound):

* QPS + Reject -- a token bucket refilled only after a full window. ``tokenCount`` is the specific item
  or the threshold (``<= 0`` blocks); ``max = tokenCount + burst``; ``batch > max`` blocks. First sight:
  ``rest = max - batch``, pass. After ``elapsed > duration``: ``add = elapsed * tokenCount / duration``;
  ``rest = max - batch`` if ``add + rest > max`` else ``rest + add - batch``; negative blocks. Inside the
  window: pass iff ``rest - batch >= 0``.
* QPS + Throttling -- ``cost = batch * duration / tokenCount`` ms (G integer division, J ``Math.round``);
  first sight passes; ``expected = last + cost``; pass when ``expected <= now`` or wait ``expected - now``
  when that is strictly below ``maxQueueingTimeMs``; otherwise block.
* Concurrency -- pass iff ``current + 1 <= threshold`` (or the item's value). G lets the first sight of a
  value pass; J counts from zero. The count goes up when the whole chain passes, down on exit.

Argument extraction (G ``ExtractArgs``): the ``paramKey`` attachment if present, else ``args[paramIndex]``
(negative counts from the end); a missing argument skips the rule. Java also accepts a list/tuple/set
argument and checks every element (J ``toCollection``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping, Sequence

from governance.hotspot.rule import CONCURRENCY, THROTTLING, HotspotRule
from governance.rules import java_round

NS_PER_MS = 1_000_000


class LruCounter:
    """A bounded map (G ``cache.NewLRUCacheMap``): reads refresh recency, inserts evict the oldest."""

    __slots__ = ("capacity", "data")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data: OrderedDict = OrderedDict()

    def get(self, key: Any) -> Any:
        data = self.data
        value = data.get(key)
        if value is not None:
            data.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        data = self.data
        data[key] = value
        data.move_to_end(key)
        if len(data) > self.capacity:
            data.popitem(last=False)

    def __len__(self) -> int:
        return len(self.data)


class HotspotMetric:
    """The statistic a stat-reusable successor adopts (G ``ParamsMetric``)."""

    __slots__ = ("time_counter", "token_counter", "concurrency")

    def __init__(self, capacity: int) -> None:
        self.time_counter = LruCounter(capacity)
        self.token_counter = LruCounter(capacity)
        self.concurrency = LruCounter(capacity)


class HotspotController:
    """One hotspot rule bound to one resource."""

    __slots__ = ("rule", "resource", "metric", "java", "items", "threshold", "burst", "duration_ms",
                 "max_queue_ms", "index", "key", "concurrent", "throttling", "block_msg", "snapshot")

    def __init__(self, rule: HotspotRule, resource: str, metric: HotspotMetric | None) -> None:
        self.rule = rule
        self.resource = resource
        self.metric = metric if metric is not None else HotspotMetric(rule.capacity)
        self.java = rule.dialect == "java"
        self.items = dict(rule.specific_items)
        self.threshold = rule.threshold
        self.burst = rule.burst_count
        self.duration_ms = rule.duration_sec * 1000
        self.max_queue_ms = rule.max_queueing_ms
        self.index = rule.param_index
        self.key = rule.param_key
        self.concurrent = rule.metric_type == CONCURRENCY
        self.throttling = rule.behavior == THROTTLING
        self.block_msg = ""
        self.snapshot: Any = None

    # ---- arguments ----------------------------------------------------------------------------------
    def extract(self, args: Sequence[Any], attachments: Mapping[Any, Any] | None) -> Any:
        if self.key and attachments:
            value = attachments.get(self.key)
            if value is not None:
                return value
        idx = self.index
        if idx < 0:
            idx += len(args)
        if 0 <= idx < len(args):
            return args[idx]
        return None

    def values(self, arg: Any) -> Sequence[Any]:
        """The values to check: J checks each element of a collection argument."""
        if self.java and isinstance(arg, (list, tuple, set, frozenset)):
            return list(arg)
        return (arg,)

    # ---- checks: 0 pass, > 0 wait ns, -1 block ------------------------------------------------------
    def check(self, value: Any, batch: int, now: int) -> int:
        try:
            hash(value)
        except TypeError:
            return 0  # an unhashable argument cannot be counted: the rule does not apply
        if self.concurrent:
            return self._check_concurrency(value)
        if self.throttling:
            return self._check_throttling(value, batch, now)
        return self._check_reject(value, batch, now)

    def _check_concurrency(self, value: Any) -> int:
        counter = self.metric.concurrency
        current = counter.get(value)
        if current is None:
            if not self.java:
                counter.put(value, 0)
                return 0  # G: the first sight of a value passes
            current = 0
        current += 1
        limit = self.items.get(value)
        if limit is None:
            if current <= self.threshold:
                return 0
            return self._block(f"hotspot concurrency check blocked, arg: {value}", current)
        if current <= limit:
            return 0
        return self._block(f"hotspot specific concurrency check blocked, arg: {value}", current)

    def _check_reject(self, value: Any, batch: int, now: int) -> int:
        tokens = self.items.get(value, self.threshold)
        if tokens <= 0:
            return self._block(f"hotspot reject check blocked, threshold is <= 0, arg: {value}", None)
        max_count = tokens + self.burst
        if batch > max_count:
            return self._block(
                f"hotspot reject check blocked, request batch count is more than max token count, arg: {value}", None)
        metric = self.metric
        last = metric.time_counter.get(value)
        rest = metric.token_counter.get(value)
        if last is None or rest is None:  # first sight (or evicted): fill and consume at once
            metric.time_counter.put(value, now)
            metric.token_counter.put(value, max_count - batch)
            return 0
        elapsed = now - last
        if elapsed > self.duration_ms:
            added = elapsed * tokens // self.duration_ms
            new_rest = max_count - batch if added + rest > max_count else added + rest - batch
            if new_rest < 0:
                return self._block(_NOT_ENOUGH.format(value), rest)
            metric.token_counter.put(value, new_rest)
            metric.time_counter.put(value, now)
            return 0
        if rest - batch >= 0:
            metric.token_counter.put(value, rest - batch)
            return 0
        return self._block(_NOT_ENOUGH.format(value), rest)

    def _check_throttling(self, value: Any, batch: int, now: int) -> int:
        tokens = self.items.get(value, self.threshold)
        if tokens <= 0:
            return self._block(f"hotspot throttling check blocked, threshold is <= 0, arg: {value}", None)
        if self.java:
            cost = java_round(1.0 * 1000 * batch * (self.duration_ms // 1000) / tokens)
        else:
            cost = batch * self.duration_ms // tokens
        times = self.metric.time_counter
        last = times.get(value)
        if last is None:
            times.put(value, now)
            return 0
        expected = last + cost
        if expected <= now or expected - now < self.max_queue_ms:
            times.put(value, now)
            wait = expected - now
            if wait > 0:
                times.put(value, expected)
                return wait * NS_PER_MS
            return 0
        return self._block(
            f"hotspot throttling check blocked, wait time exceedes max queueing time, arg: {value}", expected - now)

    def _block(self, message: str, snapshot: Any) -> int:
        self.block_msg = message
        self.snapshot = snapshot
        return -1

    # ---- concurrency accounting (G ConcurrencyStatSlot) ---------------------------------------------
    def acquire(self, value: Any) -> bool:
        counter = self.metric.concurrency
        current = counter.get(value)
        if current is None:
            if not self.java:
                return False
            current = 0
        counter.put(value, current + 1)
        return True

    def release(self, value: Any) -> None:
        counter = self.metric.concurrency
        current = counter.get(value)
        if current is not None:
            counter.put(value, current - 1)

    def __repr__(self) -> str:
        return f"HotspotController({self.resource!r}, {self.rule.describe()})"


_NOT_ENOUGH = "hotspot reject check blocked, request batch count is more than available token count, arg: {}"
