"""Flow rules in both dialects, decoded into one frozen model.

Go dialect (G ``core/flow/rule.go``): two axes, ``tokenCalculateStrategy`` (0 Direct, 1 WarmUp,
2 MemoryAdaptive) x ``controlBehavior`` (0 Reject, 1 Throttling); ``threshold`` is the count allowed per
``statIntervalInMs`` (0 = the resource's 1 s metric). Validation is G ``IsValidRule``.

Java dialect (J ``FlowRule``/``FlowRuleUtil``): ``grade`` (0 THREAD = concurrency limit, 1 QPS),
``count``, ``strategy`` (0 direct, 1 relate), ``controlBehavior`` (0 reject, 1 warm-up, 2 rate limiter,
3 warm-up + rate limiter), ``limitApp`` (default / other / a caller origin). The Java behaviours map onto
the same two axes (warm-up -> WarmUp, rate limiter -> Throttling) while ``dialect`` keeps the Java
formulas (``(int) passQps``, ``Math.round`` costs, previous-second QPS) in force.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from governance.rules import (
    INT64_MAX, UINT32_MAX, ParseContext, RuleReader, Validation, float_equals, parse_items,
)

log = logging.getLogger("governance.flow")

DIRECT, WARM_UP, MEMORY_ADAPTIVE = 0, 1, 2
REJECT, THROTTLING = 0, 1
CURRENT_RESOURCE, ASSOCIATED_RESOURCE = 0, 1
GRADE_THREAD, GRADE_QPS = 0, 1
J_DEFAULT, J_WARM_UP, J_RATE_LIMITER, J_WARM_UP_RATE_LIMITER = 0, 1, 2, 3
LIMIT_APP_DEFAULT, LIMIT_APP_OTHER = "default", "other"
DEFAULT_COLD_FACTOR = 3

_TOKEN_STRATEGIES = {"Direct": DIRECT, "WarmUp": WARM_UP, "MemoryAdaptive": MEMORY_ADAPTIVE}
_BEHAVIORS = {"Reject": REJECT, "Throttling": THROTTLING}
_RELATIONS = {"CurrentResource": CURRENT_RESOURCE, "AssociatedResource": ASSOCIATED_RESOURCE}


@dataclass(frozen=True)
class FlowRule:
    """One flow rule. Fields not meaningful in a dialect keep their defaults."""

    resource: str
    dialect: str = "go"
    id: str | int | None = None
    regex: bool = False
    token_strategy: int = DIRECT
    behavior: int = REJECT
    threshold: float = 0.0
    relation: int = CURRENT_RESOURCE
    ref_resource: str = ""
    max_queueing_ms: int = 0
    warm_up_period_sec: int = 0
    cold_factor: int = 0
    stat_interval_ms: int = 0
    low_mem_threshold: int = 0
    high_mem_threshold: int = 0
    mem_low_water_mark: int = 0
    mem_high_water_mark: int = 0
    # Java-only
    limit_app: str = LIMIT_APP_DEFAULT
    grade: int = GRADE_QPS
    java_behavior: int = J_DEFAULT
    cluster_mode: bool = False
    cluster_config: str = ""  # canonical JSON of clusterConfig, kept for equality and round-trips

    @property
    def needs_statistic(self) -> bool:
        """G ``needStatistic``: Throttling with Direct/MemoryAdaptive tokens reads no window."""
        return self.token_strategy == WARM_UP or self.behavior == REJECT

    def same_as(self, other: FlowRule) -> bool:
        """G ``isEqualsTo`` (floats compared to 1e-8), plus dialect, regex and the Java fields."""
        return (
            self.dialect == other.dialect and self.resource == other.resource and self.regex == other.regex
            and self.relation == other.relation and self.ref_resource == other.ref_resource
            and self.stat_interval_ms == other.stat_interval_ms and self.token_strategy == other.token_strategy
            and self.behavior == other.behavior and float_equals(self.threshold, other.threshold)
            and self.max_queueing_ms == other.max_queueing_ms
            and self.warm_up_period_sec == other.warm_up_period_sec and self.cold_factor == other.cold_factor
            and self.low_mem_threshold == other.low_mem_threshold
            and self.high_mem_threshold == other.high_mem_threshold
            and self.mem_low_water_mark == other.mem_low_water_mark
            and self.mem_high_water_mark == other.mem_high_water_mark
            and self.limit_app == other.limit_app and self.grade == other.grade
            and self.java_behavior == other.java_behavior and self.cluster_mode == other.cluster_mode
            and self.cluster_config == other.cluster_config
        )

    def stat_reusable(self, other: FlowRule) -> bool:
        """G ``isStatReusable``: same resource, relation, reference and interval; both read a window."""
        return (
            self.dialect == other.dialect == "go" and self.resource == other.resource
            and self.relation == other.relation and self.ref_resource == other.ref_resource
            and self.stat_interval_ms == other.stat_interval_ms
            and self.needs_statistic and other.needs_statistic
        )

    def to_json(self) -> dict:
        return _to_java(self) if self.dialect == "java" else _to_go(self)

    def describe(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))


def _to_go(rule: FlowRule) -> dict:
    out: dict = {"id": rule.id} if rule.id not in (None, "") else {}
    out.update({
        "resource": rule.resource, "tokenCalculateStrategy": rule.token_strategy,
        "controlBehavior": rule.behavior, "threshold": rule.threshold, "relationStrategy": rule.relation,
        "refResource": rule.ref_resource, "maxQueueingTimeMs": rule.max_queueing_ms,
        "warmUpPeriodSec": rule.warm_up_period_sec, "warmUpColdFactor": rule.cold_factor,
        "statIntervalInMs": rule.stat_interval_ms, "lowMemUsageThreshold": rule.low_mem_threshold,
        "highMemUsageThreshold": rule.high_mem_threshold, "memLowWaterMarkBytes": rule.mem_low_water_mark,
        "memHighWaterMarkBytes": rule.mem_high_water_mark,
    })
    if rule.regex:
        out["regex"] = True
    return out


def _to_java(rule: FlowRule) -> dict:
    out: dict = {"id": rule.id} if rule.id is not None else {}
    out.update({
        "resource": rule.resource, "limitApp": rule.limit_app, "grade": rule.grade, "count": rule.threshold,
        "strategy": rule.relation, "refResource": rule.ref_resource or None,
        "controlBehavior": rule.java_behavior, "warmUpPeriodSec": rule.warm_up_period_sec,
        "maxQueueingTimeMs": rule.max_queueing_ms, "clusterMode": rule.cluster_mode, "regex": rule.regex,
    })
    if rule.cluster_config:
        out["clusterConfig"] = json.loads(rule.cluster_config)
    return out


def parse_flow_rules(items: list, dialect: str, ctx: ParseContext = ParseContext()) -> Validation:
    if dialect == "java":
        return parse_items("flow", items, _decode_java)
    return parse_items("flow", items, lambda r: _decode_go(r, ctx))


def _resource(r: RuleReader) -> str:
    resource = r.string("resource")
    if not resource.strip():
        r.fail("resource", "must be a non-empty string")
    return resource


def _decode_go(r: RuleReader, ctx: ParseContext) -> FlowRule:
    rule = FlowRule(
        resource=_resource(r), dialect="go", id=r.string("id") or None, regex=r.boolean("regex"),
        token_strategy=r.enum("tokenCalculateStrategy", DIRECT, _TOKEN_STRATEGIES),
        behavior=r.enum("controlBehavior", REJECT, _BEHAVIORS), threshold=r.number("threshold"),
        relation=r.enum("relationStrategy", CURRENT_RESOURCE, _RELATIONS), ref_resource=r.string("refResource"),
        max_queueing_ms=r.integer("maxQueueingTimeMs", 0, 0, UINT32_MAX),
        warm_up_period_sec=r.integer("warmUpPeriodSec", 0, 0, UINT32_MAX),
        cold_factor=r.integer("warmUpColdFactor", 0, 0, UINT32_MAX),
        stat_interval_ms=r.integer("statIntervalInMs", 0, 0, UINT32_MAX),
        low_mem_threshold=r.integer("lowMemUsageThreshold", 0, -INT64_MAX - 1, INT64_MAX),
        high_mem_threshold=r.integer("highMemUsageThreshold", 0, -INT64_MAX - 1, INT64_MAX),
        mem_low_water_mark=r.integer("memLowWaterMarkBytes", 0, -INT64_MAX - 1, INT64_MAX),
        mem_high_water_mark=r.integer("memHighWaterMarkBytes", 0, -INT64_MAX - 1, INT64_MAX),
    )
    _validate_go(r, rule, ctx)
    return rule


def _validate_go(r: RuleReader, rule: FlowRule, ctx: ParseContext) -> None:
    """G ``IsValidRule`` plus the generator map: an unknown (strategy, behaviour) pair is refused."""
    if rule.threshold < 0:
        r.fail("threshold", f"must be >= 0, got {rule.threshold:g}")
    if rule.token_strategy not in (DIRECT, WARM_UP, MEMORY_ADAPTIVE):
        r.fail("tokenCalculateStrategy", f"unsupported value {rule.token_strategy} (0 Direct, 1 WarmUp, 2 MemoryAdaptive)")
    if rule.behavior not in (REJECT, THROTTLING):
        r.fail("controlBehavior", f"unsupported value {rule.behavior} (0 Reject, 1 Throttling)")
    if rule.relation not in (CURRENT_RESOURCE, ASSOCIATED_RESOURCE):
        r.fail("relationStrategy", f"invalid value {rule.relation} (0 CurrentResource, 1 AssociatedResource)")
    elif rule.relation == ASSOCIATED_RESOURCE and not rule.ref_resource:
        r.fail("refResource", "must be non-empty when relationStrategy is AssociatedResource")
    if rule.token_strategy == WARM_UP:
        if rule.warm_up_period_sec <= 0:
            r.fail("warmUpPeriodSec", "must be > 0 for the WarmUp strategy")
        if rule.cold_factor == 1:
            r.fail("warmUpColdFactor", "must be > 1 (0 selects the default 3)")
    if rule.token_strategy == MEMORY_ADAPTIVE:
        _validate_memory(r, rule, ctx)
    if rule.stat_interval_ms > 10 * 60 * 1000:
        log.info("flow rule %r: statIntervalInMs %d is more than 10 minutes", rule.resource, rule.stat_interval_ms)
    if rule.regex:
        r.regex_ok("resource", rule.resource)


def _validate_memory(r: RuleReader, rule: FlowRule, ctx: ParseContext) -> None:
    if rule.low_mem_threshold <= 0:
        r.fail("lowMemUsageThreshold", "must be > 0")
    if rule.high_mem_threshold <= 0:
        r.fail("highMemUsageThreshold", "must be > 0")
    if rule.high_mem_threshold >= rule.low_mem_threshold:
        r.fail("highMemUsageThreshold", "must be < lowMemUsageThreshold")
    if rule.mem_low_water_mark <= 0:
        r.fail("memLowWaterMarkBytes", "must be > 0")
    if rule.mem_high_water_mark <= 0:
        r.fail("memHighWaterMarkBytes", "must be > 0")
    if ctx.total_memory is not None and rule.mem_high_water_mark > ctx.total_memory:
        r.fail("memHighWaterMarkBytes", f"must not exceed the system's total memory ({ctx.total_memory} bytes)")
    if rule.mem_low_water_mark >= rule.mem_high_water_mark:
        r.fail("memLowWaterMarkBytes", "must be < memHighWaterMarkBytes")


def _decode_java(r: RuleReader) -> FlowRule:
    grade = r.integer("grade", GRADE_QPS)
    behavior = r.integer("controlBehavior", J_DEFAULT)
    strategy = r.integer("strategy", 0)
    limit_app = r.string("limitApp", LIMIT_APP_DEFAULT).strip() or LIMIT_APP_DEFAULT
    warm_up = r.integer("warmUpPeriodSec", 10)
    max_queue = r.integer("maxQueueingTimeMs", 500)
    cluster_mode = r.boolean("clusterMode")
    cluster = r.mapping("clusterConfig")
    rule = FlowRule(
        resource=_resource(r), dialect="java", id=r.get("id") if r.has("id") else None, regex=r.boolean("regex"),
        token_strategy=WARM_UP if grade == GRADE_QPS and behavior in (J_WARM_UP, J_WARM_UP_RATE_LIMITER) else DIRECT,
        behavior=THROTTLING if grade == GRADE_QPS and behavior in (J_RATE_LIMITER, J_WARM_UP_RATE_LIMITER) else REJECT,
        threshold=r.number("count"), relation=strategy, ref_resource=r.string("refResource"),
        max_queueing_ms=max_queue, warm_up_period_sec=warm_up, stat_interval_ms=1000, limit_app=limit_app,
        grade=grade, java_behavior=behavior, cluster_mode=cluster_mode,
        cluster_config=json.dumps(cluster, sort_keys=True) if cluster is not None else "",
    )
    _validate_java(r, rule, cluster)
    return rule


def _validate_java(r: RuleReader, rule: FlowRule, cluster: dict | None) -> None:
    """J ``FlowRuleUtil.isValidRule``, refusing values Java would silently treat as "default"."""
    if rule.id is not None and not isinstance(rule.id, (int, str)):
        r.fail("id", "must be an integer")
    if rule.threshold < 0:
        r.fail("count", f"must be >= 0, got {rule.threshold:g}")
    if rule.grade not in (GRADE_THREAD, GRADE_QPS):
        r.fail("grade", f"must be 0 (THREAD) or 1 (QPS), got {rule.grade}")
    if rule.relation == 2:
        r.fail("strategy", "2 (chain) is not supported: meshd has no invocation-chain contexts")
    elif rule.relation not in (0, 1):
        r.fail("strategy", f"must be 0 (direct) or 1 (relate), got {rule.relation}")
    elif rule.relation == 1 and not rule.ref_resource.strip():
        r.fail("refResource", "must be non-empty when strategy is 1 (relate)")
    if rule.java_behavior not in (J_DEFAULT, J_WARM_UP, J_RATE_LIMITER, J_WARM_UP_RATE_LIMITER):
        r.fail("controlBehavior", f"must be 0-3, got {rule.java_behavior}")
    elif rule.grade == GRADE_QPS:
        if rule.java_behavior in (J_WARM_UP, J_WARM_UP_RATE_LIMITER) and rule.warm_up_period_sec <= 0:
            r.fail("warmUpPeriodSec", f"must be > 0 for controlBehavior {rule.java_behavior}")
        if rule.java_behavior in (J_RATE_LIMITER, J_WARM_UP_RATE_LIMITER) and rule.max_queueing_ms <= 0:
            r.fail("maxQueueingTimeMs", f"must be > 0 for controlBehavior {rule.java_behavior}")
    if rule.cluster_mode:
        _validate_cluster(r, cluster)
    if rule.regex:
        r.regex_ok("resource", rule.resource)


def _validate_cluster(r: RuleReader, cluster: dict | None) -> None:
    if cluster is None:
        r.fail("clusterConfig", "is required when clusterMode is true")
        return
    lowered = {str(k).lower(): v for k, v in cluster.items()}
    flow_id = lowered.get("flowid")
    if isinstance(flow_id, bool) or not isinstance(flow_id, int) or flow_id <= 0:
        r.fail("clusterConfig.flowId", f"must be a positive integer, got {flow_id!r}")
    samples = lowered.get("samplecount", 10)
    window = lowered.get("windowintervalms", 1000)
    if not (isinstance(samples, int) and isinstance(window, int) and samples > 0 and window > 0
            and window % samples == 0):
        r.fail("clusterConfig.windowIntervalMs", "must be a positive multiple of a positive sampleCount")
    fallback = lowered.get("fallbacktolocalwhenfail", True)
    if not isinstance(fallback, bool):
        r.fail("clusterConfig.fallbackToLocalWhenFail", "must be true or false")


def cluster_falls_back(rule: FlowRule) -> bool:
    """A cluster-mode rule with no token server: J checks locally iff ``fallbackToLocalWhenFail``."""
    if not rule.cluster_mode:
        return True
    lowered = {str(k).lower(): v for k, v in json.loads(rule.cluster_config or "{}").items()}
    return bool(lowered.get("fallbacktolocalwhenfail", True))
