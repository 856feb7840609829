"""Isolation rules: a concurrency limit per resource (G ``core/isolation/rule.go``; Go dialect only).

``{id, resource, metricType: 0 (Concurrency), threshold: uint32 > 0, regex}``. Sentinel Java has no
isolation rule; its equivalent is a flow rule with ``grade: 0`` (THREAD), which loads as a flow rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from governance.rules import UINT32_MAX, RuleReader, Validation, parse_items

CONCURRENCY = 0


@dataclass(frozen=True)
class IsolationRule:
    resource: str
    dialect: str = "go"
    id: str | None = None
    regex: bool = False
    metric_type: int = CONCURRENCY
    threshold: int = 0

    def to_json(self) -> dict:
        out: dict = {"id": self.id} if self.id else {}
        out.update({"resource": self.resource, "metricType": self.metric_type, "threshold": self.threshold})
        if self.regex:
            out["regex"] = True
        return out

    def describe(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))


def parse_isolation_rules(items: list, dialect: str) -> Validation:
    if dialect == "java" and items:
        return Validation((), ("isolation rules exist only in the go dialect; in the java dialect use a "
                               "flow rule with grade 0 (THREAD)",))
    return parse_items("isolation", items, _decode)


def _decode(r: RuleReader) -> IsolationRule:
    rule = IsolationRule(
        resource=r.string("resource"), id=r.string("id") or None, regex=r.boolean("regex"),
        metric_type=r.enum("metricType", CONCURRENCY, {"Concurrency": CONCURRENCY}),
        threshold=r.integer("threshold", 0, 0, UINT32_MAX),
    )
    if not rule.resource:
        r.fail("resource", "must be a non-empty string")
    if rule.metric_type != CONCURRENCY:
        r.fail("metricType", f"unsupported metric type: {rule.metric_type} (only 0, Concurrency)")
    if rule.threshold == 0:
        r.fail("threshold", "must be > 0")
    if rule.regex:
        r.regex_ok("resource", rule.resource)
    return rule
