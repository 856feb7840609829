"""System adaptive protection rules (G ``core/system/rule.go``, J ``SystemRule``).

Go: one metric per rule -- ``metricType`` (0 Load, 1 AvgRT, 2 Concurrency, 3 InboundQPS, 4 CpuUsage with
``triggerCount <= 1.0``), ``triggerCount``, ``strategy`` (1 = BBR; -1 NoAdaptive; G's ``iota`` makes 0
merely "not BBR").

Java: one rule may set several limits -- ``highestSystemLoad``, ``highestCpuUsage``, ``qps``, ``avgRt``,
``maxThread`` (each -1 = unset); the effective limit of each metric is the minimum over all rules
(J ``SystemRuleManager.loadSystemConf``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from governance.rules import RuleReader, Validation, parse_items

LOAD, AVG_RT, CONCURRENCY, INBOUND_QPS, CPU_USAGE = 0, 1, 2, 3, 4
METRIC_NAMES = {LOAD: "load", AVG_RT: "avgRT", CONCURRENCY: "concurrency", INBOUND_QPS: "inboundQPS",
                CPU_USAGE: "cpuUsage"}
_METRICS = {"Load": LOAD, "AvgRT": AVG_RT, "Concurrency": CONCURRENCY, "InboundQPS": INBOUND_QPS,
            "CpuUsage": CPU_USAGE}
NO_ADAPTIVE, BBR = -1, 1
_STRATEGIES = {"NoAdaptive": NO_ADAPTIVE, "BBR": BBR}
JAVA_FIELDS = (("highestSystemLoad", LOAD), ("highestCpuUsage", CPU_USAGE), ("qps", INBOUND_QPS),
               ("avgRt", AVG_RT), ("maxThread", CONCURRENCY))


@dataclass(frozen=True)
class SystemRule:
    dialect: str = "go"
    id: str | int | None = None
    metric_type: int = LOAD
    trigger_count: float = 0.0
    strategy: int = 0
    # Java: (metric, limit) pairs this rule sets, in JAVA_FIELDS order
    java_limits: tuple[tuple[int, float], ...] = ()

    @property
    def resource(self) -> str:
        return METRIC_NAMES.get(self.metric_type, f"unknown({self.metric_type})")

    def to_json(self) -> dict:
        out: dict = {"id": self.id} if self.id not in (None, "") else {}
        if self.dialect == "java":
            limits = dict(self.java_limits)
            for name, metric in JAVA_FIELDS:
                value = limits.get(metric, -1)
                out[name] = int(value) if name == "maxThread" and value == int(value) else value
            return out
        out.update({"metricType": self.metric_type, "triggerCount": self.trigger_count, "strategy": self.strategy})
        return out

    def describe(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))


def parse_system_rules(items: list, dialect: str) -> Validation:
    return parse_items("system", items, _decode_java if dialect == "java" else _decode_go)


def _decode_go(r: RuleReader) -> SystemRule:
    rule = SystemRule(
        dialect="go", id=r.string("id") or None, metric_type=r.enum("metricType", LOAD, _METRICS),
        trigger_count=r.number("triggerCount"), strategy=r.enum("strategy", 0, _STRATEGIES),
    )
    if rule.trigger_count < 0:
        r.fail("triggerCount", f"must be >= 0, got {rule.trigger_count:g}")
    if rule.metric_type not in METRIC_NAMES:
        r.fail("metricType", f"invalid metric type {rule.metric_type} (0 Load, 1 AvgRT, 2 Concurrency, "
                             "3 InboundQPS, 4 CpuUsage)")
    elif rule.metric_type == CPU_USAGE and rule.trigger_count > 1:
        r.fail("triggerCount", f"invalid CPU usage, valid range is [0.0, 1.0], got {rule.trigger_count:g}")
    return rule


def _decode_java(r: RuleReader) -> SystemRule:
    limits = []
    for name, metric in JAVA_FIELDS:
        value = r.number(name, -1.0)
        if value >= 0:
            if metric == CPU_USAGE and value > 1:
                r.fail(name, f"must be within [0.0, 1.0] (or -1 for unset), got {value:g}")
                continue
            limits.append((metric, value))
    return SystemRule(dialect="java", id=r.get("id") if r.has("id") else None, java_limits=tuple(limits))
