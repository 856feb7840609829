"""Hotspot rule manager (G ``core/hotspot/rule_manager.go``).

An equal rule keeps its controller and per-value counters; a rule with the same resource, behaviour,
capacity, duration and metric type gets a new controller on the old counters; others start fresh.
"""

from __future__ import annotations

from governance.hotspot.controller import HotspotController
from governance.hotspot.rule import HotspotRule
from governance.rules import RuleManager


class HotspotRuleManager(RuleManager):
    kind = "hotspot"

    def equals(self, old: HotspotRule, new: HotspotRule) -> bool:
        return old.same_as(new)

    def reusable(self, old: HotspotRule, new: HotspotRule) -> bool:
        return old.stat_reusable(new)

    def generate(self, resource: str, rule: HotspotRule, donor: HotspotController | None) -> HotspotController:
        return HotspotController(rule, resource, donor.metric if donor is not None else None)
