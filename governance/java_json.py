"""Loaded rules as Sentinel Java's rule JSON, whatever dialect they were loaded in.

The Sentinel dashboard reads rules with fastjson into ``FlowRule``, ``DegradeRule``, ``SystemRule`` and
``ParamFlowRule`` (J ``SentinelApiClient.fetchRules`` / ``fetchParamFlowRulesOfMachine``), so every rule
meshd shows it must be in that schema, also rules loaded in the Go dialect. One function per kind turns a
frozen rule object into the JSON object fastjson would write for the Java rule (``JSON.toJSONString``:
bean properties in alphabetical order, null properties left out); :func:`dumps` writes a list of them the
way fastjson does (compact, sorted keys, non-ASCII kept).

Go -> Java is a projection; what Java cannot express is shown as closely as it can be:

* flow: ``tokenCalculateStrategy`` x ``controlBehavior`` -> one ``controlBehavior`` (Direct/Reject 0,
  WarmUp/Reject 1, Direct/Throttling 2, WarmUp/Throttling 3; MemoryAdaptive shows as 0 or 2 with
  ``count`` = ``lowMemUsageThreshold``); ``threshold`` per ``statIntervalInMs`` -> ``count`` per second;
  the cold factor has no Java field;
* circuit breaker: ``retryTimeoutMs`` -> ``timeWindow`` seconds rounded up (Java needs > 0);
  SlowRequestRatio -> grade 0 with ``count`` = ``maxAllowedRtMs`` and ``slowRatioThreshold`` = ``threshold``;
  ``probeNum`` and the bucket count have no Java field;
* system: each Go rule sets one of ``highestSystemLoad``, ``highestCpuUsage``, ``qps``, ``avgRt``,
  ``maxThread`` (the others -1);
* hotspot: ``paramKey`` has no Java field (``paramIdx`` is shown); ``specificItems`` ->
  ``paramFlowItemList`` with Java class names.

Rule ids: Java ids are ``Long``; an id that is not an integer is left out (fastjson would refuse it).
Isolation rules have no Java kind (Java's equivalent is a THREAD-grade flow rule) and are not converted.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

from governance.circuitbreaker.rule import SLOW_REQUEST_RATIO, CircuitBreakerRule
from governance.flow.rule import DIRECT, GRADE_QPS, MEMORY_ADAPTIVE, THROTTLING, WARM_UP, FlowRule
from governance.hotspot.rule import THROTTLING as HOTSPOT_THROTTLING
from governance.hotspot.rule import HotspotRule
from governance.system.rule import AVG_RT, CONCURRENCY, CPU_USAGE, INBOUND_QPS, JAVA_FIELDS, LOAD, SystemRule

#: Java ``RuleConstant`` control behaviours for the Go (token strategy, behaviour) pairs
_GO_FLOW_BEHAVIORS = {
    (DIRECT, 0): 0, (WARM_UP, 0): 1, (DIRECT, THROTTLING): 2, (WARM_UP, THROTTLING): 3,
    (MEMORY_ADAPTIVE, 0): 0, (MEMORY_ADAPTIVE, THROTTLING): 2,
}
_SYSTEM_FIELDS = {LOAD: "highestSystemLoad", CPU_USAGE: "highestCpuUsage", INBOUND_QPS: "qps",
                  AVG_RT: "avgRt", CONCURRENCY: "maxThread"}
_LONG_SYSTEM_FIELDS = ("avgRt", "maxThread")  # ``long`` in J SystemRule: written without a fraction


def dumps(objects: Iterable[dict]) -> str:
    """fastjson's ``JSON.toJSONString(list)``: compact, keys sorted, nulls already left out."""
    return json.dumps(list(objects), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def java_id(value: Any) -> int | None:
    """A rule id as Java's ``Long``, or None when it is not an integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _base(rule: Any, limit_app: str) -> dict:
    out: dict = {"resource": rule.resource, "limitApp": limit_app, "regex": bool(rule.regex)}
    rule_id = java_id(rule.id)
    if rule_id is not None:
        out["id"] = rule_id
    return out


def flow_rule(rule: FlowRule) -> dict:
    """J ``FlowRule``: grade, count, strategy, refResource, controlBehavior, warmUpPeriodSec, ..."""
    out = _base(rule, rule.limit_app if rule.dialect == "java" else "default")
    if rule.dialect == "java":
        out.update({"grade": rule.grade, "count": float(rule.threshold), "controlBehavior": rule.java_behavior,
                    "clusterMode": rule.cluster_mode})
        if rule.cluster_config:
            out["clusterConfig"] = json.loads(rule.cluster_config)
    else:
        threshold = rule.low_mem_threshold if rule.token_strategy == MEMORY_ADAPTIVE else rule.threshold
        interval = rule.stat_interval_ms
        count = threshold if interval in (0, 1000) else threshold * 1000.0 / interval
        out.update({"grade": GRADE_QPS, "count": float(count), "clusterMode": False,
                    "controlBehavior": _GO_FLOW_BEHAVIORS.get((rule.token_strategy, rule.behavior), 0)})
    out.update({"strategy": rule.relation, "warmUpPeriodSec": rule.warm_up_period_sec,
                "maxQueueingTimeMs": rule.max_queueing_ms})
    if rule.ref_resource:
        out["refResource"] = rule.ref_resource
    return out


def degrade_rule(rule: CircuitBreakerRule) -> dict:
    """J ``DegradeRule``: grade, count, timeWindow, minRequestAmount, slowRatioThreshold, statIntervalMs."""
    slow = rule.strategy == SLOW_REQUEST_RATIO
    out = _base(rule, rule.limit_app)
    if rule.dialect == "java":
        count, window = rule.count, rule.time_window_sec
    else:
        count = float(rule.max_allowed_rt_ms) if slow else rule.threshold
        window = math.ceil(rule.retry_timeout_ms / 1000)
    out.update({
        "grade": rule.strategy, "count": float(count), "timeWindow": window,
        "minRequestAmount": rule.min_request_amount, "statIntervalMs": rule.stat_interval_ms,
        "slowRatioThreshold": float(rule.threshold) if slow else 1.0,
    })
    return out


def system_rule(rule: SystemRule) -> dict:
    """J ``SystemRule``: every limit, -1 where the rule sets none (``avgRt``/``maxThread`` are longs)."""
    if rule.dialect == "java":
        limits = dict(rule.java_limits)
    else:
        limits = {rule.metric_type: rule.trigger_count}
    out: dict = {"regex": False}
    rule_id = java_id(rule.id)
    if rule_id is not None:
        out["id"] = rule_id
    for name, metric in JAVA_FIELDS:
        value = limits.get(metric, -1)
        out[name] = int(value) if name in _LONG_SYSTEM_FIELDS else float(value)
    return out


def param_flow_rule(rule: HotspotRule) -> dict:
    """J ``ParamFlowRule``: grade, paramIdx, count, controlBehavior, burstCount, paramFlowItemList, ..."""
    out = _base(rule, rule.limit_app)
    out.update({
        "grade": rule.metric_type, "paramIdx": rule.param_index,
        "count": float(rule.count if rule.dialect == "java" else rule.threshold),
        "controlBehavior": 2 if rule.behavior == HOTSPOT_THROTTLING else 0,
        "maxQueueingTimeMs": rule.max_queueing_ms, "burstCount": rule.burst_count,
        "durationInSec": rule.duration_sec, "clusterMode": False,
        "paramFlowItemList": _java_items(rule) if rule.dialect == "java" else [
            _item(value, limit) for value, limit in rule.specific_items],
    })
    return out


def _item(value: Any, limit: int) -> dict:
    """J ``ParamFlowItem.newItem``: the value's text and its Java class."""
    if isinstance(value, bool):
        return {"object": "true" if value else "false", "count": limit, "classType": "boolean"}
    if isinstance(value, int):
        return {"object": str(value), "count": limit, "classType": "int"}
    if isinstance(value, float):
        return {"object": repr(value), "count": limit, "classType": "double"}
    return {"object": str(value), "count": limit, "classType": "java.lang.String"}


def _java_items(rule: HotspotRule) -> list[dict]:
    items = []
    for raw in json.loads(rule.items_json) if rule.items_json else []:
        lowered = {str(k).lower(): v for k, v in raw.items()}
        item: dict = {"count": lowered.get("count")}
        if lowered.get("object") is not None:
            item["object"] = str(lowered["object"])
        if lowered.get("classtype") is not None:
            item["classType"] = str(lowered["classtype"])
        items.append(item)
    return items


def rules_json(kind: str, rules: Iterable[Any]) -> str:
    """The fastjson text of every rule of ``kind`` (``flow``, ``circuit_breaker``, ``system``, ``hotspot``)."""
    convert = {"flow": flow_rule, "circuit_breaker": degrade_rule, "system": system_rule,
               "hotspot": param_flow_rule}[kind]
    return dumps(convert(rule) for rule in rules)
