"""Hotspot (parameter flow) rules in both dialects (G ``core/hotspot/rule.go``, J ``ParamFlowRule``).

Go: ``metricType`` (0 Concurrency, 1 QPS), ``controlBehavior`` (0 Reject, 1 Throttling), ``paramIndex``
(negative counts from the end) or ``paramKey`` (an attachment key, taking priority), ``threshold``,
``maxQueueingTimeMs``, ``burstCount``, ``durationInSec``, ``paramsMaxCapacity`` and ``specificItems``,
either the datasource list ``[{"valKind": 0 int | 1 string | 2 bool | 3 float64, "valStr": "...",
"threshold": n}]`` (G ``ext/datasource/hotspot_rule_converter.go``) or an object of string keys.

Java: ``grade`` (0 thread, 1 QPS), ``paramIdx`` (required), ``count``, ``controlBehavior`` (0 reject,
2 rate limiter), ``maxQueueingTimeMs``, ``burstCount``, ``durationInSec`` (default 1) and
``paramFlowItemList: [{"object": "...", "count": n, "classType": "int"}]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from governance.rules import INT64_MAX, RuleReader, Validation, parse_items

CONCURRENCY, QPS = 0, 1
REJECT, THROTTLING = 0, 1
PARAMS_MAX_CAPACITY = 20_000    # G hotspot.ParamsMaxCapacity / J TOTAL_MAX_CAPACITY
PARAMS_CAPACITY_BASE = 4_000    # G ParamsCapacityBase / J BASE_PARAM_MAX_CAPACITY
CONCURRENCY_MAX_COUNT = 4_000   # G ConcurrencyMaxCount

_VAL_KINDS = {"KindInt": 0, "KindString": 1, "KindBool": 2, "KindFloat64": 3}
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
_JAVA_INTS = {"int", "java.lang.integer", "long", "java.lang.long", "byte", "java.lang.byte", "short",
              "java.lang.short"}
_JAVA_FLOATS = {"double", "java.lang.double", "float", "java.lang.float"}
_JAVA_BOOLS = {"boolean", "java.lang.boolean"}
_JAVA_CHARS = {"char", "java.lang.character"}


@dataclass(frozen=True)
class HotspotRule:
    resource: str
    dialect: str = "go"
    id: str | int | None = None
    regex: bool = False
    metric_type: int = CONCURRENCY
    behavior: int = REJECT
    param_index: int = 0
    param_key: str = ""
    threshold: int = 0
    max_queueing_ms: int = 0
    burst_count: int = 0
    duration_sec: int = 0
    params_max_capacity: int = 0
    specific_items: tuple[tuple[Any, int], ...] = ()
    # Java originals
    limit_app: str = "default"
    count: float = 0.0
    items_json: str = ""

    @property
    def capacity(self) -> int:
        if self.params_max_capacity > 0:
            return self.params_max_capacity
        if self.metric_type == CONCURRENCY:
            return CONCURRENCY_MAX_COUNT
        if self.duration_sec == 0:
            return PARAMS_MAX_CAPACITY
        return min(PARAMS_MAX_CAPACITY, PARAMS_CAPACITY_BASE * self.duration_sec)

    def same_as(self, other: HotspotRule) -> bool:
        """G ``Rule.Equals``: behaviour-specific field plus everything that shapes the check."""
        base = (self.dialect == other.dialect and self.resource == other.resource and self.regex == other.regex
                and self.metric_type == other.metric_type and self.behavior == other.behavior
                and self.params_max_capacity == other.params_max_capacity
                and self.param_index == other.param_index and self.param_key == other.param_key
                and self.threshold == other.threshold and self.duration_sec == other.duration_sec
                and self.specific_items == other.specific_items and self.limit_app == other.limit_app)
        if not base:
            return False
        if self.behavior == REJECT:
            return self.burst_count == other.burst_count
        return self.max_queueing_ms == other.max_queueing_ms

    def stat_reusable(self, other: HotspotRule) -> bool:
        """G ``IsStatReusable``: same resource, behaviour, capacity, duration and metric type."""
        return (self.dialect == other.dialect and self.resource == other.resource
                and self.behavior == other.behavior and self.params_max_capacity == other.params_max_capacity
                and self.duration_sec == other.duration_sec and self.metric_type == other.metric_type)

    def to_json(self) -> dict:
        out: dict = {"id": self.id} if self.id not in (None, "") else {}
        if self.dialect == "java":
            out.update({
                "resource": self.resource, "limitApp": self.limit_app, "grade": self.metric_type,
                "paramIdx": self.param_index, "count": self.count,
                "controlBehavior": 2 if self.behavior == THROTTLING else 0,
                "maxQueueingTimeMs": self.max_queueing_ms, "burstCount": self.burst_count,
                "durationInSec": self.duration_sec,
                "paramFlowItemList": json.loads(self.items_json) if self.items_json else [],
            })
            return out
        out.update({
            "resource": self.resource, "metricType": self.metric_type, "controlBehavior": self.behavior,
            "paramIndex": self.param_index, "paramKey": self.param_key, "threshold": self.threshold,
            "maxQueueingTimeMs": self.max_queueing_ms, "burstCount": self.burst_count,
            "durationInSec": self.duration_sec, "paramsMaxCapacity": self.params_max_capacity,
            "specificItems": [_go_item(value, limit) for value, limit in self.specific_items],
        })
        return out

    def describe(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), default=str)


def _go_item(value: Any, limit: int) -> dict:
    if isinstance(value, bool):
        return {"valKind": 2, "valStr": "true" if value else "false", "threshold": limit}
    if isinstance(value, int):
        return {"valKind": 0, "valStr": str(value), "threshold": limit}
    if isinstance(value, float):
        return {"valKind": 3, "valStr": repr(value), "threshold": limit}
    return {"valKind": 1, "valStr": str(value), "threshold": limit}


def parse_hotspot_rules(items: list, dialect: str) -> Validation:
    return parse_items("hotspot", items, _decode_java if dialect == "java" else _decode_go)


def _decode_go(r: RuleReader) -> HotspotRule:
    rule = HotspotRule(
        resource=r.string("resource"), dialect="go", id=r.string("id") or None, regex=r.boolean("regex"),
        metric_type=r.enum("metricType", CONCURRENCY, {"Concurrency": CONCURRENCY, "QPS": QPS}),
        behavior=r.enum("controlBehavior", REJECT, {"Reject": REJECT, "Throttling": THROTTLING}),
        param_index=r.integer("paramIndex", 0, -INT64_MAX, INT64_MAX), param_key=r.string("paramKey"),
        threshold=r.integer("threshold", 0, -INT64_MAX, INT64_MAX),
        max_queueing_ms=r.integer("maxQueueingTimeMs", 0, -INT64_MAX, INT64_MAX),
        burst_count=r.integer("burstCount", 0, -INT64_MAX, INT64_MAX),
        duration_sec=r.integer("durationInSec", 0, -INT64_MAX, INT64_MAX),
        params_max_capacity=r.integer("paramsMaxCapacity", 0, -INT64_MAX, INT64_MAX),
        specific_items=_go_items(r),
    )
    _validate(r, rule, "threshold", "paramIndex")
    if rule.param_index > 0 and rule.param_key:
        r.fail("paramKey", "paramIndex and paramKey are mutually exclusive (paramIndex must be <= 0 with a paramKey)")
    return rule


def _validate(r: RuleReader, rule: HotspotRule, threshold_name: str, index_name: str) -> None:
    """G ``IsValidRule`` / J ``ParamFlowRuleUtil.isValidRule``."""
    if not rule.resource.strip():
        r.fail("resource", "must be a non-empty string")
    if rule.threshold < 0 or rule.count < 0:
        r.fail(threshold_name, "must be >= 0")
    if rule.metric_type not in (CONCURRENCY, QPS):
        r.fail("metricType" if rule.dialect == "go" else "grade", f"invalid metric type {rule.metric_type}")
    if rule.behavior not in (REJECT, THROTTLING):
        r.fail("controlBehavior", f"invalid control behavior {rule.behavior}")
    if rule.metric_type == QPS and rule.duration_sec <= 0:
        r.fail("durationInSec", "must be > 0 for QPS rules")
    if rule.behavior == REJECT and rule.burst_count < 0:
        r.fail("burstCount", "must be >= 0")
    if rule.behavior == THROTTLING and rule.max_queueing_ms < 0:
        r.fail("maxQueueingTimeMs", "must be >= 0")
    if rule.regex:
        r.regex_ok("resource", rule.resource)


def _go_items(r: RuleReader) -> tuple[tuple[Any, int], ...]:
    raw = r.get("specificItems")
    if raw is None or raw == [] or raw == {} or not r.has("specificItems"):
        return ()
    if isinstance(raw, dict):
        items = []
        for key, limit in raw.items():
            if isinstance(limit, bool) or not isinstance(limit, int):
                r.fail(f"specificItems.{key}", f"threshold must be an integer, got {limit!r}")
                continue
            items.append((key, limit))
        return tuple(items)
    if not isinstance(raw, list):
        r.fail("specificItems", "must be a list of {valKind, valStr, threshold} or an object")
        return ()
    return tuple(item for i, entry in enumerate(raw) if (item := _go_item_value(r, i, entry)) is not None)


def _go_item_value(r: RuleReader, index: int, entry: Any) -> tuple[Any, int] | None:
    name = f"specificItems[{index}]"
    if not isinstance(entry, dict):
        r.fail(name, "must be an object {valKind, valStr, threshold}")
        return None
    lowered = {str(k).lower(): v for k, v in entry.items()}
    kind, text, limit = lowered.get("valkind", 0), lowered.get("valstr"), lowered.get("threshold", 0)
    if isinstance(kind, str):
        kind = _VAL_KINDS.get(kind, kind)
    if isinstance(limit, bool) or not isinstance(limit, int):
        r.fail(name + ".threshold", f"must be an integer, got {limit!r}")
        return None
    if not isinstance(text, str):
        r.fail(name + ".valStr", f"must be a string, got {text!r}")
        return None
    try:
        if kind == 0:
            return int(text.strip()), limit
        if kind == 1:
            return text, limit
        if kind == 2:
            return _GO_BOOLS[text], limit
        if kind == 3:
            return round(float(text), 5), limit  # G formats with %.5f and parses back
    except (ValueError, KeyError):
        r.fail(name + ".valStr", f"cannot parse {text!r} as valKind {kind}")
        return None
    r.fail(name + ".valKind", f"must be 0 (int), 1 (string), 2 (bool) or 3 (float64), got {kind!r}")
    return None


def _decode_java(r: RuleReader) -> HotspotRule:
    behavior = r.integer("controlBehavior", 0)
    count = r.number("count")
    items, items_json = _java_items(r)
    if not r.has("paramIdx"):
        r.fail("paramIdx", "is required")
    rule = HotspotRule(
        resource=r.string("resource"), dialect="java", id=r.get("id") if r.has("id") else None,
        regex=r.boolean("regex"), metric_type=r.integer("grade", QPS),
        behavior=THROTTLING if behavior == 2 else REJECT if behavior == 0 else behavior,
        param_index=r.integer("paramIdx", 0), threshold=int(count) if count >= 0 else -1,
        max_queueing_ms=r.integer("maxQueueingTimeMs", 0), burst_count=r.integer("burstCount", 0),
        duration_sec=r.integer("durationInSec", 1), specific_items=items,
        limit_app=r.string("limitApp", "default").strip() or "default", count=count, items_json=items_json,
    )
    if behavior not in (0, 2):
        r.fail("controlBehavior", f"must be 0 (reject) or 2 (rate limiter), got {behavior}")
    if rule.duration_sec <= 0:
        r.fail("durationInSec", "must be > 0")
    _validate(r, rule, "count", "paramIdx")
    if r.boolean("clusterMode"):
        r.fail("clusterMode", "cluster parameter flow is not supported (no token server)")
    return rule


def _java_items(r: RuleReader) -> tuple[tuple[tuple[Any, int], ...], str]:
    raw = r.get("paramFlowItemList")
    if raw is None or not r.has("paramFlowItemList"):
        return (), ""
    if not isinstance(raw, list):
        r.fail("paramFlowItemList", "must be a list of {object, count, classType}")
        return (), ""
    items = []
    for index, entry in enumerate(raw):
        name = f"paramFlowItemList[{index}]"
        if not isinstance(entry, dict):
            r.fail(name, "must be an object {object, count, classType}")
            continue
        lowered = {str(k).lower(): v for k, v in entry.items()}
        obj, limit, class_type = lowered.get("object"), lowered.get("count"), lowered.get("classtype") or "String"
        if isinstance(limit, bool) or not isinstance(limit, int):
            r.fail(name + ".count", f"must be an integer, got {limit!r}")
            continue
        value = _java_value(obj, str(class_type).lower())
        if value is None:
            r.fail(name + ".object", f"cannot parse {obj!r} as {class_type}")
            continue
        items.append((value, limit))
    return tuple(items), json.dumps(raw, sort_keys=True)


def _java_value(obj: Any, class_type: str) -> Any:
    """J ``ParamFlowRuleUtil.parseItemValue``."""
    if obj is None:
        return None
    text = str(obj)
    try:
        if class_type in _JAVA_INTS:
            return int(text)
        if class_type in _JAVA_FLOATS:
            return float(text)
        if class_type in _JAVA_BOOLS:
            return text.lower() == "true"
        if class_type in _JAVA_CHARS:
            return text[0] if text else None
    except ValueError:
        return None
    return text
