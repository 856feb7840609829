"""Flow traffic-shaping controllers (G ``tc_*.go``/``traffic_shaping.go``, J ``flow/controller/*``).

A controller answers ``check(now_ms, now_ns, batch, origin)``:

* ``0`` -- pass now;
* ``> 0`` -- pass after waiting that many nanoseconds (uniform spacing / throttling);
* ``-1`` -- blocked; ``block_msg`` and ``snapshot`` then describe why.

Go dialect controllers combine a token calculator (Direct threshold, :class:`WarmUpCalculator` fed with
the window's previous QPS, MemoryAdaptive) with a checker (Reject: ``window sum + batch > allowed``;
Throttling: uniform spacing in nanoseconds). Java dialect controllers pick their statistic node by
``limitApp``/``strategy`` first (J ``FlowRuleChecker.selectNodeByRequesterAndStrategy``) and then apply
the Java rater (``DefaultController``, ``WarmUpController``, ``ThrottlingController``,
``WarmUpRateLimiterController``) with Java's integer casts and ``Math.round``.
"""

from __future__ import annotations

import math
from typing import Any

from governance.base import MSG_FLOW_BATCH, MSG_FLOW_QUEUEING, MSG_FLOW_REJECT, MSG_FLOW_THRESHOLD_ZERO
from governance.flow.rule import GRADE_THREAD, LIMIT_APP_DEFAULT, LIMIT_APP_OTHER, FlowRule
from governance.rules import java_round
from governance.stat.window import PASS, StandaloneCounter, View

NS_PER_MS = 1_000_000
NS_PER_SEC = 1_000_000_000


def ieee_div(a: float, b: float) -> float:
    """Float division with IEEE-754 results for a zero divisor (as Go and Java compute)."""
    if b == 0:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


class WarmUpCalculator:
    """Guava-style warm-up token bucket (G ``WarmUpTrafficShapingCalculator`` = J ``WarmUpController``).

    ``warning = (int)(period*count) / (cold-1)``; ``max = warning + (int)(2*period*count / (1+cold))``;
    ``slope = (cold-1) / count / (max-warning)``. Tokens are synced at most once per wall-clock second
    with the previous second's pass QPS; the allowed rate is ``nextUp(1 / ((stored-warning)*slope +
    1/count))`` above the warning line and ``count`` below it.
    """

    __slots__ = ("count", "cold", "warning", "max_token", "slope", "inv_count", "stored", "last_filled")

    def __init__(self, count: float, period_sec: int, cold_factor: int) -> None:
        self.count = count
        self.cold = cold_factor
        self.warning = int(period_sec * count) // (cold_factor - 1)
        self.max_token = self.warning + int(2 * period_sec * count / (1.0 + cold_factor))
        self.slope = ieee_div(ieee_div(cold_factor - 1.0, count), self.max_token - self.warning)
        self.inv_count = ieee_div(1.0, count)
        self.stored = 0
        self.last_filled = 0

    def sync(self, now_ms: int, previous_qps: float) -> None:
        current = now_ms - now_ms % 1000
        if current <= self.last_filled:
            return
        old = self.stored
        new = old
        if old < self.warning:
            new = int(old + (current - self.last_filled) * self.count / 1000)
        elif old > self.warning and previous_qps < int(self.count) // self.cold:
            new = int(old + (current - self.last_filled) * self.count / 1000)
        if new > self.max_token:
            new = self.max_token
        new -= int(previous_qps)
        self.stored = new if new > 0 else 0
        self.last_filled = current

    def allowed(self) -> float:
        rest = self.stored
        if rest >= self.warning:
            return math.nextafter(ieee_div(1.0, (rest - self.warning) * self.slope + self.inv_count), math.inf)
        return self.count


class GoWarmUp:
    """G WarmUp calculator: previous QPS comes from the rule's own view (``GetPreviousQPS``)."""

    __slots__ = ("view", "calc")

    def __init__(self, view: View, calc: WarmUpCalculator) -> None:
        self.view = view
        self.calc = calc

    def allowed_at(self, now: int) -> float:
        calc = self.calc
        calc.sync(now, self.view.previous_qps(PASS, now))
        return calc.allowed()


class MemoryAdaptive:
    """G ``MemoryAdaptiveTrafficShapingCalculator``: threshold interpolated on process memory."""

    __slots__ = ("low", "high", "low_mark", "high_mark", "metrics")

    def __init__(self, rule: FlowRule, metrics: Any) -> None:
        self.low = rule.low_mem_threshold
        self.high = rule.high_mem_threshold
        self.low_mark = rule.mem_low_water_mark
        self.high_mark = rule.mem_high_water_mark
        self.metrics = metrics

    def allowed_at(self, now: int) -> float:
        mem = self.metrics.memory_usage()
        if mem is None or mem < 0:
            return float(self.low)
        if mem <= self.low_mark:
            return float(self.low)
        if mem >= self.high_mark:
            return float(self.high)
        return (self.high - self.low) / (self.high_mark - self.low_mark) * (mem - self.low_mark) + self.low


class FlowController:
    """Base class: the rule, the resource it guards, and the last block's explanation."""

    __slots__ = ("rule", "resource", "block_msg", "snapshot", "standalone")
    # check(n) passes exactly when n checks of 1 at the same instant would, and has no other effect (see
    # Chain.entry_batch); throttling controllers space each request, so they are not
    batchable = False

    def __init__(self, rule: FlowRule, resource: str, standalone: StandaloneCounter | None = None) -> None:
        self.rule = rule
        self.resource = resource
        self.block_msg = ""
        self.snapshot: Any = None
        self.standalone = standalone

    def check(self, now: int, now_ns: int, batch: int, origin: str) -> int:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.resource!r}, {self.rule.describe()})"


class GoRejectController(FlowController):
    """G Reject checker: block iff ``sum(pass over the rule's interval) + batch > allowed``."""

    __slots__ = ("view", "array", "span", "threshold", "calc", "two")
    batchable = True

    def __init__(self, rule: FlowRule, resource: str, view: View, calc: Any,
                 standalone: StandaloneCounter | None) -> None:
        super().__init__(rule, resource, standalone)
        self.view = view
        self.array = view.array
        self.span = view.span_ms
        self.two = view.span_ms == 2 * view.array.bucket_ms  # the default 1 s metric: a loop-free sum
        self.threshold = rule.threshold
        self.calc = calc  # None for Direct: the threshold is constant

    def check(self, now: int, now_ns: int, batch: int, origin: str) -> int:
        calc = self.calc
        allowed = self.threshold if calc is None else calc.allowed_at(now)
        if self.two:  # LeapArray.sum_last_two inlined: the per-request path of most flow rules
            array = self.array
            if array.cur_start <= now < array.cur_end:
                start = array.cur_start
                idx = array.cur_idx
                current = array.cur[PASS]
            else:
                length = array.bucket_ms
                start = now - now % length
                idx = (now // length) % array.sample_count
                current = array.buckets[idx][PASS] if array.starts[idx] == start else 0
            if array.starts[idx - 1] == start - array.bucket_ms:
                current += array.buckets[idx - 1][PASS]
        else:
            current = self.array.view_sum(PASS, now, self.span)
        if current + batch > allowed:
            self.block_msg = MSG_FLOW_REJECT
            self.snapshot = float(current)
            return -1
        return 0


class GoThrottlingController(FlowController):
    """G ``ThrottlingChecker``: requests spaced ``ceil(batch / allowed * statInterval)`` ns apart."""

    __slots__ = ("view", "threshold", "calc", "max_queue_ns", "interval_ns", "last_passed")

    def __init__(self, rule: FlowRule, resource: str, calc: Any, view: View | None,
                 standalone: StandaloneCounter | None) -> None:
        super().__init__(rule, resource, standalone)
        self.view = view
        self.threshold = rule.threshold
        self.calc = calc
        self.max_queue_ns = rule.max_queueing_ms * NS_PER_MS
        self.interval_ns = (rule.stat_interval_ms or 1000) * NS_PER_MS
        self.last_passed = 0

    def check(self, now: int, now_ns: int, batch: int, origin: str) -> int:
        if batch <= 0:
            return 0
        threshold = self.threshold if self.calc is None else self.calc.allowed_at(now)
        if not threshold > 0.0:
            return self._block(MSG_FLOW_THRESHOLD_ZERO, threshold)
        if batch > threshold:
            return self._block(MSG_FLOW_BATCH, threshold)
        interval = math.ceil(batch / threshold * self.interval_ns)
        if self.last_passed + interval <= now_ns:
            self.last_passed = now_ns
            return 0
        if self.last_passed + interval - now_ns > self.max_queue_ns:
            return self._block(MSG_FLOW_QUEUEING, threshold)
        self.last_passed += interval
        wait = self.last_passed - now_ns
        if wait > self.max_queue_ns:  # cannot happen single-threaded; kept from G for fidelity
            self.last_passed -= interval
            return self._block(MSG_FLOW_QUEUEING, threshold)
        return wait if wait > 0 else 0

    def _block(self, message: str, threshold: float) -> int:
        self.block_msg = message
        self.snapshot = threshold
        return -1


# ---- Java dialect ---------------------------------------------------------------------------------------

class JavaController(FlowController):
    """A Java ``FlowRule``: node selection by ``limitApp``/``strategy``, then the Java rater.

    ``env`` provides ``nodes`` (resource name -> node) and ``origin_limit``. ``named_apps`` is the set of
    ``limitApp`` values naming specific origins on this resource (for ``other``).
    """

    __slots__ = ("env", "rater", "active", "named_apps", "batchable")

    def __init__(self, rule: FlowRule, resource: str, env: Any, rater: Any, active: bool) -> None:
        super().__init__(rule, resource)
        self.env = env
        self.rater = rater
        self.batchable = type(rater) is JavaDefaultRater
        self.active = active
        self.named_apps: frozenset[str] = frozenset()

    def check(self, now: int, now_ns: int, batch: int, origin: str) -> int:
        if not self.active:
            return 0
        node = self.select(origin)
        if node is None:
            return 0
        wait = self.rater.can_pass(node, now, now_ns, batch)
        if wait < 0:
            self.block_msg = self.rater.message
            self.snapshot = self.rater.snapshot
        return wait

    def select(self, origin: str) -> Any:
        rule = self.rule
        limit_app = rule.limit_app
        if origin and limit_app == origin and origin not in (LIMIT_APP_DEFAULT, LIMIT_APP_OTHER):
            return self._origin_or_ref(origin)
        if limit_app == LIMIT_APP_DEFAULT:
            return self.env.nodes.get(rule.ref_resource) if rule.relation == 1 else self.env.nodes.get(self.resource)
        if limit_app == LIMIT_APP_OTHER and origin and origin not in self.named_apps:
            return self._origin_or_ref(origin)
        return None

    def _origin_or_ref(self, origin: str) -> Any:
        if self.rule.relation == 1:
            return self.env.nodes.get(self.rule.ref_resource)
        node = self.env.nodes.get(self.resource)
        return None if node is None else node.origin_node(origin, True, self.env.origin_limit)


class JavaDefaultRater:
    """J ``DefaultController``: ``(int) passQps + acquire > count`` (QPS) or ``curThreadNum`` (THREAD)."""

    __slots__ = ("count", "thread", "message", "snapshot")

    def __init__(self, rule: FlowRule) -> None:
        self.count = rule.threshold
        self.thread = rule.grade == GRADE_THREAD
        self.message = MSG_FLOW_REJECT
        self.snapshot: Any = None

    def can_pass(self, node: Any, now: int, now_ns: int, batch: int) -> int:
        current = node.concurrency if self.thread else int(node.pass_qps(now))
        if current + batch > self.count:
            self.snapshot = current
            return -1
        return 0


class JavaWarmUpRater:
    """J ``WarmUpController.canPass``: ``(long) passQps + acquire <= warningQps`` (or ``count``)."""

    __slots__ = ("calc", "message", "snapshot")

    def __init__(self, rule: FlowRule, cold_factor: int) -> None:
        self.calc = WarmUpCalculator(rule.threshold, rule.warm_up_period_sec, cold_factor)
        self.message = MSG_FLOW_REJECT
        self.snapshot: Any = None

    def can_pass(self, node: Any, now: int, now_ns: int, batch: int) -> int:
        pass_qps = int(node.pass_qps(now))
        self.calc.sync(now, int(node.java_previous_pass_qps(now)))
        allowed = self.calc.allowed()
        if pass_qps + batch <= allowed:
            return 0
        self.snapshot = pass_qps
        return -1


class JavaThrottlingRater:
    """J ``ThrottlingController``: cost ``round(1000 * acquire / count)`` ms, or nanoseconds when
    ``1000 % round(count) != 0`` or ``count > 1000``; ``latestPassedTime`` starts at -1."""

    __slots__ = ("count", "max_queue_ms", "use_ns", "latest", "message", "snapshot")

    def __init__(self, rule: FlowRule) -> None:
        self.count = rule.threshold
        self.max_queue_ms = rule.max_queueing_ms
        rounded = java_round(self.count) if self.count > 0 else 0
        self.use_ns = self.count > 0 and (rounded == 0 or 1000 % rounded != 0 or self.count / 1000 > 1)
        self.latest = -1
        self.message = MSG_FLOW_QUEUEING
        self.snapshot: Any = None

    def can_pass(self, node: Any, now: int, now_ns: int, batch: int) -> int:
        if batch <= 0:
            return 0
        if self.count <= 0:
            self.message = MSG_FLOW_THRESHOLD_ZERO
            return -1
        if self.use_ns:
            cost = java_round(1.0 * NS_PER_MS * 1000 * batch / self.count)
            return self._space(now_ns, cost, self.max_queue_ms * NS_PER_MS, 1)
        cost = java_round(1.0 * 1000 * batch / self.count)
        return self._space(now, cost, self.max_queue_ms, NS_PER_MS)

    def _space(self, now: int, cost: int, max_queue: int, to_ns: int) -> int:
        if cost + self.latest <= now:
            self.latest = now
            return 0
        if cost + self.latest - now > max_queue:
            self.message = MSG_FLOW_QUEUEING
            return -1
        self.latest += cost
        wait = self.latest - now
        if wait > max_queue:
            self.latest -= cost
            self.message = MSG_FLOW_QUEUEING
            return -1
        return wait * to_ns if wait > 0 else 0


class JavaWarmUpRateLimiterRater:
    """J ``WarmUpRateLimiterController``: spacing ``round(acquire / warmingQps * 1000)`` ms."""

    __slots__ = ("calc", "timeout_ms", "latest", "message", "snapshot")

    def __init__(self, rule: FlowRule, cold_factor: int) -> None:
        self.calc = WarmUpCalculator(rule.threshold, rule.warm_up_period_sec, cold_factor)
        self.timeout_ms = rule.max_queueing_ms
        self.latest = -1
        self.message = MSG_FLOW_QUEUEING
        self.snapshot: Any = None

    def can_pass(self, node: Any, now: int, now_ns: int, batch: int) -> int:
        calc = self.calc
        calc.sync(now, int(node.java_previous_pass_qps(now)))
        rate = calc.allowed()
        if not rate > 0:  # count 0 (or NaN from a zero count): Java's cost overflows and never passes
            self.snapshot = rate
            return -1
        cost = java_round(1.0 * batch / rate * 1000)
        if cost + self.latest <= now:
            self.latest = now
            return 0
        if cost + self.latest - now > self.timeout_ms:
            self.snapshot = rate
            return -1
        self.latest += cost
        wait = self.latest - now
        if wait > self.timeout_ms:
            self.latest -= cost
            self.snapshot = rate
            return -1
        return wait * NS_PER_MS if wait > 0 else 0
